//! Keyset pagination for every list: a page is ordered by one column and the
//! row id (so ties are stable), and the cursor carries both values of the last
//! row. Pages stay correct when rows are inserted in between, and cost an index
//! range scan however deep the client pages.

use crate::error::{AppError, AppResult};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Order};
use sea_orm::{
    Condition, ConnectionTrait, EntityTrait, IntoSimpleExpr, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Select, Value,
};

pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const MAX_PAGE_SIZE: u64 = 100;

/// `first` and `after` as a client sent them, checked.
#[derive(Debug, Clone)]
pub struct PageArgs {
    pub first: u64,
    pub after: Option<Cursor>,
}

impl PageArgs {
    pub fn parse(first: Option<i32>, after: Option<String>) -> AppResult<Self> {
        let first = match first {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if (0..=MAX_PAGE_SIZE as i32).contains(&n) => n as u64,
            Some(n) => {
                return Err(AppError::invalid("first", format!("must be between 0 and {MAX_PAGE_SIZE} (got {n})")));
            }
        };
        let after = after.map(|c| Cursor::decode(&c)).transpose()?;
        Ok(Self { first, after })
    }
}

/// The position after one row: its sort value and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub value: String,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::json!([self.value, self.id]).to_string())
    }

    pub fn decode(raw: &str) -> AppResult<Self> {
        let invalid = || AppError::invalid("after", "is not a cursor returned by this list");
        super::limits::at_most("after", raw, super::limits::CURSOR)?;
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let (value, id): (String, String) = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        // No cursor Keysmith hands out holds a NUL, and PostgreSQL would refuse one in a comparison.
        if value.contains('\0') || id.contains('\0') {
            return Err(invalid());
        }
        Ok(Self { value, id })
    }
}

/// How the sort column's values are written in cursors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKind {
    Text,
    Time,
    Int,
}

/// The ordering of one list: a column (or an expression over the row), its
/// kind, the id column and the direction.
#[derive(Debug, Clone)]
pub struct Keyset<C> {
    pub column: C,
    pub kind: SortKind,
    pub id: C,
    pub descending: bool,
}

/// One page of a list.
#[derive(Debug)]
pub struct Page<T> {
    /// Each row with the cursor that points just after it.
    pub items: Vec<(String, T)>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
    /// Rows matching the filter, counted only when asked for.
    pub total_count: Option<u64>,
}

pub fn time_value(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn sql_value(kind: SortKind, raw: &str) -> AppResult<Value> {
    match kind {
        SortKind::Text => Ok(Value::from(raw.to_string())),
        SortKind::Time => DateTime::parse_from_rfc3339(raw)
            .map(|t| Value::from(t.with_timezone(&Utc)))
            .map_err(|_| AppError::invalid("after", "is not a cursor returned by this list")),
        SortKind::Int => raw
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| AppError::invalid("after", "is not a cursor returned by this list")),
    }
}

/// Runs `query` for one page. `sort_value` and `id_of` read the sort column
/// and the id back from a row, to build its cursor.
pub async fn paginate<E, C>(
    db: &impl ConnectionTrait,
    query: Select<E>,
    keyset: Keyset<C>,
    args: &PageArgs,
    want_total: bool,
    sort_value: impl Fn(&E::Model) -> String,
    id_of: impl Fn(&E::Model) -> String,
) -> AppResult<Page<E::Model>>
where
    E: EntityTrait,
    C: IntoSimpleExpr,
    E::Model: Send + Sync,
{
    let column: Expr = keyset.column.into_simple_expr();
    let id_column: Expr = keyset.id.into_simple_expr();
    let total_count = if want_total { Some(query.clone().count(db).await?) } else { None };
    let mut query = query;
    if let Some(cursor) = &args.after {
        let value = sql_value(keyset.kind, &cursor.value)?;
        let id = Value::from(cursor.id.clone());
        let (beyond, id_beyond) = if keyset.descending {
            (column.clone().lt(value.clone()), id_column.clone().lt(id))
        } else {
            (column.clone().gt(value.clone()), id_column.clone().gt(id))
        };
        query = query
            .filter(Condition::any().add(beyond).add(Condition::all().add(column.clone().eq(value)).add(id_beyond)));
    }
    let order = if keyset.descending { Order::Desc } else { Order::Asc };
    let mut rows =
        query.order_by(column, order.clone()).order_by(id_column, order).limit(args.first + 1).all(db).await?;
    let has_next_page = rows.len() as u64 > args.first;
    rows.truncate(args.first as usize);
    let items = rows
        .into_iter()
        .map(|row| {
            let cursor = Cursor { value: sort_value(&row), id: id_of(&row) };
            (cursor.encode(), row)
        })
        .collect();
    Ok(Page { items, has_next_page, has_previous_page: args.after.is_some(), total_count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = Cursor { value: "Pro Suite".into(), id: "01J".into() };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        let err = Cursor::decode("not-a-cursor").unwrap_err();
        assert_eq!(err.field(), Some("after"));
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(PageArgs::parse(None, None).unwrap().first, DEFAULT_PAGE_SIZE);
        assert_eq!(PageArgs::parse(Some(0), None).unwrap().first, 0);
        assert_eq!(PageArgs::parse(Some(101), None).unwrap_err().field(), Some("first"));
        assert_eq!(PageArgs::parse(Some(-1), None).unwrap_err().field(), Some("first"));
    }
}
