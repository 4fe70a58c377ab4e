//! The abuse rule: a key tried by more distinct devices (fingerprints) than
//! the setting allows within its window is being shared, and is suspended
//! automatically — with an audit event naming the rule and a
//! `license.suspended` event. Counted in the database, so every node sees
//! every attempt; only attempts by devices that are not already among the
//! licence's activations are written, which keeps it off the path of a
//! device validating its own licence.

use super::audit::{self, Change};
use super::events::{self, EventKind, Subject};
use super::settings::Settings;
use crate::auth::RequestContext;
use crate::db::begin_write;
use crate::error::AppResult;
use chrono::Duration;
use entity::{LicenseAction, LicenseStatus, fingerprint_attempt, license_key, lifecycle::transition};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, Set};

/// The rule's name in audit events.
pub const RULE: &str = "abuse.distinct-fingerprints";

/// Records that `fingerprint`, not one of the licence's devices, tried it
/// (a validation), and applies the rule in a transaction of its own. Returns
/// the licence when this attempt suspended it.
pub async fn stranger_tried(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    settings: &Settings,
    licence: &license_key::Model,
    fingerprint: &str,
) -> AppResult<Option<license_key::Model>> {
    if settings.abuse_max_fingerprints == 0 {
        return Ok(None);
    }
    let txn = begin_write(db).await?;
    let suspended = tried(&txn, ctx, settings, licence, fingerprint).await?;
    txn.commit().await?;
    Ok(suspended)
}

/// Records the attempt inside `txn` and suspends the licence when the number
/// of distinct fingerprints within the window exceeds the setting. Returns
/// the suspended licence when this call suspended it.
pub async fn tried(
    txn: &impl ConnectionTrait,
    ctx: &RequestContext,
    settings: &Settings,
    licence: &license_key::Model,
    fingerprint: &str,
) -> AppResult<Option<license_key::Model>> {
    let max = settings.abuse_max_fingerprints;
    if max == 0 {
        return Ok(None);
    }
    let now = entity::now();
    fingerprint_attempt::Entity::insert(fingerprint_attempt::ActiveModel {
        license_key_id: Set(licence.id.clone()),
        fingerprint: Set(fingerprint.to_string()),
        last_tried_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([fingerprint_attempt::Column::LicenseKeyId, fingerprint_attempt::Column::Fingerprint])
            .update_column(fingerprint_attempt::Column::LastTriedAt)
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    let window = Duration::minutes(i64::from(settings.abuse_window_minutes));
    let distinct = fingerprint_attempt::Entity::find()
        .filter(fingerprint_attempt::Column::LicenseKeyId.eq(licence.id.as_str()))
        .filter(fingerprint_attempt::Column::LastTriedAt.gt(now - window))
        .count(txn)
        .await?;
    if distinct <= u64::from(max) {
        return Ok(None);
    }
    // Only a licence in use can be suspended; the lifecycle says which.
    let Ok(to) = transition(licence.status, LicenseAction::Suspend) else {
        return Ok(None);
    };
    let changed = license_key::Entity::update_many()
        .col_expr(license_key::Column::Status, Expr::value(to.as_str()))
        .col_expr(license_key::Column::UpdatedAt, Expr::value(now))
        .filter(license_key::Column::Id.eq(licence.id.as_str()))
        .filter(license_key::Column::Status.eq(licence.status))
        .exec(txn)
        .await?
        .rows_affected;
    if changed == 0 {
        return Ok(None);
    }
    let system = RequestContext::system(ctx.environment);
    let rule = serde_json::json!({
        "rule": RULE,
        "distinctFingerprints": distinct,
        "maxFingerprints": max,
        "windowMinutes": settings.abuse_window_minutes,
    });
    audit::record(
        txn,
        &system,
        Change {
            action: "license.suspended",
            target_kind: "license_key",
            target_id: &licence.id,
            key: Some(&licence.key),
            before: Some(serde_json::json!({ "status": licence.status })),
            after: Some(serde_json::json!({ "status": to, "rule": rule })),
        },
    )
    .await?;
    events::emit(
        txn,
        ctx.environment,
        EventKind::LicenseSuspended,
        Subject { kind: "license_key", id: &licence.id },
        serde_json::json!({
            "licenseId": licence.id,
            "keyPrefix": license_key::key_prefix(&licence.key),
            "status": LicenseStatus::Suspended,
            "reason": rule,
        }),
    )
    .await?;
    tracing::warn!(license = %licence.id, distinct, max, "abuse rule suspended a licence");
    let mut suspended = licence.clone();
    suspended.status = to;
    suspended.updated_at = now;
    Ok(Some(suspended))
}
