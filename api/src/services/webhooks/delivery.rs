//! Turning outbox events into deliveries, and sending the deliveries that
//! are due. Every node runs both; a delivery is claimed with a lease before
//! it is sent, so two nodes never send the same attempt at once.
//!
//! Each send runs as a task of its own, and the job that starts them does not
//! wait for them: a receiver that hangs until the timeout holds its own
//! endpoint's places (at most `ENDPOINT_SENDS` on a node) and nothing else —
//! new events are still dispatched at every run, and other endpoints'
//! deliveries go out beside it.

use super::Sender;
use super::address::TIMEOUT;
use crate::error::{AppError, AppResult};
use crate::services::sql::{self, Sql, claim_due, due_groups};
use chrono::{Duration, Utc};
use entity::{event, webhook_delivery, webhook_endpoint};
use hmac::{Hmac, Mac};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub const PENDING: &str = "PENDING";
pub const DELIVERED: &str = "DELIVERED";
pub const FAILED: &str = "FAILED";
/// Events turned into deliveries per transaction.
const BATCH: i64 = 50;
/// Sends in flight on one node, over all endpoints.
const NODE_SENDS: usize = 32;
/// Sends in flight on one node to one endpoint.
const ENDPOINT_SENDS: usize = 4;
/// How long a node holds a delivery it is sending: well past the longest a
/// send may take, so that no other node sends the same attempt meanwhile.
const LEASE_SECONDS: i64 = 60;
const _: () = assert!(LEASE_SECONDS as u64 >= 3 * TIMEOUT.as_secs(), "a lease outlasts a send");
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
        if sql::row_locks(txn.get_database_backend()) {
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

/// This node's webhook sends in flight, in all and per endpoint. It is the
/// node's own bookkeeping, not shared state: the lease on each delivery row
/// is what keeps other nodes off it.
#[derive(Debug, Default)]
pub struct InFlight {
    counts: Mutex<Counts>,
    /// A run left due deliveries for lack of room: the next send to end
    /// wakes the job runner to deliver again.
    starved: AtomicBool,
    ended: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_endpoint: HashMap<String, usize>,
}

/// One send's place in [`InFlight`], given back when dropped: when the send
/// has been recorded, or when its task is dropped with the runtime.
struct Slot {
    flights: Arc<InFlight>,
    endpoint: String,
}

impl InFlight {
    /// As many places for sends to `endpoint` as it and the node have room
    /// for (none when either is full).
    fn take(self: &Arc<Self>, endpoint: &str) -> Vec<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let held = counts.by_endpoint.get(endpoint).copied().unwrap_or(0);
        let room = ENDPOINT_SENDS.saturating_sub(held).min(NODE_SENDS.saturating_sub(counts.total));
        if room == 0 {
            return Vec::new();
        }
        counts.total += room;
        *counts.by_endpoint.entry(endpoint.to_string()).or_default() += room;
        drop(counts);
        (0..room).map(|_| Slot { flights: Arc::clone(self), endpoint: endpoint.to_string() }).collect()
    }

    fn full(&self) -> bool {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).total >= NODE_SENDS
    }

    /// Notes that due deliveries were left for lack of room.
    fn starve(&self) {
        self.starved.store(true, Ordering::SeqCst);
    }

    /// Resolves when a send has ended and made room that a run lacked (or
    /// already had, since the last call).
    pub(super) async fn ended(&self) {
        self.ended.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.flights.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        let left = match counts.by_endpoint.get_mut(&self.endpoint) {
            Some(held) => {
                *held = held.saturating_sub(1);
                *held
            }
            None => 0,
        };
        if left == 0 {
            counts.by_endpoint.remove(&self.endpoint);
        }
    }
}

/// Claims the deliveries due now, endpoint by endpoint (the longest waiting
/// first) and as many of each as this node has room for, with a lease so that
/// no other node sends them meanwhile, and starts each send as a task of its
/// own. Returns how many sends it started, without waiting for any.
pub async fn deliver_due(
    db: &DatabaseConnection,
    sender: &Sender,
    allow_private: bool,
    retry_base_seconds: u64,
) -> AppResult<u64> {
    if sender.flights.full() {
        sender.flights.starve();
        return Ok(0);
    }
    let enabled = Sql::new("d.endpoint_id IN (SELECT e.id FROM webhook_endpoint e WHERE e.enabled = TRUE)");
    // Enough endpoints to fill the node even past the ones that are full.
    let limit = (NODE_SENDS + NODE_SENDS / ENDPOINT_SENDS + 1) as i64;
    let waiting = due_groups(db, "webhook_delivery", "endpoint_id", Some(&enabled), limit).await?;
    if waiting.is_empty() {
        return Ok(0);
    }
    let endpoints: HashMap<String, webhook_endpoint::Model> = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Id.is_in(waiting.iter().cloned()))
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .all(db)
        .await?
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    let mut started = 0;
    for id in &waiting {
        let Some(endpoint) = endpoints.get(id) else { continue };
        let slots = sender.flights.take(id);
        if slots.is_empty() {
            sender.flights.starve();
            if sender.flights.full() {
                break;
            }
            continue;
        }
        let room = slots.len();
        // Still enabled when claimed: an endpoint disabled a moment ago is not sent to.
        let mut only = Sql::new(
            "d.endpoint_id = ? AND d.endpoint_id IN (SELECT e.id FROM webhook_endpoint e WHERE e.enabled = TRUE)",
        );
        only.values.push(id.clone().into());
        let claimed: Vec<webhook_delivery::Model> =
            claim_due(db, "webhook_delivery", Some(&only), room as i64, Duration::seconds(LEASE_SECONDS)).await?;
        if claimed.len() == room {
            sender.flights.starve();
        }
        // Places left over (fewer deliveries than room) are given back here.
        for (delivery, slot) in claimed.into_iter().zip(slots) {
            let attempt = Attempt {
                db: db.clone(),
                sender: sender.clone(),
                allow_private,
                endpoint: endpoint.clone(),
                delivery,
                retry_base_seconds,
            };
            tokio::spawn(attempt.run(slot));
            started += 1;
        }
    }
    Ok(started)
}

/// One claimed delivery, to be sent in a task of its own.
struct Attempt {
    db: DatabaseConnection,
    sender: Sender,
    allow_private: bool,
    endpoint: webhook_endpoint::Model,
    delivery: webhook_delivery::Model,
    retry_base_seconds: u64,
}

impl Attempt {
    /// Sends and records the attempt, holding `slot` until then. A node that
    /// stops meanwhile drops the task: the delivery's lease then lapses and
    /// the same attempt is made again, by any node, with the same event id,
    /// by which receivers recognise a repeat.
    async fn run(self, slot: Slot) {
        let Attempt { db, sender, allow_private, endpoint, delivery, retry_base_seconds } = self;
        let outcome = Box::pin(send(&db, &sender, allow_private, &endpoint, &delivery, retry_base_seconds)).await;
        drop(slot);
        if sender.flights.starved.swap(false, Ordering::SeqCst) {
            sender.flights.ended.notify_one();
        }
        if let Err(e) = outcome {
            tracing::warn!(error = %e.detail(), delivery = %delivery.id, "recording a webhook attempt failed");
        }
    }
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
                        Ok((status, answer_start(resp).await))
                    }
                    Err(e) => Err(error_chain(&e)),
                }
            }
        },
    };
    record(db, delivery, outcome, retry_base_seconds).await
}

/// The start of a receiver's answer, as text fit to store: at most
/// [`KEEP_RESPONSE_CHARS`] characters, read no further than that needs (an
/// answer may be endless), invalid UTF-8 replaced and NUL characters
/// (which PostgreSQL text cannot hold) dropped.
async fn answer_start(mut resp: reqwest::Response) -> String {
    let most = KEEP_RESPONSE_CHARS * 4;
    let mut bytes = Vec::new();
    while bytes.len() < most {
        match resp.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk[..chunk.len().min(most - bytes.len())]),
            _ => break,
        }
    }
    storable(&String::from_utf8_lossy(&bytes))
}

/// `text` cut to [`KEEP_RESPONSE_CHARS`] characters without NULs.
fn storable(text: &str) -> String {
    text.chars().filter(|c| *c != '\0').take(KEEP_RESPONSE_CHARS).collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    storable(&text)
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
    // Only while this node's lease holds: past it another node may have
    // claimed the delivery again, and its record is the one that counts.
    let _turn = crate::db::write_turn(db).await;
    let recorded = webhook_delivery::Entity::update(row)
        .validate()?
        .filter(webhook_delivery::Column::LockedUntil.eq(delivery.locked_until))
        .exec_without_returning(db)
        .await;
    match recorded {
        Ok(_) => Ok(()),
        Err(sea_orm::DbErr::RecordNotUpdated) => {
            tracing::warn!(delivery = %delivery.id, "a webhook attempt outlasted its lease; another node records it");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
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
    fn places_for_sends_are_capped_per_endpoint_and_per_node_and_given_back() {
        let flights = Arc::new(InFlight::default());
        let first = flights.take("slow");
        assert_eq!(first.len(), ENDPOINT_SENDS);
        assert!(flights.take("slow").is_empty(), "an endpoint gets no more than its places");
        let others: Vec<Slot> = (0..NODE_SENDS).flat_map(|i| flights.take(&format!("other-{i}"))).collect();
        assert_eq!(first.len() + others.len(), NODE_SENDS);
        assert!(flights.full() && flights.take("another").is_empty(), "the node gets no more than its places");
        drop(first);
        assert!(!flights.full());
        assert_eq!(flights.take("slow").len(), ENDPOINT_SENDS, "places given back are taken again");
        drop(others);
        assert_eq!(flights.counts.lock().unwrap_or_else(PoisonError::into_inner).by_endpoint.len(), 0);
    }

    #[test]
    fn retries_back_off_exponentially_to_an_hour() {
        assert_eq!(backoff(30, 1), Duration::seconds(30));
        assert_eq!(backoff(30, 2), Duration::seconds(60));
        assert_eq!(backoff(30, 4), Duration::seconds(240));
        assert_eq!(backoff(30, 30), Duration::seconds(3600));
    }
}
