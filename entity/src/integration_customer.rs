//! A customer a provider names only by its own id in payments (Paddle):
//! the email and name its customer events carried.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "integration_customer")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub integration_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub provider_customer_id: String,
    pub email: String,
    pub name: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
