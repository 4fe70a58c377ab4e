//! Subscriptions, over the `graphql-transport-ws` protocol on `/graphql`
//! (see `http::socket`): the events webhooks deliver, as they commit, and a
//! job's progress.

use crate::AppState;
use crate::auth::{RequestContext, Viewer, may};
use crate::error::{AppError, AppResult};
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::common::Environment;
use crate::graphql::types::job::Job;
use crate::services::events::EventKind;
use crate::services::jobs;
use crate::services::live::{self, LOOKBACK, LiveEvent};
use async_graphql::{Context, ID, InputObject, Json, Object, Result, Subscription as SubscriptionRoot};
use chrono::{DateTime, Utc};
use entity::event;
use futures_util::Stream;
use futures_util::stream::BoxStream;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};

/// How often a job's progress is read while it runs.
const JOB_POLL: Duration = Duration::from_millis(250);
/// Events read at a time when a subscription resumes.
const REPLAY_PAGE: u64 = 200;

/// Subscriptions one token may hold at once, over all its connections.
pub const PER_TOKEN: usize = 100;

/// The room each token has, shared by its connections while any is open.
#[derive(Default)]
pub struct TokenRoom(Mutex<HashMap<[u8; 16], Weak<Semaphore>>>);

impl TokenRoom {
    pub fn of(&self, token: &str) -> Arc<Semaphore> {
        let digest = Sha256::digest(token.as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        let mut rooms = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        rooms.retain(|_, room| room.strong_count() > 0);
        if let Some(room) = rooms.get(&key).and_then(Weak::upgrade) {
            return room;
        }
        let room = Arc::new(Semaphore::new(PER_TOKEN));
        rooms.insert(key, Arc::downgrade(&room));
        room
    }
}

/// What a connection lends its subscriptions: room under its limits, and a
/// way to end the connection (a subscriber too slow to keep up is cut off).
pub struct Slots {
    pub connection: Arc<Semaphore>,
    pub token: Arc<Semaphore>,
    /// Set to a close code and reason to end the connection.
    pub close: watch::Sender<Option<(u16, String)>>,
}

impl Slots {
    /// Room for one more subscription, held until it ends.
    fn take(&self) -> AppResult<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let refused = || AppError::RateLimited { retry_after_secs: 1 };
        let on_connection = self.connection.clone().try_acquire_owned().map_err(|_| refused())?;
        let on_token = self.token.clone().try_acquire_owned().map_err(|_| refused())?;
        Ok((on_connection, on_token))
    }
}

/// Which events a subscription wants; every field given must match.
#[derive(InputObject, Default, Clone)]
pub struct EventFilter {
    /// Only these kinds.
    pub types: Option<Vec<EventKind>>,
    pub license_id: Option<ID>,
    /// Events about this product's licences, orders with a line of it.
    pub product_id: Option<ID>,
    pub customer_id: Option<ID>,
    pub order_id: Option<ID>,
}

/// One event: the same `id`, `type`, `environment`, `createdAt` and `data`
/// as the webhook delivery's body.
pub struct Event(Arc<LiveEvent>);

#[Object]
impl Event {
    /// The event id, the same as its webhook deliveries' `Keysmith-Event-Id`.
    async fn id(&self) -> ID {
        ID(self.0.event.id.clone())
    }
    #[graphql(name = "type")]
    async fn kind(&self) -> Option<EventKind> {
        EventKind::parse(&self.0.event.kind)
    }
    async fn environment(&self) -> Option<Environment> {
        self.0.event.environment.as_deref().and_then(entity::Environment::parse).map(Environment::from)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.event.created_at
    }
    /// The webhook's `data`.
    async fn data(&self) -> Json<serde_json::Value> {
        Json(self.0.event.payload.clone())
    }
}

/// Who a subscription serves, and what it asked for.
struct Wanted {
    environment: String,
    /// A customer sees only their own licences' and orders' events.
    customer: Option<String>,
    filter: EventFilter,
}

impl Wanted {
    fn new(rc: &RequestContext, filter: EventFilter) -> AppResult<Self> {
        let customer = match &rc.viewer {
            Viewer::Staff { .. } => None,
            Viewer::Customer { customer_id } => Some(customer_id.clone()),
            _ => return Err(AppError::Unauthenticated("subscriptions need a token".into())),
        };
        Ok(Self { environment: rc.environment.as_str().to_string(), customer, filter })
    }

    fn wants(&self, e: &LiveEvent) -> bool {
        let f = &self.filter;
        let is = |asked: &Option<ID>, have: &Option<String>| {
            asked.as_ref().is_none_or(|id| have.as_deref() == Some(id.as_str()))
        };
        e.event.environment.as_deref() == Some(self.environment.as_str())
            && self
                .customer
                .as_ref()
                .is_none_or(|me| e.facets.customer_id.as_ref() == Some(me) && !e.event.kind.starts_with("pool."))
            && f.types.as_ref().is_none_or(|types| types.iter().any(|t| t.as_str() == e.event.kind))
            && is(&f.license_id, &e.facets.license_id)
            && is(&f.order_id, &e.facets.order_id)
            && is(&f.customer_id, &e.facets.customer_id)
            && f.product_id.as_ref().is_none_or(|p| e.facets.product_ids.iter().any(|have| have == p.as_str()))
    }
}

/// The lowest event id written `LOOKBACK` before `after` was.
fn replay_start(after: &str) -> AppResult<String> {
    let id = ulid::Ulid::from_string(after).map_err(|_| AppError::invalid("after", "must be an event id"))?;
    let lookback = LOOKBACK.as_millis() as u64;
    Ok(ulid::Ulid::from_parts(id.timestamp_ms().saturating_sub(lookback), 0).to_string())
}

/// One page of the environment's events after `cursor` (from it, when
/// `inclusive`), in id order.
async fn replay_page(state: &AppState, wanted: &Wanted, cursor: &str, inclusive: bool) -> AppResult<Vec<event::Model>> {
    let id = event::Column::Id;
    let page = event::Entity::find()
        .filter(event::Column::Environment.eq(wanted.environment.as_str()))
        .filter(if inclusive { id.gte(cursor) } else { id.gt(cursor) })
        .order_by_asc(id)
        .limit(REPLAY_PAGE)
        .all(&state.db)
        .await?;
    Ok(page)
}

fn events_stream(
    state: AppState,
    wanted: Wanted,
    after: Option<String>,
    live: broadcast::Receiver<Arc<LiveEvent>>,
    close: watch::Sender<Option<(u16, String)>>,
    permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
) -> impl Stream<Item = Result<Event>> {
    async_stream::stream! {
        let _permits = permits;
        let mut replayed: HashSet<String> = HashSet::new();
        if let Some(after) = after {
            let mut cursor = match replay_start(&after) {
                Ok(start) => start,
                Err(e) => { yield Err(e.into()); return; }
            };
            let mut inclusive = true;
            loop {
                let page = match replay_page(&state, &wanted, &cursor, inclusive).await {
                    Ok(page) => page,
                    Err(e) => { yield Err(e.into()); return; }
                };
                inclusive = false;
                let Some(last) = page.last() else { break };
                cursor = last.id.clone();
                let full = page.len() as u64 == REPLAY_PAGE;
                let events = match live::with_facets(&state.db, page).await {
                    Ok(events) => events,
                    Err(e) => { yield Err(e.into()); return; }
                };
                for e in events {
                    if e.event.id != after && wanted.wants(&e) {
                        replayed.insert(e.event.id.clone());
                        yield Ok(Event(Arc::new(e)));
                    }
                }
                if !full {
                    break;
                }
            }
        }
        let mut following = std::pin::pin!(follow(wanted, replayed, live, close));
        while let Some(event) = futures_util::StreamExt::next(&mut following).await {
            yield Ok(event);
        }
    }
}

/// The live part of a subscription: the events `wanted` accepts, but those
/// already sent by the replay; when the subscriber has fallen further
/// behind than the node keeps, the connection is closed (1008) and the
/// stream ends.
fn follow(
    wanted: Wanted,
    replayed: HashSet<String>,
    mut live: broadcast::Receiver<Arc<LiveEvent>>,
    close: watch::Sender<Option<(u16, String)>>,
) -> impl Stream<Item = Event> {
    async_stream::stream! {
        loop {
            match live.recv().await {
                Ok(e) => {
                    if wanted.wants(&e) && !replayed.contains(&e.event.id) {
                        yield Event(e);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "a subscriber fell behind; closing its connection");
                    let reason = format!("too slow: {missed} events behind; reconnect with `after`");
                    let _ = close.send(Some((1008, reason)));
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

#[derive(Default)]
pub struct Subscription;

#[SubscriptionRoot]
impl Subscription {
    /// Events as they commit: the same kinds and payloads webhooks deliver.
    /// Staff see their environment's, a customer their own licences' and
    /// orders'. With `after` (an event id) the events since then come first —
    /// from a few seconds before it, so one committed late is not missed:
    /// deduplicate on `id`. A subscriber that falls thousands of events
    /// behind is disconnected (close code 1008) and reconnects with `after`.
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventFilter>,
        after: Option<ID>,
    ) -> Result<BoxStream<'static, Result<Event>>> {
        let (state, rc) = request(ctx)?;
        let slots = ctx.data::<Slots>().map_err(|_| AppError::invalid("subscription", "runs over WebSocket only"))?;
        let wanted = Wanted::new(rc, filter.unwrap_or_default())?;
        let after = after.map(|id| id.0);
        if let Some(after) = &after {
            replay_start(after)?;
        }
        let permits = slots.take()?;
        let live = state.live.subscribe();
        Ok(Box::pin(events_stream(state.clone(), wanted, after, live, slots.close.clone(), permits)))
    }

    /// A job as it runs: now, then at every change of its status or
    /// progress, ending when a one-off job has finished (staff).
    #[graphql(guard = "RoleGuard::new(may::READ)")]
    async fn job_progress(&self, ctx: &Context<'_>, id: ID) -> Result<BoxStream<'static, Result<Job>>> {
        let (state, rc) = request(ctx)?;
        let slots = ctx.data::<Slots>().map_err(|_| AppError::invalid("subscription", "runs over WebSocket only"))?;
        let first = jobs::get(&state.db, rc, &id).await?;
        let permits = slots.take()?;
        let (state, rc) = (state.clone(), rc.clone());
        Ok(Box::pin(async_stream::stream! {
            let _permits = permits;
            let mut last = first;
            yield Ok(Job(last.clone()));
            loop {
                let finished = last.every_seconds.is_none()
                    && !matches!(jobs::JobStatus::parse(&last.status), Some(jobs::JobStatus::Queued | jobs::JobStatus::Running));
                if finished {
                    return;
                }
                tokio::time::sleep(JOB_POLL).await;
                match jobs::get(&state.db, &rc, &last.id).await {
                    Ok(now) if now != last => {
                        last = now;
                        yield Ok(Job(last.clone()));
                    }
                    Ok(_) => {}
                    Err(e) => { yield Err(e.into()); return; }
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn event(id: &str, kind: &str, customer: &str) -> Arc<LiveEvent> {
        Arc::new(LiveEvent {
            event: event::Model {
                id: id.into(),
                environment: Some("production".into()),
                kind: kind.into(),
                subject_kind: "order".into(),
                subject_id: "o1".into(),
                payload: serde_json::json!({}),
                created_at: entity::now(),
                dispatched_at: None,
            },
            facets: live::Facets { customer_id: Some(customer.into()), ..Default::default() },
        })
    }

    fn everything() -> Wanted {
        Wanted { environment: "production".into(), customer: None, filter: EventFilter::default() }
    }

    #[tokio::test]
    async fn a_subscriber_further_behind_than_the_backlog_is_closed_not_buffered() {
        let (sender, receiver) = broadcast::channel(4);
        let (close, closing) = watch::channel(None);
        for i in 0..10 {
            sender.send(event(&format!("e{i}"), "order.created", "c1")).unwrap();
        }
        let got: Vec<Event> = follow(everything(), HashSet::new(), receiver, close).collect().await;
        assert!(got.is_empty(), "nothing of a backlog it cannot have");
        let (code, reason) = closing.borrow().clone().expect("the connection is closed");
        assert_eq!(code, 1008);
        assert!(reason.contains("6 events behind"), "{reason}");
    }

    #[tokio::test]
    async fn the_live_part_skips_what_was_replayed_and_what_is_not_wanted() {
        let (sender, receiver) = broadcast::channel(16);
        let (close, _closing) = watch::channel(None);
        let ada = Wanted { customer: Some("ada".into()), ..everything() };
        let replayed = HashSet::from(["e1".to_string()]);
        for (id, kind, customer) in [
            ("e1", "order.created", "ada"),
            ("e2", "order.created", "grace"),
            ("e3", "pool.exhausting", "ada"),
            ("e4", "order.fulfilled", "ada"),
        ] {
            sender.send(event(id, kind, customer)).unwrap();
        }
        drop(sender);
        let got: Vec<String> = follow(ada, replayed, receiver, close).map(|e| e.0.event.id.clone()).collect().await;
        assert_eq!(got, ["e4"]);
    }
}
