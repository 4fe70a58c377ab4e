//! A key-format template with the defaults carried into each licence it makes.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "generator")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub format: KeyFormat,
    pub prefix: String,
    pub chunk_count: Option<i32>,
    pub chunk_length: Option<i32>,
    pub alphabet: Option<String>,
    pub separator: String,
    pub pattern: Option<String>,
    pub default_activation_limit: i32,
    /// Days a licence stays valid after it is created; `None` is a lifetime licence.
    pub validity_days: Option<i32>,
    pub default_feature_flags: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeyFormat {
    #[sea_orm(string_value = "ULID")]
    Ulid,
    #[sea_orm(string_value = "UUID")]
    Uuid,
    #[sea_orm(string_value = "CHUNKED")]
    Chunked,
    #[sea_orm(string_value = "PATTERN")]
    Pattern,
}
