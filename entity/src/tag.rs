//! A named pool of licence keys. The system tags `auto-generated` and `no tag`
//! are not rows: `auto-generated` is created on demand, `no tag` is the absence
//! of any tag.

use crate::Environment;
use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "tag")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub environment: Environment,
    pub name: String,
    /// Set when a `pool.exhausting` event fired for the current crossing of the threshold.
    pub exhausting_notified_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The tag every auto-generated key carries.
pub const AUTO_GENERATED: &str = "auto-generated";
/// The overview's name for keys without any tag.
pub const NO_TAG: &str = "no tag";
