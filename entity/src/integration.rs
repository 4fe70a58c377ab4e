//! A payment provider or shop whose webhooks Keysmith receives: paid orders
//! place orders, subscription payments renew licences, refunds and
//! cancellations act on them as the integration's policies say.

use crate::Environment;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "integration")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub environment: Environment,
    pub provider: Provider,
    pub name: String,
    /// The webhook signing secret: write-only through the API, never logged.
    pub secret: String,
    /// The secret before the last change, still accepted until `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<DateTimeUtc>,
    pub enabled: bool,
    pub on_refund: RefundPolicy,
    pub on_cancel: CancelPolicy,
    /// Email new customers their portal link, as `createOrder` can.
    pub email_customer: bool,
    /// How old a signed timestamp may be (Stripe, Paddle).
    pub tolerance_seconds: i32,
    pub rate_limit_per_minute: i32,
    /// WooCommerce order statuses that mean paid (JSON array of strings).
    pub paid_statuses: Json,
    pub refused_count: i64,
    pub last_refused_at: Option<DateTimeUtc>,
    pub last_refusal: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Shown without its secrets.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("integration::Model")
            .field("id", &self.id)
            .field("environment", &self.environment)
            .field("provider", &self.provider)
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Provider {
    #[sea_orm(string_value = "STRIPE")]
    Stripe,
    #[sea_orm(string_value = "PADDLE")]
    Paddle,
    #[sea_orm(string_value = "LEMON_SQUEEZY")]
    LemonSqueezy,
    #[sea_orm(string_value = "SHOPIFY")]
    Shopify,
    #[sea_orm(string_value = "WOOCOMMERCE")]
    WooCommerce,
}

/// What a full refund does with the order's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundPolicy {
    /// The keys stay with the customer; the order is marked refunded.
    #[sea_orm(string_value = "KEEP")]
    Keep,
    /// Keys never revealed nor activated go back to the pool; the others stay.
    #[sea_orm(string_value = "RETURN_UNREVEALED")]
    ReturnUnrevealed,
    /// Every key is revoked.
    #[sea_orm(string_value = "REVOKE")]
    Revoke,
}

/// What a cancelled subscription (or order) does with its licences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancelPolicy {
    /// Nothing now: renewals stop, and the licences expire at the end of the paid period.
    #[sea_orm(string_value = "EXPIRE_AT_PERIOD_END")]
    ExpireAtPeriodEnd,
    /// Active licences are suspended.
    #[sea_orm(string_value = "SUSPEND")]
    Suspend,
    /// The licences are revoked.
    #[sea_orm(string_value = "REVOKE")]
    Revoke,
}
