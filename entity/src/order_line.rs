//! One product and quantity in an order; `missing` counts units still waiting for a key.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "order_line")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub order_id: String,
    pub product_id: String,
    pub quantity: i32,
    pub missing: i32,
    /// The licence this line renews (quantity 1), if it is a renewal.
    pub renews_license_id: Option<String>,
    /// What the renewal did: `EXTENDED` (the licence runs longer) or
    /// `REISSUED` (it had expired: the line delivers a new key).
    pub renewal_outcome: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
