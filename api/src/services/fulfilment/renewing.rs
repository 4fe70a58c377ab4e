//! Order lines that renew a licence (`renews`): a subscription's next
//! payment. The line's licence — the same product and customer — is
//! extended by the product's renewal period from its expiry (inside the
//! grace period too), and the line needs no key. A licence that has already
//! EXPIRED stays expired (the lifecycle has no way back): the line then
//! delivers a new key like any other, which names the licence it replaces
//! (`renewed_from_id`). The order's external id keeps a repeated renewal
//! from counting twice.

use super::take;
use crate::auth::RequestContext;
use crate::error::{AppError, AppResult};
use crate::services::licenses;
use crate::services::renewals::{self, Period, Renewal, RenewalBasis};
use entity::{LicenseStatus, license_key, order_line, product};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};

pub(crate) const EXTENDED: &str = "EXTENDED";
pub(super) const REISSUED: &str = "REISSUED";
/// A licence id's length (a ULID).
const MAX_ID: usize = 26;

/// An order line's renewal: the product's period from the expiry.
fn asked(period: Period, line_id: &str) -> Renewal<'_> {
    Renewal { period, basis: RenewalBasis::FromExpiry, reference: None, order_line_id: Some(line_id) }
}

/// A renewal line renews one licence.
pub(super) fn check(index: usize, line: &super::NewLine) -> AppResult<()> {
    let Some(renews) = &line.renews else {
        return Ok(());
    };
    if line.quantity != 1 {
        return Err(AppError::invalid(format!("lines[{index}].quantity"), "must be 1 on a line that renews a licence"));
    }
    if renews.is_empty() || renews.len() > MAX_ID {
        return Err(AppError::invalid(format!("lines[{index}].renews"), "must be a licence id (26 characters)"));
    }
    Ok(())
}

/// Renews the licence `licence_id` on `row`, the order's line `index` for
/// `customer_id`: the line with its outcome, and the new key when the
/// licence had expired (none when the pool is empty: the line waits).
pub(super) async fn renew_line(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    index: usize,
    product: &product::Model,
    row: order_line::Model,
    customer_id: &str,
    licence_id: &str,
) -> AppResult<(order_line::Model, Vec<license_key::Model>)> {
    let field = format!("lines[{index}].renews");
    let licence =
        licenses::find(txn, ctx, licence_id).await?.ok_or_else(|| AppError::not_found_in("licence", &field))?;
    // Judged as it is under its lock: a change committed meanwhile is seen.
    let licence = licenses::relocked(txn, licence).await?;
    if licence.product_id.as_deref() != Some(product.id.as_str()) {
        return Err(AppError::invalid(field, "is a licence of another product than the line's"));
    }
    if licence.customer_id.as_deref() != Some(customer_id) {
        return Err(AppError::invalid(field, "is a licence of another customer than the order's"));
    }
    let period = Period::from_stored(product.renewal_period_unit.as_deref(), product.renewal_period_count)
        .ok_or_else(|| AppError::invalid(&field, "the product has no renewal period (set it with updateProduct)"))?;
    let (outcome, delivered) = match renewals::renew_in(txn, ctx, licence.clone(), asked(period, &row.id)).await {
        Ok(_) => (EXTENDED, Vec::new()),
        Err(AppError::InvalidTransition(refused)) if refused.from == LicenseStatus::Expired => {
            let taken = take(txn, ctx, product, &row, customer_id, 1, None).await?;
            (REISSUED, linked(txn, &licence.id, taken).await?)
        }
        Err(AppError::InvalidInput { field: named, reason }) if named == "licenseId" => {
            return Err(AppError::InvalidInput { field, reason });
        }
        Err(e) => return Err(e),
    };
    let mut line: order_line::ActiveModel = row.into();
    line.renewal_outcome = Set(Some(outcome.to_string()));
    Ok((line.update(txn).await?, delivered))
}

/// `keys` delivered on a line that replaces an expired licence (later, by
/// the backfill or staff, when the pool was empty at the order), linked to
/// the licence they replace; other lines' keys as they are.
pub(super) async fn link_reissued(
    txn: &DatabaseTransaction,
    line: &order_line::Model,
    keys: Vec<license_key::Model>,
) -> AppResult<Vec<license_key::Model>> {
    match (&line.renews_license_id, line.renewal_outcome.as_deref()) {
        (Some(old), Some(REISSUED)) => linked(txn, old, keys).await,
        _ => Ok(keys),
    }
}

async fn linked(
    txn: &DatabaseTransaction,
    old: &str,
    keys: Vec<license_key::Model>,
) -> AppResult<Vec<license_key::Model>> {
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let mut linked: license_key::ActiveModel = key.into();
        linked.renewed_from_id = Set(Some(old.to_string()));
        out.push(linked.update(txn).await?);
    }
    Ok(out)
}

/// Keys of a product with a renewal period run for one period from their
/// delivery: a key without an expiry of its own gets one (a pool key that
/// carries its own expiry keeps it). A subscription's first payment thus
/// buys one period, and each renewal another.
pub(super) async fn first_term(
    txn: &DatabaseTransaction,
    product: &product::Model,
    mut keys: Vec<license_key::Model>,
) -> AppResult<Vec<license_key::Model>> {
    let Some(period) = Period::from_stored(product.renewal_period_unit.as_deref(), product.renewal_period_count) else {
        return Ok(keys);
    };
    let open: Vec<String> = keys.iter().filter(|k| k.expires_at.is_none()).map(|k| k.id.clone()).collect();
    if open.is_empty() {
        return Ok(keys);
    }
    let until = period.after(entity::now()).ok_or_else(|| AppError::internal("a renewal period past the year 9999"))?;
    license_key::Entity::update_many()
        .col_expr(license_key::Column::ExpiresAt, Expr::value(Some(until)))
        .col_expr(license_key::Column::ExpiryFromDelivery, Expr::value(true))
        .filter(license_key::Column::Id.is_in(open))
        .filter(license_key::Column::ExpiresAt.is_null())
        .exec(txn)
        .await?;
    for key in keys.iter_mut().filter(|k| k.expires_at.is_none()) {
        key.expires_at = Some(until);
        key.expiry_from_delivery = true;
    }
    Ok(keys)
}
