//! Server-wide settings, one named JSON value a row. Every setting has a
//! default, so a fresh database needs no rows; a change is audited with the
//! values before and after.

use super::audit::{self, Change};
use crate::auth::{RequestContext, may};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use entity::setting;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, Set};
use serde::{Deserialize, Serialize};

/// How long a sign-in counts as recent for actions that ask for one.
pub const RECENT_SIGN_IN_SECONDS: i64 = 5 * 60;

/// Every setting with its current value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Licence previews (which show the full key and ready-to-run requests)
    /// need a token issued in the last five minutes.
    pub preview_requires_recent_sign_in: bool,
    /// The used share of a pool, in percent (1–100), at which `pool.exhausting` fires.
    pub exhaustion_threshold: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { preview_requires_recent_sign_in: false, exhaustion_threshold: 80 }
    }
}

/// A change to some settings; `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct SettingsPatch {
    pub preview_requires_recent_sign_in: Option<bool>,
    pub exhaustion_threshold: Option<i64>,
}

/// The settings in force: the stored values over the defaults.
pub async fn current(db: &impl ConnectionTrait) -> AppResult<Settings> {
    let mut merged = serde_json::to_value(Settings::default()).map_err(|e| AppError::internal(e.to_string()))?;
    for row in setting::Entity::find().all(db).await? {
        if merged.get(&row.name).is_some() {
            merged[&row.name] = row.value;
        }
    }
    serde_json::from_value(merged).map_err(|e| AppError::internal(format!("a stored setting is unreadable: {e}")))
}

pub async fn get(db: &DatabaseConnection, ctx: &RequestContext) -> AppResult<Settings> {
    ctx.viewer.require(may::ADMINISTER)?;
    current(db).await
}

pub async fn update(db: &DatabaseConnection, ctx: &RequestContext, patch: SettingsPatch) -> AppResult<Settings> {
    ctx.viewer.require(may::ADMINISTER)?;
    let threshold = patch
        .exhaustion_threshold
        .map(|t| match u8::try_from(t) {
            Ok(t @ 1..=100) => Ok(t),
            _ => Err(AppError::invalid("exhaustionThreshold", format!("must be a percentage from 1 to 100 (got {t})"))),
        })
        .transpose()?;
    let txn = begin_write(db).await?;
    let before = current(&txn).await?;
    let mut after = before.clone();
    if let Some(v) = patch.preview_requires_recent_sign_in {
        after.preview_requires_recent_sign_in = v;
    }
    if let Some(t) = threshold {
        after.exhaustion_threshold = t;
    }
    let (old, new) = (json(&before)?, json(&after)?);
    let now = entity::now();
    for (name, value) in new.as_object().into_iter().flatten() {
        if old.get(name) == Some(value) {
            continue;
        }
        setting::Entity::insert(setting::ActiveModel {
            name: Set(name.clone()),
            value: Set(value.clone()),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(setting::Column::Name)
                .update_columns([setting::Column::Value, setting::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    }
    if before != after {
        audit::record(
            &txn,
            ctx,
            Change {
                action: "settings.updated",
                target_kind: "settings",
                target_id: "settings",
                before: Some(old),
                after: Some(new),
                ..Change::default()
            },
        )
        .await?;
    }
    txn.commit().await?;
    Ok(after)
}

fn json(s: &Settings) -> AppResult<serde_json::Value> {
    serde_json::to_value(s).map_err(|e| AppError::internal(e.to_string()))
}
