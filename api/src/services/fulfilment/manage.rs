//! Staff managing an order's keys: another key on a line, a key taken off
//! its order, refunds, and the keys a line could be given.

use super::*;

/// What happens to a key taken off an order line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldKey {
    /// Back to AVAILABLE (only for a key never activated or revealed).
    ReturnToPool,
    /// Retired: REVOKED.
    Revoke,
}

#[derive(Debug, Clone, Default)]
pub struct Reassignment {
    pub line_id: String,
    /// The key to replace; without it the line gets one more key (it must be short of its quantity).
    pub license_id: Option<String>,
    /// The key to give; without it the first deliverable one (a fresh one for auto-generated products).
    pub new_license_id: Option<String>,
    /// Without it: back to the pool if never activated or revealed, retired otherwise.
    pub old_key: Option<OldKey>,
    /// Email the customer a link to their keys: the portal's address, or `None` to say nothing.
    pub notify_customer: Option<String>,
}

/// The outcome of a reassignment.
#[derive(Debug, Clone)]
pub struct Reassigned {
    pub line: order_line::Model,
    pub license: license_key::Model,
    pub previous: Option<license_key::Model>,
    /// The pool the new key came from, to check against the exhaustion threshold.
    pub pools: Vec<(Environment, TagRef)>,
}

/// An order line of the request's environment with its order. On PostgreSQL
/// the line is locked for the transaction, so a backfill filling it at the
/// same moment cannot overwrite what this transaction writes (or the reverse).
async fn line_in(
    txn: &impl ConnectionTrait,
    ctx: &RequestContext,
    line_id: &str,
) -> AppResult<(order_line::Model, order::Model)> {
    let mut query = order_line::Entity::find_by_id(line_id.to_string());
    if row_locks(txn.get_database_backend()) {
        query = query.lock_exclusive();
    }
    let line = query.one(txn).await?.ok_or_else(|| AppError::not_found_in("order line", "lineId"))?;
    let placed = order::Entity::find_by_id(line.order_id.clone())
        .filter(order::Column::Environment.eq(ctx.environment))
        .one(txn)
        .await?
        .ok_or_else(|| AppError::not_found_in("order line", "lineId"))?;
    Ok((line, placed))
}

/// Puts a new key on an order line, replacing `license_id` when given.
pub async fn reassign(db: &DatabaseConnection, ctx: &RequestContext, input: Reassignment) -> AppResult<Reassigned> {
    ctx.viewer.require(may::MANAGE)?;
    let txn = begin_write(db).await?;
    let (line, placed) = line_in(&txn, ctx, &input.line_id).await?;
    if placed.status == OrderStatus::Refunded {
        return Err(AppError::invalid("lineId", "the order is refunded"));
    }
    let product = product::Entity::find_by_id(line.product_id.clone())
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::internal(format!("product {} vanished", line.product_id)))?;
    let old = match &input.license_id {
        Some(id) => {
            let key =
                licenses::find(&txn, ctx, id).await?.ok_or_else(|| AppError::not_found_in("licence", "licenseId"))?;
            if key.order_line_id.as_deref() != Some(line.id.as_str()) {
                return Err(AppError::invalid("licenseId", "the licence is not on this order line"));
            }
            Some(key)
        }
        None => {
            if line.renewal_outcome.as_deref() == Some(EXTENDED) {
                return Err(AppError::invalid("lineId", "the line extended the licence it renews: it takes no key"));
            }
            let held = license_key::Entity::find()
                .filter(license_key::Column::OrderLineId.eq(line.id.as_str()))
                .count(&txn)
                .await?;
            if held >= line.quantity as u64 {
                return Err(AppError::invalid("licenseId", "the line has all its keys; name the licence to replace"));
            }
            None
        }
    };
    if let Some(id) = &input.new_license_id {
        licenses::find(&txn, ctx, id).await?.ok_or_else(|| AppError::not_found_in("licence", "newLicenseId"))?;
    }
    // The new key is taken before the old one is released, so "the first
    // available key" is never the key being replaced.
    let given = deliver(&txn, ctx, &product, &line, &placed.customer_id, 1, input.new_license_id.as_deref()).await?;
    let Some(license) = given.into_iter().next() else {
        return Err(match input.new_license_id {
            Some(_) => AppError::invalid(
                "newLicenseId",
                "the key cannot go to this line: it must be AVAILABLE in the line's pool, not bound to another \
                 product, not expired, and its key string not delivered already",
            ),
            None => AppError::invalid("lineId", "no key is available in this line's pool"),
        });
    };
    // A replacement keeps the term the replaced key's delivery (and renewals) gave it.
    let license = match &old {
        Some(old) if old.expiry_from_delivery && license.expiry_from_delivery => {
            let mut kept: license_key::ActiveModel = license.into();
            kept.expires_at = Set(old.expires_at);
            kept.update(&txn).await?
        }
        _ => license,
    };
    let previous = match old {
        Some(old) => Some(release(&txn, ctx, old, input.old_key).await?),
        None => None,
    };
    let line = if previous.is_none() && line.missing > 0 {
        let missing = line.missing - 1;
        set_missing(&txn, line, missing).await?
    } else {
        line
    };
    refresh_status(&txn, ctx, &placed.id).await?;
    let summary = json!({
        "lineId": line.id,
        "key": license_key::key_prefix(&license.key),
        "licenseId": license.id,
        "previousLicenseId": previous.as_ref().map(|p| p.id.clone()),
        "previousStatus": previous.as_ref().map(|p| p.status),
        "notifyCustomer": input.notify_customer.is_some(),
    });
    audit::record(
        &txn,
        ctx,
        Change {
            action: "order.key_reassigned",
            target_kind: "order",
            target_id: &placed.id,
            after: Some(summary.clone()),
            ..Change::default()
        },
    )
    .await?;
    events::emit(
        &txn,
        ctx.environment,
        EventKind::OrderKeyReassigned,
        Subject { kind: "order", id: &placed.id },
        summary,
    )
    .await?;
    if let Some(base) = &input.notify_customer {
        let subject = format!("A new licence key for your order {}", placed.external_id);
        let news = format!("Your order {} has a new licence key for {}.", placed.external_id, product.name);
        crate::services::portal::notify_customer(
            &txn,
            &placed.customer_id,
            "order.key_reassigned",
            &subject,
            &news,
            base,
        )
        .await?;
    }
    txn.commit().await?;
    if previous.as_ref().is_some_and(|p| p.status == LicenseStatus::Available) {
        after_keys_arrived(db, ctx.environment).await;
    }
    let pools = match source_of(&product) {
        Source::Pool(pool) => vec![(ctx.environment, pool)],
        _ => Vec::new(),
    };
    Ok(Reassigned { line, license, previous, pools })
}

/// Takes `key` off its line and customer: back to the pool, or retired.
/// `None` chooses: the pool when it was never activated or revealed.
async fn release(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    key: license_key::Model,
    fate: Option<OldKey>,
) -> AppResult<license_key::Model> {
    // Choosing for the caller reads the key under its row lock, so a reveal
    // that commits meanwhile turns the choice into a revocation rather than a
    // refusal.
    let key = if fate.is_none() { licenses::relocked(txn, key).await? } else { key };
    let fresh = key.activated_at.is_none() && key.revealed_at.is_none() && key.status == LicenseStatus::Assigned;
    let fate = fate.unwrap_or(if fresh { OldKey::ReturnToPool } else { OldKey::Revoke });
    let before = key.clone();
    let after = match fate {
        OldKey::ReturnToPool => licenses::apply(txn, ctx, key, LicenseAction::ReturnToPool, None).await?,
        OldKey::Revoke => {
            let revoked = licenses::apply(txn, ctx, key, LicenseAction::Revoke, None).await?;
            let mut active: license_key::ActiveModel = revoked.into();
            active.order_line_id = Set(None);
            active.customer_id = Set(None);
            active.update(txn).await?
        }
    };
    audit::record(
        txn,
        ctx,
        Change {
            action: "license.unassigned",
            target_kind: "license_key",
            target_id: &after.id,
            key: Some(&after.key),
            before: Some(snapshot(&before)),
            after: Some(snapshot(&after)),
        },
    )
    .await?;
    Ok(after)
}

/// Where an unassigned key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnassignTo {
    /// AVAILABLE again ("pending"); only for a key never activated or revealed.
    Pool,
    /// Retired from circulation (REVOKED): "used".
    Used,
}

/// Takes a key off its order line and customer. The line does not wait for a
/// replacement: staff give one with [`reassign`] when they want to.
pub async fn unassign(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: &str,
    to: UnassignTo,
) -> AppResult<license_key::Model> {
    ctx.viewer.require(may::MANAGE)?;
    let txn = begin_write(db).await?;
    let key = licenses::find(&txn, ctx, id).await?.ok_or_else(|| AppError::not_found_in("licence", "id"))?;
    if key.customer_id.is_none() && key.order_line_id.is_none() {
        return Err(AppError::invalid("id", "the licence is not assigned to anyone"));
    }
    let order_id = match &key.order_line_id {
        Some(line) => order_line::Entity::find_by_id(line.clone()).one(&txn).await?.map(|l| l.order_id),
        None => None,
    };
    let fate = match to {
        UnassignTo::Pool => OldKey::ReturnToPool,
        UnassignTo::Used => OldKey::Revoke,
    };
    let after = release(&txn, ctx, key, Some(fate)).await?;
    if let Some(order_id) = order_id {
        refresh_status(&txn, ctx, &order_id).await?;
    }
    txn.commit().await?;
    if to == UnassignTo::Pool {
        after_keys_arrived(db, ctx.environment).await;
    }
    Ok(after)
}

/// What a refund does with the order's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefundKeys {
    /// They stay with the customer.
    #[default]
    Keep,
    /// Back to the pool; refused (changing nothing) if one was activated or revealed.
    ReturnToPool,
    /// Keys never revealed nor activated go back to the pool; the others stay with the customer.
    ReturnUnrevealed,
    /// Retired: REVOKED.
    Revoke,
}

impl RefundKeys {
    fn as_str(self) -> &'static str {
        match self {
            RefundKeys::Keep => "KEEP",
            RefundKeys::ReturnToPool => "RETURN_TO_POOL",
            RefundKeys::ReturnUnrevealed => "RETURN_UNREVEALED",
            RefundKeys::Revoke => "REVOKE",
        }
    }
}

/// A refund done: the order as it is now, and whether keys went back to a pool.
#[derive(Debug, Clone)]
pub struct Refunded {
    pub order: order::Model,
    pub returned: bool,
    /// The licences the refund changed.
    pub changed: Vec<String>,
}

/// Marks an order refunded; its lines stop waiting.
pub async fn refund(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: &str,
    keys_fate: RefundKeys,
    notify_customer: Option<&str>,
) -> AppResult<order::Model> {
    ctx.viewer.require(may::MANAGE)?;
    let txn = begin_write(db).await?;
    let placed = order::Entity::find_by_id(id.to_string())
        .filter(order::Column::Environment.eq(ctx.environment))
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found_in("order", "id"))?;
    let done = refund_in(&txn, ctx, placed, keys_fate, notify_customer).await?;
    txn.commit().await?;
    if done.returned {
        after_keys_arrived(db, ctx.environment).await;
    }
    Ok(done.order)
}

/// [`refund`] in the caller's transaction, of an order it has read.
pub(crate) async fn refund_in(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    placed: order::Model,
    keys_fate: RefundKeys,
    notify_customer: Option<&str>,
) -> AppResult<Refunded> {
    let id = placed.id.clone();
    // Read again under the order's lock: two refunds at once refund once.
    let mut again = order::Entity::find_by_id(id.clone());
    if row_locks(txn.get_database_backend()) {
        again = again.lock_exclusive();
    }
    let placed = again.one(txn).await?.ok_or_else(|| AppError::not_found_in("order", "id"))?;
    if placed.status == OrderStatus::Refunded {
        return Err(AppError::Conflict { field: "id".into(), reason: "the order is already refunded".into() });
    }
    let mut lines = order_line::Entity::find().filter(order_line::Column::OrderId.eq(&id));
    if row_locks(txn.get_database_backend()) {
        lines = lines.lock_exclusive();
    }
    let lines = lines.all(txn).await?;
    let line_ids: Vec<String> = lines.iter().map(|l| l.id.clone()).collect();
    let held = license_key::Entity::find()
        .filter(license_key::Column::OrderLineId.is_in(line_ids.clone()))
        .order_by_asc(license_key::Column::Id)
        .all(txn)
        .await?;
    let mut changed = Vec::new();
    let mut returned = false;
    for key in held {
        let action = match keys_fate {
            RefundKeys::Keep => None,
            RefundKeys::ReturnToPool => Some(LicenseAction::ReturnToPool),
            RefundKeys::ReturnUnrevealed => {
                let key = licenses::relocked(txn, key).await?;
                let untouched = key.activated_at.is_none() && key.revealed_at.is_none();
                // An untouched key past its expiry (and grace) stays with the customer, expired.
                let clock = entity::now() - licenses::grace_period(txn).await?;
                if untouched && licenses::effective_status(&key, clock) == LicenseStatus::Assigned {
                    let id = key.id.clone();
                    licenses::apply(txn, ctx, key, LicenseAction::ReturnToPool, None).await?;
                    changed.push(id);
                    returned = true;
                }
                continue;
            }
            RefundKeys::Revoke if key.status != LicenseStatus::Revoked => Some(LicenseAction::Revoke),
            RefundKeys::Revoke => None,
        };
        if let Some(action) = action {
            changed.push(key.id.clone());
            returned |= action == LicenseAction::ReturnToPool;
            licenses::apply(txn, ctx, key, action, None).await?;
        }
    }
    order_line::Entity::update_many()
        .col_expr(order_line::Column::Missing, Expr::value(0))
        .filter(order_line::Column::OrderId.eq(&id))
        .exec(txn)
        .await?;
    let now = entity::now();
    let mut active: order::ActiveModel = placed.clone().into();
    active.status = Set(OrderStatus::Refunded);
    active.refunded_at = Set(Some(now));
    active.updated_at = Set(now);
    let refunded = active.update(txn).await?;
    let summary = json!({
        "externalId": refunded.external_id,
        "customerId": refunded.customer_id,
        "keys": keys_fate.as_str(),
        "keysChanged": changed.len(),
        "notifyCustomer": notify_customer.is_some(),
    });
    audit::record(
        txn,
        ctx,
        Change {
            action: "order.refunded",
            target_kind: "order",
            target_id: &id,
            before: Some(json!({ "status": placed.status })),
            after: Some(summary.clone()),
            ..Change::default()
        },
    )
    .await?;
    events::emit(txn, ctx.environment, EventKind::OrderRefunded, Subject { kind: "order", id: &id }, summary).await?;
    if let Some(base) = notify_customer {
        let subject = format!("Your order {} was refunded", refunded.external_id);
        let news = match keys_fate {
            RefundKeys::Keep => {
                format!("Your order {} was refunded. Its licence keys stay yours.", refunded.external_id)
            }
            RefundKeys::ReturnUnrevealed => format!(
                "Your order {} was refunded. Keys you had not yet revealed or used no longer work.",
                refunded.external_id
            ),
            RefundKeys::ReturnToPool | RefundKeys::Revoke => {
                format!("Your order {} was refunded, and its licence keys no longer work.", refunded.external_id)
            }
        };
        crate::services::portal::notify_customer(txn, &refunded.customer_id, "order.refunded", &subject, &news, base)
            .await?;
    }
    Ok(Refunded { order: refunded, returned, changed })
}

/// The AVAILABLE keys an order line could be given, searchable, in the order
/// automatic delivery takes them (the first is the one it would take next).
pub async fn available_for_line(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    line_id: &str,
    search: Option<String>,
    args: &PageArgs,
) -> AppResult<Page<license_key::Model>> {
    ctx.viewer.require(may::READ)?;
    let (line, _) = line_in(db, ctx, line_id).await?;
    let product = product::Entity::find_by_id(line.product_id.clone())
        .one(db)
        .await?
        .ok_or_else(|| AppError::internal(format!("product {} vanished", line.product_id)))?;
    let tag = match source_of(&product) {
        Source::Pool(pool) => pool,
        Source::Generated(_) => TagRef::Tag(tag::auto_generated_id(ctx.environment).to_string()),
        Source::Nowhere => {
            return Ok(Page {
                items: Vec::new(),
                has_next_page: false,
                has_previous_page: false,
                total_count: Some(0),
            });
        }
    };
    let filter = KeyFilter {
        tag: Some(tag),
        status: Some(LicenseStatus::Available),
        search,
        deliverable_to: Some(product.id.clone()),
        ..KeyFilter::default()
    };
    keys::list(db, ctx, &filter, KeyOrder { field: KeyOrderField::CreatedAt, descending: false }, args, true).await
}
