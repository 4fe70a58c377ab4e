//! Hand-written SQL for set-based work the query builder does not express
//! well (bulk moves, duplicate clean-up, aggregates). Written once with `?`
//! placeholders; PostgreSQL gets `$1, $2, …`.
//!
//! The words that differ between the databases are chosen here, each by one
//! named function: [`like`], [`row_locks`], [`skip_locked`] and [`one_of`].
//! Search conditions (LIKE and the key index) are in [`search`], the
//! outbox's claims (email, webhook deliveries) in [`outbox`].

mod outbox;
mod search;

pub use outbox::{claim_due, due_groups};
pub use search::{contains, escape_like};
pub(crate) use search::{key_environment, key_search, order_search};

use sea_orm::{DbBackend, Statement, Value};

/// A SQL fragment and the values of its `?` placeholders.
#[derive(Debug, Clone, Default)]
pub struct Sql {
    pub text: String,
    pub values: Vec<Value>,
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Self {
        Self { text: text.into(), values: Vec::new() }
    }

    /// Appends text with its values.
    pub fn push(&mut self, text: &str, values: impl IntoIterator<Item = Value>) -> &mut Self {
        self.text.push_str(text);
        self.values.extend(values);
        self
    }

    /// Appends another fragment.
    pub fn append(&mut self, other: &Sql) -> &mut Self {
        self.text.push_str(&other.text);
        self.values.extend(other.values.iter().cloned());
        self
    }

    /// The fragment as a query-builder condition (which numbers PostgreSQL's
    /// placeholders `$1, $2, …` within the fragment, as here).
    pub fn expr(&self, backend: DbBackend) -> sea_orm::sea_query::Expr {
        let text = match backend {
            DbBackend::Postgres => numbered(&self.text),
            _ => self.text.clone(),
        };
        sea_orm::sea_query::Expr::cust_with_values(text, self.values.clone())
    }

    pub fn statement(&self, backend: DbBackend) -> Statement {
        let text = match backend {
            DbBackend::Postgres => numbered(&self.text),
            _ => self.text.clone(),
        };
        Statement::from_sql_and_values(backend, text, self.values.clone())
    }
}

fn numbered(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = 0;
    let mut in_string = false;
    for c in text.chars() {
        match c {
            '\'' => {
                in_string = !in_string;
                out.push(c);
            }
            '?' if !in_string => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// `column` is one of `ids`. On PostgreSQL `column = ANY(?)` with the ids as
/// one array: the statement's text is the same for any number of ids, so the
/// driver's prepared statement and PostgreSQL's plan of it are reused, where
/// `IN ($1, …, $100)` is a new statement, planned anew, for each count.
/// Elsewhere `column IN (?, …)` (never empty: no id matches nothing).
pub fn one_of(backend: DbBackend, column: &str, ids: &[String]) -> Sql {
    match backend {
        DbBackend::Postgres => Sql::new(format!("{column} = ANY(?)")).push("", [Value::from(ids.to_vec())]).to_owned(),
        _ if ids.is_empty() => Sql::new("1 = 0"),
        _ => Sql::new(format!("{column} IN ({})", placeholders(ids.len())))
            .push("", ids.iter().map(|id| Value::from(id.as_str())))
            .to_owned(),
    }
}

/// [`one_of`] for the query builder.
pub fn column_one_of(
    backend: DbBackend,
    column: impl sea_orm::ColumnTrait,
    ids: &[String],
) -> sea_orm::sea_query::Expr {
    match backend {
        DbBackend::Postgres if !ids.is_empty() => column.eq_any(ids.iter().cloned()),
        _ => sea_orm::sea_query::Expr::expr(column.is_in(ids.iter().cloned())),
    }
}

/// The case-insensitive `LIKE`: `ILIKE` on PostgreSQL (any letter), `LIKE`
/// on SQLite, whose `LIKE` already ignores the case of ASCII letters and has
/// no `ILIKE`.
pub fn like(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "ILIKE",
        _ => "LIKE",
    }
}

/// Whether `SELECT … FOR UPDATE` takes row locks: on PostgreSQL only. On
/// SQLite every write transaction (`db::begin_write`, `BEGIN IMMEDIATE`)
/// holds the database's write lock from its start, so a row lock would add
/// nothing. sea-query leaves `FOR UPDATE` out of builder queries on SQLite,
/// but not the space before it, so builder queries still lock only when this
/// says so: the SQL sent to SQLite stays exactly what it was. Row locks are taken by the key claim (`fulfilment/`), the waiting-line
/// backfill, the outbox claim ([`claim_due`]), and builder queries in
/// `fulfilment/manage.rs`, `licenses.rs`, `own.rs`, `activations.rs` and
/// `webhooks/delivery.rs`.
pub fn row_locks(backend: DbBackend) -> bool {
    backend == DbBackend::Postgres
}

/// The lock clause for hand-written SQL: ` FOR UPDATE SKIP LOCKED` (or
/// ` FOR UPDATE OF {of} SKIP LOCKED`, locking only the rows of table alias
/// `of`) where rows lock, so concurrent transactions pass over each other's
/// rows instead of waiting; nothing on SQLite, where the clause is a syntax
/// error and [`row_locks`] says why none is needed.
pub fn skip_locked(backend: DbBackend, of: Option<&str>) -> String {
    match of {
        _ if !row_locks(backend) => String::new(),
        Some(of) => format!(" FOR UPDATE OF {of} SKIP LOCKED"),
        None => " FOR UPDATE SKIP LOCKED".to_string(),
    }
}

/// `?, ?, ?` for `n` values.
pub fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered_outside_strings() {
        assert_eq!(numbered("a = ? AND b LIKE '?%' AND c IN (?, ?)"), "a = $1 AND b LIKE '?%' AND c IN ($2, $3)");
        assert_eq!(placeholders(3), "?, ?, ?");
    }

    #[test]
    fn lock_clauses_are_written_where_rows_lock() {
        assert_eq!(like(DbBackend::Postgres), "ILIKE");
        assert_eq!(like(DbBackend::Sqlite), "LIKE");
        assert_eq!(skip_locked(DbBackend::Postgres, None), " FOR UPDATE SKIP LOCKED");
        assert_eq!(skip_locked(DbBackend::Postgres, Some("ol")), " FOR UPDATE OF ol SKIP LOCKED");
        assert_eq!(skip_locked(DbBackend::Sqlite, None), "");
        assert_eq!(skip_locked(DbBackend::Sqlite, Some("ol")), "");
    }

    /// What sea-query writes for a locked builder query on SQLite: no
    /// `FOR UPDATE` (a syntax error there), but the space before it stays. That
    /// space is why builder queries lock only when [`row_locks`] says so (the
    /// text sent to SQLite stays as it was); if this fails after a sea-query
    /// upgrade, revisit that choice.
    #[test]
    fn sea_query_writes_no_row_lock_on_sqlite() {
        use sea_orm::sea_query::{LockBehavior, LockType};
        use sea_orm::{EntityTrait, QuerySelect, QueryTrait};
        let plain = entity::order_line::Entity::find_by_id("x").build(DbBackend::Sqlite).sql;
        let locked = entity::order_line::Entity::find_by_id("x").lock_exclusive();
        let skipping =
            entity::order_line::Entity::find_by_id("x").lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        for query in [locked, skipping] {
            assert!(query.build(DbBackend::Postgres).sql.contains("FOR UPDATE"));
            let sqlite = query.build(DbBackend::Sqlite).sql;
            assert!(!sqlite.contains("FOR UPDATE"), "{sqlite}");
            assert_eq!(sqlite.trim_end(), plain);
        }
    }
}
