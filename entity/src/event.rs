//! The event outbox: what happened (an order fulfilled, a pool running out …),
//! written in the same transaction as the change, for webhooks and email to
//! deliver. `dispatched_at` is set once the deliveries are queued.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "event")]
pub struct Model {
    /// The event id, the same across every delivery attempt.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub environment: Option<String>,
    /// `order.created`, `pool.exhausting` …
    pub kind: String,
    pub subject_kind: String,
    pub subject_id: String,
    pub payload: Json,
    pub created_at: DateTimeUtc,
    pub dispatched_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
