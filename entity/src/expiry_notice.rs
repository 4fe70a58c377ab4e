//! A "licence expiring" notice sent for one licence, so many days ahead of
//! one expiry date (a new expiry date starts the notices again).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "expiry_notice")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub license_key_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub days: i32,
    #[sea_orm(primary_key, auto_increment = false)]
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
