//! Generators: key formats with the defaults each new licence inherits
//! (activation limit, validity, feature flags). A format with less than 80
//! bits of randomness is refused.

use super::audit::{self, Change};
use super::import::MAX_KEY_CHARS;
use super::limits;
use super::pagination::{Keyset, Page, PageArgs, SortKind, paginate};
use crate::auth::{RequestContext, may};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use entity::generator::{self, KeyFormat};
use entity::keygen::KeySpec;
use entity::values::{ActivationLimit, InvalidValue, bounded_text};
use entity::{license_key, product};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::Value;

/// Longest validity a generator may give, in days (100 years).
pub const MAX_VALIDITY_DAYS: i64 = 36_500;
/// Longest generator name, in characters.
pub const MAX_NAME: usize = 100;
/// Longest prefix or separator of a `CHUNKED` format, in characters.
pub const MAX_AFFIX: usize = 16;
/// Longest alphabet: every visible ASCII character once.
pub const MAX_ALPHABET: usize = 94;
/// Longest `PATTERN`, in characters.
pub const MAX_PATTERN: usize = 256;

/// A generator's settings as a client gives them; `None` keeps (or defaults) a field.
#[derive(Debug, Clone, Default)]
pub struct GeneratorInput {
    pub name: Option<String>,
    pub format: Option<KeyFormat>,
    pub prefix: Option<String>,
    pub chunk_count: Option<i64>,
    pub chunk_length: Option<i64>,
    pub alphabet: Option<String>,
    pub separator: Option<String>,
    pub pattern: Option<String>,
    pub default_activation_limit: Option<i64>,
    /// `Some(None)` makes licences lifetime licences.
    pub validity_days: Option<Option<i64>>,
    pub default_feature_flags: Option<Value>,
}

/// The key format a generator row describes.
pub fn spec(g: &generator::Model) -> Result<KeySpec, InvalidValue> {
    match g.format {
        KeyFormat::Ulid => Ok(KeySpec::Ulid),
        KeyFormat::Uuid => Ok(KeySpec::Uuid),
        KeyFormat::Chunked => KeySpec::chunked(
            &g.prefix,
            i64::from(g.chunk_count.unwrap_or(0)),
            i64::from(g.chunk_length.unwrap_or(0)),
            g.alphabet.as_deref(),
            &g.separator,
        ),
        KeyFormat::Pattern => KeySpec::pattern(g.pattern.as_deref().unwrap_or_default()),
    }
}

/// Applies `input` to `base` and checks the result as a whole.
fn merge(mut base: generator::Model, input: GeneratorInput) -> AppResult<generator::Model> {
    // Every text is bounded, also one the format ignores.
    let texts = [
        ("prefix", &input.prefix, MAX_AFFIX),
        ("separator", &input.separator, MAX_AFFIX),
        ("alphabet", &input.alphabet, MAX_ALPHABET),
        ("pattern", &input.pattern, MAX_PATTERN),
    ];
    for (field, text, max) in texts {
        if let Some(text) = text {
            limits::at_most(field, text, max)?;
        }
    }
    if let Some(name) = input.name {
        base.name = bounded_text("name", &name, 1, MAX_NAME, false)?;
    }
    if let Some(format) = input.format {
        base.format = format;
    }
    match base.format {
        KeyFormat::Ulid | KeyFormat::Uuid => {
            base.prefix = String::new();
            base.chunk_count = None;
            base.chunk_length = None;
            base.alphabet = None;
            base.separator = "-".into();
            base.pattern = None;
        }
        KeyFormat::Chunked => {
            if let Some(prefix) = input.prefix {
                base.prefix = prefix;
            }
            if let Some(n) = input.chunk_count {
                base.chunk_count = Some(i32::try_from(n).unwrap_or(i32::MAX));
            }
            if let Some(n) = input.chunk_length {
                base.chunk_length = Some(i32::try_from(n).unwrap_or(i32::MAX));
            }
            if let Some(alphabet) = input.alphabet {
                base.alphabet = Some(alphabet);
            }
            if let Some(separator) = input.separator {
                base.separator = separator;
            }
            // The effective alphabet is stored, so that a generator's format never
            // changes under it should the default ever change.
            base.alphabet = base.alphabet.or_else(|| Some(entity::keygen::DEFAULT_ALPHABET.to_string()));
            base.chunk_count = base.chunk_count.or(Some(4));
            base.chunk_length = base.chunk_length.or(Some(5));
            base.pattern = None;
        }
        KeyFormat::Pattern => {
            if let Some(pattern) = input.pattern {
                base.pattern = Some(pattern);
            }
            if base.pattern.is_none() {
                return Err(AppError::invalid("pattern", "is required with format PATTERN"));
            }
            base.prefix = String::new();
            base.chunk_count = None;
            base.chunk_length = None;
            base.alphabet = None;
        }
    }
    let field = if base.format == KeyFormat::Pattern { "pattern" } else { "format" };
    let key_spec = spec(&base)?;
    key_spec.check_strength(field)?;
    let chars = key_spec.key_chars();
    if chars > MAX_KEY_CHARS {
        return Err(AppError::invalid(
            field,
            format!("gives keys of {chars} characters; keys may have at most {MAX_KEY_CHARS} (as clients send them)"),
        ));
    }
    if let Some(limit) = input.default_activation_limit {
        base.default_activation_limit = ActivationLimit::parse("defaultActivationLimit", limit)?.get();
    }
    if let Some(days) = input.validity_days {
        if let Some(d) = days
            && !(1..=MAX_VALIDITY_DAYS).contains(&d)
        {
            return Err(AppError::invalid(
                "validityDays",
                format!("must be between 1 and {MAX_VALIDITY_DAYS}, or null for lifetime licences (got {d})"),
            ));
        }
        base.validity_days = days.map(|d| d as i32);
    }
    if let Some(flags) = input.default_feature_flags {
        base.default_feature_flags = limits::json_object("defaultFeatureFlags", flags)?;
    }
    Ok(base)
}

fn snapshot(g: &generator::Model) -> Value {
    serde_json::to_value(g).unwrap_or_default()
}

pub async fn get(db: &DatabaseConnection, ctx: &RequestContext, id: &str) -> AppResult<generator::Model> {
    ctx.viewer.require(may::READ)?;
    generator::Entity::find_by_id(id.to_string()).one(db).await?.ok_or_else(|| AppError::not_found("generator"))
}

pub async fn list(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<generator::Model>> {
    ctx.viewer.require(may::READ)?;
    let keyset =
        Keyset { column: generator::Column::Name, kind: SortKind::Text, id: generator::Column::Id, descending: false };
    paginate(db, generator::Entity::find(), keyset, args, want_total, |g| g.name.clone(), |g| g.id.clone()).await
}

/// A generator made from `input` and checked as `create` checks it, but not
/// saved: what a form shows before it is saved (its bits and examples). A
/// missing or empty name is not an error here.
pub fn preview(ctx: &RequestContext, mut input: GeneratorInput) -> AppResult<generator::Model> {
    ctx.viewer.require(may::MANAGE)?;
    if input.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        input.name = Some("preview".into());
    }
    merge(blank(), input)
}

fn blank() -> generator::Model {
    let now = entity::now();
    generator::Model {
        id: entity::new_id(),
        name: String::new(),
        format: KeyFormat::Ulid,
        prefix: String::new(),
        chunk_count: None,
        chunk_length: None,
        alphabet: None,
        separator: "-".into(),
        pattern: None,
        default_activation_limit: 1,
        validity_days: None,
        default_feature_flags: serde_json::json!({}),
        created_at: now,
        updated_at: now,
    }
}

pub async fn create(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    input: GeneratorInput,
) -> AppResult<generator::Model> {
    ctx.viewer.require(may::MANAGE)?;
    if input.name.is_none() {
        return Err(AppError::invalid("name", "is required"));
    }
    let new = merge(blank(), input)?;
    let txn = begin_write(db).await?;
    let created = generator::ActiveModel::from(new).reset_all().insert(&txn).await?;
    audit::record(
        &txn,
        ctx,
        Change {
            action: "generator.created",
            target_kind: "generator",
            target_id: &created.id,
            after: Some(snapshot(&created)),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

pub async fn update(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: &str,
    input: GeneratorInput,
) -> AppResult<generator::Model> {
    ctx.viewer.require(may::MANAGE)?;
    let txn = begin_write(db).await?;
    let before = generator::Entity::find_by_id(id.to_string())
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found_in("generator", "id"))?;
    let mut after = merge(before.clone(), input)?;
    after.updated_at = entity::now();
    let saved = generator::ActiveModel::from(after).reset_all().update(&txn).await?;
    audit::record(
        &txn,
        ctx,
        Change {
            action: "generator.updated",
            target_kind: "generator",
            target_id: &saved.id,
            before: Some(snapshot(&before)),
            after: Some(snapshot(&saved)),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(saved)
}

/// Deletes a generator no product delivers with. Keys it made keep their format.
pub async fn delete(db: &DatabaseConnection, ctx: &RequestContext, id: &str) -> AppResult<()> {
    ctx.viewer.require(may::MANAGE)?;
    let txn = begin_write(db).await?;
    let before = generator::Entity::find_by_id(id.to_string())
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found_in("generator", "id"))?;
    let products = product::Entity::find().filter(product::Column::GeneratorId.eq(id)).count(&txn).await?;
    if products > 0 {
        return Err(AppError::Conflict {
            field: "id".into(),
            reason: format!("{products} product(s) deliver keys with this generator; change their delivery first"),
        });
    }
    let keys = license_key::Entity::find().filter(license_key::Column::GeneratorId.eq(id)).count(&txn).await?;
    generator::Entity::delete_by_id(id.to_string()).exec(&txn).await?;
    audit::record(
        &txn,
        ctx,
        Change {
            action: "generator.deleted",
            target_kind: "generator",
            target_id: id,
            before: Some(snapshot(&before)),
            after: Some(serde_json::json!({ "keysKept": keys })),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
