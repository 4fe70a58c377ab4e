//! Webhooks: endpoints subscribe to events; every event in the outbox becomes
//! one delivery per subscribed endpoint; a background worker on every node
//! sends due deliveries, signed, and retries failures with exponential
//! backoff for a day. At least once: the same event id across retries.
//!
//! Safety: a target must be globally reachable by IANA's special-purpose
//! registries (see `address`; configuration may allow private addresses),
//! judged at creation and again on the address a name resolves to at the
//! moment of sending; redirects are not followed; a short timeout; and a
//! receiver's answer is kept only in part. Sends run side by side, a few per
//! endpoint, so a receiver that hangs delays no other (see `delivery`).

mod address;
mod delivery;

pub use address::{Sender, is_public};
pub use delivery::{deliver_due, dispatch, signature};

use super::audit::{self, Change};
use super::pagination::{Keyset, Page, PageArgs, SortKind, paginate, time_value};
use crate::auth::{RequestContext, may};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use entity::{webhook_delivery, webhook_endpoint};
use rand::RngCore;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use serde_json::json;

/// What an endpoint is told about, checked.
fn check_events(events: &[String]) -> AppResult<Vec<String>> {
    if events.is_empty() {
        return Err(AppError::invalid("events", "must name at least one event"));
    }
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if super::events::EventKind::parse(e).is_none() {
            return Err(AppError::invalid(format!("events[{i}]"), format!("{e:?} is not an event Keysmith sends")));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

/// An endpoint's address, checked: http(s), a host, no credentials, and
/// (unless `allow_private`) every address it resolves to globally reachable.
async fn check_url(raw: &str, allow_private: bool) -> AppResult<String> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| AppError::invalid("url", format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AppError::invalid("url", "must be an http:// or https:// address"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AppError::invalid("url", "must not carry credentials (the signature proves the sender)"));
    }
    let host = url.host_str().ok_or_else(|| AppError::invalid("url", "has no host"))?;
    let port = url.port_or_known_default().unwrap_or(443);
    if !allow_private {
        let addresses: Vec<std::net::IpAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|_| AppError::invalid("url", format!("the host {host} does not resolve")))?
            .map(|a| a.ip())
            .collect();
        if addresses.is_empty() || !addresses.iter().copied().all(is_public) {
            return Err(AppError::invalid(
                "url",
                format!(
                    "{host} is not a globally reachable address (private, loopback, link-local or another \
                     special-purpose range); webhooks go to public addresses"
                ),
            ));
        }
    }
    Ok(url.to_string())
}

/// A new endpoint and its signing secret, which is shown only here.
#[derive(Debug, Clone)]
pub struct Created {
    pub endpoint: webhook_endpoint::Model,
    pub secret: String,
}

pub async fn create(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    allow_private: bool,
    url: &str,
    events: &[String],
    enabled: bool,
) -> AppResult<Created> {
    ctx.viewer.require(may::ADMINISTER)?;
    let url = check_url(url, allow_private).await?;
    let events = check_events(events)?;
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let secret = format!("whsec_{}", hex::encode(raw));
    let now = entity::now();
    let txn = begin_write(db).await?;
    let endpoint = webhook_endpoint::ActiveModel {
        id: Set(entity::new_id()),
        environment: Set(ctx.environment),
        url: Set(url),
        secret: Set(secret.clone()),
        events: Set(json!(events)),
        enabled: Set(enabled),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        ctx,
        Change {
            action: "webhook_endpoint.created",
            target_kind: "webhook_endpoint",
            target_id: &endpoint.id,
            after: Some(json!({ "url": endpoint.url, "events": endpoint.events, "enabled": endpoint.enabled })),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(Created { endpoint, secret })
}

async fn find(
    db: &impl sea_orm::ConnectionTrait,
    ctx: &RequestContext,
    id: &str,
) -> AppResult<webhook_endpoint::Model> {
    webhook_endpoint::Entity::find_by_id(id.to_string())
        .filter(webhook_endpoint::Column::Environment.eq(ctx.environment))
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found_in("webhook endpoint", "id"))
}

/// A change to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

pub async fn update(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    allow_private: bool,
    id: &str,
    patch: EndpointPatch,
) -> AppResult<webhook_endpoint::Model> {
    ctx.viewer.require(may::ADMINISTER)?;
    let url = match &patch.url {
        Some(u) => Some(check_url(u, allow_private).await?),
        None => None,
    };
    let events = patch.events.as_deref().map(check_events).transpose()?;
    let txn = begin_write(db).await?;
    let before = find(&txn, ctx, id).await?;
    let mut row: webhook_endpoint::ActiveModel = before.clone().into();
    if let Some(url) = url {
        row.url = Set(url);
    }
    if let Some(events) = events {
        row.events = Set(json!(events));
    }
    if let Some(enabled) = patch.enabled {
        row.enabled = Set(enabled);
    }
    row.updated_at = Set(entity::now());
    let after = row.update(&txn).await?;
    let view = |e: &webhook_endpoint::Model| json!({ "url": e.url, "events": e.events, "enabled": e.enabled });
    audit::record(
        &txn,
        ctx,
        Change {
            action: "webhook_endpoint.updated",
            target_kind: "webhook_endpoint",
            target_id: &after.id,
            before: Some(view(&before)),
            after: Some(view(&after)),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

/// Deletes an endpoint with its deliveries.
pub async fn delete(db: &DatabaseConnection, ctx: &RequestContext, id: &str) -> AppResult<String> {
    ctx.viewer.require(may::ADMINISTER)?;
    let txn = begin_write(db).await?;
    let before = find(&txn, ctx, id).await?;
    webhook_delivery::Entity::delete_many()
        .filter(webhook_delivery::Column::EndpointId.eq(before.id.as_str()))
        .exec(&txn)
        .await?;
    webhook_endpoint::Entity::delete_by_id(before.id.clone()).exec(&txn).await?;
    audit::record(
        &txn,
        ctx,
        Change {
            action: "webhook_endpoint.deleted",
            target_kind: "webhook_endpoint",
            target_id: &before.id,
            before: Some(json!({ "url": before.url, "events": before.events })),
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
) -> AppResult<Page<webhook_endpoint::Model>> {
    ctx.viewer.require(may::ADMINISTER)?;
    let query = webhook_endpoint::Entity::find().filter(webhook_endpoint::Column::Environment.eq(ctx.environment));
    let keyset = Keyset {
        column: webhook_endpoint::Column::CreatedAt,
        kind: SortKind::Time,
        id: webhook_endpoint::Column::Id,
        descending: false,
    };
    paginate(db, query, keyset, args, want_total, |e| time_value(&e.created_at), |e| e.id.clone()).await
}

/// Deliveries of the environment's endpoints, newest first.
pub async fn deliveries(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    endpoint_id: Option<&str>,
    status: Option<&str>,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<webhook_delivery::Model>> {
    ctx.viewer.require(may::ADMINISTER)?;
    let mut endpoints = Query::select()
        .column(webhook_endpoint::Column::Id)
        .from(webhook_endpoint::Entity)
        .and_where(Expr::col(webhook_endpoint::Column::Environment).eq(ctx.environment.as_str()))
        .to_owned();
    if let Some(id) = endpoint_id {
        endpoints.and_where(Expr::col(webhook_endpoint::Column::Id).eq(id));
    }
    let mut query =
        webhook_delivery::Entity::find().filter(webhook_delivery::Column::EndpointId.in_subquery(endpoints));
    if let Some(status) = status {
        query = query.filter(webhook_delivery::Column::Status.eq(status));
    }
    let keyset = Keyset {
        column: webhook_delivery::Column::CreatedAt,
        kind: SortKind::Time,
        id: webhook_delivery::Column::Id,
        descending: true,
    };
    paginate(db, query, keyset, args, want_total, |d| time_value(&d.created_at), |d| d.id.clone()).await
}

/// Sends a delivery again as soon as the worker gets to it (the same event id).
pub async fn redeliver(db: &DatabaseConnection, ctx: &RequestContext, id: &str) -> AppResult<webhook_delivery::Model> {
    ctx.viewer.require(may::ADMINISTER)?;
    let txn = begin_write(db).await?;
    let delivery = webhook_delivery::Entity::find_by_id(id.to_string())
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found_in("webhook delivery", "id"))?;
    find(&txn, ctx, &delivery.endpoint_id).await.map_err(|_| AppError::not_found_in("webhook delivery", "id"))?;
    let mut row: webhook_delivery::ActiveModel = delivery.clone().into();
    row.status = Set(delivery::PENDING.to_string());
    row.next_attempt_at = Set(entity::now());
    row.locked_until = Set(None);
    // A fresh day of retries from now.
    row.created_at = Set(entity::now());
    let after = row.update(&txn).await?;
    audit::record(
        &txn,
        ctx,
        Change {
            action: "webhook_delivery.redelivered",
            target_kind: "webhook_delivery",
            target_id: &after.id,
            before: Some(json!({ "status": delivery.status, "attempts": delivery.attempts })),
            after: Some(json!({ "status": after.status })),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}
