//! A single-use link that signs a customer in to the portal. Only the SHA-256
//! of its token is kept: the token itself is in the link and nowhere else.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "portal_link")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub customer_id: String,
    /// Hex SHA-256 of the link's token.
    pub token_hash: String,
    /// `SIGN_IN` (asked for on the portal), `ORDER` (in an order email) or `STAFF` (handed over by staff).
    pub purpose: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
