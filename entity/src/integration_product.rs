//! An integration's mapping of one provider item id (a price, variant or
//! product id) to a Keysmith product; no product means the item carries no
//! licence and is passed over.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "integration_product")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub integration_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub provider_ref: String,
    pub product_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
