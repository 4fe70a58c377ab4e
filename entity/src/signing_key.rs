//! A server key pair kept in the database so that every node uses the same
//! one: the Ed25519 key that signs offline licence files (`purpose` =
//! `offline-licence`). Never exposed but for the public half.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_key")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub purpose: String,
    /// A short public name of the key, carried in every file it signs.
    pub key_id: String,
    /// The 32-byte Ed25519 seed, base64.
    pub secret: String,
    /// The 32-byte public key, base64.
    pub public_key: String,
    pub created_at: DateTimeUtc,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("signing_key::Model")
            .field("purpose", &self.purpose)
            .field("key_id", &self.key_id)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
