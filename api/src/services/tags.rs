//! Tags (pools): creating, renaming and deleting them, and the overview with
//! each pool's figures, counted by the database.

use super::audit::{self, Change};
use super::keys::{self, KeyFilter, Removal, TagRef};
use super::limits;
use super::pagination::{Cursor, Page, PageArgs};
use super::sql::Sql;
use crate::auth::{RequestContext, may};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};
use entity::tag::{self, AUTO_GENERATED, NO_TAG, NO_TAG_ID};
use entity::values::TagName;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set, Value,
};

/// A pool and its figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagStats {
    pub id: String,
    pub name: String,
    /// `auto-generated` and `no tag` belong to Keysmith: they cannot be renamed or deleted.
    pub system: bool,
    pub total: i64,
    /// AVAILABLE keys, waiting to be delivered.
    pub remaining: i64,
    pub assigned: i64,
    pub created_at: Option<DateTime<Utc>>,
}

impl TagStats {
    /// Keys delivered and in use, or retired: neither waiting nor merely assigned.
    pub fn used(&self) -> i64 {
        self.total - self.remaining - self.assigned
    }

    /// The share of the pool no longer available (assigned or used), 0–100.
    pub fn used_percentage(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            ((self.total - self.remaining) as f64 * 1000.0 / self.total as f64).round() / 10.0
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagOrderField {
    #[default]
    Name,
    Remaining,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct TagOrder {
    pub field: TagOrderField,
    pub descending: bool,
}

/// Total, AVAILABLE and ASSIGNED keys among the rows `k` (NULL rows of an outer join not counted).
const FIGURES: &str = "COUNT(k.id), \
     COALESCE(SUM(CASE WHEN k.status = 'AVAILABLE' THEN 1 ELSE 0 END), 0), \
     COALESCE(SUM(CASE WHEN k.status = 'ASSIGNED' THEN 1 ELSE 0 END), 0)";
/// The same for rows that all exist: answerable from the (environment, status) index alone.
const FIGURES_OF_ROWS: &str = "COUNT(*), \
     COALESCE(SUM(CASE WHEN k.status = 'AVAILABLE' THEN 1 ELSE 0 END), 0), \
     COALESCE(SUM(CASE WHEN k.status = 'ASSIGNED' THEN 1 ELSE 0 END), 0)";

async fn tag_figures(db: &impl ConnectionTrait, ctx: &RequestContext, only: Option<&str>) -> AppResult<Vec<TagStats>> {
    let mut sql = Sql::new("");
    sql.push(
        &format!(
            "SELECT t.id, t.name, t.created_at, {FIGURES} FROM tag t \
             LEFT JOIN license_key_tag lt ON lt.tag_id = t.id \
             LEFT JOIN license_key k ON k.id = lt.license_key_id \
             WHERE t.environment = ?"
        ),
        [Value::from(ctx.environment.as_str())],
    );
    if let Some(id) = only {
        sql.push(" AND t.id = ?", [Value::from(id)]);
    }
    sql.push(" GROUP BY t.id, t.name, t.created_at", []);
    let rows = db.query_all_raw(sql.statement(db.get_database_backend())).await?;
    rows.iter()
        .map(|row| {
            let name: String = row.try_get_by_index(1)?;
            Ok(TagStats {
                id: row.try_get_by_index(0)?,
                system: tag::is_system_name(&name),
                name,
                created_at: Some(row.try_get_by_index(2)?),
                total: row.try_get_by_index(3)?,
                remaining: row.try_get_by_index(4)?,
                assigned: row.try_get_by_index(5)?,
            })
        })
        .collect::<Result<_, sea_orm::DbErr>>()
        .map_err(Into::into)
}

/// Figures of the keys without a tag: every key of the environment (counted
/// from the status index alone) less the keys that carry a tag (found from the
/// links). That costs what the tagged keys cost, not a probe per key, so a
/// large untagged pool stays cheap to count.
async fn untagged_figures(db: &impl ConnectionTrait, ctx: &RequestContext) -> AppResult<TagStats> {
    let environment = Value::from(ctx.environment.as_str());
    let backend = db.get_database_backend();
    let mut all = Sql::new("");
    all.push(&format!("SELECT {FIGURES_OF_ROWS} FROM license_key k WHERE k.environment = ?"), [environment.clone()]);
    let mut tagged = Sql::new("");
    tagged.push(
        &format!(
            "SELECT {FIGURES} FROM (SELECT DISTINCT license_key_id FROM license_key_tag) t \
             JOIN license_key k ON k.id = t.license_key_id WHERE k.environment = ?"
        ),
        [environment],
    );
    let mut figures = [0i64; 3];
    for (sql, sign) in [(all, 1), (tagged, -1)] {
        let row = db
            .query_one_raw(sql.statement(backend))
            .await?
            .ok_or_else(|| AppError::internal("an aggregate returned no row"))?;
        for (i, figure) in figures.iter_mut().enumerate() {
            *figure += sign * row.try_get_by_index::<i64>(i)?;
        }
    }
    let [total, remaining, assigned] = figures;
    Ok(TagStats {
        id: NO_TAG_ID.into(),
        name: NO_TAG.into(),
        system: true,
        total,
        remaining,
        assigned,
        created_at: None,
    })
}

/// The pools at or past the exhaustion threshold (the setting), fullest
/// first: the seller's tags and "no tag", never `auto-generated` (its keys
/// are made on demand), never an empty pool.
pub async fn running_low(db: &DatabaseConnection, ctx: &RequestContext) -> AppResult<Vec<TagStats>> {
    ctx.viewer.require(may::READ)?;
    let threshold = f64::from(super::settings::current(db).await?.exhaustion_threshold);
    let mut all = tag_figures(db, ctx, None).await?;
    all.push(untagged_figures(db, ctx).await?);
    all.retain(|t| t.name != AUTO_GENERATED && t.total > 0 && t.used_percentage() >= threshold);
    all.sort_by(|a, b| b.used_percentage().total_cmp(&a.used_percentage()).then_with(|| a.name.cmp(&b.name)));
    Ok(all)
}

/// Every pool with its figures, the system ones included: searchable by name,
/// ordered by name or remaining keys. Tags are few next to keys, so the page is
/// cut from the whole (aggregated) list.
pub async fn overview(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    search: Option<&str>,
    order: TagOrder,
    args: &PageArgs,
) -> AppResult<Page<TagStats>> {
    ctx.viewer.require(may::READ)?;
    let term = limits::search("search", search)?.map(str::to_lowercase);
    let mut all = tag_figures(db, ctx, None).await?;
    all.push(untagged_figures(db, ctx).await?);
    if let Some(term) = term {
        all.retain(|t| t.name.contains(&term));
    }
    all.sort_by(|a, b| {
        let primary = match order.field {
            TagOrderField::Name => a.name.cmp(&b.name),
            TagOrderField::Remaining => a.remaining.cmp(&b.remaining),
        };
        let primary = if order.descending { primary.reverse() } else { primary };
        // Ties read alphabetically whichever way the list runs.
        primary.then_with(|| a.name.cmp(&b.name))
    });
    let total = all.len();
    let start = match &args.after {
        None => 0,
        Some(cursor) => {
            cursor
                .value
                .parse::<usize>()
                .map_err(|_| AppError::invalid("after", "is not a cursor returned by this list"))?
                + 1
        }
    };
    let end = (start + args.first as usize).min(total);
    let items = all
        .into_iter()
        .enumerate()
        .skip(start)
        .take(end.saturating_sub(start))
        .map(|(i, t)| {
            let cursor = Cursor { value: i.to_string(), id: t.id.clone() };
            (cursor.encode(), t)
        })
        .collect();
    Ok(Page { items, has_next_page: end < total, has_previous_page: start > 0, total_count: Some(total as u64) })
}

/// A pool's figures, without a role check (for Keysmith's own use); `None`
/// when the tag does not exist.
pub(crate) async fn figures(
    db: &impl ConnectionTrait,
    ctx: &RequestContext,
    pool: &TagRef,
) -> AppResult<Option<TagStats>> {
    match pool {
        TagRef::NoTag => Ok(Some(untagged_figures(db, ctx).await?)),
        TagRef::Tag(id) => Ok(tag_figures(db, ctx, Some(id)).await?.pop()),
    }
}

/// One pool's figures (`no-tag` for keys without a tag).
pub async fn stats(db: &DatabaseConnection, ctx: &RequestContext, id: &str) -> AppResult<TagStats> {
    ctx.viewer.require(may::READ)?;
    if id == NO_TAG_ID {
        return untagged_figures(db, ctx).await;
    }
    tag_figures(db, ctx, Some(id)).await?.pop().ok_or_else(|| AppError::not_found("tag"))
}

pub(crate) async fn find(db: &impl ConnectionTrait, ctx: &RequestContext, id: &str) -> AppResult<Option<tag::Model>> {
    Ok(tag::Entity::find_by_id(id.to_string()).filter(tag::Column::Environment.eq(ctx.environment)).one(db).await?)
}

fn system_tag_error(field: &str, name: &str, what: &str) -> AppError {
    AppError::invalid(field, format!("'{name}' is a system tag and cannot be {what}"))
}

/// A tag of the seller's own (not a system tag), for operations that change its keys' tags.
pub(crate) async fn find_sellers_tag(
    db: &impl ConnectionTrait,
    ctx: &RequestContext,
    id: &str,
    field: &str,
) -> AppResult<tag::Model> {
    if id == NO_TAG_ID {
        return Err(system_tag_error(field, NO_TAG, "used here"));
    }
    let tag = find(db, ctx, id).await?.ok_or_else(|| AppError::not_found_in("tag", field))?;
    if tag.name == AUTO_GENERATED {
        return Err(system_tag_error(field, AUTO_GENERATED, "used here; Keysmith manages its keys"));
    }
    Ok(tag)
}

fn parse_name(field: &str, raw: &str) -> AppResult<String> {
    let name = TagName::parse(field, raw)?;
    if tag::is_system_name(name.as_str()) {
        return Err(AppError::invalid(field, format!("'{raw}' is the name of a system tag")));
    }
    Ok(name.as_str().to_string())
}

pub async fn create(db: &DatabaseConnection, ctx: &RequestContext, name: &str) -> AppResult<tag::Model> {
    ctx.viewer.require(may::MANAGE)?;
    let name = parse_name("name", name)?;
    let txn = begin_write(db).await?;
    let created = insert(&txn, ctx, &name).await?;
    txn.commit().await?;
    Ok(created)
}

/// Creates a tag inside a caller's transaction, with its audit event.
pub(crate) async fn insert(txn: &impl ConnectionTrait, ctx: &RequestContext, name: &str) -> AppResult<tag::Model> {
    let created = tag::ActiveModel {
        id: Set(entity::new_id()),
        environment: Set(ctx.environment),
        name: Set(name.to_string()),
        created_at: Set(entity::now()),
    }
    .insert(txn)
    .await?;
    audit::record(
        txn,
        ctx,
        Change {
            action: "tag.created",
            target_kind: "tag",
            target_id: &created.id,
            after: Some(serde_json::json!({ "name": created.name })),
            ..Change::default()
        },
    )
    .await?;
    Ok(created)
}

pub async fn rename(db: &DatabaseConnection, ctx: &RequestContext, id: &str, name: &str) -> AppResult<tag::Model> {
    ctx.viewer.require(may::MANAGE)?;
    if id == NO_TAG_ID {
        return Err(system_tag_error("id", NO_TAG, "renamed"));
    }
    let name = parse_name("name", name)?;
    let txn = begin_write(db).await?;
    let before = find(&txn, ctx, id).await?.ok_or_else(|| AppError::not_found_in("tag", "id"))?;
    if before.name == AUTO_GENERATED {
        return Err(system_tag_error("id", AUTO_GENERATED, "renamed"));
    }
    let mut active: tag::ActiveModel = before.clone().into();
    active.name = Set(name);
    let after = active.update(&txn).await?;
    audit::record(
        &txn,
        ctx,
        Change {
            action: "tag.renamed",
            target_kind: "tag",
            target_id: &after.id,
            before: Some(serde_json::json!({ "name": before.name })),
            after: Some(serde_json::json!({ "name": after.name })),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

/// Deletes a tag with every key it holds. Keys that were ever activated need `force`.
pub async fn delete(db: &DatabaseConnection, ctx: &RequestContext, id: &str, force: bool) -> AppResult<Removal> {
    ctx.viewer.require(may::MANAGE)?;
    if id == NO_TAG_ID {
        return Err(system_tag_error("id", NO_TAG, "deleted"));
    }
    let txn = begin_write(db).await?;
    let tag = find(&txn, ctx, id).await?.ok_or_else(|| AppError::not_found_in("tag", "id"))?;
    if tag.name == AUTO_GENERATED {
        return Err(system_tag_error("id", AUTO_GENERATED, "deleted"));
    }
    let filter = KeyFilter { tag: Some(TagRef::Tag(tag.id.clone())), ..KeyFilter::default() };
    let sel = keys::selection(txn.get_database_backend(), ctx.environment, &filter, "k")?;
    let removal = keys::remove(&txn, ctx, &sel, force, "tag.keys_deleted", ("tag", &tag.id)).await?;
    tag::Entity::delete_by_id(tag.id.clone()).exec(&txn).await?;
    audit::record(
        &txn,
        ctx,
        Change {
            action: "tag.deleted",
            target_kind: "tag",
            target_id: &tag.id,
            before: Some(serde_json::json!({ "name": tag.name })),
            after: Some(serde_json::json!({ "keysDeleted": removal.keys, "ordersAffected": removal.orders_affected })),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(removal)
}
