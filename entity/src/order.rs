//! A customer's order, identified by the seller's external id (idempotent).

use crate::Environment;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub environment: Environment,
    pub external_id: String,
    pub customer_id: String,
    pub status: OrderStatus,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub refunded_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    #[sea_orm(string_value = "WAITING")]
    Waiting,
    #[sea_orm(string_value = "PARTIALLY_FULFILLED")]
    PartiallyFulfilled,
    #[sea_orm(string_value = "FULFILLED")]
    Fulfilled,
    #[sea_orm(string_value = "REFUNDED")]
    Refunded,
}
