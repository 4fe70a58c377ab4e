//! Integrations: payment providers and shops (Stripe, Paddle Billing, Lemon
//! Squeezy, Shopify, WooCommerce) send their webhooks to
//! `/integrations/{id}/webhook`. A verified delivery is recorded once per
//! provider event id and acted on in the same transaction: a paid order
//! places an order (the provider's order id is its external id), a
//! subscription's payment renews the licences it received, refunds and
//! cancellations follow the integration's policies. Admins manage
//! integrations, read their events and replay the ones that needed
//! attention. Secrets are write-only: no answer, audit event or log line
//! carries one.

mod apply;
mod inbound;
mod lemon_squeezy;
mod paddle;
pub mod reading;
mod shopify;
mod stripe;
pub mod verify;
mod woocommerce;

pub use inbound::{Admission, Answer, Failures, GIVE_UP_AFTER, admit, receive, replay};

use super::audit::{self, Change};
use super::pagination::{Keyset, Page, PageArgs, SortKind, paginate, time_value};
use crate::auth::{RequestContext, may};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use entity::integration::{self, CancelPolicy, Provider, RefundPolicy};
use entity::integration_event::{self, EventOutcome};
use entity::values::bounded_text;
use entity::{integration_product, product};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;
use std::collections::{HashMap, HashSet};

/// Most product mappings one integration holds.
pub const MAX_MAPPINGS: usize = 1000;
/// Longest provider item id mapped.
pub const MAX_REF: usize = 200;
/// Shortest and longest signing secret.
pub const SECRET_LENGTH: (usize, usize) = (6, 500);
/// Longest a previous secret may stay valid after a change (a week).
pub const MAX_KEEP_HOURS: i32 = 168;
/// Largest timestamp tolerance, in seconds.
pub const MAX_TOLERANCE: i32 = 3600;
/// Highest rate limit, in deliveries per minute.
pub const MAX_RATE: i32 = 100_000;
/// Most paid statuses (WooCommerce).
pub const MAX_PAID_STATUSES: usize = 10;

/// A provider item id and the product it delivers (`None`: it carries no licence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub provider_ref: String,
    pub product_id: Option<String>,
}

/// An integration's settings; on an update, `None` leaves one as it is.
/// (No `Debug`: it holds the secret.)
#[derive(Clone, Default)]
pub struct Settings {
    pub name: Option<String>,
    pub secret: Option<String>,
    /// On an update with a new secret: hours the old one is still accepted.
    pub keep_previous_secret_hours: Option<i32>,
    pub mappings: Option<Vec<Mapping>>,
    pub on_refund: Option<RefundPolicy>,
    pub on_cancel: Option<CancelPolicy>,
    pub email_customer: Option<bool>,
    pub enabled: Option<bool>,
    pub tolerance_seconds: Option<i32>,
    pub rate_limit_per_minute: Option<i32>,
    pub paid_statuses: Option<Vec<String>>,
}

/// The timestamp tolerance a provider documents (Paddle's SDK: 5 s; Stripe's: 300 s).
pub fn default_tolerance(provider: Provider) -> i32 {
    match provider {
        Provider::Paddle => 5,
        _ => 300,
    }
}

fn check_secret(secret: &str) -> AppResult<String> {
    let (min, max) = SECRET_LENGTH;
    let chars = secret.chars().count();
    if !(min..=max).contains(&chars) {
        return Err(AppError::invalid("secret", format!("must be {min} to {max} characters (got {chars})")));
    }
    if secret.trim() != secret || secret.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "secret",
            "must not start or end with spaces nor hold control characters: paste it exactly as the provider shows it",
        ));
    }
    Ok(secret.to_string())
}

fn in_range(field: &str, value: i32, min: i32, max: i32) -> AppResult<i32> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(AppError::invalid(field, format!("must be from {min} to {max} (got {value})")))
    }
}

fn check_statuses(statuses: &[String]) -> AppResult<Vec<String>> {
    if statuses.is_empty() || statuses.len() > MAX_PAID_STATUSES {
        return Err(AppError::invalid("paidStatuses", format!("must name 1 to {MAX_PAID_STATUSES} statuses")));
    }
    statuses
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.trim();
            if s.is_empty() || s.len() > 50 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(AppError::invalid(
                    format!("paidStatuses[{i}]"),
                    "must be 1 to 50 letters, digits, '-' or '_' (a WooCommerce order status such as completed)",
                ));
            }
            Ok(s.to_ascii_lowercase())
        })
        .collect()
}

/// Mappings checked: ids 1–200 characters, each once, products of the environment.
async fn check_mappings(
    db: &impl ConnectionTrait,
    ctx: &RequestContext,
    mappings: &[Mapping],
) -> AppResult<Vec<Mapping>> {
    if mappings.len() > MAX_MAPPINGS {
        return Err(AppError::invalid(
            "productMappings",
            format!("must hold at most {MAX_MAPPINGS} mappings (got {})", mappings.len()),
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(mappings.len());
    for (i, m) in mappings.iter().enumerate() {
        let provider_ref =
            bounded_text(&format!("productMappings[{i}].providerRef"), &m.provider_ref, 1, MAX_REF, false)?;
        if !seen.insert(provider_ref.clone()) {
            return Err(AppError::invalid(
                format!("productMappings[{i}].providerRef"),
                format!("{provider_ref:?} is mapped twice"),
            ));
        }
        if let Some(id) = &m.product_id
            && (id.len() > 26
                || product::Entity::find_by_id(id.clone())
                    .filter(product::Column::Environment.eq(ctx.environment))
                    .one(db)
                    .await?
                    .is_none())
        {
            return Err(AppError::not_found_in("product", format!("productMappings[{i}].productId")));
        }
        out.push(Mapping { provider_ref, product_id: m.product_id.clone() });
    }
    Ok(out)
}

async fn replace_mappings(txn: &DatabaseTransaction, id: &str, mappings: &[Mapping]) -> AppResult<()> {
    integration_product::Entity::delete_many()
        .filter(integration_product::Column::IntegrationId.eq(id))
        .exec(txn)
        .await?;
    for chunk in mappings.chunks(200) {
        integration_product::Entity::insert_many(chunk.iter().map(|m| integration_product::ActiveModel {
            integration_id: Set(id.to_string()),
            provider_ref: Set(m.provider_ref.clone()),
            product_id: Set(m.product_id.clone()),
        }))
        .exec_without_returning(txn)
        .await?;
    }
    Ok(())
}

/// What the audit trail keeps of an integration: never its secret.
fn audited(i: &integration::Model, mappings: usize) -> serde_json::Value {
    json!({
        "provider": i.provider, "name": i.name, "enabled": i.enabled, "onRefund": i.on_refund,
        "onCancel": i.on_cancel, "emailCustomer": i.email_customer, "toleranceSeconds": i.tolerance_seconds,
        "rateLimitPerMinute": i.rate_limit_per_minute, "paidStatuses": i.paid_statuses, "mappings": mappings,
    })
}

pub async fn create(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    provider: Provider,
    settings: Settings,
) -> AppResult<integration::Model> {
    ctx.viewer.require(may::ADMINISTER)?;
    let name = bounded_text("name", settings.name.as_deref().unwrap_or_default(), 1, 200, false)?;
    let secret = check_secret(settings.secret.as_deref().unwrap_or_default())?;
    let tolerance = settings.tolerance_seconds.unwrap_or_else(|| default_tolerance(provider));
    let tolerance = in_range("toleranceSeconds", tolerance, 1, MAX_TOLERANCE)?;
    let rate = in_range("rateLimitPerMinute", settings.rate_limit_per_minute.unwrap_or(600), 1, MAX_RATE)?;
    let statuses = check_statuses(&settings.paid_statuses.unwrap_or_else(|| vec!["completed".into()]))?;
    let txn = begin_write(db).await?;
    let mappings = check_mappings(&txn, ctx, settings.mappings.as_deref().unwrap_or_default()).await?;
    let now = entity::now();
    let created = integration::ActiveModel {
        id: Set(entity::new_id()),
        environment: Set(ctx.environment),
        provider: Set(provider),
        name: Set(name),
        secret: Set(secret),
        previous_secret: Set(None),
        previous_secret_until: Set(None),
        enabled: Set(settings.enabled.unwrap_or(true)),
        on_refund: Set(settings.on_refund.unwrap_or(RefundPolicy::Keep)),
        on_cancel: Set(settings.on_cancel.unwrap_or(CancelPolicy::ExpireAtPeriodEnd)),
        email_customer: Set(settings.email_customer.unwrap_or(true)),
        tolerance_seconds: Set(tolerance),
        rate_limit_per_minute: Set(rate),
        paid_statuses: Set(json!(statuses)),
        refused_count: Set(0),
        last_refused_at: Set(None),
        last_refusal: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    replace_mappings(&txn, &created.id, &mappings).await?;
    let mut after = audited(&created, mappings.len());
    after["secret"] = json!("set");
    audit::record(
        &txn,
        ctx,
        Change {
            action: "integration.created",
            target_kind: "integration",
            target_id: &created.id,
            after: Some(after),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

pub(crate) async fn find(
    db: &impl ConnectionTrait,
    ctx: &RequestContext,
    id: &str,
    field: &str,
) -> AppResult<integration::Model> {
    integration::Entity::find_by_id(id.to_string())
        .filter(integration::Column::Environment.eq(ctx.environment))
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found_in("integration", field))
}

pub async fn get(db: &DatabaseConnection, ctx: &RequestContext, id: &str) -> AppResult<integration::Model> {
    ctx.viewer.require(may::ADMINISTER)?;
    find(db, ctx, id, "id").await
}

pub async fn update(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: &str,
    settings: Settings,
) -> AppResult<integration::Model> {
    ctx.viewer.require(may::ADMINISTER)?;
    let name = settings.name.as_deref().map(|n| bounded_text("name", n, 1, 200, false)).transpose()?;
    let secret = settings.secret.as_deref().map(check_secret).transpose()?;
    let keep = settings.keep_previous_secret_hours.unwrap_or(0);
    let keep = in_range("keepPreviousSecretHours", keep, 0, MAX_KEEP_HOURS)?;
    let tolerance =
        settings.tolerance_seconds.map(|t| in_range("toleranceSeconds", t, 1, MAX_TOLERANCE)).transpose()?;
    let rate = settings.rate_limit_per_minute.map(|r| in_range("rateLimitPerMinute", r, 1, MAX_RATE)).transpose()?;
    let statuses = settings.paid_statuses.as_deref().map(check_statuses).transpose()?;
    let txn = begin_write(db).await?;
    let mappings = match &settings.mappings {
        Some(m) => Some(check_mappings(&txn, ctx, m).await?),
        None => None,
    };
    let before = find(&txn, ctx, id, "id").await?;
    let now = entity::now();
    let mut row: integration::ActiveModel = before.clone().into();
    if let Some(name) = name {
        row.name = Set(name);
    }
    let secret_changed = secret.as_ref().is_some_and(|s| *s != before.secret);
    if let Some(secret) = secret.filter(|_| secret_changed) {
        let until = (keep > 0).then(|| now + chrono::Duration::hours(i64::from(keep)));
        row.previous_secret = Set(until.map(|_| before.secret.clone()));
        row.previous_secret_until = Set(until);
        row.secret = Set(secret);
    }
    if let Some(policy) = settings.on_refund {
        row.on_refund = Set(policy);
    }
    if let Some(policy) = settings.on_cancel {
        row.on_cancel = Set(policy);
    }
    if let Some(email) = settings.email_customer {
        row.email_customer = Set(email);
    }
    if let Some(enabled) = settings.enabled {
        row.enabled = Set(enabled);
    }
    if let Some(tolerance) = tolerance {
        row.tolerance_seconds = Set(tolerance);
    }
    if let Some(rate) = rate {
        row.rate_limit_per_minute = Set(rate);
    }
    if let Some(statuses) = statuses {
        row.paid_statuses = Set(json!(statuses));
    }
    row.updated_at = Set(now);
    let after = row.update(&txn).await?;
    let count_before = mapping_count(&txn, id).await?;
    if let Some(mappings) = &mappings {
        replace_mappings(&txn, id, mappings).await?;
    }
    let mut audited_after = audited(&after, mappings.as_ref().map_or(count_before, Vec::len));
    if secret_changed {
        audited_after["secret"] = json!("changed");
    }
    audit::record(
        &txn,
        ctx,
        Change {
            action: "integration.updated",
            target_kind: "integration",
            target_id: id,
            before: Some(audited(&before, count_before)),
            after: Some(audited_after),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

async fn mapping_count(db: &impl ConnectionTrait, id: &str) -> AppResult<usize> {
    Ok(integration_product::Entity::find().filter(integration_product::Column::IntegrationId.eq(id)).count(db).await?
        as usize)
}

/// Deletes an integration with its mappings, events and links; the orders it placed stay.
pub async fn delete(db: &DatabaseConnection, ctx: &RequestContext, id: &str) -> AppResult<String> {
    ctx.viewer.require(may::ADMINISTER)?;
    let txn = begin_write(db).await?;
    let before = find(&txn, ctx, id, "id").await?;
    let mappings = mapping_count(&txn, id).await?;
    for table in ["integration_customer", "integration_link", "integration_event", "integration_product"] {
        let statement = sea_orm::sea_query::Query::delete()
            .from_table(sea_orm::sea_query::Alias::new(table))
            .and_where(Expr::col(sea_orm::sea_query::Alias::new("integration_id")).eq(id))
            .to_owned();
        txn.execute(&statement).await?;
    }
    integration::Entity::delete_by_id(id.to_string()).exec(&txn).await?;
    audit::record(
        &txn,
        ctx,
        Change {
            action: "integration.deleted",
            target_kind: "integration",
            target_id: id,
            before: Some(audited(&before, mappings)),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(before.id)
}

pub async fn list(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<integration::Model>> {
    ctx.viewer.require(may::ADMINISTER)?;
    let query = integration::Entity::find().filter(integration::Column::Environment.eq(ctx.environment));
    let keyset = Keyset {
        column: integration::Column::CreatedAt,
        kind: SortKind::Time,
        id: integration::Column::Id,
        descending: false,
    };
    paginate(db, query, keyset, args, want_total, |e| time_value(&e.created_at), |e| e.id.clone()).await
}

/// The product mappings of `ids`, in the order they were given.
pub async fn mappings_of(
    db: &DatabaseConnection,
    ids: &[String],
) -> AppResult<HashMap<String, Vec<integration_product::Model>>> {
    let mut out: HashMap<String, Vec<integration_product::Model>> = HashMap::new();
    for m in integration_product::Entity::find()
        .filter(integration_product::Column::IntegrationId.is_in(ids.iter().cloned()))
        .order_by_asc(integration_product::Column::ProviderRef)
        .all(db)
        .await?
    {
        out.entry(m.integration_id.clone()).or_default().push(m);
    }
    Ok(out)
}

/// How many events of each of `ids` wait for an admin.
pub async fn needing_attention(db: &DatabaseConnection, ids: &[String]) -> AppResult<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = integration_event::Entity::find()
        .select_only()
        .column(integration_event::Column::IntegrationId)
        .column_as(integration_event::Column::Id.count(), "n")
        .filter(integration_event::Column::IntegrationId.is_in(ids.iter().cloned()))
        .filter(integration_event::Column::Outcome.eq(EventOutcome::NeedsAttention))
        .group_by(integration_event::Column::IntegrationId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// An integration's events, newest first; `outcome` picks one outcome.
pub async fn events(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    integration_id: &str,
    outcome: Option<EventOutcome>,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<integration_event::Model>> {
    ctx.viewer.require(may::ADMINISTER)?;
    find(db, ctx, integration_id, "integrationId").await?;
    let mut query =
        integration_event::Entity::find().filter(integration_event::Column::IntegrationId.eq(integration_id));
    if let Some(outcome) = outcome {
        query = query.filter(integration_event::Column::Outcome.eq(outcome));
    }
    let keyset = Keyset {
        column: integration_event::Column::ReceivedAt,
        kind: SortKind::Time,
        id: integration_event::Column::Id,
        descending: true,
    };
    paginate(db, query, keyset, args, want_total, |e| time_value(&e.received_at), |e| e.id.clone()).await
}

/// Days a handled event (processed or ignored) is kept; events that need
/// attention, failed or arrived while disabled stay until replayed or deleted.
pub const KEEP_HANDLED_DAYS: i64 = 90;
/// Most events forgotten by one sweep.
const FORGET_BATCH: u64 = 1000;

/// Forgets handled events older than [`KEEP_HANDLED_DAYS`] (the sweeper's
/// step); how many went. Their orders and licences stay.
pub async fn forget_handled(db: &DatabaseConnection) -> AppResult<u64> {
    let before = entity::now() - chrono::Duration::days(KEEP_HANDLED_DAYS);
    let handled = [EventOutcome::Processed, EventOutcome::Ignored].map(|o| sea_orm::ActiveEnum::to_value(&o));
    let old = sea_orm::sea_query::Query::select()
        .column(integration_event::Column::Id)
        .from(integration_event::Entity)
        .and_where(Expr::col(integration_event::Column::ReceivedAt).lt(before))
        .and_where(Expr::col(integration_event::Column::Outcome).is_in(handled))
        .limit(FORGET_BATCH)
        .to_owned();
    let txn = begin_write(db).await?;
    let gone = integration_event::Entity::delete_many()
        .filter(integration_event::Column::Id.in_subquery(old))
        .exec(&*txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(gone)
}

/// The address a provider is given for an integration.
pub fn inbound_url(base: &str, id: &str) -> String {
    format!("{}/integrations/{id}/webhook", base.trim_end_matches('/'))
}
