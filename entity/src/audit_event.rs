//! The audit trail: who changed what, written in the same transaction as the change.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "audit_event")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub environment: Option<String>,
    /// `user`, `customer`, `client` (shipped software) or `system`.
    pub actor_kind: String,
    pub actor_id: Option<String>,
    /// Dotted verb, e.g. `product.created`.
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    /// First 8 characters of the licence key involved, never more.
    pub key_prefix: Option<String>,
    pub before: Option<Json>,
    pub after: Option<Json>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
