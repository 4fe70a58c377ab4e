//! Set-based writing of many keys at once, shared by imports and bulk
//! generation: which of a batch of keys a pool already holds, inserting a
//! batch with as few bound values as possible, and tagging it.

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

/// The keys of `keys` that the environment already holds. Each key is looked
/// up through the (environment, key) index; on PostgreSQL the lookup is a
/// `LATERAL … LIMIT 1` per key, so a table whose statistics lag behind a bulk
/// load is never scanned whole.
pub async fn already_in_pool<'a>(
    txn: &DatabaseTransaction,
    environment: Environment,
    keys: impl ExactSizeIterator<Item = &'a str>,
) -> AppResult<HashSet<String>> {
    let backend = txn.get_database_backend();
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
    let rows = txn.query_all_raw(sql.statement(backend)).await?;
    rows.iter().map(|r| r.try_get_by_index::<String>(0)).collect::<Result<_, _>>().map_err(Into::into)
}

/// Inserts a batch of AVAILABLE keys in one statement: the shared columns are
/// bound once; PostgreSQL gets one array a column (`unnest`), SQLite a
/// multi-row VALUES (5 values a key: keep batches under 6000 keys).
pub async fn insert(txn: &DatabaseTransaction, common: &Common, rows: &[NewKey]) -> AppResult<u64> {
    let backend = txn.get_database_backend();
    // On SQLite, `OR FAIL` spares every statement its statement journal (a
    // copy of each page it touches, kept to undo just that statement): a
    // failure here rolls the whole transaction back anyway.
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
    Ok(txn.execute_raw(sql.statement(backend)).await?.rows_affected())
}

/// Gives the keys `key_ids` the tag `tag_id`.
pub async fn tag(txn: &DatabaseTransaction, tag_id: &str, key_ids: &[String]) -> AppResult<()> {
    let backend = txn.get_database_backend();
    for chunk in key_ids.chunks(LINK_BATCH) {
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
        txn.execute_raw(sql.statement(backend)).await?;
    }
    Ok(())
}

fn text_array(items: impl Iterator<Item = Option<String>>) -> Value {
    Value::Array(ArrayType::String, Some(Box::new(items.map(Value::String).collect())))
}
