//! A provider's subscription or payment tied to a Keysmith order's external
//! id: a subscription's renewals find its licences through it, a refund its order.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "integration_link")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub integration_id: String,
    /// `SUBSCRIPTION` or `PAYMENT`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub kind: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub provider_ref: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub external_id: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
