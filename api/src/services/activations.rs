//! Devices using licences: activation and deactivation by shipped software
//! (by key and fingerprint, no login), customers ending their own devices,
//! and staff listing and ending any.
//!
//! The activation limit holds under any concurrency: a new device takes its
//! slot with one conditional `UPDATE` of the licence's row (its count of
//! devices in use below the limit, checked and raised together; PostgreSQL
//! takes the row's lock and checks again after a concurrent change, and on
//! SQLite every write transaction holds the write lock from its start). When
//! the licence is no longer as read, it is locked and judged again. The
//! partial unique index `ux_activation_live` (one live activation per
//! fingerprint and licence) is the last line of defence, and a transaction
//! that hits it runs again.

use super::abuse;
use super::audit::Change;
use super::events::{self, EventKind, Subject};
use super::licenses::effective_status;
use super::pagination::{Keyset, Page, PageArgs, SortKind, paginate, time_value};
use super::settings::Settings;
use super::sql;
use super::validation::{ClientRules, Code, Facts, Looked, Verdict, admit, look_up, standing};
use crate::auth::{RequestContext, Viewer, may};
use crate::db::{begin_write, retrying};
use crate::error::{AppError, AppResult, contended};
use chrono::Utc;
use entity::values::bounded_text;
use entity::{LicenseAction, LicenseStatus, activation, license_key, lifecycle::transition};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter,
    QuerySelect,
};
use serde_json::json;

/// Longest device name or platform a client may send.
pub const MAX_DEVICE_TEXT: usize = 200;

/// A device as shipped software describes it when activating.
#[derive(Debug, Clone, Default)]
pub struct Device {
    pub fingerprint: String,
    pub name: Option<String>,
    pub platform: Option<String>,
}

/// The licence for `key` as [`look_up`] reads it, inside `txn`. On
/// PostgreSQL the key's rows are locked first, in a statement of their own,
/// so that the count of devices that follows (a new snapshot) sees every
/// activation committed before the lock was granted, and changes to one
/// licence's activations take turns. On SQLite the write transaction holds
/// the database's write lock already.
async fn locked(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    key: &str,
    fingerprint: &str,
) -> AppResult<Option<Looked>> {
    if sql::row_locks(txn.get_database_backend()) {
        license_key::Entity::find()
            .filter(license_key::Column::Environment.eq(ctx.environment))
            .filter(license_key::Column::Key.eq(key))
            .lock_exclusive()
            .all(txn)
            .await?;
    }
    look_up(txn, ctx, key, Some(fingerprint)).await
}

/// Activates `key` on a device. The same device again changes nothing and
/// succeeds; a new device needs a free slot (`-1` is unlimited). The first
/// activation moves an ASSIGNED licence to ACTIVE.
pub async fn activate(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    rules: ClientRules<'_>,
    key: &str,
    device: Device,
) -> AppResult<Verdict> {
    let (key, fingerprint) = match admit(ctx, rules, key, Some(&device.fingerprint))? {
        Ok(admitted) => admitted,
        Err(limited) => return Ok(limited),
    };
    let fingerprint = fingerprint.unwrap_or_default();
    let name = device.name.as_deref().map(|n| bounded_text("name", n, 0, MAX_DEVICE_TEXT, false)).transpose()?;
    let platform =
        device.platform.as_deref().map(|p| bounded_text("platform", p, 0, MAX_DEVICE_TEXT, false)).transpose()?;
    let device =
        Device { fingerprint, name: name.filter(|n| !n.is_empty()), platform: platform.filter(|p| !p.is_empty()) };
    // Most calls change nothing — shipped software activates on every start,
    // and a licence's standing refuses before any slot is taken — so they are
    // answered from a read, without queueing for the write lock.
    let Some(seen) = look_up(db, ctx, &key, Some(&device.fingerprint)).await? else {
        return Ok(Verdict::bare(Code::NotFound));
    };
    let status = effective_status(&seen.licence, rules.expiry_clock(Utc::now()));
    if let Some(code) = standing(status) {
        return Ok(Verdict::with(code, Facts::of(&seen.licence, status, seen.used)));
    }
    if seen.device.is_some() {
        return Ok(Verdict::with(Code::Valid, Facts::of(&seen.licence, status, seen.used)));
    }
    retrying(|| activate_once(db, ctx, rules, &key, &device, &seen)).await
}

/// A new device on the licence as `seen` read it, in one conditional
/// statement: the licence's row takes the device only while it is as read
/// (same status, not expired) with a slot free — the check and the count
/// together, so no lock is needed and concurrent activations cannot overrun
/// the limit. `None` when it is no longer as read.
async fn take_slot(
    txn: &impl ConnectionTrait,
    expiry_clock: chrono::DateTime<Utc>,
    seen: &license_key::Model,
) -> AppResult<Option<license_key::Model>> {
    let now = entity::now();
    let to = match seen.status {
        LicenseStatus::Assigned => transition(seen.status, LicenseAction::Activate)?,
        other => other,
    };
    let mut taken = license_key::Entity::update_many()
        .col_expr(license_key::Column::DevicesInUse, Expr::col(license_key::Column::DevicesInUse).add(1))
        .col_expr(license_key::Column::Status, Expr::value(to.as_str()))
        .col_expr(license_key::Column::ActivatedAt, Expr::value(seen.activated_at.unwrap_or(now)))
        .col_expr(license_key::Column::UpdatedAt, Expr::value(now))
        .filter(license_key::Column::Id.eq(seen.id.as_str()))
        .filter(license_key::Column::Status.eq(seen.status.as_str()))
        .filter(
            Condition::any()
                .add(license_key::Column::ActivationLimit.lt(0))
                .add(Expr::col(license_key::Column::DevicesInUse).lt(Expr::col(license_key::Column::ActivationLimit))),
        )
        .filter(
            Condition::any()
                .add(license_key::Column::ExpiresAt.is_null())
                .add(license_key::Column::ExpiresAt.gt(expiry_clock)),
        )
        .exec_with_returning(txn)
        .await?;
    Ok(taken.pop())
}

async fn activate_once(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    rules: ClientRules<'_>,
    key: &str,
    device: &Device,
    seen: &Looked,
) -> AppResult<Verdict> {
    // Owned, for the writer that may run it among other requests' writes (see `db::grouped`).
    let (ctx, settings, key, device) = (ctx.clone(), rules.settings.clone(), key.to_string(), device.clone());
    let seen = seen.licence.clone();
    crate::db::grouped(db, move |txn| {
        Box::pin(async move { new_device(txn, &ctx, &settings, &key, &device, seen).await })
    })
    .await
}

/// A new device's activation in `txn`, the licence as `seen` read it.
async fn new_device(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    settings: &Settings,
    key: &str,
    device: &Device,
    seen: license_key::Model,
) -> AppResult<Verdict> {
    let clock = || Utc::now() - chrono::Duration::minutes(i64::from(settings.grace_period_minutes));
    // Most new devices find the licence as it was read: one statement takes
    // the slot. The abuse rule, when on, counts every new device first.
    let taken = match settings.abuse_max_fingerprints {
        0 => take_slot(txn, clock(), &seen).await?.map(|after| (seen.status, after)),
        _ => None,
    };
    let (before, after) = match taken {
        Some(taken) => taken,
        None => {
            // The licence changed since it was read (or the abuse rule is
            // on): judged again as it is now, under the lock.
            let Some(Looked { licence, used, device: held, .. }) = locked(txn, ctx, key, &device.fingerprint).await?
            else {
                return Ok(Verdict::bare(Code::NotFound));
            };
            let status = effective_status(&licence, clock());
            if let Some(code) = standing(status) {
                return Ok(Verdict::with(code, Facts::of(&licence, status, used)));
            }
            if held.is_some() {
                return Ok(Verdict::with(Code::Valid, Facts::of(&licence, status, used)));
            }
            if let Some(suspended) = abuse::tried(txn, ctx, settings, &licence, &device.fingerprint).await? {
                return Ok(Verdict::with(Code::Suspended, Facts::of(&suspended, suspended.status, used)));
            }
            let limit = licence.activation_limit;
            if limit >= 0 && used >= limit as usize {
                return Ok(Verdict::with(Code::TooManyActivations, Facts::of(&licence, status, used)));
            }
            let after = take_slot(txn, clock(), &licence)
                .await?
                .ok_or_else(|| AppError::Contended("the licence changed while it was locked".into()))?;
            (licence.status, after)
        }
    };
    let used = usize::try_from(after.devices_in_use).unwrap_or(0);
    let created = new_activation(txn, ctx, &after, device).await?;
    let facts = activated(&after, &created, used);
    announce(txn, ctx, &after, EventKind::LicenseActivated, Some(json!({ "status": before })), facts).await?;
    Ok(Verdict::with(Code::Valid, Facts::of(&after, after.status, used)))
}

/// Records a new device on `licence`. A concurrent activation of the same
/// device hits the index of live devices; the caller's transaction then runs again.
async fn new_activation(
    txn: &impl ConnectionTrait,
    ctx: &RequestContext,
    licence: &license_key::Model,
    device: &Device,
) -> AppResult<activation::Model> {
    let now = entity::now();
    let created = activation::Model {
        id: entity::new_id(),
        license_key_id: licence.id.clone(),
        fingerprint: device.fingerprint.clone(),
        name: device.name.clone(),
        platform: device.platform.clone(),
        client_address: ctx.client_address.map(|a| a.to_string()),
        created_at: now,
        last_seen_at: now,
        deactivated_at: None,
    };
    activation::Entity::insert(activation::ActiveModel::from(created.clone()))
        .exec_without_returning(txn)
        .await
        .map_err(contended)?;
    Ok(created)
}

/// What an activation's audit and outbox events say happened.
fn activated(after: &license_key::Model, created: &activation::Model, used: usize) -> serde_json::Value {
    json!({
        "status": after.status,
        "activationId": created.id,
        "fingerprint": created.fingerprint,
        "name": created.name,
        "platform": created.platform,
        "activationsUsed": used,
        "activationLimit": after.activation_limit,
    })
}

/// Frees the slot `key` holds on a device. The licence's standing is checked
/// first (a revoked licence says so); a device that is not activated is
/// `NOT_ACTIVATED`.
pub async fn deactivate(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    rules: ClientRules<'_>,
    key: &str,
    fingerprint: &str,
) -> AppResult<Verdict> {
    let (key, fingerprint) = match admit(ctx, rules, key, Some(fingerprint))? {
        Ok(admitted) => admitted,
        Err(limited) => return Ok(limited),
    };
    let fingerprint = fingerprint.unwrap_or_default();
    let txn = begin_write(db).await?;
    let Some(Looked { licence, used, device, .. }) = locked(&txn, ctx, &key, &fingerprint).await? else {
        return Ok(Verdict::bare(Code::NotFound));
    };
    let status = effective_status(&licence, rules.expiry_clock(Utc::now()));
    if let Some(code) = standing(status) {
        return Ok(Verdict::with(code, Facts::of(&licence, status, used)));
    }
    let Some((device_id, _)) = device else {
        return Ok(Verdict::with(Code::NotActivated, Facts::of(&licence, status, used)));
    };
    let device = activation::Entity::find_by_id(device_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::internal("a live activation vanished inside its transaction"))?;
    end(&txn, ctx, &licence, &device).await?;
    txn.commit().await?;
    Ok(Verdict::with(Code::Valid, Facts::of(&licence, status, used.saturating_sub(1))))
}

/// Ends one activation, with its audit and outbox events.
async fn end(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    licence: &license_key::Model,
    device: &activation::Model,
) -> AppResult<activation::Model> {
    let now = entity::now();
    let ending = activation::Entity::update_many()
        .col_expr(activation::Column::DeactivatedAt, Expr::value(now))
        .filter(activation::Column::Id.eq(device.id.as_str()))
        .filter(activation::Column::DeactivatedAt.is_null())
        .exec(txn)
        .await?;
    if ending.rows_affected == 0 {
        // A concurrent request ended it first, and counted it.
        return activation::Entity::find_by_id(device.id.clone())
            .one(txn)
            .await?
            .ok_or_else(|| AppError::internal("an activation vanished inside its transaction"));
    }
    license_key::Entity::update_many()
        .col_expr(license_key::Column::DevicesInUse, Expr::col(license_key::Column::DevicesInUse).sub(1))
        .filter(license_key::Column::Id.eq(licence.id.as_str()))
        .filter(license_key::Column::DevicesInUse.gt(0))
        .exec(txn)
        .await?;
    let ended = activation::Model { deactivated_at: Some(now), ..device.clone() };
    let facts = json!({
        "status": licence.status,
        "activationId": ended.id,
        "fingerprint": ended.fingerprint,
        "name": ended.name,
        "platform": ended.platform,
    });
    announce(
        txn,
        ctx,
        licence,
        EventKind::LicenseDeactivated,
        Some(json!({ "activationId": ended.id, "deactivatedAt": null })),
        facts,
    )
    .await?;
    Ok(ended)
}

/// The audit event and the outbox event of an activation change (one
/// statement on PostgreSQL, see [`events::record_and_emit`]).
async fn announce(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    licence: &license_key::Model,
    kind: EventKind,
    before: Option<serde_json::Value>,
    after: serde_json::Value,
) -> AppResult<()> {
    let mut payload = after.clone();
    payload["licenseId"] = json!(licence.id);
    payload["keyPrefix"] = json!(license_key::key_prefix(&licence.key));
    let change = Change {
        action: kind.as_str(),
        target_kind: "license_key",
        target_id: &licence.id,
        key: Some(&licence.key),
        before,
        after: Some(after),
    };
    let subject = Subject { kind: "license_key", id: &licence.id };
    events::record_and_emit(txn, ctx, vec![change], vec![(kind, subject, payload)]).await?;
    Ok(())
}

/// The licence ids a viewer may see activations of, as a condition on
/// `activation.license_key_id`: the environment's, and a customer's own only.
fn visible_licences(ctx: &RequestContext, filter: &ActivationFilter) -> Condition {
    let mut licences = Query::select()
        .column(license_key::Column::Id)
        .from(license_key::Entity)
        .and_where(Expr::col(license_key::Column::Environment).eq(ctx.environment.as_str()))
        .to_owned();
    let customer = match &ctx.viewer {
        Viewer::Customer { customer_id } => Some(customer_id.as_str()),
        _ => filter.customer_id.as_deref(),
    };
    if let Some(customer) = customer {
        licences.and_where(Expr::col(license_key::Column::CustomerId).eq(customer));
    }
    if let Some(product) = &filter.product_id {
        licences.and_where(Expr::col(license_key::Column::ProductId).eq(product.as_str()));
    }
    if let Some(licence) = &filter.license_id {
        licences.and_where(Expr::col(license_key::Column::Id).eq(licence.as_str()));
    }
    Condition::all().add(activation::Column::LicenseKeyId.in_subquery(licences))
}

/// Which activations a list shows.
#[derive(Debug, Clone, Default)]
pub struct ActivationFilter {
    pub license_id: Option<String>,
    pub product_id: Option<String>,
    pub customer_id: Option<String>,
    /// Only devices in use (`true`) or only ended ones (`false`).
    pub live: Option<bool>,
}

/// Activations newest first: staff see the environment's, a customer their own licences'.
pub async fn list(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    filter: &ActivationFilter,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<activation::Model>> {
    ctx.viewer.require(may::READ_OWN)?;
    let mut query = activation::Entity::find().filter(visible_licences(ctx, filter));
    match filter.live {
        Some(true) => query = query.filter(activation::Column::DeactivatedAt.is_null()),
        Some(false) => query = query.filter(activation::Column::DeactivatedAt.is_not_null()),
        None => {}
    }
    let keyset = Keyset {
        column: activation::Column::CreatedAt,
        kind: SortKind::Time,
        id: activation::Column::Id,
        descending: true,
    };
    paginate(db, query, keyset, args, want_total, |a| time_value(&a.created_at), |a| a.id.clone()).await
}

/// Ends one activation by id: a customer's own licence's, or (support and up)
/// any in the environment. Ending an ended one changes nothing.
pub async fn deactivate_by_id(db: &DatabaseConnection, ctx: &RequestContext, id: &str) -> AppResult<activation::Model> {
    ctx.viewer.require(may::END_DEVICE)?;
    let txn = begin_write(db).await?;
    let visible = ActivationFilter::default();
    let found = activation::Entity::find_by_id(id.to_string())
        .filter(visible_licences(ctx, &visible))
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found_in("activation", "id"))?;
    if found.deactivated_at.is_some() {
        return Ok(found);
    }
    let licence = license_key::Entity::find_by_id(found.license_key_id.clone())
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found_in("activation", "id"))?;
    let ended = end(&txn, ctx, &licence, &found).await?;
    txn.commit().await?;
    Ok(ended)
}
