//! A device (fingerprint) that tried a licence: activated it, or validated
//! against it without being one of its activations. The abuse rule counts
//! the distinct fingerprints of a key within its window.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "fingerprint_attempt")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub license_key_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub fingerprint: String,
    pub last_tried_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
