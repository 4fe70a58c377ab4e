//! A delivery's way in: the integration found, the signature verified, the
//! integration's rate budget spent (refused deliveries spend a budget of
//! their own, so a flood of forged ones cannot crowd out the provider's),
//! then recorded and acted on in one transaction. The answer is 2xx only once that transaction has committed,
//! so a database failure makes the provider send it again; a delivery
//! refused for its signature leaves nothing but the integration's refusal
//! count. The same provider event twice is counted, never acted on twice: a
//! twin arriving while the first is still at work waits on the event's
//! unique index and then finds it.

use super::apply::{self, Effect};
use super::reading::{Action, Headers, Interpreted, clip};
use super::{lemon_squeezy, paddle, shopify, stripe, verify, woocommerce};
use crate::AppState;
use crate::auth::{RequestContext, Viewer, may};
use crate::db::{begin_write, retrying};
use crate::error::{AppError, AppResult};
use crate::services::audit::{self, Change};
use crate::services::events::{self, EventKind, Subject};
use crate::services::fulfilment;
use crate::services::ratelimit::Limited;
use crate::services::sql::row_locks;
use entity::Environment;
use entity::integration::{self, Provider};
use entity::integration_event::{self, EventOutcome};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Why a delivery was not let in.
#[derive(Debug)]
pub enum Admission {
    /// No such integration (404).
    Unknown,
    Failed(AppError),
}

/// How a delivery was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Recorded with this outcome, and committed (200).
    Recorded(EventOutcome),
    /// The provider sent an event already recorded (200).
    Duplicate,
    /// WooCommerce's unsigned test delivery when a webhook is saved (200).
    Ping,
    /// The signature did not hold (401).
    Refused(verify::Refusal),
    /// Signed, but past the integration's rate (429).
    Limited(Limited),
}

/// The integration a delivery is addressed to.
pub async fn admit(state: &AppState, id: &str) -> Result<integration::Model, Admission> {
    if id.is_empty() || id.len() > 26 {
        return Err(Admission::Unknown);
    }
    integration::Entity::find_by_id(id.to_string())
        .one(&state.db)
        .await
        .map_err(|e| Admission::Failed(e.into()))?
        .ok_or(Admission::Unknown)
}

/// Reads a delivery as its provider wrote it; `None` when it is not one.
fn interpret(integration: &integration::Model, headers: &Headers, body: &Value) -> Option<Interpreted> {
    match integration.provider {
        Provider::Stripe => stripe::interpret(body),
        Provider::Paddle => paddle::interpret(body),
        Provider::LemonSqueezy => lemon_squeezy::interpret(body),
        Provider::Shopify => shopify::interpret(headers, body),
        Provider::WooCommerce => {
            let paid: Vec<String> = integration
                .paid_statuses
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            woocommerce::interpret(headers, body, &paid)
        }
    }
}

/// A delivery whose body is not the provider's JSON: recorded by its hash.
fn unreadable(body: &[u8]) -> Interpreted {
    Interpreted {
        event_id: format!("sha256:{}", hex::encode(Sha256::digest(body))),
        event_type: "unreadable".into(),
        test_mode: false,
        action: Action::Ignore("UNREADABLE", "the body is not an event of this provider".into()),
    }
}

fn read(integration: &integration::Model, headers: &Headers, body: &[u8]) -> Interpreted {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|json| interpret(integration, headers, &json))
        .unwrap_or_else(|| unreadable(body))
}

/// What makes a delivery the same as an earlier one, besides its event id:
/// its body — with, for Shopify, its topic, since one action (cancelling and
/// refunding an order) sends the same body under two topics that each act.
fn digest(provider: Provider, headers: &Headers, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    if provider == Provider::Shopify {
        hash.update(headers.get("x-shopify-topic").unwrap_or_default());
        hash.update([0]);
    }
    hash.update(body);
    hex::encode(hash.finalize())
}

/// WooCommerce's ping when a webhook is saved: `webhook_id=<n>`, unsigned.
fn is_ping(provider: Provider, headers: &Headers, body: &[u8]) -> bool {
    provider == Provider::WooCommerce
        && headers.get(verify::header_of(provider)).is_none()
        && body.strip_prefix(b"webhook_id=").is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit))
}

/// Verifies, records and acts on one delivery to `integration`.
pub async fn receive(
    state: &AppState,
    integration: &integration::Model,
    headers: &Headers,
    body: &[u8],
) -> AppResult<Answer> {
    if is_ping(integration.provider, headers, body) {
        return Ok(Answer::Ping);
    }
    let now = entity::now();
    let mut secrets = vec![integration.secret.as_str()];
    if let (Some(previous), Some(until)) = (&integration.previous_secret, integration.previous_secret_until)
        && until > now
    {
        secrets.push(previous);
    }
    let tolerance = i64::from(integration.tolerance_seconds);
    let per_minute = u32::try_from(integration.rate_limit_per_minute).unwrap_or(0);
    if let Err(refusal) = verify::verify(integration.provider, headers, body, &secrets, now.timestamp(), tolerance) {
        // Counted while refusals stay within a budget of their own; past it, only refused.
        if state.integration_limits.check(&format!("{}:refused", integration.id), per_minute).is_err() {
            return Ok(Answer::Refused(refusal));
        }
        integration::Entity::update_many()
            .col_expr(integration::Column::RefusedCount, Expr::col(integration::Column::RefusedCount).add(1))
            .col_expr(integration::Column::LastRefusedAt, Expr::value(now))
            .col_expr(integration::Column::LastRefusal, Expr::value(refusal.describe(integration.provider)))
            .filter(integration::Column::Id.eq(integration.id.as_str()))
            .exec(&state.db)
            .await?;
        return Ok(Answer::Refused(refusal));
    }
    if let Err(limited) = state.integration_limits.check(&integration.id, per_minute) {
        return Ok(Answer::Limited(limited));
    }
    let read = read(integration, headers, body);
    // Kept as text: bytes that are not UTF-8, and NUL (no stored text holds it), become U+FFFD.
    let text = String::from_utf8_lossy(body).replace('\0', "\u{FFFD}");
    let digest = digest(integration.provider, headers, body);
    let delivery = Delivery { integration, headers, body: &text, digest: &digest, read: &read };
    let key = format!("{}:{digest}", integration.id);
    match retrying(|| record(state, &delivery, false)).await {
        Err(AppError::Internal(detail)) => {
            let failures = state.integration_failures.note(&key);
            if failures < GIVE_UP_AFTER {
                return Err(AppError::Internal(detail));
            }
            // It fails alike every time: recorded as FAILED, for an admin to
            // see and replay once the cause is fixed, and the provider stops.
            tracing::error!(integration = %integration.id, error = %detail, failures, "a delivery keeps failing: recorded as FAILED");
            let recorded = retrying(|| record(state, &delivery, true)).await;
            if recorded.is_ok() {
                state.integration_failures.forget(&key);
            }
            recorded.map_err(|_| AppError::Internal(detail))
        }
        answered => {
            if answered.is_ok() {
                state.integration_failures.forget(&key);
            }
            answered
        }
    }
}

/// Deliveries that failed for an internal reason this many times in a row
/// (on this node) are recorded as FAILED instead of failing again.
pub const GIVE_UP_AFTER: u32 = 5;

/// Internal failures of each delivery (integration and body) on this node.
#[derive(Default)]
pub struct Failures(std::sync::Mutex<std::collections::HashMap<String, u32>>);

/// Most deliveries whose failures are remembered.
const REMEMBERED_FAILURES: usize = 10_000;

impl Failures {
    /// Counts one more failure of `key`; how many there were.
    pub fn note(&self, key: &str) -> u32 {
        let Ok(mut seen) = self.0.lock() else { return 1 };
        if seen.len() >= REMEMBERED_FAILURES && !seen.contains_key(key) {
            seen.clear();
        }
        let count = seen.entry(key.to_string()).or_default();
        *count += 1;
        *count
    }

    pub fn forget(&self, key: &str) {
        if let Ok(mut seen) = self.0.lock()
            && !seen.is_empty()
        {
            seen.remove(key);
        }
    }
}

/// A verified delivery, read.
struct Delivery<'a> {
    integration: &'a integration::Model,
    headers: &'a Headers,
    body: &'a str,
    digest: &'a str,
    read: &'a Interpreted,
}

/// Records a delivery and acts on it; `failed`: records it as FAILED
/// without acting (it failed for an internal reason too often).
async fn record(state: &AppState, delivery: &Delivery<'_>, failed: bool) -> AppResult<Answer> {
    let Delivery { integration, headers, body, digest, read } = *delivery;
    let txn = begin_write(&state.db).await?;
    let now = entity::now();
    let id = entity::new_id();
    let event_id = clip(&read.event_id, 200);
    let row = integration_event::ActiveModel {
        id: Set(id.clone()),
        integration_id: Set(integration.id.clone()),
        provider_event_id: Set(event_id.clone()),
        body_sha256: Set(digest.to_string()),
        waiting_for: Set(None),
        event_type: Set(clip(&read.event_type, 100)),
        outcome: Set(EventOutcome::Processed),
        reason: Set(None),
        detail: Set(None),
        order_id: Set(None),
        license_ids: Set(json!([])),
        headers: Set(headers.stored()),
        body: Set(body.to_string()),
        attempts: Set(1),
        duplicates: Set(0),
        received_at: Set(now),
        processed_at: Set(None),
    };
    // Either unique rule makes it a duplicate: the provider's event id, or
    // the very same body (sent again under other, unsigned, headers).
    let inserted = integration_event::Entity::insert(row)
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_without_returning(&*txn)
        .await?;
    if inserted == 0 {
        integration_event::Entity::update_many()
            .col_expr(integration_event::Column::Duplicates, Expr::col(integration_event::Column::Duplicates).add(1))
            .filter(integration_event::Column::IntegrationId.eq(integration.id.as_str()))
            .filter(
                sea_orm::Condition::any()
                    .add(integration_event::Column::ProviderEventId.eq(event_id))
                    .add(integration_event::Column::BodySha256.eq(digest)),
            )
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        return Ok(Answer::Duplicate);
    }
    if failed {
        let effect = Effect::failed(
            "INTERNAL",
            "Keysmith could not act on it (the server's log says why): replay it once the cause is fixed",
        );
        settle(&txn, integration, (&id, &read.event_type), &effect, None).await?;
        txn.commit().await?;
        return Ok(Answer::Recorded(EventOutcome::Failed));
    }
    let effect = act(&txn, state, integration, read.clone()).await?;
    let outcome = effect.outcome();
    settle(&txn, integration, (&id, &read.event_type), &effect, None).await?;
    let mut effects = vec![effect];
    if let (Action::Customer { id: customer, .. }, EventOutcome::Processed) = (&read.action, outcome) {
        effects.extend(take_up_waiting(&txn, state, integration, customer).await?);
    }
    txn.commit().await?;
    for effect in effects {
        after_commit(state, integration.environment, effect).await;
    }
    Ok(Answer::Recorded(outcome))
}

/// Events waiting for a customer read per batch when the customer arrives.
const WAITING_BATCH: u64 = 100;

/// Orders that waited for `customer`'s email (Paddle names customers only
/// by id in payments), acted on now that it is known. One that cannot be
/// placed for a reason of its own stays waiting; it never holds up the others.
async fn take_up_waiting(
    txn: &DatabaseTransaction,
    state: &AppState,
    integration: &integration::Model,
    customer: &str,
) -> AppResult<Vec<Effect>> {
    let mut effects = Vec::new();
    let mut after = String::new();
    loop {
        let waiting = integration_event::Entity::find()
            .filter(integration_event::Column::IntegrationId.eq(integration.id.as_str()))
            .filter(integration_event::Column::WaitingFor.eq(clip(customer, 200)))
            .filter(integration_event::Column::Outcome.eq(EventOutcome::NeedsAttention))
            .filter(integration_event::Column::Id.gt(after.as_str()))
            .order_by_asc(integration_event::Column::Id)
            .limit(WAITING_BATCH)
            .all(txn)
            .await?;
        let Some(last) = waiting.last() else { break };
        after = last.id.clone();
        for event in waiting {
            let read = read(integration, &Headers::from_stored(&event.headers), event.body.as_bytes());
            match act(txn, state, integration, read).await {
                Ok(effect) => {
                    settle(txn, integration, (&event.id, &event.event_type), &effect, Some(event.attempts + 1)).await?;
                    effects.push(effect);
                }
                Err(e @ AppError::Contended(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(event = %event.id, error = %e.detail(), "an order waiting for its customer stays waiting")
                }
            }
        }
    }
    Ok(effects)
}

/// Acts on a delivery in a savepoint of `txn`: a refusal by Keysmith's
/// rules undoes what the action began and is recorded as FAILED; a database
/// failure undoes the whole transaction.
async fn act(
    txn: &DatabaseTransaction,
    state: &AppState,
    integration: &integration::Model,
    read: Interpreted,
) -> AppResult<Effect> {
    if !integration.enabled {
        let mut effect = Effect::ignored("DISABLED", "the integration is disabled: enable it, then replay this event");
        effect.outcome = Some(EventOutcome::Disabled);
        return Ok(effect);
    }
    if read.test_mode && integration.environment == Environment::Production {
        return Ok(Effect::ignored(
            "TEST_MODE",
            "a test-mode event is acted on only by an integration in the staging environment",
        ));
    }
    // An order waiting for a customer's email and that customer's event are
    // serialised for the whole transaction (a lock taken in the savepoint
    // would end with its rollback).
    match &read.action {
        Action::Customer { id, .. } => apply::hold_customer(txn, integration, id).await?,
        Action::Order(purchase) if purchase.email.is_none() => {
            if let Some(customer) = &purchase.customer {
                apply::hold_customer(txn, integration, customer).await?;
            }
        }
        _ => {}
    }
    let ctx =
        RequestContext::new(Viewer::Integration { integration_id: integration.id.clone() }, integration.environment);
    let savepoint = txn.begin().await?;
    let base = state.config.address_for_links();
    match apply::run(&savepoint, &ctx, integration, read.action, &base).await {
        Ok(effect) if effect.keep => {
            savepoint.commit().await?;
            Ok(effect)
        }
        Ok(effect) => {
            savepoint.rollback().await?;
            Ok(effect)
        }
        Err(
            refused @ (AppError::InvalidInput { .. }
            | AppError::NotFound { .. }
            | AppError::Conflict { .. }
            | AppError::InvalidTransition(_)
            | AppError::Forbidden(_)),
        ) => {
            savepoint.rollback().await?;
            Ok(Effect::failed("REFUSED", refused.client_message()))
        }
        Err(other) => {
            savepoint.rollback().await?;
            Err(other)
        }
    }
}

/// Writes what acting on event `id` (of type `kind`) did; one that waits
/// for an admin or was refused is announced (`integration_event.needs_attention`).
async fn settle(
    txn: &DatabaseTransaction,
    integration: &integration::Model,
    (id, kind): (&str, &str),
    effect: &Effect,
    attempts: Option<i32>,
) -> AppResult<()> {
    let mut update = integration_event::Entity::update_many()
        .col_expr(integration_event::Column::Outcome, Expr::value(effect.outcome()))
        .col_expr(integration_event::Column::Reason, Expr::value(effect.reason.map(str::to_string)))
        .col_expr(integration_event::Column::Detail, Expr::value(effect.detail.as_deref().map(|d| clip(d, 1000))))
        .col_expr(integration_event::Column::WaitingFor, Expr::value(effect.waiting_for.clone()))
        .col_expr(integration_event::Column::OrderId, Expr::value(effect.order_id.clone()))
        .col_expr(integration_event::Column::LicenseIds, Expr::value(json!(effect.licences)))
        .col_expr(integration_event::Column::ProcessedAt, Expr::value(Some(entity::now())));
    if let Some(attempts) = attempts {
        update = update.col_expr(integration_event::Column::Attempts, Expr::value(attempts));
    }
    update.filter(integration_event::Column::Id.eq(id)).exec(txn).await?;
    let outcome = effect.outcome();
    if matches!(outcome, EventOutcome::NeedsAttention | EventOutcome::Failed) {
        let payload = json!({
            "integrationId": integration.id, "integrationName": integration.name, "provider": integration.provider,
            "eventType": kind, "outcome": outcome, "reason": effect.reason,
            "detail": effect.detail.as_deref().map(|d| clip(d, 1000)),
        });
        let subject = Subject { kind: "integration_event", id };
        events::emit(txn, integration.environment, EventKind::IntegrationEventNeedsAttention, subject, payload).await?;
    }
    Ok(())
}

/// What follows a commit: pool checks, waiting lines, webhooks.
async fn after_commit(state: &AppState, environment: Environment, effect: Effect) {
    if !effect.pools.is_empty() {
        state.pools_to_check.note(effect.pools);
        state.jobs_queued.notify_one();
    }
    if effect.returned {
        fulfilment::after_keys_arrived(&state.db, environment).await;
    }
    state.events_written.notify_one();
}

/// Acts again on an event that needed attention, failed, or arrived while
/// its integration was disabled, with the mappings and policies as they are
/// now (the body was verified when it arrived).
pub async fn replay(state: &AppState, ctx: &RequestContext, id: &str) -> AppResult<integration_event::Model> {
    ctx.viewer.require(may::ADMINISTER)?;
    let (event, effects, environment) = retrying(|| replay_once(state, ctx, id)).await?;
    for effect in effects {
        after_commit(state, environment, effect).await;
    }
    Ok(event)
}

async fn replay_once(
    state: &AppState,
    ctx: &RequestContext,
    id: &str,
) -> AppResult<(integration_event::Model, Vec<Effect>, Environment)> {
    let txn = begin_write(&state.db).await?;
    let mut query = integration_event::Entity::find_by_id(id.to_string());
    if row_locks(txn.get_database_backend()) {
        query = query.lock_exclusive();
    }
    let missing = || AppError::not_found_in("integration event", "id");
    let event = query.one(&*txn).await?.ok_or_else(missing)?;
    let integration = super::find(&*txn, ctx, &event.integration_id, "id").await.map_err(|e| match e {
        AppError::NotFound { .. } => missing(),
        other => other,
    })?;
    if !matches!(event.outcome, EventOutcome::NeedsAttention | EventOutcome::Failed | EventOutcome::Disabled) {
        return Err(AppError::invalid(
            "id",
            format!(
                "only events that need attention, failed or arrived while the integration was disabled are \
                 replayed (this one is {})",
                json!(event.outcome).as_str().unwrap_or_default()
            ),
        ));
    }
    if !integration.enabled {
        return Err(AppError::invalid("id", "the integration is disabled: enable it before replaying its events"));
    }
    let headers = Headers::from_stored(&event.headers);
    let read = read(&integration, &headers, event.body.as_bytes());
    let customer = match &read.action {
        Action::Customer { id, .. } => Some(id.clone()),
        _ => None,
    };
    let effect = act(&txn, state, &integration, read).await?;
    settle(&txn, &integration, (&event.id, &event.event_type), &effect, Some(event.attempts + 1)).await?;
    let mut effects = Vec::new();
    if let (Some(customer), EventOutcome::Processed) = (customer, effect.outcome()) {
        effects = take_up_waiting(&txn, state, &integration, &customer).await?;
    }
    effects.push(effect);
    let after = integration_event::Entity::find_by_id(event.id.clone()).one(&*txn).await?.ok_or_else(missing)?;
    audit::record(
        &*txn,
        ctx,
        Change {
            action: "integration_event.replayed",
            target_kind: "integration_event",
            target_id: &event.id,
            before: Some(json!({ "outcome": event.outcome, "reason": event.reason })),
            after: Some(json!({ "outcome": after.outcome, "reason": after.reason, "orderId": after.order_id })),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok((after, effects, integration.environment))
}
