//! Live events: every node learns of each outbox event as its transaction
//! commits and hands it to the subscriptions connected to it.
//!
//! - PostgreSQL: the transaction that writes events also sends their ids with
//!   `NOTIFY keysmith_events` (delivered only when it commits, in commit
//!   order, to every node), and each node `LISTEN`s on a connection of its own.
//!   When that connection drops and comes back, the node reads again the
//!   events of the seconds it may have missed.
//! - SQLite (one node): writing an event wakes the node's reader, which then
//!   waits for its turn at the write lock (see `db::WriteTxn`) — so for the
//!   writing transaction to end — and reads the events after the last one it
//!   saw, in commit order (SQLite's `rowid`). No polling delay; a slow tick
//!   only catches events written by another process on the same file (the
//!   CLI). While nobody on the node is subscribed, no event is read.
//!
//! Each node reads an event once (with what subscriptions filter on: its
//! licence, order, customer and products) and fans it out through a bounded
//! broadcast channel: a subscriber that falls more than [`BACKLOG`] events
//! behind is disconnected, never buffered for.

mod sql;

use crate::db::write_turn;
use crate::error::{AppError, AppResult};
use entity::{event, license_key, order, order_line};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// Events a node keeps for subscribers that are behind; one further behind is dropped.
pub const BACKLOG: usize = 4096;
/// PostgreSQL's channel.
const CHANNEL: &str = "keysmith_events";
/// Ids in one notification (the payload must stay under 8,000 bytes).
const IDS_PER_NOTIFICATION: usize = 250;
/// Events read at a time.
const BATCH: u64 = 256;
/// Announcements waiting to be read (the listening task waits when full).
const QUEUE: usize = 4096;
/// How far back a node reads after its listening connection came back, and
/// how far before `after` a resuming subscription starts (an event committed
/// late may carry an earlier id).
pub const LOOKBACK: Duration = Duration::from_secs(5);

/// An event as subscriptions see it.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub event: event::Model,
    pub facets: Facets,
}

/// What an event is about, for filters and for who may see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facets {
    pub license_id: Option<String>,
    pub order_id: Option<String>,
    pub customer_id: Option<String>,
    pub product_ids: Vec<String>,
}

/// This node's live events.
pub struct Live {
    sender: broadcast::Sender<Arc<LiveEvent>>,
}

impl Default for Live {
    fn default() -> Self {
        Self { sender: broadcast::channel(BACKLOG).0 }
    }
}

impl Live {
    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.sender.subscribe()
    }

    /// Whether anyone on this node is subscribed: with no one, events are not read at all.
    fn listened(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    fn publish(&self, events: Vec<LiveEvent>) {
        for e in events {
            // No subscriber is not an error.
            let _ = self.sender.send(Arc::new(e));
        }
    }
}

/// Bumped whenever this process writes events to SQLite: every node's reader
/// in the process wakes (there is one outside tests).
static WRITTEN: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// Runs `writes` (the statement writing the events `ids`, and any others of
/// the same change) and tells the node's readers of the events, which they
/// see once `db`'s transaction commits. On PostgreSQL that is one statement:
/// the writes chained in a `WITH` before the `NOTIFY`s that go out with the
/// commit ([`sql::with_notify`]). On SQLite the writes run one by one and the
/// readers are woken. The switch chooses a transport, not a dialect, so it
/// stays here.
pub(crate) async fn write_and_announce(
    db: &impl ConnectionTrait,
    writes: Vec<sea_orm::Statement>,
    ids: &[String],
) -> AppResult<()> {
    if db.get_database_backend() == DbBackend::Postgres {
        let payloads: Vec<String> = ids.chunks(IDS_PER_NOTIFICATION).map(|chunk| chunk.join(",")).collect();
        if let Some(chained) = sql::with_notify(writes, payloads) {
            db.execute_raw(chained).await?;
        }
        return Ok(());
    }
    for write in writes {
        db.execute_raw(write).await?;
    }
    if !ids.is_empty() {
        WRITTEN.send_modify(|n| *n = n.wrapping_add(1));
    }
    Ok(())
}

/// Reads this node's live events until the task is dropped: `LISTEN` on
/// PostgreSQL, the `rowid` reader of `live/sql.rs` on SQLite.
pub async fn feed(db: DatabaseConnection, live: Arc<Live>) {
    let outcome = if db.get_database_backend() == DbBackend::Postgres {
        feed_postgres(&db, &live).await
    } else {
        // A connection of its own: the node's pool never waits for the
        // reader, and the reader's statements are not the requests'.
        let options = db.get_sqlite_connection_pool().connect_options();
        let own =
            sea_orm::sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_lazy_with((*options).clone());
        feed_sqlite(&sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(own), &live).await
    };
    if let Err(e) = outcome {
        tracing::error!(error = %e.detail(), "the live event feed stopped");
    }
}

async fn feed_sqlite(db: &DatabaseConnection, live: &Live) -> AppResult<()> {
    let mut written = WRITTEN.subscribe();
    let last = db.query_one_raw(sql::last_rowid()).await?;
    let mut cursor: i64 = last.and_then(|row| row.try_get("", "seq").ok()).unwrap_or(0);
    loop {
        let woken = tokio::select! {
            changed = written.changed() => changed.is_ok(),
            () = tokio::time::sleep(LOOKBACK) => false,
        };
        loop {
            let read = sql::events_after(cursor, BATCH as i64);
            if woken {
                // The writer that woke us holds this process's write turn
                // until its transaction ends: our turn comes after its commit.
                drop(write_turn(db).await);
            }
            if !live.listened() {
                // Nobody to hand events to: skip them. The last committed
                // event is read before asking again, so one committed
                // meanwhile is read next time, and one a later subscriber
                // could expect is never skipped.
                let last = db.query_one_raw(sql::last_rowid()).await?;
                let last: i64 = last.and_then(|row| row.try_get("", "seq").ok()).unwrap_or(0);
                if !live.listened() {
                    cursor = cursor.max(last);
                    break;
                }
            }
            let rows = db.query_all_raw(read).await?;
            let mut ids = Vec::with_capacity(rows.len());
            for row in &rows {
                cursor = cursor.max(row.try_get("", "seq")?);
                ids.push(row.try_get::<String>("", "id")?);
            }
            if !ids.is_empty() {
                live.publish(load(db, &ids).await?);
            }
            if (rows.len() as u64) < BATCH {
                break;
            }
        }
    }
}

async fn feed_postgres(db: &DatabaseConnection, live: &Live) -> AppResult<()> {
    use sea_orm::sqlx::postgres::{PgListener, PgPoolOptions};
    // A pool of its own (one connection), so the node's pool never waits for
    // the listening connection to come back, not even when it closes.
    let options = db.get_postgres_connection_pool().connect_options();
    let own = PgPoolOptions::new().max_connections(1).connect_lazy_with((*options).clone());
    let mut listener = PgListener::connect_with(&own).await.map_err(AppError::internal)?;
    listener.listen(CHANNEL).await.map_err(AppError::internal)?;
    // Ids published lately, so reading again after a reconnection adds none twice.
    let mut recent: VecDeque<String> = VecDeque::new();
    let mut seen: HashSet<String> = HashSet::new();
    let remember = |ids: &[LiveEvent], recent: &mut VecDeque<String>, seen: &mut HashSet<String>| {
        for e in ids {
            if seen.insert(e.event.id.clone()) {
                recent.push_back(e.event.id.clone());
            }
        }
        while recent.len() > BACKLOG {
            if let Some(old) = recent.pop_front() {
                seen.remove(&old);
            }
        }
    };
    // One task listens; this one reads events, as many at a time as have
    // been announced meanwhile, so a burst costs a few reads, not one each.
    let (heard, mut hearing) = tokio::sync::mpsc::channel::<Option<Vec<String>>>(QUEUE);
    let _listening = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
        loop {
            let news = match listener.try_recv().await {
                Ok(Some(n)) => Some(n.payload().split(',').map(str::to_string).collect()),
                // The connection dropped and is back: notifications sent in between are lost.
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "the live event connection failed; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if heard.send(news).await.is_err() {
                return;
            }
        }
    }));
    while let Some(first) = hearing.recv().await {
        let mut ids: Vec<String> = Vec::new();
        let mut reconnected = false;
        let mut next = Some(first);
        while let Some(news) = next.take() {
            match news {
                Some(more) => ids.extend(more),
                None => reconnected = true,
            }
            if ids.len() < BATCH as usize {
                next = hearing.try_recv().ok();
            }
        }
        if reconnected {
            tracing::warn!("the live event connection was re-established; reading recent events again");
            let since = entity::now() - chrono::Duration::from_std(LOOKBACK * 2).unwrap_or_default();
            let missed: Vec<String> = event::Entity::find()
                .select_only()
                .column(event::Column::Id)
                .filter(event::Column::CreatedAt.gte(since))
                .order_by_asc(event::Column::Id)
                .into_tuple::<String>()
                .all(db)
                .await?;
            ids.extend(missed);
        }
        if !live.listened() {
            // Nobody to hand them to: the events are not read.
            continue;
        }
        let mut fresh = HashSet::new();
        ids.retain(|id| !seen.contains(id) && fresh.insert(id.clone()));
        for chunk in ids.chunks(BATCH as usize) {
            let events = load(db, chunk).await?;
            remember(&events, &mut recent, &mut seen);
            live.publish(events);
        }
    }
    Ok(())
}

/// A licence's id, product, customer and order line.
type LicenceFacts = (String, Option<String>, Option<String>, Option<String>);

/// The events `ids` (in that order) with their facets.
pub async fn load(db: &impl ConnectionTrait, ids: &[String]) -> AppResult<Vec<LiveEvent>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut found: HashMap<String, event::Model> = HashMap::new();
    for chunk in ids.chunks(BATCH as usize) {
        for e in event::Entity::find().filter(event::Column::Id.is_in(chunk.iter().cloned())).all(db).await? {
            found.insert(e.id.clone(), e);
        }
    }
    let events: Vec<event::Model> = ids.iter().filter_map(|id| found.remove(id)).collect();
    with_facets(db, events).await
}

/// Attaches to each event what it is about: from its payload, completed
/// from the licence and order it names (one read of each kind per batch).
pub async fn with_facets(db: &impl ConnectionTrait, events: Vec<event::Model>) -> AppResult<Vec<LiveEvent>> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    let mut out: Vec<LiveEvent> = events
        .into_iter()
        .map(|event| {
            let p = &event.payload;
            let mut facets = Facets {
                license_id: text(p, "licenseId"),
                order_id: text(p, "orderId"),
                customer_id: text(p, "customerId"),
                product_ids: text(p, "productId").into_iter().collect(),
            };
            match event.subject_kind.as_str() {
                "license_key" => facets.license_id = Some(event.subject_id.clone()),
                "order" => facets.order_id = Some(event.subject_id.clone()),
                _ => {}
            }
            if let Some(lines) = p.get("lines").and_then(Value::as_array) {
                facets.product_ids.extend(lines.iter().filter_map(|l| text(l, "productId")));
            }
            LiveEvent { event, facets }
        })
        .collect();
    let licence_ids: Vec<String> = out.iter().filter_map(|e| e.facets.license_id.clone()).collect();
    if !licence_ids.is_empty() {
        let rows: Vec<LicenceFacts> = license_key::Entity::find()
            .select_only()
            .columns([
                license_key::Column::Id,
                license_key::Column::ProductId,
                license_key::Column::CustomerId,
                license_key::Column::OrderLineId,
            ])
            .filter(license_key::Column::Id.is_in(licence_ids))
            .into_tuple()
            .all(db)
            .await?;
        let line_ids: Vec<String> = rows.iter().filter_map(|row| row.3.clone()).collect();
        let orders_of_lines: HashMap<String, String> = if line_ids.is_empty() {
            HashMap::new()
        } else {
            order_line::Entity::find()
                .select_only()
                .columns([order_line::Column::Id, order_line::Column::OrderId])
                .filter(order_line::Column::Id.is_in(line_ids))
                .into_tuple::<(String, String)>()
                .all(db)
                .await?
                .into_iter()
                .collect()
        };
        let rows: HashMap<_, _> = rows
            .into_iter()
            .map(|(id, p, c, line)| (id, (p, c, line.and_then(|l| orders_of_lines.get(&l).cloned()))))
            .collect();
        for e in &mut out {
            if let Some((product, customer, order)) = e.facets.license_id.as_ref().and_then(|id| rows.get(id)) {
                e.facets.customer_id = e.facets.customer_id.take().or_else(|| customer.clone());
                e.facets.order_id = e.facets.order_id.take().or_else(|| order.clone());
                if e.facets.product_ids.is_empty() {
                    e.facets.product_ids.extend(product.clone());
                }
            }
        }
    }
    let order_ids: Vec<String> =
        out.iter().filter(|e| e.event.subject_kind == "order").filter_map(|e| e.facets.order_id.clone()).collect();
    if !order_ids.is_empty() {
        let customers: HashMap<String, String> = order::Entity::find()
            .select_only()
            .columns([order::Column::Id, order::Column::CustomerId])
            .filter(order::Column::Id.is_in(order_ids.clone()))
            .into_tuple::<(String, String)>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        let mut products: HashMap<String, Vec<String>> = HashMap::new();
        let lines: Vec<(String, String)> = order_line::Entity::find()
            .select_only()
            .columns([order_line::Column::OrderId, order_line::Column::ProductId])
            .filter(order_line::Column::OrderId.is_in(order_ids))
            .into_tuple()
            .all(db)
            .await?;
        for (order_id, product) in lines {
            products.entry(order_id).or_default().push(product);
        }
        for e in out.iter_mut().filter(|e| e.event.subject_kind == "order") {
            let Some(id) = e.facets.order_id.clone() else { continue };
            if e.facets.customer_id.is_none() {
                e.facets.customer_id = customers.get(&id).cloned();
            }
            for product in products.get(&id).cloned().unwrap_or_default() {
                if !e.facets.product_ids.contains(&product) {
                    e.facets.product_ids.push(product);
                }
            }
        }
    }
    Ok(out)
}
