//! Generators as clients see them, and the inputs that create and change them.

use crate::services::generators::{GeneratorInput, spec};
use async_graphql::{Enum, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::generator::Model;

/// A key format. See the README for the `PATTERN` syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "entity::generator::KeyFormat")]
pub enum KeyFormat {
    /// 26 characters, sortable by creation time; 80 random bits. The default.
    Ulid,
    /// A random UUID; 122 random bits.
    Uuid,
    /// A prefix and groups of characters from an alphabet without look-alikes.
    Chunked,
    /// Fixed text and random groups, e.g. `PRO-{X:5}-{X:5}-{X:5}-{X:5}`.
    Pattern,
}

pub struct Generator(pub Model);

#[Object]
impl Generator {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn format(&self) -> KeyFormat {
        self.0.format.into()
    }
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    async fn chunk_count(&self) -> Option<i32> {
        self.0.chunk_count
    }
    async fn chunk_length(&self) -> Option<i32> {
        self.0.chunk_length
    }
    async fn alphabet(&self) -> Option<&str> {
        self.0.alphabet.as_deref()
    }
    async fn separator(&self) -> &str {
        &self.0.separator
    }
    async fn pattern(&self) -> Option<&str> {
        self.0.pattern.as_deref()
    }
    /// Bits of randomness in each key (at least 80).
    async fn bits(&self) -> f64 {
        spec(&self.0).map(|s| (s.bits() * 10.0).round() / 10.0).unwrap_or_default()
    }
    /// A freshly made key of this format, to show what keys look like.
    async fn example(&self) -> Option<String> {
        spec(&self.0).ok().map(|s| s.generate(&mut rand::rng()))
    }
    /// `-1` for unlimited.
    async fn default_activation_limit(&self) -> i32 {
        self.0.default_activation_limit
    }
    /// Days a licence stays valid from its creation; null for lifetime licences.
    async fn validity_days(&self) -> Option<i32> {
        self.0.validity_days
    }
    async fn default_feature_flags(&self) -> Json<serde_json::Value> {
        Json(self.0.default_feature_flags.clone())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Generator").field(&self.0.id).finish()
    }
}

#[derive(Debug, InputObject)]
pub struct CreateGeneratorInput {
    /// 1–100 characters, unique.
    pub name: String,
    /// Defaults to `ULID`.
    pub format: Option<KeyFormat>,
    /// `CHUNKED`: text before the first group (at most 16 characters).
    pub prefix: Option<String>,
    /// `CHUNKED`: 1–16 groups (default 4).
    pub chunk_count: Option<i32>,
    /// `CHUNKED`: 1–32 characters a group (default 5).
    pub chunk_length: Option<i32>,
    /// `CHUNKED`: the characters to draw from (default `ABCDEFGHJKLMNPQRSTUVWXYZ23456789`); no look-alikes (0 O 1 I l).
    /// Visible ASCII, each once: at most 94 characters.
    pub alphabet: Option<String>,
    /// `CHUNKED`: between groups (default `-`; at most 16 characters).
    pub separator: Option<String>,
    /// `PATTERN`: required with that format; at most 256 characters. Keys may
    /// have at most 256 characters, whatever the format.
    pub pattern: Option<String>,
    /// `-1` (unlimited) or 1–10000; default 1.
    pub default_activation_limit: Option<i32>,
    /// 1–36500 days; omitted or null for lifetime licences.
    pub validity_days: Option<i32>,
    /// A JSON object of at most 10 KB; default `{}`.
    pub default_feature_flags: Option<Json<serde_json::Value>>,
}

impl From<CreateGeneratorInput> for GeneratorInput {
    fn from(i: CreateGeneratorInput) -> Self {
        GeneratorInput {
            name: Some(i.name),
            format: i.format.map(Into::into),
            prefix: i.prefix,
            chunk_count: i.chunk_count.map(i64::from),
            chunk_length: i.chunk_length.map(i64::from),
            alphabet: i.alphabet,
            separator: i.separator,
            pattern: i.pattern,
            default_activation_limit: i.default_activation_limit.map(i64::from),
            validity_days: Some(i.validity_days.map(i64::from)),
            default_feature_flags: i.default_feature_flags.map(|j| j.0),
        }
    }
}

#[derive(Debug, InputObject)]
pub struct UpdateGeneratorInput {
    pub id: ID,
    /// 1–100 characters, unique.
    pub name: Option<String>,
    pub format: Option<KeyFormat>,
    /// At most 16 characters.
    pub prefix: Option<String>,
    pub chunk_count: Option<i32>,
    pub chunk_length: Option<i32>,
    /// At most 94 characters.
    pub alphabet: Option<String>,
    /// At most 16 characters.
    pub separator: Option<String>,
    /// At most 256 characters.
    pub pattern: Option<String>,
    pub default_activation_limit: Option<i32>,
    /// Null makes new licences lifetime licences; omitted keeps the setting.
    pub validity_days: MaybeUndefined<i32>,
    pub default_feature_flags: Option<Json<serde_json::Value>>,
}

impl From<UpdateGeneratorInput> for GeneratorInput {
    fn from(i: UpdateGeneratorInput) -> Self {
        GeneratorInput {
            name: i.name,
            format: i.format.map(Into::into),
            prefix: i.prefix,
            chunk_count: i.chunk_count.map(i64::from),
            chunk_length: i.chunk_length.map(i64::from),
            alphabet: i.alphabet,
            separator: i.separator,
            pattern: i.pattern,
            default_activation_limit: i.default_activation_limit.map(i64::from),
            validity_days: match i.validity_days {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(d) => Some(Some(i64::from(d))),
            },
            default_feature_flags: i.default_feature_flags.map(|j| j.0),
        }
    }
}

#[derive(Debug, InputObject)]
pub struct DeleteGeneratorInput {
    pub id: ID,
}

#[derive(Debug, SimpleObject)]
pub struct GeneratorPayload {
    pub generator: Generator,
}

#[derive(Debug, SimpleObject)]
pub struct DeleteGeneratorPayload {
    pub deleted_id: ID,
}

/// What keys of a format would look like, before the generator is saved.
#[derive(SimpleObject)]
pub struct KeyFormatPreview {
    /// Bits of randomness in each key (at least 80 to be saved).
    pub bits: f64,
    /// Three freshly made keys.
    pub examples: Vec<String>,
}
