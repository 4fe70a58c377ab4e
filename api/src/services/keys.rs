//! Licence keys in their pools: choosing keys (by tag, status, any part of the
//! key, or ids), listing them, deleting them, and tagging, untagging and moving
//! them between tags. Bulk work is set-based SQL: a million keys are never
//! loaded into memory. The statements are built in `keys/sql.rs`.

mod sql;

pub use sql::selection;
pub(crate) use sql::{deliverable, member_of_pool};

use super::audit::{self, Change};
use super::pagination::{Cursor, Keyset, Page, PageArgs, SortKind, paginate, time_value};
use super::sql::Sql;
use super::tags;
use crate::auth::{RequestContext, may};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use entity::tag::NO_TAG_ID;
use entity::{LicenseStatus, license_key};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, Iterable, QueryFilter, Value};
use std::collections::{BTreeSet, HashMap};

/// Most ids one request may name; larger sets are chosen by filter.
pub const MAX_IDS: usize = 1000;
/// Search terms shorter than this match the start of the key instead of any part.
pub const MIN_SUBSTRING: usize = 3;

/// A tag as a filter: a real tag, or "no tag" (keys without any tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TagRef {
    NoTag,
    Tag(String),
}

impl TagRef {
    pub fn parse(id: &str) -> Self {
        if id == NO_TAG_ID { TagRef::NoTag } else { TagRef::Tag(id.to_string()) }
    }

    /// The id lists and alerts use: the tag's id, or `no-tag`.
    pub fn id(&self) -> &str {
        match self {
            TagRef::NoTag => NO_TAG_ID,
            TagRef::Tag(id) => id,
        }
    }
}

/// Which keys an operation is about; every part narrows the choice.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub tag: Option<TagRef>,
    pub status: Option<LicenseStatus>,
    /// Any part of the key, the customer's email or name, or the product's
    /// name (at least 3 characters), or their start (fewer).
    pub search: Option<String>,
    pub ids: Option<Vec<String>>,
    pub product_id: Option<String>,
    pub customer_id: Option<String>,
    /// Keys whose expiry falls before this moment (lifetime keys never do).
    pub expiring_before: Option<chrono::DateTime<chrono::Utc>>,
    /// Keys an order line for this product could be given: see [`deliverable`].
    pub deliverable_to: Option<String>,
}

/// What a removal did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removal {
    pub keys: u64,
    /// Distinct customer orders that had one of the removed keys.
    pub orders_affected: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyOrderField {
    Key,
    #[default]
    CreatedAt,
    /// The product's name; keys without a product first.
    Product,
    /// The customer's name (their email when the name is empty); keys without a customer first.
    Customer,
    /// Lifecycle order: available, assigned, active, inactive, suspended, expired, revoked.
    Status,
    /// Unlimited (`-1`) counts as the largest.
    ActivationLimit,
    /// Lifetime keys count as expiring last.
    Expiry,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct KeyOrder {
    pub field: KeyOrderField,
    pub descending: bool,
}

pub async fn list(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    filter: &KeyFilter,
    order: KeyOrder,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<license_key::Model>> {
    ctx.viewer.require(may::READ)?;
    let backend = db.get_database_backend();
    let sel = selection(backend, ctx.environment, filter, "license_key")?;
    let query = license_key::Entity::find().filter(sel.expr(backend));
    let (column, kind) = sort_expression(backend, order.field);
    let keyset = Keyset { column, kind, id: license_key::Column::Id.into_expr(), descending: order.descending };
    let page = paginate(db, query, keyset, args, want_total, |k| sort_value(order.field, k), |k| k.id.clone()).await?;
    match order.field {
        KeyOrderField::Product | KeyOrderField::Customer => with_name_cursors(db, order.field, page).await,
        _ => Ok(page),
    }
}

/// Lifetime keys sort as if they expired at this moment.
fn never_expires() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(253_402_300_799, 0).unwrap_or_default() // 9999-12-31T23:59:59Z
}

fn status_rank(status: LicenseStatus) -> i64 {
    LicenseStatus::iter().position(|s| s == status).unwrap_or_default() as i64
}

fn limit_rank(limit: i32) -> i64 {
    if limit < 0 { i64::from(i32::MAX) } else { i64::from(limit) }
}

/// The SQL a licence list sorts by, on the `license_key` table; [`sort_value`]
/// computes the same value from a row.
fn sort_expression(backend: DbBackend, field: KeyOrderField) -> (Expr, SortKind) {
    let k = "license_key";
    match field {
        KeyOrderField::Key => (license_key::Column::Key.into_expr(), SortKind::Text),
        KeyOrderField::CreatedAt => (license_key::Column::CreatedAt.into_expr(), SortKind::Time),
        KeyOrderField::Status => {
            let arms: String =
                LicenseStatus::iter().map(|s| format!(" WHEN '{}' THEN {}", s.as_str(), status_rank(s))).collect();
            (Expr::cust(format!("(CASE {k}.status{arms} END)")), SortKind::Int)
        }
        KeyOrderField::ActivationLimit => (
            Expr::cust(format!("(CASE WHEN {k}.activation_limit < 0 THEN {} ELSE {k}.activation_limit END)", i32::MAX)),
            SortKind::Int,
        ),
        KeyOrderField::Expiry => {
            let sql = Sql { text: format!("COALESCE({k}.expires_at, ?)"), values: vec![Value::from(never_expires())] };
            (sql.expr(backend), SortKind::Time)
        }
        KeyOrderField::Product => (
            Expr::cust(format!("COALESCE((SELECT p.name FROM product p WHERE p.id = {k}.product_id), '')")),
            SortKind::Text,
        ),
        KeyOrderField::Customer => (
            Expr::cust(format!(
                "COALESCE((SELECT CASE WHEN c.name <> '' THEN c.name ELSE c.email END \
                 FROM customer c WHERE c.id = {k}.customer_id), '')"
            )),
            SortKind::Text,
        ),
    }
}

/// A row's sort value as a cursor carries it. Product and customer names are
/// not on the row: [`with_name_cursors`] fills them in.
fn sort_value(field: KeyOrderField, k: &license_key::Model) -> String {
    match field {
        KeyOrderField::Key => k.key.clone(),
        KeyOrderField::CreatedAt => time_value(&k.created_at),
        KeyOrderField::Status => status_rank(k.status).to_string(),
        KeyOrderField::ActivationLimit => limit_rank(k.activation_limit).to_string(),
        KeyOrderField::Expiry => time_value(&k.expires_at.unwrap_or_else(never_expires)),
        KeyOrderField::Product | KeyOrderField::Customer => String::new(),
    }
}

/// Rewrites a page's cursors with the product or customer name it was sorted by
/// (one query for the whole page).
async fn with_name_cursors(
    db: &DatabaseConnection,
    field: KeyOrderField,
    mut page: Page<license_key::Model>,
) -> AppResult<Page<license_key::Model>> {
    let names: HashMap<String, String> = if field == KeyOrderField::Product {
        let ids: BTreeSet<String> = page.items.iter().filter_map(|(_, k)| k.product_id.clone()).collect();
        entity::product::Entity::find()
            .filter(entity::product::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|p| (p.id, p.name))
            .collect()
    } else {
        let ids: BTreeSet<String> = page.items.iter().filter_map(|(_, k)| k.customer_id.clone()).collect();
        entity::customer::Entity::find()
            .filter(entity::customer::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|c| (c.id, if c.name.is_empty() { c.email } else { c.name }))
            .collect()
    };
    for (cursor, k) in &mut page.items {
        let owner = if field == KeyOrderField::Product { &k.product_id } else { &k.customer_id };
        let value = owner.as_ref().and_then(|id| names.get(id)).cloned().unwrap_or_default();
        *cursor = Cursor { value, id: k.id.clone() }.encode();
    }
    Ok(page)
}

async fn scalar(db: &impl ConnectionTrait, sql: &Sql) -> AppResult<i64> {
    let row = db.query_one_raw(sql.statement(db.get_database_backend())).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0))
}

async fn execute(db: &impl ConnectionTrait, sql: &Sql) -> AppResult<u64> {
    Ok(db.execute_raw(sql.statement(db.get_database_backend())).await?.rows_affected())
}

/// Deletes the keys `filter` chooses. Keys that were ever activated need `force`.
pub async fn delete(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    filter: &KeyFilter,
    force: bool,
) -> AppResult<Removal> {
    ctx.viewer.require(may::MANAGE)?;
    let txn = begin_write(db).await?;
    if let Some(TagRef::Tag(id)) = &filter.tag {
        tags::find(&txn, ctx, id).await?.ok_or_else(|| AppError::not_found_in("tag", "filter.tagId"))?;
    }
    if let Some(ids) = &filter.ids {
        require_keys(&txn, ctx, ids).await?;
    }
    let sel = selection(txn.get_database_backend(), ctx.environment, filter, "k")?;
    let removal = remove(&txn, ctx, &sel, force, "license_keys.deleted", ("license_key", "selection")).await?;
    txn.commit().await?;
    Ok(removal)
}

/// Removes the keys chosen by `sel` (on alias `k`) inside `txn`, with an audit
/// event per key (see [`delete_recorded`]) and one for the whole removal.
pub(crate) async fn remove(
    txn: &impl ConnectionTrait,
    ctx: &RequestContext,
    sel: &Sql,
    force: bool,
    action: &str,
    target: (&str, &str),
) -> AppResult<Removal> {
    let activated = scalar(txn, &sql::count_activated(sel)).await?;
    if activated > 0 && !force {
        return Err(AppError::invalid(
            "force",
            format!("{activated} of these keys were activated on a device; pass force: true to delete them anyway"),
        ));
    }
    let orders_affected = scalar(txn, &sql::count_orders_affected(sel)).await? as u64;

    let keys = delete_recorded(txn, ctx, sel).await?;
    audit::record(
        txn,
        ctx,
        Change {
            action,
            target_kind: target.0,
            target_id: target.1,
            after: Some(serde_json::json!({ "keysDeleted": keys, "ordersAffected": orders_affected, "forced": force })),
            ..Change::default()
        },
    )
    .await?;
    Ok(Removal { keys, orders_affected })
}

/// The audit action of every key's deletion, whichever operation deleted it.
pub(crate) const KEY_DELETED: &str = "license_key.deleted";

/// Deletes the keys `sel` chooses (alias `k`) inside `txn`, each with its own
/// [`KEY_DELETED`] audit event: the key's first 8 characters, and its status,
/// customer, order line and order as they were. "Look for the deletion in the
/// audit trail" is what staff do when a licence cannot be found, so every key
/// gets one, written set-based (no row is loaded here) whatever the count.
/// Returns how many keys went.
///
/// On PostgreSQL this is one statement, on SQLite two: see
/// [`sql::delete_recorded`].
///
/// An event's id is this moment's ULID time part (10 characters) followed by
/// the random part of its key's id (16): the ids sort by time as every other
/// event's do, and are unique as the keys' ids are.
async fn delete_recorded(txn: &impl ConnectionTrait, ctx: &RequestContext, sel: &Sql) -> AppResult<u64> {
    let backend = txn.get_database_backend();
    let (actor_kind, actor_id) = audit::actor_of(&ctx.viewer);
    let id_time: String = entity::new_id().chars().take(10).collect();
    let shared = [
        Value::from(id_time),
        Value::from(ctx.environment.as_str()),
        Value::from(actor_kind),
        Value::from(actor_id),
        Value::from(KEY_DELETED),
        Value::from(entity::now()),
    ];
    let mut deleted = 0;
    for statement in sql::delete_recorded(backend, sel, shared) {
        deleted = execute(txn, &statement).await?;
    }
    Ok(deleted)
}

/// Checks that every id names a key of this environment.
async fn require_keys(txn: &impl ConnectionTrait, ctx: &RequestContext, ids: &[String]) -> AppResult<Vec<String>> {
    let ids = sql::distinct_ids(ids)?;
    let sel = selection(
        txn.get_database_backend(),
        ctx.environment,
        &KeyFilter { ids: Some(ids.clone()), ..KeyFilter::default() },
        "k",
    )?;
    let found = scalar(txn, &sql::count(&sel)).await?;
    if found as usize != ids.len() {
        return Err(AppError::not_found_in("licence key", "keyIds"));
    }
    Ok(ids)
}

/// Adds a tag to keys (those already carrying it are left alone). Returns how many gained it.
pub async fn tag(db: &DatabaseConnection, ctx: &RequestContext, tag_id: &str, key_ids: &[String]) -> AppResult<u64> {
    retag(db, ctx, tag_id, key_ids, true).await
}

/// Removes a tag from keys. Returns how many lost it.
pub async fn untag(db: &DatabaseConnection, ctx: &RequestContext, tag_id: &str, key_ids: &[String]) -> AppResult<u64> {
    retag(db, ctx, tag_id, key_ids, false).await
}

async fn retag(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    tag_id: &str,
    key_ids: &[String],
    add: bool,
) -> AppResult<u64> {
    ctx.viewer.require(may::MANAGE)?;
    let txn = begin_write(db).await?;
    let tag = tags::find_sellers_tag(&txn, ctx, tag_id, "tagId").await?;
    let ids = sql::ids_selection(&require_keys(&txn, ctx, key_ids).await?);
    let changed = if add { link(&txn, &tag.id, &ids).await? } else { unlink(&txn, &tag.id, &ids).await? };
    audit::record(
        &txn,
        ctx,
        Change {
            action: if add { "license_keys.tagged" } else { "license_keys.untagged" },
            target_kind: "tag",
            target_id: &tag.id,
            after: Some(serde_json::json!({ "keys": changed })),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    super::fulfilment::after_keys_arrived(db, ctx.environment).await;
    Ok(changed)
}

/// Moves keys from one tag (or "no tag") to another existing tag: all of the
/// source's keys, or the ones named. Customers keep their keys.
pub async fn move_keys(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    from: &str,
    to: &str,
    key_ids: Option<&[String]>,
) -> AppResult<u64> {
    ctx.viewer.require(may::MANAGE)?;
    if from == to {
        return Err(AppError::invalid("toTagId", "must differ from fromTagId"));
    }
    let txn = begin_write(db).await?;
    let from = TagRef::parse(from);
    if let TagRef::Tag(id) = &from {
        tags::find(&txn, ctx, id).await?.ok_or_else(|| AppError::not_found_in("tag", "fromTagId"))?;
    }
    let target = tags::find_sellers_tag(&txn, ctx, to, "toTagId").await?;
    let filter = KeyFilter {
        tag: Some(from.clone()),
        ids: match key_ids {
            Some(ids) => Some(require_keys(&txn, ctx, ids).await?),
            None => None,
        },
        ..KeyFilter::default()
    };
    let sel = selection(txn.get_database_backend(), ctx.environment, &filter, "k")?;
    let moved = match &from {
        TagRef::Tag(from_id) => {
            // Count what leaves the source first: keys already in the target still move out.
            let moved = scalar(&txn, &sql::count(&sel)).await? as u64;
            link(&txn, &target.id, &sel).await?;
            unlink(&txn, from_id, &sel).await?;
            moved
        }
        TagRef::NoTag => link(&txn, &target.id, &sel).await?,
    };
    audit::record(
        &txn,
        ctx,
        Change {
            action: "license_keys.moved",
            target_kind: "tag",
            target_id: &target.id,
            after: Some(serde_json::json!({ "keys": moved, "from": match &from { TagRef::NoTag => NO_TAG_ID.to_string(), TagRef::Tag(id) => id.clone() } })),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    super::fulfilment::after_keys_arrived(db, ctx.environment).await;
    Ok(moved)
}

/// Links the keys chosen by `sel` (alias `k`) to `tag_id`; returns how many new links.
async fn link(txn: &impl ConnectionTrait, tag_id: &str, sel: &Sql) -> AppResult<u64> {
    execute(txn, &sql::link(tag_id, sel)).await
}

async fn unlink(txn: &impl ConnectionTrait, tag_id: &str, sel: &Sql) -> AppResult<u64> {
    execute(txn, &sql::unlink(tag_id, sel)).await
}

/// Removes AVAILABLE duplicates from a pool, keeping the oldest copy: a waiting
/// key goes when the same key string is in the pool as an older copy, or has
/// been delivered anywhere in the environment (it could never be delivered
/// again). Delivered keys are never touched.
pub async fn clean_up_duplicates(db: &DatabaseConnection, ctx: &RequestContext, tag_id: &str) -> AppResult<Removal> {
    ctx.viewer.require(may::MANAGE)?;
    let txn = begin_write(db).await?;
    let pool = TagRef::parse(tag_id);
    if let TagRef::Tag(id) = &pool {
        tags::find(&txn, ctx, id).await?.ok_or_else(|| AppError::not_found_in("tag", "tagId"))?;
    }
    let sel = sql::duplicates(txn.get_database_backend(), ctx.environment, &pool)?;
    let removal = remove(&txn, ctx, &sel, false, "tag.duplicates_removed", ("tag", tag_id)).await?;
    txn.commit().await?;
    Ok(removal)
}
