//! A licence key: a key string in one environment, its status in the licence
//! lifecycle, and what it entitles (activation limit, expiry, feature flags).

use crate::{Environment, LicenseStatus};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "license_key")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub environment: Environment,
    pub key: String,
    pub product_id: Option<String>,
    pub source: KeySource,
    pub generator_id: Option<String>,
    pub status: LicenseStatus,
    pub customer_id: Option<String>,
    pub order_line_id: Option<String>,
    /// `-1` for unlimited, otherwise 1–10000.
    pub activation_limit: i32,
    pub expires_at: Option<DateTimeUtc>,
    pub feature_flags: Json,
    pub metadata: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub assigned_at: Option<DateTimeUtc>,
    pub activated_at: Option<DateTimeUtc>,
    pub revealed_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    /// Devices the licence is activated on now (its live activations), kept
    /// with every activation that starts or ends.
    pub devices_in_use: i32,
    /// The expired licence this one was delivered to replace, on a renewal order.
    pub renewed_from_id: Option<String>,
    /// The expiry was set when the key was delivered (one renewal period of
    /// its product), not brought with the key: returned to the pool, the key
    /// loses it.
    pub expiry_from_delivery: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeySource {
    #[sea_orm(string_value = "UPLOADED")]
    Uploaded,
    #[sea_orm(string_value = "GENERATED")]
    Generated,
    #[sea_orm(string_value = "MANUAL")]
    Manual,
}

/// The most of a key that may appear in logs and audit events.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(8).collect()
}
