//! Licences: creating one from a generator, the lifecycle actions staff take,
//! editing and deleting. Every status change asks the state machine in
//! `entity::lifecycle`; a refused action changes nothing.

use super::audit::{self, Change};
use super::customers;
use super::events::EventKind;
use super::generators::spec;
use super::keys::{self, KeyFilter};
use super::sql;
use super::{samples, settings};
use crate::auth::{RequestContext, may};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Duration, Utc};
use entity::license_key::{self, KeySource};
use entity::lifecycle::transition;
use entity::values::ActivationLimit;
use entity::{LicenseAction, LicenseStatus, TransitionError, activation, generator, license_key_tag, product, tag};
use product::ProductStatus;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::Value;

/// Largest metadata object, serialised.
pub const MAX_METADATA_BYTES: usize = super::limits::JSON_BYTES;

#[derive(Debug, Clone, Default)]
pub struct NewLicense {
    pub product_id: String,
    pub generator_id: String,
    pub customer_id: Option<String>,
    pub activation_limit: Option<i64>,
    /// `Some(None)` is a lifetime licence; `None` takes the generator's validity.
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub feature_flags: Option<Value>,
    pub metadata: Option<Value>,
}

/// Changes to a licence; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct LicensePatch {
    pub customer_id: Option<String>,
    pub activation_limit: Option<i64>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub feature_flags: Option<Value>,
    pub metadata: Option<Value>,
}

fn flags(field: &str, value: Value) -> AppResult<Value> {
    super::limits::json_object(field, value)
}

fn metadata(value: Value) -> AppResult<Value> {
    super::limits::json_object("metadata", value)
}

fn future(field: &str, at: Option<DateTime<Utc>>) -> AppResult<Option<DateTime<Utc>>> {
    match at {
        Some(t) if t <= Utc::now() => {
            Err(AppError::invalid(field, "must be in the future, or null for a lifetime licence"))
        }
        other => Ok(other.map(entity::stored_time)),
    }
}

/// The status that decides what may happen: a licence past its expiry is
/// EXPIRED whether or not the sweeper has written it down yet.
pub fn effective_status(key: &license_key::Model, now: DateTime<Utc>) -> LicenseStatus {
    let due = key.expires_at.is_some_and(|t| t <= now);
    if due && matches!(key.status, LicenseStatus::Assigned | LicenseStatus::Active) {
        LicenseStatus::Expired
    } else {
        key.status
    }
}

/// How long after its expiry a licence still counts as in force (a setting).
pub(crate) async fn grace_period(db: &impl ConnectionTrait) -> AppResult<Duration> {
    Ok(Duration::minutes(i64::from(settings::current(db).await?.grace_period_minutes)))
}

pub(crate) async fn find(
    db: &impl ConnectionTrait,
    ctx: &RequestContext,
    id: &str,
) -> AppResult<Option<license_key::Model>> {
    Ok(license_key::Entity::find_by_id(id.to_string())
        .filter(license_key::Column::Environment.eq(ctx.environment))
        .one(db)
        .await?)
}

pub async fn get(db: &DatabaseConnection, ctx: &RequestContext, id: &str) -> AppResult<license_key::Model> {
    ctx.viewer.require(may::READ)?;
    find(db, ctx, id).await?.ok_or_else(|| AppError::not_found("licence"))
}

/// The licence and its product (if it has one), in one statement.
pub async fn get_with_product(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: &str,
) -> AppResult<(license_key::Model, Option<product::Model>)> {
    use sea_orm::{JoinType, QuerySelect, RelationDef};
    ctx.viewer.require(may::READ)?;
    let with_product: RelationDef = license_key::Entity::belongs_to(product::Entity)
        .from(license_key::Column::ProductId)
        .to(product::Column::Id)
        .into();
    license_key::Entity::find_by_id(id.to_string())
        .filter(license_key::Column::Environment.eq(ctx.environment))
        .join(JoinType::LeftJoin, with_product)
        .select_also(product::Entity)
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found("licence"))
}

/// A licence as the admin preview shows it.
#[derive(Debug, Clone)]
pub struct Preview {
    pub license: license_key::Model,
    /// Every device that used the licence, the ended ones included, newest first.
    pub activations: Vec<activation::Model>,
    pub samples: Vec<samples::Sample>,
    /// The licence's offline file, signed now.
    pub offline_file: super::offline::IssuedFile,
}

/// What a sample uses for a device when the licence has none yet.
pub const PLACEHOLDER_FINGERPRINT: &str = "REPLACE-WITH-DEVICE-ID";

/// The licence with its activation history and validation samples. With the
/// recent-sign-in setting on, only a token issued in the last five minutes may
/// see it.
pub async fn preview(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    signer: &super::offline::OfflineSigner,
    base_url: &str,
    id: &str,
) -> AppResult<Preview> {
    ctx.viewer.require(may::READ)?;
    let settings = settings::current(db).await?;
    if settings.preview_requires_recent_sign_in {
        let recent =
            ctx.issued_at.is_some_and(|t| Utc::now() - t <= Duration::seconds(settings::RECENT_SIGN_IN_SECONDS));
        if !recent {
            return Err(AppError::Unauthenticated(
                "licence previews need a recent sign-in: sign in again (a token issued in the last 5 minutes)".into(),
            ));
        }
    }
    let license = find(db, ctx, id).await?.ok_or_else(|| AppError::not_found("licence"))?;
    let activations = activation::Entity::find()
        .filter(activation::Column::LicenseKeyId.eq(license.id.as_str()))
        .order_by_desc(activation::Column::CreatedAt)
        .order_by_desc(activation::Column::Id)
        .all(db)
        .await?;
    let fingerprint = activations
        .iter()
        .find(|a| a.deactivated_at.is_none())
        .map_or(PLACEHOLDER_FINGERPRINT, |a| a.fingerprint.as_str());
    let samples =
        samples::all(&samples::Target { base_url, environment: ctx.environment, key: &license.key, fingerprint });
    let offline_file = super::offline::issue(db, signer, &settings, &license).await?;
    Ok(Preview { license, activations, samples, offline_file })
}

pub(crate) fn snapshot(k: &license_key::Model) -> Value {
    serde_json::json!({
        "status": k.status,
        "customerId": k.customer_id,
        "activationLimit": k.activation_limit,
        "expiresAt": k.expires_at,
        "featureFlags": k.feature_flags,
    })
}

/// Creates a licence with a key from `generator`, for `product`, assigned
/// when a customer is given. The generator's defaults fill what is not given.
pub async fn create(db: &DatabaseConnection, ctx: &RequestContext, input: NewLicense) -> AppResult<license_key::Model> {
    ctx.viewer.require(may::MANAGE)?;
    let feature_flags = input.feature_flags.map(|f| flags("featureFlags", f)).transpose()?;
    let metadata = input.metadata.map(metadata).transpose()?.unwrap_or_else(|| serde_json::json!({}));
    let expires_at = input.expires_at.map(|e| future("expiresAt", e)).transpose()?;
    let activation_limit = input
        .activation_limit
        .map(|l| ActivationLimit::parse("activationLimit", l).map(ActivationLimit::get))
        .transpose()?;

    let txn = begin_write(db).await?;
    let product = product::Entity::find_by_id(input.product_id.clone())
        .filter(product::Column::Environment.eq(ctx.environment))
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found_in("product", "productId"))?;
    if product.status != ProductStatus::Active {
        return Err(AppError::invalid("productId", "the product is archived"));
    }
    let generator = generator::Entity::find_by_id(input.generator_id.clone())
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found_in("generator", "generatorId"))?;
    if let Some(customer_id) = &input.customer_id {
        customers::find(&txn, ctx, customer_id)
            .await?
            .ok_or_else(|| AppError::not_found_in("customer", "customerId"))?;
    }
    let format =
        spec(&generator).map_err(|e| AppError::internal(format!("generator {} is unusable: {e}", generator.id)))?;
    let now = entity::now();
    // A collision of 80+ random bits is not expected; the database's unique
    // rule would refuse one, and a few retries make it practically impossible.
    let mut key = format.generate(&mut rand::rng());
    for _ in 0..5 {
        let taken = license_key::Entity::find()
            .filter(license_key::Column::Environment.eq(ctx.environment))
            .filter(license_key::Column::Key.eq(key.as_str()))
            .one(&txn)
            .await?
            .is_some();
        if !taken {
            break;
        }
        key = format.generate(&mut rand::rng());
    }
    let status = if input.customer_id.is_some() { LicenseStatus::Assigned } else { LicenseStatus::Available };
    let created = license_key::ActiveModel {
        id: Set(entity::new_id()),
        environment: Set(ctx.environment),
        key: Set(key),
        product_id: Set(Some(product.id)),
        source: Set(KeySource::Generated),
        generator_id: Set(Some(generator.id.clone())),
        status: Set(status),
        customer_id: Set(input.customer_id.clone()),
        order_line_id: Set(None),
        activation_limit: Set(activation_limit.unwrap_or(generator.default_activation_limit)),
        expires_at: Set(match expires_at {
            Some(explicit) => explicit,
            None => generator.validity_days.map(|d| now + Duration::days(i64::from(d))),
        }),
        feature_flags: Set(feature_flags.unwrap_or(generator.default_feature_flags)),
        metadata: Set(metadata),
        created_at: Set(now),
        updated_at: Set(now),
        assigned_at: Set(input.customer_id.as_ref().map(|_| now)),
        activated_at: Set(None),
        revealed_at: Set(None),
        revoked_at: Set(None),
        devices_in_use: Set(0),
        renewed_from_id: Set(None),
        expiry_from_delivery: Set(false),
    }
    .insert(&txn)
    .await?;
    license_key_tag::ActiveModel {
        license_key_id: Set(created.id.clone()),
        tag_id: Set(tag::auto_generated_id(ctx.environment).to_string()),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        ctx,
        Change {
            action: "license.created",
            target_kind: "license_key",
            target_id: &created.id,
            key: Some(&created.key),
            after: Some(snapshot(&created)),
            ..Change::default()
        },
    )
    .await?;
    announce(&txn, &created, EventKind::LicenseCreated).await?;
    txn.commit().await?;
    Ok(created)
}

/// A staff lifecycle action: assign (with `customer_id`), return to pool,
/// inactivate, reactivate, suspend, unsuspend or revoke.
pub async fn act(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: &str,
    action: LicenseAction,
    customer_id: Option<&str>,
) -> AppResult<license_key::Model> {
    let roles =
        if matches!(action, LicenseAction::Inactivate | LicenseAction::Reactivate) { may::SWITCH } else { may::MANAGE };
    ctx.viewer.require(roles)?;
    let txn = begin_write(db).await?;
    let before = find(&txn, ctx, id).await?.ok_or_else(|| AppError::not_found_in("licence", "id"))?;
    let after = apply(&txn, ctx, before, action, customer_id).await?;
    txn.commit().await?;
    if action == LicenseAction::ReturnToPool {
        super::fulfilment::after_keys_arrived(db, ctx.environment).await;
    }
    Ok(after)
}

/// `key` read again under its row lock where rows lock (PostgreSQL), so that
/// a change another transaction commits meanwhile is seen; on SQLite `key` as
/// given, since the write transaction already holds the database's write lock
/// (see [`sql::row_locks`]) and the read would be a wasted statement.
pub(crate) async fn relocked(txn: &DatabaseTransaction, key: license_key::Model) -> AppResult<license_key::Model> {
    if !sql::row_locks(txn.get_database_backend()) {
        return Ok(key);
    }
    license_key::Entity::find_by_id(key.id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| AppError::not_found_in("licence", "id"))
}

/// Takes `before` through `action` inside `txn`, with its audit event. Returning
/// to the pool also takes the key off its customer and order line; revoking
/// ends every activation.
pub(crate) async fn apply(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    before: license_key::Model,
    action: LicenseAction,
    customer_id: Option<&str>,
) -> AppResult<license_key::Model> {
    // Whether the key was ever activated or shown to its customer decides a
    // return to the pool: read that under the row's lock, so a reveal or an
    // activation that commits meanwhile is seen rather than overwritten.
    let before = if action == LicenseAction::ReturnToPool { relocked(txn, before).await? } else { before };
    let now = entity::now();
    let from = effective_status(&before, now - grace_period(txn).await?);
    let to = transition(from, action)?;
    if action == LicenseAction::ReturnToPool && (before.activated_at.is_some() || before.revealed_at.is_some()) {
        return Err(TransitionError { from, action }.into());
    }
    let mut active: license_key::ActiveModel = before.clone().into();
    active.status = Set(to);
    active.updated_at = Set(now);
    match action {
        LicenseAction::Assign => {
            let customer_id =
                customer_id.ok_or_else(|| AppError::invalid("customerId", "is required to assign a licence"))?;
            customers::find(txn, ctx, customer_id)
                .await?
                .ok_or_else(|| AppError::not_found_in("customer", "customerId"))?;
            active.customer_id = Set(Some(customer_id.to_string()));
            active.assigned_at = Set(Some(now));
        }
        LicenseAction::ReturnToPool => {
            active.customer_id = Set(None);
            active.order_line_id = Set(None);
            active.assigned_at = Set(None);
            // A term its last delivery gave it is not the next buyer's.
            if before.expiry_from_delivery {
                active.expires_at = Set(None);
                active.expiry_from_delivery = Set(false);
            }
        }
        LicenseAction::Unsuspend => {
            // The abuse rule counts afresh once staff have looked into it.
            entity::fingerprint_attempt::Entity::delete_many()
                .filter(entity::fingerprint_attempt::Column::LicenseKeyId.eq(before.id.as_str()))
                .exec(txn)
                .await?;
        }
        LicenseAction::Revoke => {
            active.revoked_at = Set(Some(now));
            active.devices_in_use = Set(0);
            activation::Entity::update_many()
                .col_expr(activation::Column::DeactivatedAt, Expr::value(now))
                .filter(activation::Column::LicenseKeyId.eq(before.id.as_str()))
                .filter(activation::Column::DeactivatedAt.is_null())
                .exec(txn)
                .await?;
        }
        _ => {}
    }
    let after = active.update(txn).await?;
    let verb = match action {
        LicenseAction::Assign => "assigned",
        LicenseAction::ReturnToPool => "returned_to_pool",
        LicenseAction::Inactivate => "inactivated",
        LicenseAction::Reactivate => "reactivated",
        LicenseAction::Suspend => "suspended",
        LicenseAction::Unsuspend => "unsuspended",
        LicenseAction::Revoke => "revoked",
        LicenseAction::Activate => "activated",
        LicenseAction::Reveal => "revealed",
        LicenseAction::Expire => "expired",
        LicenseAction::Edit => "updated",
        LicenseAction::Renew => "renewed",
    };
    audit::record(
        txn,
        ctx,
        Change {
            action: &format!("license.{verb}"),
            target_kind: "license_key",
            target_id: &after.id,
            key: Some(&after.key),
            before: Some(snapshot(&before)),
            after: Some(snapshot(&after)),
        },
    )
    .await?;
    let announced = match action {
        LicenseAction::Assign => Some(EventKind::LicenseAssigned),
        LicenseAction::Inactivate => Some(EventKind::LicenseInactivated),
        LicenseAction::Reactivate => Some(EventKind::LicenseReactivated),
        LicenseAction::Suspend => Some(EventKind::LicenseSuspended),
        LicenseAction::Unsuspend => Some(EventKind::LicenseUnsuspended),
        LicenseAction::Revoke => Some(EventKind::LicenseRevoked),
        LicenseAction::Activate => Some(EventKind::LicenseActivated),
        LicenseAction::Expire => Some(EventKind::LicenseExpired),
        LicenseAction::Renew => Some(EventKind::LicenseRenewed),
        LicenseAction::ReturnToPool | LicenseAction::Reveal | LicenseAction::Edit => None,
    };
    if let Some(kind) = announced {
        announce(txn, &after, kind).await?;
    }
    Ok(after)
}

/// The outbox event of a licence's change, for the kinds webhooks carry.
pub(crate) async fn announce(
    txn: &impl ConnectionTrait,
    licence: &license_key::Model,
    kind: EventKind,
) -> AppResult<()> {
    let subject = super::events::Subject { kind: "license_key", id: &licence.id };
    super::events::emit(txn, licence.environment, kind, subject, event_payload(licence)).await?;
    Ok(())
}

/// What a licence's outbox events carry (the key's first 8 characters only).
pub(crate) fn event_payload(licence: &license_key::Model) -> Value {
    serde_json::json!({
        "licenseId": licence.id,
        "keyPrefix": license_key::key_prefix(&licence.key),
        "status": licence.status,
        "productId": licence.product_id,
        "customerId": licence.customer_id,
        "expiresAt": licence.expires_at,
    })
}

/// Edits a licence. Key, product and environment never change; a revoked licence not at all.
pub async fn update(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: &str,
    patch: LicensePatch,
) -> AppResult<license_key::Model> {
    ctx.viewer.require(may::MANAGE)?;
    let feature_flags = patch.feature_flags.map(|f| flags("featureFlags", f)).transpose()?;
    let metadata = patch.metadata.map(metadata).transpose()?;
    let expires_at = patch.expires_at.map(|e| future("expiresAt", e)).transpose()?;
    let activation_limit = patch
        .activation_limit
        .map(|l| ActivationLimit::parse("activationLimit", l).map(ActivationLimit::get))
        .transpose()?;
    let txn = begin_write(db).await?;
    let before = find(&txn, ctx, id).await?.ok_or_else(|| AppError::not_found_in("licence", "id"))?;
    transition(before.status, LicenseAction::Edit)?;
    let mut active: license_key::ActiveModel = before.clone().into();
    if let Some(customer_id) = &patch.customer_id {
        if before.status == LicenseStatus::Available {
            return Err(AppError::invalid("customerId", "an available licence is given a customer with assignLicense"));
        }
        customers::find(&txn, ctx, customer_id)
            .await?
            .ok_or_else(|| AppError::not_found_in("customer", "customerId"))?;
        active.customer_id = Set(Some(customer_id.clone()));
    }
    if let Some(limit) = activation_limit {
        active.activation_limit = Set(limit);
    }
    if let Some(at) = expires_at {
        active.expires_at = Set(at);
        // Set on a key in the pool, it is the key's own (kept for its buyer);
        // on a delivered key it stays that holder's term, dropped on a return.
        if before.status == LicenseStatus::Available {
            active.expiry_from_delivery = Set(false);
        }
    }
    if let Some(flags) = feature_flags {
        active.feature_flags = Set(flags);
    }
    if let Some(metadata) = metadata {
        active.metadata = Set(metadata);
    }
    active.updated_at = Set(entity::now());
    let after = active.update(&txn).await?;
    audit::record(
        &txn,
        ctx,
        Change {
            action: "license.updated",
            target_kind: "license_key",
            target_id: &after.id,
            key: Some(&after.key),
            before: Some(snapshot(&before)),
            after: Some(snapshot(&after)),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

/// Deletes a licence; one that was ever activated needs `force`.
pub async fn delete(db: &DatabaseConnection, ctx: &RequestContext, id: &str, force: bool) -> AppResult<keys::Removal> {
    ctx.viewer.require(may::MANAGE)?;
    let txn = begin_write(db).await?;
    let licence = find(&txn, ctx, id).await?.ok_or_else(|| AppError::not_found_in("licence", "id"))?;
    let filter = KeyFilter { ids: Some(vec![licence.id.clone()]), ..KeyFilter::default() };
    let sel = keys::selection(txn.get_database_backend(), ctx.environment, &filter, "k")?;
    // The key's own event comes from the removal, as for keys deleted in bulk.
    let removal = keys::remove(&txn, ctx, &sel, force, "license.deleted", ("license_key", &licence.id)).await?;
    announce(&txn, &licence, EventKind::LicenseDeleted).await?;
    txn.commit().await?;
    Ok(removal)
}

/// Moves every ASSIGNED or ACTIVE licence past its expiry and grace period to EXPIRED, with an
/// audit event each, in batches. Safe to run on several nodes at once: a row
/// is only changed (and audited) by the node whose update still finds it due.
pub async fn expire_due(db: &DatabaseConnection) -> AppResult<u64> {
    const BATCH: u64 = 500;
    let mut expired = 0;
    let grace = grace_period(db).await?;
    loop {
        let now = entity::now();
        let txn = begin_write(db).await?;
        let due = license_key::Entity::find()
            .filter(license_key::Column::Status.is_in([LicenseStatus::Assigned, LicenseStatus::Active]))
            .filter(license_key::Column::ExpiresAt.lte(now - grace))
            .limit(BATCH)
            .all(&txn)
            .await?;
        if due.is_empty() {
            txn.commit().await?;
            return Ok(expired);
        }
        for key in &due {
            let to = transition(key.status, LicenseAction::Expire)?;
            let changed = license_key::Entity::update_many()
                .col_expr(license_key::Column::Status, Expr::value(to.as_str()))
                .col_expr(license_key::Column::UpdatedAt, Expr::value(now))
                .filter(license_key::Column::Id.eq(key.id.as_str()))
                .filter(license_key::Column::Status.eq(key.status))
                // Still due: a renewal committed meanwhile moved the expiry.
                .filter(license_key::Column::ExpiresAt.lte(now - grace))
                .exec(&txn)
                .await?
                .rows_affected;
            if changed == 1 {
                expired += 1;
                audit::record(
                    &txn,
                    &RequestContext::system(key.environment),
                    Change {
                        action: "license.expired",
                        target_kind: "license_key",
                        target_id: &key.id,
                        key: Some(&key.key),
                        before: Some(serde_json::json!({ "status": key.status, "expiresAt": key.expires_at })),
                        after: Some(serde_json::json!({ "status": to })),
                    },
                )
                .await?;
                let mut now_expired = key.clone();
                now_expired.status = to;
                announce(&txn, &now_expired, EventKind::LicenseExpired).await?;
            }
        }
        txn.commit().await?;
    }
}
