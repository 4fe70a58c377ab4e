//! The outbox tables' SQL (emails, webhook deliveries): which rows are due,
//! and claiming a batch of them with a lease. One thing differs between the
//! databases: on PostgreSQL a claim skips rows another node is claiming at
//! the same moment (`FOR UPDATE SKIP LOCKED`); on SQLite the claim is a
//! single autocommit `UPDATE`, atomic by itself, and takes no row lock.
//! `RETURNING` works on both (SQLite 3.35 and later).
//!
//! Background jobs (`jobs.rs`) lease their rows with the query builder
//! (a conditional update) and have no SQL here.

use super::{Sql, skip_locked};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Value};

/// Rows of an outbox table (alias `d`) that are due at `now`: `PENDING`,
/// `next_attempt_at` passed, no live lease.
fn due(now: DateTime<Utc>) -> Sql {
    let mut due =
        Sql::new("d.status = 'PENDING' AND d.next_attempt_at <= ? AND (d.locked_until IS NULL OR d.locked_until < ?)");
    due.values.extend([Value::from(now), Value::from(now)]);
    due
}

/// Claims up to `batch` rows of an outbox `table` that are due — `PENDING`,
/// `next_attempt_at` passed, no live lease — and `extra` (a condition on alias
/// `d`), giving each a lease of `lease` so that no other node takes them
/// meanwhile. On PostgreSQL rows being claimed by another node are skipped.
pub async fn claim_due<M: FromQueryResult>(
    db: &impl ConnectionTrait,
    table: &str,
    extra: Option<&Sql>,
    batch: i64,
    lease: Duration,
) -> Result<Vec<M>, DbErr> {
    let now = entity::now();
    let backend = db.get_database_backend();
    let claim = claim_statement(backend, table, extra, batch, now + lease, now);
    db.query_all_raw(claim.statement(backend)).await?.iter().map(|row| M::from_query_result(row, "")).collect()
}

/// The statement of [`claim_due`]: one `UPDATE {table} SET locked_until = ?
/// WHERE id IN (SELECT … LIMIT ?) RETURNING *`, leasing until `until` the
/// rows due at `now`. The inner choice is `FOR UPDATE SKIP LOCKED` on
/// PostgreSQL, so nodes claiming at once take different rows; nothing on
/// SQLite, where the one statement is atomic.
pub(crate) fn claim_statement(
    backend: DbBackend,
    table: &str,
    extra: Option<&Sql>,
    batch: i64,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Sql {
    let mut pick = Sql::new(format!("SELECT d.id FROM {table} d WHERE "));
    pick.append(&due(now));
    if let Some(extra) = extra {
        pick.push(" AND ", []).append(extra);
    }
    pick.push(" ORDER BY d.next_attempt_at LIMIT ?", [Value::from(batch)]);
    pick.push(&skip_locked(backend, None), []);
    let mut claim = Sql::new(format!("UPDATE {table} SET locked_until = ? WHERE id IN ("));
    claim.values.push(Value::from(until));
    claim.append(&pick).push(") RETURNING *", []);
    claim
}

/// The values of `column` (a text column) among the rows of an outbox
/// `table` that are due, as [`claim_due`] means it, and match `extra`: each
/// once, the one whose row has waited longest first, at most `limit`. A read
/// only, so that finding nothing due takes no lock.
pub async fn due_groups(
    db: &impl ConnectionTrait,
    table: &str,
    column: &str,
    extra: Option<&Sql>,
    limit: i64,
) -> Result<Vec<String>, DbErr> {
    let query = due_groups_statement(table, column, extra, limit, entity::now());
    db.query_all_raw(query.statement(db.get_database_backend()))
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "due_group"))
        .collect()
}

/// The statement of [`due_groups`], for rows due at `now`. Portable.
pub(crate) fn due_groups_statement(
    table: &str,
    column: &str,
    extra: Option<&Sql>,
    limit: i64,
    now: DateTime<Utc>,
) -> Sql {
    let mut query = Sql::new(format!("SELECT d.{column} AS due_group FROM {table} d WHERE "));
    query.append(&due(now));
    if let Some(extra) = extra {
        query.push(" AND ", []).append(extra);
    }
    query.push(&format!(" GROUP BY d.{column} ORDER BY MIN(d.next_attempt_at) LIMIT ?"), [Value::from(limit)]);
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUE: &str =
        "d.status = 'PENDING' AND d.next_attempt_at <= ? AND (d.locked_until IS NULL OR d.locked_until < ?)";

    #[test]
    fn a_claim_skips_rows_being_claimed_on_postgres_only() {
        let now = Utc::now();
        let extra = Sql::new("d.endpoint_id = 'e'");
        let claim = |backend| claim_statement(backend, "email", Some(&extra), 10, now, now).text;
        let sqlite = format!(
            "UPDATE email SET locked_until = ? WHERE id IN (SELECT d.id FROM email d WHERE {DUE} \
             AND d.endpoint_id = 'e' ORDER BY d.next_attempt_at LIMIT ?) RETURNING *"
        );
        assert_eq!(claim(DbBackend::Sqlite), sqlite);
        assert_eq!(claim(DbBackend::Postgres), sqlite.replace("LIMIT ?)", "LIMIT ? FOR UPDATE SKIP LOCKED)"));
        assert_eq!(claim_statement(DbBackend::Postgres, "email", None, 10, now, now).values.len(), 4);
    }

    #[test]
    fn due_groups_are_read_alike_on_both_databases() {
        let query = due_groups_statement("webhook_delivery", "endpoint_id", None, 5, Utc::now());
        assert_eq!(
            query.text,
            format!(
                "SELECT d.endpoint_id AS due_group FROM webhook_delivery d WHERE {DUE} \
                 GROUP BY d.endpoint_id ORDER BY MIN(d.next_attempt_at) LIMIT ?"
            )
        );
        assert_eq!(query.values.len(), 3);
    }
}
