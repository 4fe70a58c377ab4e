//! The hand-written SQL of fulfilment, with what differs between the
//! databases: the key claim ([`claim_key`]) and the waiting lines a backfill
//! takes ([`waiting_lines`]) lock and skip rows other transactions hold on
//! PostgreSQL (`FOR UPDATE … SKIP LOCKED`), and take no row lock on SQLite,
//! where the write transaction holds the database's write lock from its start
//! (see `services/sql.rs`, `row_locks`). [`units_waiting`] is portable.
//!
//! The builder queries that lock rows while staff manage an order are in
//! `manage.rs`; the conditions a claim shares with key lists
//! (`member_of_pool`, `deliverable`) are in `keys/sql.rs`.

use crate::services::keys::{self, TagRef};
use crate::services::sql::{Sql, skip_locked};
use chrono::{DateTime, Utc};
use entity::Environment;
use entity::license_key;
use sea_orm::IdenStatic;
use sea_orm::{DbBackend, Iterable, Value};

/// Takes the first deliverable AVAILABLE key of `pool` (oldest first), or the
/// key `only` if it is one, and assigns it to the line: one
/// `UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING *`. On PostgreSQL the
/// choice is `FOR UPDATE SKIP LOCKED`, so concurrent orders take different
/// keys without waiting for each other; SQLite has no row locks (and needs
/// none). `tests/benches/orders.rs` copies the PostgreSQL text for its
/// pgbench baseline: keep the two in step.
#[allow(clippy::too_many_arguments)]
pub(super) fn claim_key(
    backend: DbBackend,
    environment: Environment,
    pool: &TagRef,
    product_id: &str,
    line_id: &str,
    customer_id: &str,
    only: Option<&str>,
    now: DateTime<Utc>,
) -> Sql {
    let pick = pick(backend, "k.id", environment, pool, product_id, only, now, 1);
    let mut sql = Sql::new("");
    sql.push(
        "UPDATE license_key SET status = 'ASSIGNED', product_id = ?, customer_id = ?, order_line_id = ?, \
         assigned_at = ?, updated_at = ? WHERE id = (",
        [Value::from(product_id), Value::from(customer_id), Value::from(line_id), Value::from(now), Value::from(now)],
    );
    sql.append(&pick).push(") RETURNING *", []);
    sql
}

/// The first `limit` deliverable AVAILABLE keys of `pool` (oldest first), or
/// the key `only` if it is one, as `columns`; locked and skipping keys other
/// transactions hold on PostgreSQL.
#[allow(clippy::too_many_arguments)]
fn pick(
    backend: DbBackend,
    columns: &str,
    environment: Environment,
    pool: &TagRef,
    product_id: &str,
    only: Option<&str>,
    now: DateTime<Utc>,
    limit: u32,
) -> Sql {
    let mut pick =
        Sql::new(format!("SELECT {columns} FROM license_key k WHERE k.environment = ? AND k.status = 'AVAILABLE'"));
    pick.values.push(Value::from(environment.as_str()));
    pick.push(" AND ", []).append(&keys::member_of_pool("k", pool));
    pick.push(" AND ", []).append(&keys::deliverable("k", product_id, now));
    if let Some(id) = only {
        pick.push(" AND k.id = ?", [Value::from(id)]);
    }
    pick.push(&format!(" ORDER BY k.created_at, k.id LIMIT {limit}"), []);
    pick.push(&skip_locked(backend, None), []);
    pick
}

/// What a new order writes first (see [`place_order`]).
pub(super) struct Placing<'a> {
    pub environment: Environment,
    pub email: &'a str,
    pub name: &'a str,
    /// The id of the customer, if the order creates them.
    pub customer_id: &'a str,
    pub order_id: &'a str,
    pub external_id: &'a str,
    /// `(id, product id, quantity, licence renewed)` of each line.
    pub lines: Vec<(&'a str, &'a str, i32, Option<&'a str>)>,
    /// One line's keys, claimed in the same statement: the first line that
    /// delivers from a pool.
    pub claim: Option<LineClaim<'a>>,
    pub now: DateTime<Utc>,
}

pub(super) struct LineClaim<'a> {
    pub line_id: &'a str,
    pub pool: &'a TagRef,
    pub product_id: &'a str,
    pub quantity: i32,
}

/// A new order's first write on PostgreSQL, in one statement: the customer
/// found by email or created (`created`), the order inserted unless one
/// already has its external id (the idempotency check), its lines, all
/// written at `now`, status `FULFILLED` (corrected later if a line falls
/// short), and the keys of `claim`'s line, as [`claim_key`] takes them (up to
/// its quantity, one copy of a key string at most; the caller claims any
/// rest one by one). It answers the customer's row with `created` and
/// `lines`, the number of lines written (0 when the external id was taken),
/// once for each key claimed, whose columns are prefixed `k_` (null when none
/// was). No row at all means another order created the customer at this
/// moment: the caller runs again. SQLite (no writes in `WITH`) runs the same
/// writes one statement each.
pub(super) fn place_order(p: &Placing) -> Sql {
    let env = || Value::from(p.environment.as_str());
    let mut sql = Sql::new("");
    sql.push(
        "WITH found AS (SELECT * FROM customer WHERE environment = ? AND email = ?), \
         made AS (INSERT INTO customer (id, environment, email, name, created_at, updated_at) \
         SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM found) ON CONFLICT DO NOTHING RETURNING *), \
         c AS (SELECT *, false AS created FROM found UNION ALL SELECT *, true AS created FROM made), ",
        [
            env(),
            Value::from(p.email),
            Value::from(p.customer_id),
            env(),
            Value::from(p.email),
            Value::from(p.name),
            Value::from(p.now),
            Value::from(p.now),
        ],
    );
    sql.push(
        "o AS (INSERT INTO orders (id, environment, external_id, customer_id, status, created_at, updated_at) \
         SELECT ?, ?, ?, c.id, 'FULFILLED', ?, ? FROM c \
         ON CONFLICT (environment, external_id) DO NOTHING RETURNING id), \
         l AS (INSERT INTO order_line (id, order_id, product_id, quantity, missing, renews_license_id, created_at) \
         SELECT v.id, o.id, v.product_id, v.quantity, 0, v.renews, ? FROM o, (VALUES ",
        [
            Value::from(p.order_id),
            env(),
            Value::from(p.external_id),
            Value::from(p.now),
            Value::from(p.now),
            Value::from(p.now),
        ],
    );
    for (i, (id, product_id, quantity, renews)) in p.lines.iter().enumerate() {
        let separator = if i == 0 { "" } else { ", " };
        sql.push(
            &format!("{separator}(?, ?, ?, ?)"),
            [
                Value::from(*id),
                Value::from(*product_id),
                Value::from(*quantity),
                Value::from(renews.map(str::to_string)),
            ],
        );
    }
    sql.push(") AS v (id, product_id, quantity, renews) RETURNING id)", []);
    let Some(claim) = &p.claim else {
        sql.push(" SELECT c.*, (SELECT COUNT(*) FROM l) AS lines FROM c", []);
        return sql;
    };
    let quantity = u32::try_from(claim.quantity).unwrap_or(0);
    let mut pick = pick(
        DbBackend::Postgres,
        "k.id, k.key, k.created_at",
        p.environment,
        claim.pool,
        claim.product_id,
        None,
        p.now,
        quantity,
    );
    // Only once the order is written: a taken external id claims nothing.
    let at = pick.text.find(" ORDER BY").unwrap_or(pick.text.len());
    pick.text.insert_str(at, " AND EXISTS (SELECT 1 FROM l)");
    sql.push(", pick AS (", []).append(&pick);
    sql.push(
        "), k AS (UPDATE license_key SET status = 'ASSIGNED', product_id = ?, \
         customer_id = (SELECT id FROM c), order_line_id = ?, assigned_at = ?, updated_at = ? \
         WHERE id IN (SELECT DISTINCT ON (key) id FROM pick ORDER BY key, created_at, id) RETURNING *) \
         SELECT c.*, (SELECT COUNT(*) FROM l) AS lines",
        [Value::from(claim.product_id), Value::from(claim.line_id), Value::from(p.now), Value::from(p.now)],
    );
    for column in license_key::Column::iter() {
        sql.push(&format!(", k.{0} AS k_{0}", column.as_str()), []);
    }
    sql.push(" FROM c LEFT JOIN k ON true", []);
    sql
}

/// Up to `batch` lines waiting for keys in unrefunded orders of
/// `environment`, oldest order first, after the line `after` (the order's
/// creation time and the line's id). On PostgreSQL the lines are locked,
/// skipping lines another node is filling right now
/// (`FOR UPDATE OF ol SKIP LOCKED`: the orders stay unlocked); SQLite takes
/// no row lock.
pub(super) fn waiting_lines(
    backend: DbBackend,
    environment: Environment,
    after: Option<&(DateTime<Utc>, String)>,
    batch: u64,
) -> Sql {
    let mut sql = Sql::new("");
    sql.push(
        "SELECT ol.id, o.created_at FROM order_line ol JOIN orders o ON o.id = ol.order_id \
         WHERE ol.missing > 0 AND o.environment = ? AND o.status <> 'REFUNDED'",
        [Value::from(environment.as_str())],
    );
    if let Some((at, id)) = after {
        sql.push(
            " AND (o.created_at > ? OR (o.created_at = ? AND ol.id > ?))",
            [Value::from(*at), Value::from(*at), Value::from(id.as_str())],
        );
    }
    sql.push(&format!(" ORDER BY o.created_at, ol.id LIMIT {batch}"), []);
    sql.push(&skip_locked(backend, Some("ol")), []);
    sql
}

/// Units still waiting on `pool`: lines of unrefunded orders of `environment`
/// whose product delivers from it. Portable.
pub(super) fn units_waiting(environment: Environment, pool: &TagRef) -> Sql {
    let mut sql = Sql::new("");
    sql.push(
        "SELECT COALESCE(SUM(ol.missing), 0) FROM order_line ol \
         JOIN orders o ON o.id = ol.order_id JOIN product p ON p.id = ol.product_id \
         WHERE ol.missing > 0 AND o.status <> 'REFUNDED' AND o.environment = ?",
        [Value::from(environment.as_str())],
    );
    match pool {
        TagRef::NoTag => sql.push(" AND p.delivery_mode = 'NO_TAG'", []),
        TagRef::Tag(id) => {
            sql.push(" AND p.delivery_mode = 'TAG' AND p.delivery_tag_id = ?", [Value::from(id.as_str())])
        }
    };
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    const PICK: &str = "SELECT k.id FROM license_key k WHERE k.environment = ? AND k.status = 'AVAILABLE' AND \
                        EXISTS (SELECT 1 FROM license_key_tag lt WHERE lt.license_key_id = k.id AND lt.tag_id = ?) \
                        AND (k.product_id IS NULL OR k.product_id = ?) AND (k.expires_at IS NULL OR k.expires_at > ?) \
                        AND NOT EXISTS (SELECT 1 FROM license_key d WHERE d.environment = k.environment \
                        AND d.key = k.key AND d.status <> 'AVAILABLE') ORDER BY k.created_at, k.id LIMIT 1";

    fn claim(backend: DbBackend) -> Sql {
        let pool = TagRef::Tag("tag".into());
        claim_key(backend, Environment::Production, &pool, "product", "line", "customer", None, Utc::now())
    }

    #[test]
    fn a_claim_skips_locked_keys_on_postgres_only() {
        let update = "UPDATE license_key SET status = 'ASSIGNED', product_id = ?, customer_id = ?, order_line_id = ?, \
                      assigned_at = ?, updated_at = ? WHERE id = (";
        assert_eq!(claim(DbBackend::Sqlite).text, format!("{update}{PICK}) RETURNING *"));
        assert_eq!(claim(DbBackend::Postgres).text, format!("{update}{PICK} FOR UPDATE SKIP LOCKED) RETURNING *"));
        assert_eq!(claim(DbBackend::Postgres).values.len(), 9);
    }

    #[test]
    fn an_order_is_placed_in_one_statement_on_postgres() {
        let mut placing = Placing {
            environment: Environment::Staging,
            email: "a@example.com",
            name: "",
            customer_id: "c",
            order_id: "o",
            external_id: "x",
            lines: vec![("l1", "p1", 2, None), ("l2", "p2", 1, Some("old"))],
            claim: None,
            now: Utc::now(),
        };
        let text = place_order(&placing).statement(DbBackend::Postgres).sql;
        assert!(text.starts_with("WITH found AS (SELECT * FROM customer WHERE environment = $1 AND email = $2), "));
        assert!(text.contains("ON CONFLICT (environment, external_id) DO NOTHING RETURNING id)"), "{text}");
        assert!(text.contains(
            "FROM o, (VALUES ($15, $16, $17, $18), ($19, $20, $21, $22)) AS v (id, product_id, quantity, renews)"
        ));
        assert!(text.ends_with("RETURNING id) SELECT c.*, (SELECT COUNT(*) FROM l) AS lines FROM c"), "{text}");
        assert_eq!(place_order(&placing).values.len(), 22);
        let pool = TagRef::Tag("tag".into());
        placing.claim = Some(LineClaim { line_id: "l1", pool: &pool, product_id: "p1", quantity: 2 });
        let claimed = place_order(&placing);
        let text = claimed.statement(DbBackend::Postgres).sql;
        assert!(text.contains(
            "RETURNING id), pick AS (SELECT k.id, k.key, k.created_at FROM license_key k WHERE k.environment = $23 \
             AND k.status = 'AVAILABLE' AND EXISTS (SELECT 1 FROM license_key_tag lt"
        ));
        assert!(text.contains(" AND EXISTS (SELECT 1 FROM l) ORDER BY k.created_at, k.id LIMIT 2 FOR UPDATE SKIP LOCKED), k AS (UPDATE"), "{text}");
        assert!(
            text.contains(
                "WHERE id IN (SELECT DISTINCT ON (key) id FROM pick ORDER BY key, created_at, id) RETURNING *)"
            )
        );
        assert!(text.contains(", k.key AS k_key, "), "{text}");
        assert!(text.ends_with(" FROM c LEFT JOIN k ON true"), "{text}");
        assert_eq!(claimed.values.len(), 22 + 4 + 4, "the pick's and the update's values");
    }

    #[test]
    fn waiting_lines_lock_only_the_lines_on_postgres() {
        let select = "SELECT ol.id, o.created_at FROM order_line ol JOIN orders o ON o.id = ol.order_id \
                      WHERE ol.missing > 0 AND o.environment = ? AND o.status <> 'REFUNDED'";
        let first = waiting_lines(DbBackend::Sqlite, Environment::Production, None, 50);
        assert_eq!(first.text, format!("{select} ORDER BY o.created_at, ol.id LIMIT 50"));
        let after = (Utc::now(), "line".to_string());
        let next = waiting_lines(DbBackend::Postgres, Environment::Production, Some(&after), 50);
        assert_eq!(
            next.text,
            format!(
                "{select} AND (o.created_at > ? OR (o.created_at = ? AND ol.id > ?)) \
                 ORDER BY o.created_at, ol.id LIMIT 50 FOR UPDATE OF ol SKIP LOCKED"
            )
        );
        assert_eq!(next.values.len(), 4);
    }
}
