//! What shipped software asks without logging in: is this key good (on this
//! device)? The answer is a code, checked in a fixed order, and the
//! licence's public facts; never an error for a key that is simply bad.
//! Activation and deactivation (in [`super::activations`]) answer the same way.

use super::abuse;
use super::import::MAX_KEY_CHARS;
use super::licenses::effective_status;
use super::ratelimit::ClientLimits;
use super::settings::Settings;
use crate::auth::{RequestContext, may};
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Duration, Utc};
use entity::values::bounded_text;
use entity::{LicenseStatus, activation, license_key, product};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};

/// Longest fingerprint a client may send.
pub const MAX_FINGERPRINT_CHARS: usize = 200;
/// A device's `lastSeenAt` is written at most this often.
const SEEN_EVERY_SECONDS: i64 = 60;

/// The answer's code, in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    RateLimited,
    NotFound,
    Revoked,
    Suspended,
    Inactive,
    Expired,
    NotAssigned,
    FingerprintRequired,
    NotActivated,
    TooManyActivations,
    Valid,
}

impl Code {
    pub fn detail(self) -> &'static str {
        match self {
            Code::RateLimited => "Too many requests: retry after the given number of seconds.",
            Code::NotFound => "No licence has this key.",
            Code::Revoked => "The licence was revoked.",
            Code::Suspended => "The licence is suspended.",
            Code::Inactive => "The licence was switched off by the seller.",
            Code::Expired => "The licence has expired.",
            Code::NotAssigned => "The key has not been delivered to a customer yet.",
            Code::FingerprintRequired => "This product binds licences to devices: send the device's fingerprint.",
            Code::NotActivated => "The licence is not activated on this device.",
            Code::TooManyActivations => "The licence is active on as many devices as it allows.",
            Code::Valid => "The licence is valid.",
        }
    }
}

/// The licence as client software may see it.
#[derive(Debug, Clone)]
pub struct Facts {
    pub status: LicenseStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub feature_flags: serde_json::Value,
    pub activations_used: i64,
    pub activation_limit: i32,
}

impl Facts {
    pub fn of(licence: &license_key::Model, status: LicenseStatus, activations_used: usize) -> Self {
        Facts {
            status,
            expires_at: licence.expires_at,
            feature_flags: licence.feature_flags.clone(),
            activations_used: activations_used as i64,
            activation_limit: licence.activation_limit,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Verdict {
    pub code: Code,
    pub license: Option<Facts>,
    /// With `RateLimited`: how long to wait before calling again.
    pub retry_after: Option<std::time::Duration>,
}

impl Verdict {
    pub fn valid(&self) -> bool {
        self.code == Code::Valid
    }

    pub fn bare(code: Code) -> Self {
        Verdict { code, license: None, retry_after: None }
    }

    pub fn with(code: Code, facts: Facts) -> Self {
        Verdict { code, license: Some(facts), retry_after: None }
    }
}

/// What the client operations read on every call besides the database: the
/// settings in force and this node's rate-limit budgets.
#[derive(Clone, Copy)]
pub struct ClientRules<'a> {
    pub settings: &'a Settings,
    pub limits: &'a ClientLimits,
}

impl ClientRules<'_> {
    /// The instant to judge expiry against: now, less the grace period.
    pub fn expiry_clock(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - Duration::minutes(i64::from(self.settings.grace_period_minutes))
    }
}

pub fn check_key(raw: &str) -> AppResult<String> {
    Ok(bounded_text("key", raw, 1, MAX_KEY_CHARS, false)?)
}

pub fn check_fingerprint(raw: Option<&str>) -> AppResult<Option<String>> {
    raw.map(|f| bounded_text("fingerprint", f, 1, MAX_FINGERPRINT_CHARS, false)).transpose().map_err(Into::into)
}

/// The checks every client call starts with: the inputs, then the caller's
/// rate-limit budgets, before anything is looked up. `Err` is an input error;
/// `Ok(Err(verdict))` is the `RATE_LIMITED` answer.
pub fn admit(
    ctx: &RequestContext,
    rules: ClientRules<'_>,
    key: &str,
    fingerprint: Option<&str>,
) -> AppResult<Result<(String, Option<String>), Verdict>> {
    ctx.viewer.require(may::ANYONE)?;
    let key = check_key(key)?;
    let fingerprint = check_fingerprint(fingerprint)?;
    if let Err(limited) = rules.limits.check(rules.settings, ctx.client_address, ctx.environment, &key) {
        return Ok(Err(Verdict {
            code: Code::RateLimited,
            license: None,
            retry_after: Some(std::time::Duration::from_secs(limited.retry_after_seconds())),
        }));
    }
    Ok(Ok((key, fingerprint)))
}

/// The licence a client means by `key` in the request's environment: the
/// delivered one when there is one (a key string is delivered at most once),
/// otherwise an undelivered copy in a pool.
pub(crate) async fn licence_by_key(
    db: &impl ConnectionTrait,
    ctx: &RequestContext,
    key: &str,
) -> AppResult<Option<license_key::Model>> {
    let rows = license_key::Entity::find()
        .filter(license_key::Column::Environment.eq(ctx.environment))
        .filter(license_key::Column::Key.eq(key))
        .order_by_asc(license_key::Column::CreatedAt)
        .all(db)
        .await?;
    let delivered = rows.iter().position(|k| k.status != LicenseStatus::Available);
    Ok(match delivered {
        Some(i) => rows.into_iter().nth(i),
        None => rows.into_iter().next(),
    })
}

/// The code a licence's status alone gives, in the documented order; `None`
/// for a delivered licence in use (ASSIGNED or ACTIVE), which goes on to the
/// device checks.
pub fn standing(status: LicenseStatus) -> Option<Code> {
    match status {
        LicenseStatus::Revoked => Some(Code::Revoked),
        LicenseStatus::Suspended => Some(Code::Suspended),
        LicenseStatus::Inactive => Some(Code::Inactive),
        LicenseStatus::Expired => Some(Code::Expired),
        LicenseStatus::Available => Some(Code::NotAssigned),
        LicenseStatus::Assigned | LicenseStatus::Active => None,
    }
}

/// The licence's devices in use now.
pub(crate) async fn live_activations(db: &impl ConnectionTrait, licence_id: &str) -> AppResult<Vec<activation::Model>> {
    Ok(activation::Entity::find()
        .filter(activation::Column::LicenseKeyId.eq(licence_id))
        .filter(activation::Column::DeactivatedAt.is_null())
        .all(db)
        .await?)
}

/// Whether the licence's product binds licences to devices.
pub(crate) async fn binds_devices(db: &impl ConnectionTrait, licence: &license_key::Model) -> AppResult<bool> {
    Ok(match &licence.product_id {
        Some(id) => product::Entity::find_by_id(id.clone()).one(db).await?.is_some_and(|p| p.requires_fingerprint),
        None => false,
    })
}

/// Judges `key` (on the device `fingerprint`, when given) at this moment.
/// A fingerprint that is not one of the licence's devices counts towards the
/// abuse rule.
pub async fn validate(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    rules: ClientRules<'_>,
    key: &str,
    fingerprint: Option<&str>,
) -> AppResult<Verdict> {
    let (key, fingerprint) = match admit(ctx, rules, key, fingerprint)? {
        Ok(admitted) => admitted,
        Err(limited) => return Ok(limited),
    };
    let Some(licence) = licence_by_key(db, ctx, &key).await? else {
        return Ok(Verdict::bare(Code::NotFound));
    };
    let now = Utc::now();
    let live = live_activations(db, &licence.id).await?;
    let status = effective_status(&licence, rules.expiry_clock(now));
    let facts = Facts::of(&licence, status, live.len());
    if let Some(code) = standing(status) {
        return Ok(Verdict::with(code, facts));
    }
    let code = match fingerprint.as_deref() {
        None if binds_devices(db, &licence).await? => Code::FingerprintRequired,
        None => Code::Valid,
        Some(device) => match live.iter().find(|a| a.fingerprint == device) {
            Some(seen) => {
                note_seen(db, seen, now);
                Code::Valid
            }
            None => {
                if let Some(suspended) = abuse::stranger_tried(db, ctx, rules.settings, &licence, device).await? {
                    return Ok(Verdict::with(Code::Suspended, Facts::of(&suspended, suspended.status, live.len())));
                }
                Code::NotActivated
            }
        },
    };
    Ok(Verdict::with(code, facts))
}

/// Records that a device was seen, off the caller's path: the answer does not
/// wait for the write, and a device is written at most once a minute.
fn note_seen(db: &DatabaseConnection, seen: &activation::Model, now: DateTime<Utc>) {
    if now - seen.last_seen_at < Duration::seconds(SEEN_EVERY_SECONDS) {
        return;
    }
    let db = db.clone();
    let id = seen.id.clone();
    tokio::spawn(async move {
        let stamped = activation::Entity::update_many()
            .col_expr(activation::Column::LastSeenAt, Expr::value(entity::now()))
            .filter(activation::Column::Id.eq(id))
            .filter(activation::Column::LastSeenAt.lt(entity::now() - Duration::seconds(SEEN_EVERY_SECONDS)))
            .exec(&db)
            .await;
        if let Err(e) = stamped {
            tracing::warn!(error = %AppError::from(e).detail(), "recording when a device was last seen failed");
        }
    });
}
