//! Integrations with payment providers and shops, and the events they sent.
//! No type carries a secret: it is write-only.

use super::order::Order;
use super::pool::{LicenseKey, loaders};
use super::product::Product;
use crate::graphql::request;
use crate::services::integrations::{self, Mapping, Settings};
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::integration::{self as model, CancelPolicy, Provider, RefundPolicy};
use entity::{integration_event, integration_product};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "Provider", name = "IntegrationProvider")]
pub enum IntegrationProvider {
    Stripe,
    /// Paddle Billing.
    Paddle,
    LemonSqueezy,
    Shopify,
    #[graphql(name = "WOOCOMMERCE")]
    WooCommerce,
}

/// What a provider's full refund does with the order's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "RefundPolicy", name = "IntegrationRefundPolicy")]
pub enum IntegrationRefundPolicy {
    /// The keys stay with the customer; the order is marked refunded.
    Keep,
    /// Keys never revealed nor activated go back to the pool; the others stay.
    ReturnUnrevealed,
    /// Every key of the order is revoked.
    Revoke,
}

/// What a cancelled subscription (or order) does with its licences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "CancelPolicy", name = "IntegrationCancelPolicy")]
pub enum IntegrationCancelPolicy {
    /// Nothing now: renewals stop and the licences expire at the end of the paid period.
    ExpireAtPeriodEnd,
    /// Active licences are suspended (keys never activated run until they expire).
    Suspend,
    /// The licences are revoked.
    Revoke,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "integration_event::EventOutcome")]
pub enum IntegrationEventOutcome {
    /// Acted on: an order placed, licences renewed, a policy applied.
    Processed,
    /// Nothing to do (an unpaid checkout, a partial refund, an event Keysmith does not act on).
    Ignored,
    /// Waiting for an admin (an unmapped item, an unknown customer); replay it once fixed.
    NeedsAttention,
    /// Refused by Keysmith's rules (an archived product, a conflicting order); replayable.
    Failed,
    /// Arrived while the integration was disabled; replayable once enabled.
    Disabled,
}

/// A provider item id (a price, variant or product id) and the product it delivers.
#[derive(Debug, InputObject)]
pub struct ProductMappingInput {
    /// The provider's id, 1–200 characters.
    pub provider_ref: String,
    /// The Keysmith product; null: the item carries no licence and is passed over.
    pub product_id: Option<ID>,
}

pub struct ProductMapping(pub integration_product::Model);

#[Object]
impl ProductMapping {
    async fn provider_ref(&self) -> &str {
        &self.0.provider_ref
    }

    /// Null: the item carries no licence.
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<Product>> {
        let Some(id) = &self.0.product_id else { return Ok(None) };
        Ok(loaders(ctx)?.products.load_one(id.clone()).await?.map(Product))
    }
}

/// A payment provider or shop whose webhooks Keysmith receives.
pub struct Integration {
    pub model: model::Model,
    pub mappings: Vec<integration_product::Model>,
    pub needs_attention: i64,
}

#[Object]
impl Integration {
    async fn id(&self) -> ID {
        ID(self.model.id.clone())
    }

    async fn provider(&self) -> IntegrationProvider {
        self.model.provider.into()
    }

    async fn name(&self) -> &str {
        &self.model.name
    }

    /// Disabled, deliveries are recorded (outcome DISABLED) and not acted on.
    async fn enabled(&self) -> bool {
        self.model.enabled
    }

    /// The address to give the provider as the webhook's destination.
    async fn inbound_url(&self, ctx: &Context<'_>) -> Result<String> {
        let (state, rc) = request(ctx)?;
        let base = state.config.address_for_staff(rc.host.as_deref());
        Ok(integrations::inbound_url(&base, &self.model.id))
    }

    async fn product_mappings(&self) -> Vec<ProductMapping> {
        self.mappings.iter().cloned().map(ProductMapping).collect()
    }

    async fn on_refund(&self) -> IntegrationRefundPolicy {
        self.model.on_refund.into()
    }

    async fn on_cancel(&self) -> IntegrationCancelPolicy {
        self.model.on_cancel.into()
    }

    /// New customers get an email with their portal link, as with `createOrder`.
    async fn email_customer(&self) -> bool {
        self.model.email_customer
    }

    /// How far a signed timestamp may be from now (Stripe, Paddle).
    async fn tolerance_seconds(&self) -> i32 {
        self.model.tolerance_seconds
    }

    async fn rate_limit_per_minute(&self) -> i32 {
        self.model.rate_limit_per_minute
    }

    /// WooCommerce order statuses that mean paid.
    async fn paid_statuses(&self) -> Vec<String> {
        let list = self.model.paid_statuses.as_array().into_iter().flatten();
        list.filter_map(|s| s.as_str().map(str::to_string)).collect()
    }

    /// Until when the secret before the last change is still accepted.
    async fn previous_secret_valid_until(&self) -> Option<DateTime<Utc>> {
        self.model.previous_secret.as_ref().and(self.model.previous_secret_until)
    }

    /// Deliveries refused for their signature (never recorded as events).
    async fn refused_count(&self) -> i64 {
        self.model.refused_count
    }

    async fn last_refused_at(&self) -> Option<DateTime<Utc>> {
        self.model.last_refused_at
    }

    /// Why the last refused delivery was refused.
    async fn last_refusal(&self) -> Option<&str> {
        self.model.last_refusal.as_deref()
    }

    /// Events waiting for an admin.
    async fn needs_attention(&self) -> i64 {
        self.needs_attention
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.model.updated_at
    }
}

/// One delivery a provider sent, and what Keysmith did about it.
pub struct IntegrationEvent(pub integration_event::Model);

#[Object]
impl IntegrationEvent {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    async fn integration_id(&self) -> ID {
        ID(self.0.integration_id.clone())
    }

    /// The provider's event type (`checkout.session.completed`, `orders/paid` …).
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }

    /// The provider's id of the event: a second delivery of it is a duplicate.
    async fn provider_event_id(&self) -> &str {
        &self.0.provider_event_id
    }

    async fn outcome(&self) -> IntegrationEventOutcome {
        self.0.outcome.into()
    }

    /// A code for why it was passed over or needs attention: `UNMAPPED_ITEM`,
    /// `CUSTOMER_UNKNOWN`, `UNKNOWN_SUBSCRIPTION`, `NO_RENEWAL_PERIOD`,
    /// `PARTIAL_REFUND`, `TEST_MODE`, `REFUSED` …
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }

    /// The same in words.
    async fn detail(&self) -> Option<&str> {
        self.0.detail.as_deref()
    }

    /// The order it placed, renewed with or refunded.
    async fn order(&self, ctx: &Context<'_>) -> Result<Option<Order>> {
        let Some(id) = &self.0.order_id else { return Ok(None) };
        Ok(loaders(ctx)?.orders.load_one(id.clone()).await?.map(Order::from))
    }

    /// The licences it delivered or changed.
    async fn licenses(&self, ctx: &Context<'_>) -> Result<Vec<LicenseKey>> {
        let ids: Vec<String> = self
            .0
            .license_ids
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let found = loaders(ctx)?.keys.load_many(ids.iter().cloned()).await?;
        Ok(ids.iter().filter_map(|id| found.get(id).cloned().map(LicenseKey::from)).collect())
    }

    /// Times it was acted on (replays included).
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }

    /// Further deliveries of the same event, not acted on.
    async fn duplicates(&self) -> i32 {
        self.0.duplicates
    }

    /// The body as received.
    async fn body(&self) -> &str {
        &self.0.body
    }

    async fn received_at(&self) -> DateTime<Utc> {
        self.0.received_at
    }

    async fn processed_at(&self) -> Option<DateTime<Utc>> {
        self.0.processed_at
    }
}

// No `Debug`: it holds the secret.
#[derive(InputObject)]
pub struct CreateIntegrationInput {
    pub provider: IntegrationProvider,
    /// 1–200 characters.
    pub name: String,
    /// The webhook signing secret the provider shows (6–500 characters, exactly
    /// as shown). Never returned.
    pub secret: String,
    /// At most 1000.
    #[graphql(default)]
    pub product_mappings: Vec<ProductMappingInput>,
    /// Default `KEEP`.
    pub on_refund: Option<IntegrationRefundPolicy>,
    /// Default `EXPIRE_AT_PERIOD_END`.
    pub on_cancel: Option<IntegrationCancelPolicy>,
    /// Default true.
    pub email_customer: Option<bool>,
    /// Default true.
    pub enabled: Option<bool>,
    /// 1–3600; default 300 (Paddle: 5, as Paddle documents).
    pub tolerance_seconds: Option<i32>,
    /// 1–100000; default 600.
    pub rate_limit_per_minute: Option<i32>,
    /// WooCommerce: the order statuses that mean paid (1–10); default `["completed"]`.
    pub paid_statuses: Option<Vec<String>>,
}

// No `Debug`: it holds the secret.
#[derive(InputObject)]
pub struct UpdateIntegrationInput {
    pub id: ID,
    pub name: Option<String>,
    /// A new signing secret.
    pub secret: Option<String>,
    /// With a new secret: hours (0–168) the old one is still accepted, while
    /// the provider switches over. Default 0.
    pub keep_previous_secret_hours: Option<i32>,
    /// Replaces every mapping when given.
    pub product_mappings: Option<Vec<ProductMappingInput>>,
    pub on_refund: Option<IntegrationRefundPolicy>,
    pub on_cancel: Option<IntegrationCancelPolicy>,
    pub email_customer: Option<bool>,
    pub enabled: Option<bool>,
    pub tolerance_seconds: Option<i32>,
    pub rate_limit_per_minute: Option<i32>,
    pub paid_statuses: Option<Vec<String>>,
}

fn mappings(input: Vec<ProductMappingInput>) -> Vec<Mapping> {
    input
        .into_iter()
        .map(|m| Mapping { provider_ref: m.provider_ref, product_id: m.product_id.map(|id| id.0) })
        .collect()
}

impl CreateIntegrationInput {
    pub fn settings(self) -> (Provider, Settings) {
        let settings = Settings {
            name: Some(self.name),
            secret: Some(self.secret),
            keep_previous_secret_hours: None,
            mappings: Some(mappings(self.product_mappings)),
            on_refund: self.on_refund.map(Into::into),
            on_cancel: self.on_cancel.map(Into::into),
            email_customer: self.email_customer,
            enabled: self.enabled,
            tolerance_seconds: self.tolerance_seconds,
            rate_limit_per_minute: self.rate_limit_per_minute,
            paid_statuses: self.paid_statuses,
        };
        (self.provider.into(), settings)
    }
}

impl UpdateIntegrationInput {
    pub fn settings(self) -> (String, Settings) {
        let settings = Settings {
            name: self.name,
            secret: self.secret,
            keep_previous_secret_hours: self.keep_previous_secret_hours,
            mappings: self.product_mappings.map(mappings),
            on_refund: self.on_refund.map(Into::into),
            on_cancel: self.on_cancel.map(Into::into),
            email_customer: self.email_customer,
            enabled: self.enabled,
            tolerance_seconds: self.tolerance_seconds,
            rate_limit_per_minute: self.rate_limit_per_minute,
            paid_statuses: self.paid_statuses,
        };
        (self.id.0, settings)
    }
}

#[derive(Debug, InputObject)]
pub struct DeleteIntegrationInput {
    pub id: ID,
}

#[derive(Debug, InputObject)]
pub struct ReplayIntegrationEventInput {
    /// An event that needs attention, failed, or arrived while the integration was disabled.
    pub id: ID,
}

#[derive(SimpleObject)]
pub struct IntegrationPayload {
    pub integration: Integration,
}

#[derive(SimpleObject)]
pub struct DeleteIntegrationPayload {
    pub deleted_id: ID,
}

#[derive(SimpleObject)]
pub struct IntegrationEventPayload {
    pub event: IntegrationEvent,
}
