//! Webhook endpoints and their deliveries.

use async_graphql::{ID, InputObject, Json, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{webhook_delivery, webhook_endpoint};

/// A URL that receives signed event notifications. Its secret is shown only
/// when it is created.
#[derive(Debug, SimpleObject)]
pub struct WebhookEndpoint {
    pub id: ID,
    pub url: String,
    /// The events it receives.
    pub events: Vec<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<webhook_endpoint::Model> for WebhookEndpoint {
    fn from(e: webhook_endpoint::Model) -> Self {
        let events =
            e.events.as_array().map(|list| list.iter().filter_map(|v| v.as_str().map(str::to_string)).collect());
        Self {
            id: ID(e.id),
            url: e.url,
            events: events.unwrap_or_default(),
            enabled: e.enabled,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// One event sent (or to be sent) to one endpoint.
#[derive(Debug, SimpleObject)]
pub struct WebhookDelivery {
    pub id: ID,
    pub endpoint_id: ID,
    /// The event's id, the same on every attempt (`Keysmith-Event-Id`).
    pub event_id: ID,
    pub event_type: String,
    pub payload: Json<serde_json::Value>,
    /// `PENDING`, `DELIVERED` or `FAILED` (retries gave up after a day).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<i32>,
    /// The start of the receiver's last answer.
    pub last_response: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<webhook_delivery::Model> for WebhookDelivery {
    fn from(d: webhook_delivery::Model) -> Self {
        Self {
            id: ID(d.id),
            endpoint_id: ID(d.endpoint_id),
            event_id: ID(d.event_id),
            event_type: d.event_type,
            payload: Json(d.payload),
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_status_code: d.last_status_code,
            last_response: d.last_response,
            last_error: d.last_error,
            created_at: d.created_at,
            delivered_at: d.delivered_at,
        }
    }
}

#[derive(Debug, InputObject)]
pub struct CreateWebhookEndpointInput {
    /// An http(s) URL on a public address; at most 2048 characters.
    pub url: String,
    /// Event names, e.g. `order.created`, `license.activated`, `pool.exhausting`.
    pub events: Vec<String>,
    #[graphql(default = true)]
    pub enabled: bool,
}

#[derive(Debug, SimpleObject)]
pub struct CreateWebhookEndpointPayload {
    pub endpoint: WebhookEndpoint,
    /// The signing secret: shown this once. Deliveries carry
    /// `Keysmith-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
    pub secret: String,
}

#[derive(Debug, InputObject)]
pub struct UpdateWebhookEndpointInput {
    pub id: ID,
    /// At most 2048 characters.
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

#[derive(Debug, SimpleObject)]
pub struct WebhookEndpointPayload {
    pub endpoint: WebhookEndpoint,
}

#[derive(Debug, InputObject)]
pub struct DeleteWebhookEndpointInput {
    pub id: ID,
}

#[derive(Debug, SimpleObject)]
pub struct DeleteWebhookEndpointPayload {
    pub deleted_id: ID,
}

#[derive(Debug, InputObject)]
pub struct RedeliverWebhookInput {
    /// The delivery to send again.
    pub id: ID,
}

#[derive(Debug, SimpleObject)]
pub struct WebhookDeliveryPayload {
    pub delivery: WebhookDelivery,
}
