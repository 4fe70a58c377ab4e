//! Turning outbox events into deliveries, and sending the deliveries that
//! are due. Every node runs both; a delivery is claimed with a lease before
//! it is sent, so two nodes never send the same attempt at once.

use super::Sender;
use crate::error::{AppError, AppResult};
use crate::services::sql::claim_due;
use chrono::{Duration, Utc};
use entity::{event, webhook_delivery, webhook_endpoint};
use hmac::{Hmac, Mac};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use sha2::Sha256;
use std::collections::HashMap;

pub const PENDING: &str = "PENDING";
pub const DELIVERED: &str = "DELIVERED";
pub const FAILED: &str = "FAILED";
/// Events turned into deliveries per transaction, deliveries sent per round.
const BATCH: i64 = 50;
/// How long a node holds a delivery it is sending.
const LEASE_SECONDS: i64 = 60;
/// How long a failing delivery is retried.
const RETRY_FOR_HOURS: i64 = 24;
/// Most of a receiver's answer kept in the delivery log.
const KEEP_RESPONSE_CHARS: usize = 1000;

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the secret>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Queues one delivery per enabled endpoint subscribed to each new event, and
/// marks the events dispatched. Returns the deliveries queued.
pub async fn dispatch(db: &DatabaseConnection) -> AppResult<u64> {
    let mut queued = 0;
    let waiting = || event::Entity::find().filter(event::Column::DispatchedAt.is_null());
    // Most runs find nothing: ask without taking SQLite's write lock.
    if waiting().one(db).await?.is_none() {
        return Ok(0);
    }
    loop {
        let txn = crate::db::begin_write(db).await?;
        let mut pick = waiting().order_by_asc(event::Column::CreatedAt).limit(BATCH as u64);
        if txn.get_database_backend() == DbBackend::Postgres {
            pick = pick
                .lock_with_behavior(sea_orm::sea_query::LockType::Update, sea_orm::sea_query::LockBehavior::SkipLocked);
        }
        let events = pick.all(&txn).await?;
        if events.is_empty() {
            txn.commit().await?;
            return Ok(queued);
        }
        let endpoints =
            webhook_endpoint::Entity::find().filter(webhook_endpoint::Column::Enabled.eq(true)).all(&txn).await?;
        let now = entity::now();
        let mut rows = Vec::new();
        for e in &events {
            for endpoint in &endpoints {
                let subscribed =
                    endpoint.events.as_array().is_some_and(|list| list.iter().any(|k| k == e.kind.as_str()));
                if subscribed && e.environment.as_deref() == Some(endpoint.environment.as_str()) {
                    rows.push(webhook_delivery::ActiveModel {
                        id: Set(entity::new_id()),
                        endpoint_id: Set(endpoint.id.clone()),
                        event_id: Set(e.id.clone()),
                        event_type: Set(e.kind.clone()),
                        payload: Set(e.payload.clone()),
                        status: Set(PENDING.to_string()),
                        attempts: Set(0),
                        next_attempt_at: Set(now),
                        locked_until: Set(None),
                        last_status_code: Set(None),
                        last_response: Set(None),
                        last_error: Set(None),
                        created_at: Set(e.created_at),
                        delivered_at: Set(None),
                    });
                }
            }
        }
        queued += rows.len() as u64;
        if !rows.is_empty() {
            // Another node dispatching the same event at once adds nothing twice.
            webhook_delivery::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::columns([webhook_delivery::Column::EndpointId, webhook_delivery::Column::EventId])
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
        }
        event::Entity::update_many()
            .col_expr(event::Column::DispatchedAt, Expr::value(now))
            .filter(event::Column::Id.is_in(events.iter().map(|e| e.id.clone())))
            .exec(&txn)
            .await?;
        txn.commit().await?;
    }
}

/// Claims the deliveries due now (with a lease, so no other node sends them
/// meanwhile) and sends them at once. Returns how many were sent.
pub async fn deliver_due(
    db: &DatabaseConnection,
    sender: &Sender,
    allow_private: bool,
    retry_base_seconds: u64,
) -> AppResult<u64> {
    let enabled = "d.endpoint_id IN (SELECT e.id FROM webhook_endpoint e WHERE e.enabled = TRUE)";
    let claimed: Vec<webhook_delivery::Model> =
        claim_due(db, "webhook_delivery", Some(enabled), BATCH, Duration::seconds(LEASE_SECONDS)).await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = claimed.iter().map(|d| d.endpoint_id.clone()).collect();
    let endpoints: HashMap<String, webhook_endpoint::Model> = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    let sends = claimed.iter().filter_map(|d| {
        endpoints.get(&d.endpoint_id).map(|e| send(db, sender, allow_private, e, d, retry_base_seconds))
    });
    let results = futures_util::future::join_all(sends).await;
    let sent = results.len() as u64;
    for r in results {
        if let Err(e) = r {
            tracing::warn!(error = %e.detail(), "recording a webhook attempt failed");
        }
    }
    Ok(sent)
}

/// The body a delivery sends, the same on every attempt.
fn body_of(delivery: &webhook_delivery::Model, endpoint: &webhook_endpoint::Model) -> AppResult<Vec<u8>> {
    serde_json::to_vec(&serde_json::json!({
        "id": delivery.event_id,
        "type": delivery.event_type,
        "environment": endpoint.environment.as_str(),
        "createdAt": delivery.created_at,
        "data": delivery.payload,
    }))
    .map_err(AppError::internal)
}

async fn send(
    db: &DatabaseConnection,
    sender: &Sender,
    allow_private: bool,
    endpoint: &webhook_endpoint::Model,
    delivery: &webhook_delivery::Model,
    retry_base_seconds: u64,
) -> AppResult<()> {
    let body = body_of(delivery, endpoint)?;
    let timestamp = Utc::now().timestamp();
    let outcome: Result<(u16, String), String> = match reqwest::Url::parse(&endpoint.url) {
        Err(e) => Err(format!("the endpoint's URL is unusable: {e}")),
        Ok(url) => match Sender::refuses(&url, allow_private) {
            Some(reason) => Err(reason),
            None => {
                let answer = sender
                    .client(allow_private)
                    .post(url)
                    .header("Content-Type", "application/json")
                    .header("Keysmith-Event-Id", &delivery.event_id)
                    .header("Keysmith-Event-Type", &delivery.event_type)
                    .header("Keysmith-Signature", signature(&endpoint.secret, timestamp, &body))
                    .body(body)
                    .send()
                    .await;
                match answer {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let text = resp.text().await.unwrap_or_default();
                        Ok((status, text.chars().take(KEEP_RESPONSE_CHARS).collect()))
                    }
                    Err(e) => Err(error_chain(&e)),
                }
            }
        },
    };
    record(db, delivery, outcome, retry_base_seconds).await
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().take(KEEP_RESPONSE_CHARS).collect()
}

/// When attempt number `attempts` (1-based) has failed, the next one is due
/// after the base delay doubled each time, at most an hour.
fn backoff(retry_base_seconds: u64, attempts: i32) -> Duration {
    let doubled = retry_base_seconds.saturating_mul(1u64 << attempts.clamp(1, 20).saturating_sub(1) as u32);
    Duration::seconds(doubled.min(3600) as i64)
}

async fn record(
    db: &DatabaseConnection,
    delivery: &webhook_delivery::Model,
    outcome: Result<(u16, String), String>,
    retry_base_seconds: u64,
) -> AppResult<()> {
    let now = entity::now();
    let attempts = delivery.attempts + 1;
    let mut row: webhook_delivery::ActiveModel = delivery.clone().into();
    row.attempts = Set(attempts);
    row.locked_until = Set(None);
    let succeeded = matches!(&outcome, Ok((status, _)) if (200..300).contains(status));
    match outcome {
        Ok((status, text)) => {
            row.last_status_code = Set(Some(i32::from(status)));
            row.last_response = Set(Some(text));
            row.last_error = Set(None);
        }
        Err(error) => {
            row.last_status_code = Set(None);
            row.last_response = Set(None);
            row.last_error = Set(Some(error));
        }
    }
    if succeeded {
        row.status = Set(DELIVERED.to_string());
        row.delivered_at = Set(Some(now));
    } else if now - delivery.created_at >= Duration::hours(RETRY_FOR_HOURS) {
        row.status = Set(FAILED.to_string());
    } else {
        row.next_attempt_at = Set(now + backoff(retry_base_seconds, attempts));
    }
    sea_orm::ActiveModelTrait::update(row, db).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_and_body() {
        // Checked against `printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test`.
        assert_eq!(
            signature("whsec_test", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }

    #[test]
    fn retries_back_off_exponentially_to_an_hour() {
        assert_eq!(backoff(30, 1), Duration::seconds(30));
        assert_eq!(backoff(30, 2), Duration::seconds(60));
        assert_eq!(backoff(30, 4), Duration::seconds(240));
        assert_eq!(backoff(30, 30), Duration::seconds(3600));
    }
}
