//! A named pool of licence keys. Two system tags exist besides the seller's:
//! `auto-generated`, a row in each environment made by migration, and
//! `no tag`, which is not a row but the absence of any tag.

use crate::Environment;
use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "tag")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub environment: Environment,
    pub name: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The tag every auto-generated key carries.
pub const AUTO_GENERATED: &str = "auto-generated";
/// The overview's name for keys without any tag.
pub const NO_TAG: &str = "no tag";
/// The id the overview gives to "no tag" (it is not a row).
pub const NO_TAG_ID: &str = "no-tag";

/// The row id of the `auto-generated` tag of each environment (created by migration).
pub fn auto_generated_id(environment: Environment) -> &'static str {
    match environment {
        Environment::Production => "00000000000000000000AUTOPR",
        Environment::Staging => "00000000000000000000AUTOST",
    }
}

/// Whether a tag name belongs to Keysmith rather than to the seller.
pub fn is_system_name(name: &str) -> bool {
    name == AUTO_GENERATED || name == NO_TAG
}
