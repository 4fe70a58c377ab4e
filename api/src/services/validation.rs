//! What shipped software asks without logging in: is this key good (on this
//! device)? The answer is a code, checked in a fixed order, and the
//! licence's public facts; never an error for a key that is simply bad.
//! Activation and deactivation (in [`super::activations`]) answer the same way.

use super::abuse;
use super::import::MAX_KEY_CHARS;
use super::licenses::effective_status;
use super::ratelimit::ClientLimits;
use super::settings::Settings;
use super::sql::Sql;
use crate::auth::{RequestContext, may};
use crate::db::begin_write;
use crate::error::AppResult;
use chrono::{DateTime, Duration, Utc};
use entity::values::bounded_text;
use entity::{LicenseStatus, activation, license_key};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter, Value};
use std::collections::HashMap;

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
    pub sightings: &'a Sightings,
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

/// A licence as a client call sees it, read in one statement: the licence,
/// its devices in use, the asking device's activation, and whether its
/// product binds licences to devices.
#[derive(Debug, Clone)]
pub(crate) struct Looked {
    pub licence: license_key::Model,
    /// Activations in use now.
    pub used: usize,
    /// The asking device's live activation: its id and when it was last seen.
    pub device: Option<(String, DateTime<Utc>)>,
    /// The product binds licences to devices (a fingerprint is required).
    pub binds: bool,
}

/// The licence a client means by `key` in the request's environment — the
/// delivered one when there is one (a key string is delivered at most once),
/// otherwise the oldest undelivered copy in a pool — with what a client call
/// needs to judge it, in one statement of index lookups (a client call is the
/// hottest path): the licence by its key, the asking device's live
/// activation by the unique index of live devices, the product by its id.
/// The count of devices in use is the licence's own column.
pub(crate) async fn look_up(
    db: &impl ConnectionTrait,
    ctx: &RequestContext,
    key: &str,
    fingerprint: Option<&str>,
) -> AppResult<Option<Looked>> {
    let mut sql = Sql::new(
        "SELECT k.*, a.id AS ks_device_id, a.last_seen_at AS ks_device_seen, p.requires_fingerprint AS ks_binds \
         FROM license_key k ",
    );
    sql.push(
        "LEFT JOIN activation a ON a.license_key_id = k.id AND a.fingerprint = ? AND a.deactivated_at IS NULL ",
        [Value::from(fingerprint.map(str::to_string))],
    );
    // No ORDER BY: with one, SQLite walks the (environment, created_at) index
    // through the whole environment instead of looking the key up.
    sql.push(
        "LEFT JOIN product p ON p.id = k.product_id WHERE k.environment = ? AND k.key = ?",
        [Value::from(ctx.environment.as_str()), Value::from(key)],
    );
    let backend = db.get_database_backend();
    let mut found = Vec::new();
    for row in db.query_all_raw(sql.statement(backend)).await? {
        let licence = license_key::Model::from_query_result(&row, "")?;
        let device_id: Option<String> = row.try_get("", "ks_device_id")?;
        let seen: Option<DateTime<Utc>> = row.try_get("", "ks_device_seen")?;
        let binds: Option<bool> = row.try_get("", "ks_binds")?;
        found.push(Looked {
            used: usize::try_from(licence.devices_in_use).unwrap_or(0),
            licence,
            device: device_id.zip(seen),
            binds: binds.unwrap_or(false),
        });
    }
    found.sort_by(|a, b| {
        let order =
            |l: &Looked| (l.licence.status == LicenseStatus::Available, l.licence.created_at, l.licence.id.clone());
        order(a).cmp(&order(b))
    });
    Ok(found.into_iter().next())
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
    let Some(looked) = look_up(db, ctx, &key, fingerprint.as_deref()).await? else {
        return Ok(Verdict::bare(Code::NotFound));
    };
    let now = Utc::now();
    let licence = &looked.licence;
    let status = effective_status(licence, rules.expiry_clock(now));
    let facts = Facts::of(licence, status, looked.used);
    if let Some(code) = standing(status) {
        return Ok(Verdict::with(code, facts));
    }
    let code = match (fingerprint.as_deref(), &looked.device) {
        (None, _) if looked.binds => Code::FingerprintRequired,
        (None, _) => Code::Valid,
        (Some(_), Some((id, seen))) => {
            rules.sightings.note(id, *seen, now);
            Code::Valid
        }
        (Some(device), None) => {
            if let Some(suspended) = abuse::stranger_tried(db, ctx, rules.settings, licence, device).await? {
                return Ok(Verdict::with(Code::Suspended, Facts::of(&suspended, suspended.status, looked.used)));
            }
            Code::NotActivated
        }
    };
    Ok(Verdict::with(code, facts))
}

/// Devices seen by client calls and not yet written: written together by
/// the node's runner about once a second ([`Sightings::write`]), so that
/// validations — shipped software checking in, most of them from devices not
/// seen for a while — cost no write each. A device's `lastSeenAt` is written
/// at most once a minute; at most [`Sightings::HELD`] are held.
#[derive(Default)]
pub struct Sightings(std::sync::Mutex<HashMap<String, DateTime<Utc>>>);

impl Sightings {
    /// Devices held for the next write at most; more are noted at their next call.
    pub const HELD: usize = 100_000;
    /// Devices one statement writes.
    const PER_STATEMENT: usize = 500;

    /// Notes that the activation `id`, last written as seen at `last_seen`, was seen `now`.
    fn note(&self, id: &str, last_seen: DateTime<Utc>, now: DateTime<Utc>) {
        if now - last_seen < Duration::seconds(SEEN_EVERY_SECONDS) {
            return;
        }
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if held.len() < Self::HELD || held.contains_key(id) {
            held.insert(id.to_string(), now);
        }
    }

    /// Writes the devices seen since the last write; returns how many.
    pub async fn write(&self, db: &DatabaseConnection) -> AppResult<usize> {
        let held = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        if held.is_empty() {
            return Ok(0);
        }
        // Every device in the batch was seen within the last second or so: one instant for all.
        let seen = held.values().max().copied().unwrap_or_else(entity::now);
        let ids: Vec<String> = held.into_keys().collect();
        let txn = begin_write(db).await?;
        for chunk in ids.chunks(Self::PER_STATEMENT) {
            activation::Entity::update_many()
                .col_expr(activation::Column::LastSeenAt, Expr::value(seen))
                .filter(activation::Column::Id.is_in(chunk.iter().map(String::as_str)))
                .filter(activation::Column::LastSeenAt.lt(seen - Duration::seconds(SEEN_EVERY_SECONDS)))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(ids.len())
    }
}
