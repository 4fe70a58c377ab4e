//! One renewal of a licence: the period it added, from which basis, and the
//! expiry before and after. A renewal with a reference (a payment's id) is
//! recorded once per licence: the same reference again renews nothing.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "license_renewal")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub license_key_id: String,
    pub reference: Option<String>,
    /// `30 DAYS`, `1 MONTHS`, `2 YEARS`.
    pub period: String,
    pub basis: String,
    pub expires_before: DateTimeUtc,
    pub expires_after: DateTimeUtc,
    /// The order line that renewed it, on a renewal order.
    pub order_line_id: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
