//! What a customer sees of their own: orders (newest first), each line's
//! product and licences, and the devices activated on each. Staff-only
//! fields (metadata, notes, other customers') are never read into these.

use super::events::EventKind;
use super::licenses::{self, effective_status, grace_period};
use super::sql;
use crate::auth::{RequestContext, Viewer};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use entity::license_key::KeySource;
use entity::{LicenseAction, LicenseStatus, activation, customer, license_key, order, order_line, product};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use std::collections::HashMap;

/// Orders shown on the portal, newest first.
pub const MAX_ORDERS: u64 = 100;

pub struct OwnOrder {
    pub order: order::Model,
    pub lines: Vec<OwnLine>,
}

pub struct OwnLine {
    pub line: order_line::Model,
    pub product: product::Model,
    pub licences: Vec<OwnLicence>,
}

pub struct OwnLicence {
    pub licence: license_key::Model,
    /// The status as of now (expiry judged at the moment, with the grace period).
    pub status: LicenseStatus,
    pub devices: Vec<activation::Model>,
}

fn customer_id(ctx: &RequestContext) -> AppResult<&str> {
    match &ctx.viewer {
        Viewer::Customer { customer_id } => Ok(customer_id),
        Viewer::Anonymous => Err(AppError::Unauthenticated("sign in to the portal first".into())),
        _ => Err(AppError::Forbidden("only customers have orders of their own".into())),
    }
}

/// The signed-in customer.
pub async fn me(db: &DatabaseConnection, ctx: &RequestContext) -> AppResult<customer::Model> {
    let id = customer_id(ctx)?;
    customer::Entity::find_by_id(id.to_string()).one(db).await?.ok_or_else(|| AppError::not_found("customer"))
}

/// The customer's orders with their lines, products, licences and live devices.
pub async fn orders(db: &DatabaseConnection, ctx: &RequestContext) -> AppResult<Vec<OwnOrder>> {
    let customer = customer_id(ctx)?;
    let orders = order::Entity::find()
        .filter(order::Column::Environment.eq(ctx.environment))
        .filter(order::Column::CustomerId.eq(customer))
        .order_by_desc(order::Column::CreatedAt)
        .order_by_desc(order::Column::Id)
        .limit(MAX_ORDERS)
        .all(db)
        .await?;
    let order_ids: Vec<String> = orders.iter().map(|o| o.id.clone()).collect();
    let lines = order_line::Entity::find()
        .filter(order_line::Column::OrderId.is_in(order_ids))
        .order_by_asc(order_line::Column::CreatedAt)
        .order_by_asc(order_line::Column::Id)
        .all(db)
        .await?;
    let line_ids: Vec<String> = lines.iter().map(|l| l.id.clone()).collect();
    let product_ids: Vec<String> = lines.iter().map(|l| l.product_id.clone()).collect();
    let products: HashMap<String, product::Model> = product::Entity::find()
        .filter(product::Column::Id.is_in(product_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let keys = license_key::Entity::find()
        .filter(license_key::Column::OrderLineId.is_in(line_ids))
        .filter(license_key::Column::CustomerId.eq(customer))
        .order_by_asc(license_key::Column::AssignedAt)
        .order_by_asc(license_key::Column::Id)
        .all(db)
        .await?;
    let mut devices: HashMap<String, Vec<activation::Model>> = HashMap::new();
    for device in activation::Entity::find()
        .filter(activation::Column::LicenseKeyId.is_in(keys.iter().map(|k| k.id.clone())))
        .filter(activation::Column::DeactivatedAt.is_null())
        .order_by_asc(activation::Column::CreatedAt)
        .all(db)
        .await?
    {
        devices.entry(device.license_key_id.clone()).or_default().push(device);
    }
    let cutoff = entity::now() - grace_period(db).await?;
    let mut by_line: HashMap<String, Vec<OwnLicence>> = HashMap::new();
    for key in keys {
        let line = key.order_line_id.clone().unwrap_or_default();
        let status = effective_status(&key, cutoff);
        let devices = devices.remove(&key.id).unwrap_or_default();
        by_line.entry(line).or_default().push(OwnLicence { licence: key, status, devices });
    }
    let mut lines_by_order: HashMap<String, Vec<OwnLine>> = HashMap::new();
    for line in lines {
        let Some(product) = products.get(&line.product_id).cloned() else { continue };
        let licences = by_line.remove(&line.id).unwrap_or_default();
        lines_by_order.entry(line.order_id.clone()).or_default().push(OwnLine { line, product, licences });
    }
    Ok(orders
        .into_iter()
        .map(|order| {
            let lines = lines_by_order.remove(&order.id).unwrap_or_default();
            OwnOrder { order, lines }
        })
        .collect())
}

/// Shows the customer their own licence's key. The first reveal of an
/// uploaded key still ASSIGNED marks it ACTIVE: with no software to activate
/// it, being shown is its use. Another customer's licence is not found.
pub async fn reveal(db: &DatabaseConnection, ctx: &RequestContext, id: &str) -> AppResult<license_key::Model> {
    // Staff see any licence's key (as in its preview); that is not its use.
    if matches!(ctx.viewer, Viewer::Staff { .. } | Viewer::System) {
        return licenses::get(db, ctx, id).await;
    }
    customer_id(ctx)?;
    let txn = begin_write(db).await?;
    let revealed = reveal_own(&txn, ctx, id).await?;
    txn.commit().await?;
    Ok(revealed)
}

/// The signed-in customer's own licence `id`, counted as shown to them,
/// inside `txn`. Every path that hands a customer the whole key (the key
/// dialog, the offline licence file) goes through here, in the transaction
/// that hands it over: a key the customer holds can then never go back to the
/// pool for another buyer. The row is locked on PostgreSQL (SQLite's write
/// lock serves the same), so two reveals, or a reveal and a return to the
/// pool, take turns.
pub(crate) async fn reveal_own(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    id: &str,
) -> AppResult<license_key::Model> {
    let customer = customer_id(ctx)?.to_string();
    let cutoff = entity::now() - grace_period(txn).await?;
    let mut query = license_key::Entity::find_by_id(id.to_string())
        .filter(license_key::Column::Environment.eq(ctx.environment))
        .filter(license_key::Column::CustomerId.eq(customer.as_str()));
    if sql::row_locks(txn.get_database_backend()) {
        query = query.lock_exclusive();
    }
    let key = query.one(txn).await?.ok_or_else(|| AppError::not_found_in("licence", "licenseId"))?;
    if key.status == LicenseStatus::Revoked {
        return Err(AppError::invalid("licenseId", "the licence was revoked"));
    }
    // A key past its expiry is shown as it is: expired, not put in use.
    let in_use_now = effective_status(&key, cutoff) == LicenseStatus::Assigned;
    let revealed = if key.revealed_at.is_some() {
        key
    } else if key.source == KeySource::Uploaded && in_use_now {
        let mut after = licenses::apply(txn, ctx, key, LicenseAction::Reveal, None).await?;
        after = mark_revealed(txn, after).await?;
        licenses::announce(txn, &after, EventKind::LicenseActivated).await?;
        after
    } else {
        let after = mark_revealed(txn, key).await?;
        super::audit::record(
            txn,
            ctx,
            super::audit::Change {
                action: "license.revealed",
                target_kind: "license_key",
                target_id: &after.id,
                key: Some(&after.key),
                ..Default::default()
            },
        )
        .await?;
        after
    };
    Ok(revealed)
}

async fn mark_revealed(txn: &DatabaseTransaction, key: license_key::Model) -> AppResult<license_key::Model> {
    use sea_orm::{ActiveModelTrait, Set};
    let mut active: license_key::ActiveModel = key.into();
    active.revealed_at = Set(Some(entity::now()));
    Ok(active.update(txn).await?)
}
