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
    /// How long after its expiry a licence still validates, in minutes.
    pub grace_period_minutes: u32,
    /// The abuse rule: more than this many distinct fingerprints trying one
    /// key within `abuse_window_minutes` suspends it (0 turns the rule off).
    pub abuse_max_fingerprints: u32,
    pub abuse_window_minutes: u32,
    /// How long an offline licence file stays valid, in hours.
    pub offline_file_validity_hours: u32,
    /// Client calls (validate, activate, deactivate) allowed per key per
    /// minute, on each node (0: no limit).
    pub rate_limit_per_key: u32,
    /// Client calls allowed per client address per minute, on each node (0: no limit).
    pub rate_limit_per_address: u32,
    /// Where pool alerts are emailed; none when unset.
    pub notification_email: Option<String>,
    /// Webhooks may reach private, loopback and link-local addresses (as
    /// `KEYSMITH_WEBHOOK_ALLOW_PRIVATE` does for a whole deployment).
    pub webhook_allow_private_addresses: bool,
    /// A staff session (the admin portal's sign-in) left unused this many
    /// minutes ends (1–1440). Bearer tokens without a session are not affected.
    pub admin_idle_timeout_minutes: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            preview_requires_recent_sign_in: false,
            exhaustion_threshold: 80,
            grace_period_minutes: 0,
            abuse_max_fingerprints: 20,
            abuse_window_minutes: 60,
            offline_file_validity_hours: 24,
            rate_limit_per_key: 60,
            rate_limit_per_address: 600,
            notification_email: None,
            webhook_allow_private_addresses: false,
            admin_idle_timeout_minutes: 30,
        }
    }
}

/// A change to some settings; `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct SettingsPatch {
    pub preview_requires_recent_sign_in: Option<bool>,
    pub exhaustion_threshold: Option<i64>,
    pub grace_period_minutes: Option<i64>,
    pub abuse_max_fingerprints: Option<i64>,
    pub abuse_window_minutes: Option<i64>,
    pub offline_file_validity_hours: Option<i64>,
    pub rate_limit_per_key: Option<i64>,
    pub rate_limit_per_address: Option<i64>,
    /// `Some("")` clears the address.
    pub notification_email: Option<String>,
    pub webhook_allow_private_addresses: Option<bool>,
    pub admin_idle_timeout_minutes: Option<i64>,
}

/// `value` for `field` when it lies in `range`, or an error naming both.
fn ranged<T: TryFrom<i64>>(
    field: &str,
    value: Option<i64>,
    range: std::ops::RangeInclusive<i64>,
) -> AppResult<Option<T>> {
    let Some(v) = value else { return Ok(None) };
    if !range.contains(&v) {
        return Err(AppError::invalid(field, format!("must be from {} to {} (got {v})", range.start(), range.end())));
    }
    T::try_from(v).map(Some).map_err(|_| AppError::invalid(field, format!("is out of range (got {v})")))
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
    const MINUTES_A_YEAR: i64 = 365 * 24 * 60;
    let threshold = ranged("exhaustionThreshold", patch.exhaustion_threshold, 1..=100)?;
    let grace = ranged("gracePeriodMinutes", patch.grace_period_minutes, 0..=MINUTES_A_YEAR)?;
    let abuse_max = ranged("abuseMaxFingerprints", patch.abuse_max_fingerprints, 0..=100_000)?;
    let abuse_window = ranged("abuseWindowMinutes", patch.abuse_window_minutes, 1..=MINUTES_A_YEAR)?;
    let validity = ranged("offlineFileValidityHours", patch.offline_file_validity_hours, 1..=24 * 366)?;
    let per_key = ranged("rateLimitPerKey", patch.rate_limit_per_key, 0..=1_000_000)?;
    let per_address = ranged("rateLimitPerAddress", patch.rate_limit_per_address, 0..=10_000_000)?;
    let idle_timeout = ranged("adminIdleTimeoutMinutes", patch.admin_idle_timeout_minutes, 1..=24 * 60)?;
    let notification_email = patch
        .notification_email
        .as_deref()
        .map(|e| match e.trim() {
            "" => Ok(None),
            address => entity::values::Email::parse("notificationEmail", address).map(|e| Some(e.into_inner())),
        })
        .transpose()?;
    let txn = begin_write(db).await?;
    let before = current(&txn).await?;
    let mut after = before.clone();
    fn put<T>(slot: &mut T, value: Option<T>) {
        if let Some(v) = value {
            *slot = v;
        }
    }
    put(&mut after.preview_requires_recent_sign_in, patch.preview_requires_recent_sign_in);
    put(&mut after.exhaustion_threshold, threshold);
    put(&mut after.grace_period_minutes, grace);
    put(&mut after.abuse_max_fingerprints, abuse_max);
    put(&mut after.abuse_window_minutes, abuse_window);
    put(&mut after.offline_file_validity_hours, validity);
    put(&mut after.rate_limit_per_key, per_key);
    put(&mut after.rate_limit_per_address, per_address);
    put(&mut after.notification_email, notification_email);
    put(&mut after.webhook_allow_private_addresses, patch.webhook_allow_private_addresses);
    put(&mut after.admin_idle_timeout_minutes, idle_timeout);
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

/// How long a node serves settings from memory before reading them again.
const CACHED_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The settings as this node last read them, for the client operations, which
/// run too often to read the settings table each time. A change made through
/// this node applies at once, one made through another node within a second.
#[derive(Default)]
pub struct SettingsCache(std::sync::RwLock<Option<(std::time::Instant, std::sync::Arc<Settings>)>>);

impl SettingsCache {
    pub async fn get(&self, db: &impl ConnectionTrait) -> AppResult<std::sync::Arc<Settings>> {
        if let Ok(slot) = self.0.read()
            && let Some((read_at, settings)) = slot.as_ref()
            && read_at.elapsed() < CACHED_FOR
        {
            return Ok(settings.clone());
        }
        let fresh = std::sync::Arc::new(current(db).await?);
        if let Ok(mut slot) = self.0.write() {
            *slot = Some((std::time::Instant::now(), fresh.clone()));
        }
        Ok(fresh)
    }

    /// Drops what is held, so the next read goes to the database.
    pub fn forget(&self) {
        if let Ok(mut slot) = self.0.write() {
            *slot = None;
        }
    }
}
