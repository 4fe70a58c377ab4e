//! What shipped software asks without logging in: is this key good (on this
//! device)? The answer is a code, checked in a fixed order, and the
//! licence's public facts; never an error for a key that is simply bad.

use super::import::MAX_KEY_CHARS;
use super::licenses::effective_status;
use crate::auth::{RequestContext, may};
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Duration, Utc};
use entity::values::bounded_text;
use entity::{LicenseStatus, activation, license_key, product};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};

/// Longest fingerprint a client may send.
pub const MAX_FINGERPRINT_CHARS: usize = 200;
/// A device's `lastSeenAt` is written at most this often.
const SEEN_EVERY_SECONDS: i64 = 60;

/// The answer's code, in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    NotFound,
    Revoked,
    Suspended,
    Inactive,
    Expired,
    NotAssigned,
    FingerprintRequired,
    NotActivated,
    Valid,
}

impl Code {
    pub fn detail(self) -> &'static str {
        match self {
            Code::NotFound => "No licence has this key.",
            Code::Revoked => "The licence was revoked.",
            Code::Suspended => "The licence is suspended.",
            Code::Inactive => "The licence was switched off by the seller.",
            Code::Expired => "The licence has expired.",
            Code::NotAssigned => "The key has not been delivered to a customer yet.",
            Code::FingerprintRequired => "This product binds licences to devices: send the device's fingerprint.",
            Code::NotActivated => "The licence is not activated on this device.",
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

#[derive(Debug, Clone)]
pub struct Verdict {
    pub code: Code,
    pub license: Option<Facts>,
}

impl Verdict {
    pub fn valid(&self) -> bool {
        self.code == Code::Valid
    }
}

pub fn check_key(raw: &str) -> AppResult<String> {
    Ok(bounded_text("key", raw, 1, MAX_KEY_CHARS, false)?)
}

pub fn check_fingerprint(raw: Option<&str>) -> AppResult<Option<String>> {
    raw.map(|f| bounded_text("fingerprint", f, 1, MAX_FINGERPRINT_CHARS, false)).transpose().map_err(Into::into)
}

/// The licence a client means by `key` in the request's environment: the
/// delivered one when there is one (a key string is delivered at most once),
/// otherwise an undelivered copy in a pool.
async fn licence_by_key(
    db: &DatabaseConnection,
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

/// Judges `key` (on the device `fingerprint`, when given) at this moment.
pub async fn validate(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    key: &str,
    fingerprint: Option<&str>,
) -> AppResult<Verdict> {
    ctx.viewer.require(may::ANYONE)?;
    let key = check_key(key)?;
    let fingerprint = check_fingerprint(fingerprint)?;
    let Some(licence) = licence_by_key(db, ctx, &key).await? else {
        return Ok(Verdict { code: Code::NotFound, license: None });
    };
    let now = Utc::now();
    let live: Vec<activation::Model> = activation::Entity::find()
        .filter(activation::Column::LicenseKeyId.eq(licence.id.as_str()))
        .filter(activation::Column::DeactivatedAt.is_null())
        .all(db)
        .await?;
    let status = effective_status(&licence, now);
    let facts = Facts {
        status,
        expires_at: licence.expires_at,
        feature_flags: licence.feature_flags.clone(),
        activations_used: live.len() as i64,
        activation_limit: licence.activation_limit,
    };
    let code = match status {
        LicenseStatus::Revoked => Code::Revoked,
        LicenseStatus::Suspended => Code::Suspended,
        LicenseStatus::Inactive => Code::Inactive,
        LicenseStatus::Expired => Code::Expired,
        LicenseStatus::Available => Code::NotAssigned,
        LicenseStatus::Assigned | LicenseStatus::Active => {
            let binds = match &licence.product_id {
                Some(id) => {
                    product::Entity::find_by_id(id.clone()).one(db).await?.is_some_and(|p| p.requires_fingerprint)
                }
                None => false,
            };
            match fingerprint.as_deref() {
                None if binds => Code::FingerprintRequired,
                None => Code::Valid,
                Some(device) => match live.iter().find(|a| a.fingerprint == device) {
                    Some(seen) => {
                        note_seen(db, seen, now);
                        Code::Valid
                    }
                    None => Code::NotActivated,
                },
            }
        }
    };
    Ok(Verdict { code, license: Some(facts) })
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
