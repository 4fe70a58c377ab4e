//! Where each pool stands against the exhaustion alerts: set when an alert
//! fired for the current crossing, cleared when the pool recovers, so each
//! crossing is announced once however many nodes notice it.

use crate::Environment;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pool_alert")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub environment: Environment,
    /// A tag id, or `no-tag`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub pool_id: String,
    /// When `pool.exhausting` fired for the current crossing of the threshold.
    pub exhausting_at: Option<DateTimeUtc>,
    /// When `pool.exhausted` fired: the pool is empty and orders wait on it.
    pub exhausted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
