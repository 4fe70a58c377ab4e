//! Set-based writing of many keys at once, shared by imports and bulk
//! generation: which of a batch of keys a pool already holds, inserting a
//! batch with as few bound values as possible, and tagging it. Each
//! statement's PostgreSQL (arrays, `unnest`) and SQLite (VALUES lists)
//! variants sit together in one builder here; the executors above them run
//! them.

use super::sql::{Sql, placeholders};
use crate::error::AppResult;
use chrono::{DateTime, Utc};
use entity::Environment;
use entity::license_key::KeySource;
use sea_orm::sea_query::ArrayType;
use sea_orm::{ActiveEnum, ConnectionTrait, DatabaseTransaction, DbBackend, Value};
use std::collections::HashSet;

/// Tag links per insert statement (2 parameters each on SQLite).
const LINK_BATCH: usize = 10_000;

/// What every key of a batch shares.
#[derive(Debug, Clone)]
pub struct Common {
    pub environment: Environment,
    pub source: KeySource,
    pub generator_id: Option<String>,
    pub feature_flags: serde_json::Value,
    pub now: DateTime<Utc>,
}

/// One key of a batch; every key is AVAILABLE.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub key: String,
    pub product_id: Option<String>,
    pub activation_limit: i32,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The keys of `keys` that the environment already holds.
pub async fn already_in_pool<'a>(
    txn: &DatabaseTransaction,
    environment: Environment,
    keys: impl ExactSizeIterator<Item = &'a str>,
) -> AppResult<HashSet<String>> {
    let backend = txn.get_database_backend();
    let rows = txn.query_all_raw(existing_keys(backend, environment, keys).statement(backend)).await?;
    rows.iter().map(|r| r.try_get_by_index::<String>(0)).collect::<Result<_, _>>().map_err(Into::into)
}

/// Inserts a batch of AVAILABLE keys in one statement ([`insert_keys`]).
pub async fn insert(txn: &DatabaseTransaction, common: &Common, rows: &[NewKey]) -> AppResult<u64> {
    let backend = txn.get_database_backend();
    Ok(txn.execute_raw(insert_keys(backend, common, rows).statement(backend)).await?.rows_affected())
}

/// Gives the keys `key_ids` the tag `tag_id`.
pub async fn tag(txn: &DatabaseTransaction, tag_id: &str, key_ids: &[String]) -> AppResult<()> {
    let backend = txn.get_database_backend();
    for chunk in key_ids.chunks(LINK_BATCH) {
        txn.execute_raw(link_keys(backend, tag_id, chunk).statement(backend)).await?;
    }
    Ok(())
}

/// Keys added at once from which [`refresh_statistics`] has PostgreSQL
/// analyse the key tables again.
pub const ANALYZE_AFTER: u64 = 1_000;

/// After `added` keys were committed at once, has PostgreSQL read the key
/// tables' statistics again, when they were many. PostgreSQL's own analysis
/// follows a bulk load only after up to a minute; until then the planner
/// believes the pool holds the keys it held before, and a plan chosen for
/// the key claim then (the orders' `UPDATE … SKIP LOCKED`) may sort every
/// available key on each order instead of walking the age index to the first
/// free one. `ANALYZE` also invalidates the plans connections have
/// prepared. A failure is logged, never the import's: its keys are in.
pub async fn refresh_statistics(db: &impl ConnectionTrait, added: u64) {
    if added < ANALYZE_AFTER || db.get_database_backend() != DbBackend::Postgres {
        return;
    }
    if let Err(e) = db.execute_unprepared("ANALYZE license_key, license_key_tag").await {
        tracing::warn!(error = %e, "analysing the key tables after a bulk load failed");
    }
}

/// Tunes `txn`, a write transaction that has just begun, for a bulk load
/// ([`load_tuning`]).
pub async fn tune_for_load(txn: &DatabaseTransaction) -> AppResult<()> {
    txn.execute_unprepared(load_tuning(txn.get_database_backend())).await?;
    Ok(())
}

/// The setting a bulk load runs under. PostgreSQL: `SET LOCAL
/// enable_seqscan = off`, for this transaction only; the planner's statistics
/// do not know the rows this transaction adds, and without it duplicate
/// checks late in a big import scan the table. SQLite: a 24 MiB page cache
/// (SQLite's default is 2 MiB), since a bulk load touches index pages all
/// over the file and re-reading them is saved; it is a cap for this pooled
/// connection, not an allocation.
fn load_tuning(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "SET LOCAL enable_seqscan = off",
        _ => "PRAGMA cache_size = -24576",
    }
}

/// Which of `keys` the environment already holds. Each key is looked up
/// through the (environment, key) index. PostgreSQL gets the keys as one
/// array and a `LATERAL … LIMIT 1` per key, so a table whose statistics lag
/// behind a bulk load is never scanned whole; SQLite (no arrays) a
/// `key IN (?, …)` list.
fn existing_keys<'a>(
    backend: DbBackend,
    environment: Environment,
    keys: impl ExactSizeIterator<Item = &'a str>,
) -> Sql {
    let mut sql = Sql::new("");
    if backend == DbBackend::Postgres {
        sql.push(
            "SELECT u.key FROM unnest(?::text[]) AS u(key) CROSS JOIN LATERAL \
             (SELECT 1 FROM license_key k WHERE k.environment = ? AND k.key = u.key LIMIT 1) AS hit",
            [text_array(keys.map(|k| Some(k.to_string()))), Value::from(environment.as_str())],
        );
    } else {
        let n = keys.len();
        sql.push("SELECT key FROM license_key WHERE environment = ?", [Value::from(environment.as_str())])
            .push(&format!(" AND key IN ({})", placeholders(n)), keys.map(|k| Value::from(k.to_string())));
    }
    sql
}

/// Inserts a batch of AVAILABLE keys: the shared columns are bound once.
/// PostgreSQL gets one array a column (`unnest`, with `''` for "none" since
/// the arrays cannot carry NULLs, and `::` casts back). SQLite (no arrays)
/// gets the shared values in a one-row CTE joined to a multi-row VALUES (5
/// values a key: keep batches under 6000 keys), and `INSERT OR FAIL`, which
/// spares every statement its statement journal (a copy of each page it
/// touches, kept to undo just that statement): a failure here rolls the
/// whole transaction back anyway.
fn insert_keys(backend: DbBackend, common: &Common, rows: &[NewKey]) -> Sql {
    let verb = if backend == DbBackend::Sqlite { "INSERT OR FAIL" } else { "INSERT" };
    let mut sql = Sql::new(format!(
        "{verb} INTO license_key (id, environment, key, source, status, product_id, activation_limit, \
         expires_at, feature_flags, metadata, generator_id, created_at, updated_at) "
    ));
    let shared = [
        Value::from(common.environment.as_str()),
        Value::from(common.source.into_value()),
        Value::from(common.feature_flags.clone()),
        Value::from(common.generator_id.clone()),
        Value::from(common.now),
        Value::from(common.now),
    ];
    if backend == DbBackend::Postgres {
        // Arrays cannot carry NULLs here: an empty string stands for "none".
        let limits = rows.iter().map(|r| Value::Int(Some(r.activation_limit)));
        let expiries = rows.iter().map(|r| Some(r.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default()));
        sql.push(
            "SELECT u.id, ?, u.key, ?, 'AVAILABLE', NULLIF(u.product_id, ''), u.activation_limit, \
             NULLIF(u.expires_at, '')::timestamptz, ?, '{}', ?, ?, ? \
             FROM unnest(?::text[], ?::text[], ?::text[], ?::int[], ?::text[]) \
             AS u(id, key, product_id, activation_limit, expires_at)",
            shared.into_iter().chain([
                text_array(rows.iter().map(|r| Some(r.id.clone()))),
                text_array(rows.iter().map(|r| Some(r.key.clone()))),
                text_array(rows.iter().map(|r| Some(r.product_id.clone().unwrap_or_default()))),
                Value::Array(ArrayType::Int, Some(Box::new(limits.collect()))),
                text_array(expiries),
            ]),
        );
    } else {
        // The shared values once, in a one-row CTE the VALUES rows join.
        sql.text = format!(
            "WITH shared(environment, source, feature_flags, generator_id, created_at, updated_at) AS \
             (VALUES (?, ?, ?, ?, ?, ?)) {}SELECT v.column1, s.environment, v.column2, s.source, 'AVAILABLE', v.column3, \
             v.column4, v.column5, s.feature_flags, '{{}}', s.generator_id, s.created_at, s.updated_at \
             FROM shared s, (VALUES ",
            sql.text
        );
        sql.values.extend(shared);
        for (i, r) in rows.iter().enumerate() {
            sql.push(
                if i == 0 { "(?, ?, ?, ?, ?)" } else { ", (?, ?, ?, ?, ?)" },
                [
                    Value::from(r.id.clone()),
                    Value::from(r.key.clone()),
                    Value::from(r.product_id.clone()),
                    Value::from(r.activation_limit),
                    Value::from(r.expires_at),
                ],
            );
        }
        sql.push(") AS v", []);
    }
    sql
}

/// Links the keys `chunk` to `tag_id`: PostgreSQL gets the ids as one array
/// (`unnest`), SQLite (no arrays) a multi-row VALUES.
fn link_keys(backend: DbBackend, tag_id: &str, chunk: &[String]) -> Sql {
    let mut sql = Sql::new("INSERT INTO license_key_tag (license_key_id, tag_id) ");
    if backend == DbBackend::Postgres {
        sql.push(
            "SELECT u.id, ? FROM unnest(?::text[]) AS u(id)",
            [Value::from(tag_id), text_array(chunk.iter().cloned().map(Some))],
        );
    } else {
        sql.push(
            &format!("SELECT column1, ? FROM (VALUES {})", vec!["(?)"; chunk.len()].join(", ")),
            std::iter::once(Value::from(tag_id)).chain(chunk.iter().cloned().map(Value::from)),
        );
    }
    sql
}

fn text_array(items: impl Iterator<Item = Option<String>>) -> Value {
    Value::Array(ArrayType::String, Some(Box::new(items.map(Value::String).collect())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTO: &str = "INTO license_key (id, environment, key, source, status, product_id, activation_limit, \
                        expires_at, feature_flags, metadata, generator_id, created_at, updated_at) ";

    fn common() -> Common {
        Common {
            environment: Environment::Production,
            source: KeySource::Generated,
            generator_id: None,
            feature_flags: serde_json::json!({}),
            now: Utc::now(),
        }
    }

    fn rows() -> Vec<NewKey> {
        ["a", "b"]
            .map(|k| NewKey { id: k.into(), key: k.into(), product_id: None, activation_limit: 1, expires_at: None })
            .into()
    }

    #[test]
    fn postgres_inserts_from_one_array_a_column() {
        let sql = insert_keys(DbBackend::Postgres, &common(), &rows());
        assert_eq!(
            sql.text,
            format!(
                "INSERT {INTO}SELECT u.id, ?, u.key, ?, 'AVAILABLE', NULLIF(u.product_id, ''), u.activation_limit, \
                 NULLIF(u.expires_at, '')::timestamptz, ?, '{{}}', ?, ?, ? \
                 FROM unnest(?::text[], ?::text[], ?::text[], ?::int[], ?::text[]) \
                 AS u(id, key, product_id, activation_limit, expires_at)"
            )
        );
        assert_eq!(sql.values.len(), 11);
    }

    #[test]
    fn sqlite_inserts_from_values_and_fails_without_a_statement_journal() {
        let sql = insert_keys(DbBackend::Sqlite, &common(), &rows());
        assert_eq!(
            sql.text,
            format!(
                "WITH shared(environment, source, feature_flags, generator_id, created_at, updated_at) AS \
                 (VALUES (?, ?, ?, ?, ?, ?)) INSERT OR FAIL {INTO}SELECT v.column1, s.environment, v.column2, \
                 s.source, 'AVAILABLE', v.column3, v.column4, v.column5, s.feature_flags, '{{}}', s.generator_id, \
                 s.created_at, s.updated_at FROM shared s, (VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)) AS v"
            )
        );
        assert_eq!(sql.values.len(), 16);
    }

    #[test]
    fn existing_keys_and_links_use_arrays_on_postgres_and_lists_on_sqlite() {
        let keys = ["a", "b"];
        let env = Environment::Production;
        assert_eq!(
            existing_keys(DbBackend::Postgres, env, keys.into_iter()).text,
            "SELECT u.key FROM unnest(?::text[]) AS u(key) CROSS JOIN LATERAL \
             (SELECT 1 FROM license_key k WHERE k.environment = ? AND k.key = u.key LIMIT 1) AS hit"
        );
        assert_eq!(
            existing_keys(DbBackend::Sqlite, env, keys.into_iter()).text,
            "SELECT key FROM license_key WHERE environment = ? AND key IN (?, ?)"
        );
        let ids = ["a".to_string(), "b".to_string()];
        let postgres = link_keys(DbBackend::Postgres, "t", &ids);
        assert_eq!(
            postgres.text,
            "INSERT INTO license_key_tag (license_key_id, tag_id) SELECT u.id, ? FROM unnest(?::text[]) AS u(id)"
        );
        assert_eq!(postgres.values.len(), 2);
        let sqlite = link_keys(DbBackend::Sqlite, "t", &ids);
        assert_eq!(
            sqlite.text,
            "INSERT INTO license_key_tag (license_key_id, tag_id) SELECT column1, ? FROM (VALUES (?), (?))"
        );
        assert_eq!(sqlite.values.len(), 3);
    }

    #[test]
    fn a_bulk_load_is_tuned_for_each_database() {
        assert_eq!(load_tuning(DbBackend::Postgres), "SET LOCAL enable_seqscan = off");
        assert_eq!(load_tuning(DbBackend::Sqlite), "PRAGMA cache_size = -24576");
    }
}
