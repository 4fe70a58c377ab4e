//! The SQL of licence keys in their pools: which keys a filter chooses, and
//! the set-based statements that count, delete, tag and untag them. Run by
//! `keys.rs`, which keeps the flow, the sort expressions of a list and the
//! executors.
//!
//! One statement differs between the databases here: [`delete_recorded`]
//! (one statement on PostgreSQL, two on SQLite). The rest is portable;
//! search conditions, whose words differ, are in `services/sql/search.rs`,
//! and the pools' figures (totals, available, assigned) are in `tags.rs`.

use super::{KeyFilter, MAX_IDS, MIN_SUBSTRING, TagRef};
use crate::error::{AppError, AppResult};
use crate::services::limits;
use crate::services::sql::{Sql, key_environment, key_search, placeholders};
use entity::Environment;
use sea_orm::{DbBackend, Value};
use std::collections::BTreeSet;

/// The SQL condition choosing `filter`'s keys in `environment`, on table alias `k`.
pub fn selection(backend: DbBackend, environment: Environment, filter: &KeyFilter, k: &str) -> AppResult<Sql> {
    let mut sql = Sql::new("");
    let term = limits::search("search", filter.search.as_deref())?;
    let substring = term.is_some_and(|t| t.chars().count() >= MIN_SUBSTRING);
    sql.append(&key_environment(backend, environment, k, substring));
    if let Some(tag) = &filter.tag {
        sql.push(" AND ", []).append(&in_pool(k, tag));
    }
    if let Some(status) = filter.status {
        sql.push(&format!(" AND {k}.status = ?"), [Value::from(status.as_str())]);
    }
    if let Some(product) = &filter.product_id {
        sql.push(&format!(" AND {k}.product_id = ?"), [Value::from(product.as_str())]);
    }
    if let Some(customer) = &filter.customer_id {
        sql.push(&format!(" AND {k}.customer_id = ?"), [Value::from(customer.as_str())]);
    }
    if let Some(product) = &filter.deliverable_to {
        sql.push(" AND ", []).append(&deliverable(k, product, chrono::Utc::now()));
    }
    if let Some(before) = filter.expiring_before {
        sql.push(&format!(" AND {k}.expires_at IS NOT NULL AND {k}.expires_at < ?"), [Value::from(before)]);
    }
    if let Some(term) = term {
        sql.push(" AND ", []).append(&key_search(backend, environment, term, k));
    }
    if let Some(ids) = &filter.ids {
        let ids = distinct_ids(ids)?;
        sql.push(&format!(" AND {k}.id IN ({})", placeholders(ids.len())), ids.into_iter().map(Value::from));
    }
    Ok(sql)
}

/// The keys of a pool, on table alias `k`.
fn in_pool(k: &str, tag: &TagRef) -> Sql {
    match tag {
        TagRef::NoTag => {
            Sql::new(format!("NOT EXISTS (SELECT 1 FROM license_key_tag lt WHERE lt.license_key_id = {k}.id)"))
        }
        TagRef::Tag(id) => {
            let mut sql = Sql::new("");
            sql.push(
                &format!("{k}.id IN (SELECT lt.license_key_id FROM license_key_tag lt WHERE lt.tag_id = ?)"),
                [Value::from(id.clone())],
            );
            sql
        }
    }
}

/// The keys of a pool, on table alias `k`, as a probe of each row: for
/// claims, which walk the AVAILABLE keys oldest first and stop at the first
/// that fits. (`IN (SELECT …)` made SQLite build the tag's whole key list on
/// every claim: 1.8 ms instead of 0.14 ms at 10,000 keys, and growing with
/// the pool.)
pub(crate) fn member_of_pool(k: &str, tag: &TagRef) -> Sql {
    match tag {
        TagRef::NoTag => in_pool(k, tag),
        TagRef::Tag(id) => {
            let mut sql = Sql::new("");
            sql.push(
                &format!(
                    "EXISTS (SELECT 1 FROM license_key_tag lt WHERE lt.license_key_id = {k}.id AND lt.tag_id = ?)"
                ),
                [Value::from(id.clone())],
            );
            sql
        }
    }
}

/// Keys `k` that may go to an order line for `product_id` at `now`: bound to
/// no other product, not past their expiry, and with no copy of the same key
/// string already delivered in the environment (uploaded lists may hold
/// duplicates; a key string is delivered once).
pub(crate) fn deliverable(k: &str, product_id: &str, now: chrono::DateTime<chrono::Utc>) -> Sql {
    let mut sql = Sql::new("");
    sql.push(
        &format!(
            "({k}.product_id IS NULL OR {k}.product_id = ?) AND ({k}.expires_at IS NULL OR {k}.expires_at > ?) \
             AND NOT EXISTS (SELECT 1 FROM license_key d WHERE d.environment = {k}.environment \
             AND d.key = {k}.key AND d.status <> 'AVAILABLE')"
        ),
        [Value::from(product_id), Value::from(now)],
    );
    sql
}

pub(super) fn distinct_ids(ids: &[String]) -> AppResult<Vec<String>> {
    let set: BTreeSet<&String> = ids.iter().collect();
    if set.is_empty() {
        return Err(AppError::invalid("keyIds", "must name at least one key"));
    }
    if set.len() > MAX_IDS {
        return Err(AppError::invalid(
            "keyIds",
            format!("must name at most {MAX_IDS} keys (got {}); choose larger sets with a filter", set.len()),
        ));
    }
    Ok(set.into_iter().cloned().collect())
}

/// The keys named by `ids` (already checked), on table alias `k`.
pub(super) fn ids_selection(ids: &[String]) -> Sql {
    let mut sql = Sql::new("");
    sql.push(&format!("k.id IN ({})", placeholders(ids.len())), ids.iter().cloned().map(Value::from));
    sql
}

/// How many keys `sel` (alias `k`) chooses.
pub(super) fn count(sel: &Sql) -> Sql {
    let mut sql = Sql::new("SELECT COUNT(*) FROM license_key k WHERE ");
    sql.append(sel);
    sql
}

/// How many of the keys `sel` (alias `k`) chooses were ever activated.
pub(super) fn count_activated(sel: &Sql) -> Sql {
    let mut sql = Sql::new("SELECT COUNT(*) FROM license_key k WHERE ");
    sql.append(sel).push(" AND k.activated_at IS NOT NULL", []);
    sql
}

/// How many distinct orders hold one of the keys `sel` (alias `k`) chooses.
pub(super) fn count_orders_affected(sel: &Sql) -> Sql {
    let mut sql = Sql::new(
        "SELECT COUNT(DISTINCT ol.order_id) FROM license_key k JOIN order_line ol ON ol.id = k.order_line_id WHERE ",
    );
    sql.append(sel);
    sql
}

/// The statements that delete the keys `sel` chooses (alias `k`), each with
/// its own [`KEY_DELETED`](super::KEY_DELETED) audit event, to run in order; the last one's
/// affected rows are the keys deleted. `shared` are the values every event
/// shares: its id's time part, environment, actor kind, actor id, action and
/// moment.
///
/// On PostgreSQL one statement does both (the DELETE's `RETURNING` feeds the
/// INSERT, with `jsonb_build_object`), so a key that changes or joins the
/// selection between two statements cannot go unrecorded; on SQLite (no
/// data-modifying `WITH`) the write lock the transaction took at its start
/// gives the same, and the events are written first (`json_object`), then the
/// keys deleted.
pub(super) fn delete_recorded(backend: DbBackend, sel: &Sql, shared: [Value; 6]) -> Vec<Sql> {
    let insert = "INSERT INTO audit_event (id, environment, actor_kind, actor_id, action, target_kind, target_id, \
                  key_prefix, before, after, created_at) ";
    // The columns after the shared values, from a deleted key `g` and its order line `ol`.
    let per_key = |json_object: &str| {
        format!(
            "SELECT ? || substr(g.id, 11), ?, ?, ?, ?, 'license_key', g.id, substr(g.key, 1, 8), \
             {json_object}('status', g.status, 'customerId', g.customer_id, 'orderLineId', g.order_line_id, \
             'orderId', ol.order_id), NULL, ? "
        )
    };
    if backend == DbBackend::Postgres {
        let mut sql = Sql::new("WITH g AS (DELETE FROM license_key WHERE id IN (SELECT k.id FROM license_key k WHERE ");
        sql.append(sel)
            .push(") RETURNING id, key, status, customer_id, order_line_id) ", [])
            .push(insert, [])
            .push(&per_key("jsonb_build_object"), shared)
            .push("FROM g LEFT JOIN order_line ol ON ol.id = g.order_line_id", []);
        return vec![sql];
    }
    let mut events = Sql::new(insert);
    events
        .push(&per_key("json_object"), shared)
        .push(
            "FROM license_key g LEFT JOIN order_line ol ON ol.id = g.order_line_id \
             WHERE g.id IN (SELECT k.id FROM license_key k WHERE ",
            [],
        )
        .append(sel)
        .push(")", []);
    let mut delete = Sql::new("DELETE FROM license_key WHERE id IN (SELECT k.id FROM license_key k WHERE ");
    delete.append(sel).push(")", []);
    vec![events, delete]
}

/// Links the keys chosen by `sel` (alias `k`) to `tag_id`, skipping keys that have it.
pub(super) fn link(tag_id: &str, sel: &Sql) -> Sql {
    let mut sql = Sql::new("");
    sql.push(
        "INSERT INTO license_key_tag (license_key_id, tag_id) SELECT k.id, ? FROM license_key k WHERE ",
        [Value::from(tag_id)],
    )
    .append(sel)
    .push(
        " AND NOT EXISTS (SELECT 1 FROM license_key_tag x WHERE x.license_key_id = k.id AND x.tag_id = ?)",
        [Value::from(tag_id)],
    );
    sql
}

/// Takes `tag_id` off the keys chosen by `sel` (alias `k`).
pub(super) fn unlink(tag_id: &str, sel: &Sql) -> Sql {
    let mut sql = Sql::new("");
    sql.push(
        "DELETE FROM license_key_tag WHERE tag_id = ? AND license_key_id IN (SELECT k.id FROM license_key k WHERE ",
        [Value::from(tag_id)],
    )
    .append(sel)
    .push(")", []);
    sql
}

/// The AVAILABLE duplicates of `pool` (alias `k`): the same key string is in
/// the pool as an older copy, or has been delivered anywhere in the
/// environment.
pub(super) fn duplicates(backend: DbBackend, environment: Environment, pool: &TagRef) -> AppResult<Sql> {
    let in_pool = |alias: &str| {
        selection(backend, environment, &KeyFilter { tag: Some(pool.clone()), ..KeyFilter::default() }, alias)
    };
    let mut sel = in_pool("k")?;
    sel.push(
        " AND k.status = 'AVAILABLE' AND EXISTS (SELECT 1 FROM license_key o WHERE o.environment = k.environment \
         AND o.key = k.key AND o.id <> k.id AND (o.status <> 'AVAILABLE' OR (",
        [],
    )
    .append(&in_pool("o")?)
    .push(" AND (o.created_at < k.created_at OR (o.created_at = k.created_at AND o.id < k.id)))))", []);
    Ok(sel)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSERT: &str = "INSERT INTO audit_event (id, environment, actor_kind, actor_id, action, target_kind, \
                          target_id, key_prefix, before, after, created_at) ";
    const PER_KEY: &str = "SELECT ? || substr(g.id, 11), ?, ?, ?, ?, 'license_key', g.id, substr(g.key, 1, 8), \
                           JSON('status', g.status, 'customerId', g.customer_id, 'orderLineId', g.order_line_id, \
                           'orderId', ol.order_id), NULL, ? ";

    fn shared() -> [Value; 6] {
        ["time", "production", "staff", "user", "license_key.deleted", "now"].map(Value::from)
    }

    fn sel() -> Sql {
        Sql { text: "k.status = ?".into(), values: vec![Value::from("AVAILABLE")] }
    }

    #[test]
    fn postgres_deletes_and_records_in_one_statement() {
        let statements = delete_recorded(DbBackend::Postgres, &sel(), shared());
        assert_eq!(statements.len(), 1);
        assert_eq!(
            statements[0].text,
            format!(
                "WITH g AS (DELETE FROM license_key WHERE id IN (SELECT k.id FROM license_key k WHERE k.status = ?) \
                 RETURNING id, key, status, customer_id, order_line_id) {INSERT}{}\
                 FROM g LEFT JOIN order_line ol ON ol.id = g.order_line_id",
                PER_KEY.replace("JSON", "jsonb_build_object")
            )
        );
        assert_eq!(statements[0].values.len(), 7);
        assert_eq!(statements[0].values[..2], [Value::from("AVAILABLE"), Value::from("time")]);
    }

    #[test]
    fn sqlite_records_the_events_then_deletes_the_keys() {
        let statements = delete_recorded(DbBackend::Sqlite, &sel(), shared());
        assert_eq!(statements.len(), 2);
        assert_eq!(
            statements[0].text,
            format!(
                "{INSERT}{}FROM license_key g LEFT JOIN order_line ol ON ol.id = g.order_line_id \
                 WHERE g.id IN (SELECT k.id FROM license_key k WHERE k.status = ?)",
                PER_KEY.replace("JSON", "json_object")
            )
        );
        assert_eq!(statements[0].values.len(), 7);
        assert_eq!(statements[0].values[6], Value::from("AVAILABLE"));
        assert_eq!(
            statements[1].text,
            "DELETE FROM license_key WHERE id IN (SELECT k.id FROM license_key k WHERE k.status = ?)"
        );
        assert_eq!(statements[1].values, vec![Value::from("AVAILABLE")]);
    }

    #[test]
    fn links_skip_keys_that_have_the_tag() {
        let linked = link("t", &sel());
        assert_eq!(
            linked.text,
            "INSERT INTO license_key_tag (license_key_id, tag_id) SELECT k.id, ? FROM license_key k WHERE k.status = ? \
             AND NOT EXISTS (SELECT 1 FROM license_key_tag x WHERE x.license_key_id = k.id AND x.tag_id = ?)"
        );
        assert_eq!(linked.values, ["t", "AVAILABLE", "t"].map(Value::from));
        let unlinked = unlink("t", &sel());
        assert_eq!(
            unlinked.text,
            "DELETE FROM license_key_tag WHERE tag_id = ? AND license_key_id IN \
             (SELECT k.id FROM license_key k WHERE k.status = ?)"
        );
    }
}
