//! One verified delivery from a provider, unique per provider event id,
//! with what Keysmith did about it. The body is kept for replay.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "integration_event")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub integration_id: String,
    pub provider_event_id: String,
    /// The body's SHA-256 (hex): the same body twice is one event, whatever
    /// unsigned headers came with it.
    pub body_sha256: String,
    /// The provider's customer id an order waits for (`CUSTOMER_UNKNOWN`).
    pub waiting_for: Option<String>,
    pub event_type: String,
    pub outcome: EventOutcome,
    /// Why it needs attention or was passed over (`UNMAPPED_ITEM`, `CUSTOMER_UNKNOWN` …).
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub order_id: Option<String>,
    /// JSON array of the licence ids it changed.
    pub license_ids: Json,
    /// The provider's headers the event is read with (topic, event name);
    /// never a signature.
    pub headers: Json,
    pub body: String,
    pub attempts: i32,
    pub duplicates: i32,
    pub received_at: DateTimeUtc,
    pub processed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventOutcome {
    /// Acted on: an order placed, licences renewed, a policy applied.
    #[sea_orm(string_value = "PROCESSED")]
    Processed,
    /// Nothing to do (an unpaid checkout, a partial refund, a topic Keysmith does not act on).
    #[sea_orm(string_value = "IGNORED")]
    Ignored,
    /// Waiting for an admin: an unmapped item, an unknown customer. Replayable.
    #[sea_orm(string_value = "NEEDS_ATTENTION")]
    NeedsAttention,
    /// Refused by Keysmith's rules (an archived product, a conflicting order). Replayable.
    #[sea_orm(string_value = "FAILED")]
    Failed,
    /// Received while the integration was disabled. Replayable.
    #[sea_orm(string_value = "DISABLED")]
    Disabled,
}
