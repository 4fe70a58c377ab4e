//! Acting on a delivery inside the transaction that records it: each action
//! goes through the service that staff use (orders, renewal orders, refunds,
//! lifecycle actions), so the same rules, audit events and webhooks follow.

use super::reading::{Action, Item, LinkKind, MAX_ITEMS, OrderRef, Purchase, clip};
use crate::auth::RequestContext;
use crate::error::{AppError, AppResult};
use crate::services::audit::{self, Change};
use crate::services::fulfilment::{self, NewLine, NewOrder, RefundKeys};
use crate::services::keys::TagRef;
use crate::services::licenses::{self, effective_status};
use crate::services::renewals::Period;
use entity::integration::{self, CancelPolicy, RefundPolicy};
use entity::integration_event::EventOutcome;
use entity::order::OrderStatus;
use entity::{
    Environment, LicenseAction, LicenseStatus, customer, integration_customer, integration_link, integration_product,
    license_key, license_renewal, order, order_line, product,
};
use sea_orm::ActiveModelTrait;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter, QueryOrder, Set, Statement,
};
use serde_json::json;
use std::collections::{HashMap, HashSet};

/// Kinds of `integration_link`: an order this integration placed (by the
/// provider's order id), a subscription, a payment.
pub const ORDER: &str = "ORDER";
pub const SUBSCRIPTION: &str = "SUBSCRIPTION";
pub const PAYMENT: &str = "PAYMENT";
/// Longest provider id kept (the link and mapping columns).
const MAX_REF: usize = 200;

/// What acting on a delivery did.
#[derive(Debug, Default)]
pub struct Effect {
    pub outcome: Option<EventOutcome>,
    pub reason: Option<&'static str>,
    pub detail: Option<String>,
    pub order_id: Option<String>,
    pub licences: Vec<String>,
    /// Pools keys were taken from (checked against their alert thresholds after commit).
    pub pools: Vec<(Environment, TagRef)>,
    /// Keys went back to a pool (waiting lines are filled after commit).
    pub returned: bool,
    /// The provider's customer an order waits for (`CUSTOMER_UNKNOWN`).
    pub waiting_for: Option<String>,
    /// What the action wrote is to be kept (else its savepoint is rolled back).
    pub keep: bool,
}

impl Effect {
    fn processed() -> Self {
        Self { outcome: Some(EventOutcome::Processed), keep: true, ..Self::default() }
    }

    fn note(outcome: EventOutcome, reason: &'static str, detail: impl Into<String>) -> Self {
        Self { outcome: Some(outcome), reason: Some(reason), detail: Some(detail.into()), ..Self::default() }
    }

    pub fn ignored(reason: &'static str, detail: impl Into<String>) -> Self {
        Self::note(EventOutcome::Ignored, reason, detail)
    }

    fn attention(reason: &'static str, detail: impl Into<String>) -> Self {
        Self::note(EventOutcome::NeedsAttention, reason, detail)
    }

    pub fn failed(reason: &'static str, detail: impl Into<String>) -> Self {
        Self::note(EventOutcome::Failed, reason, detail)
    }

    pub fn outcome(&self) -> EventOutcome {
        self.outcome.unwrap_or(EventOutcome::Processed)
    }
}

/// Acts on `action` for `integration` (whose environment `ctx` is in).
pub async fn run(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    integration: &integration::Model,
    action: Action,
    portal_base: &str,
) -> AppResult<Effect> {
    match action {
        Action::Order(purchase) => place(txn, ctx, integration, purchase, portal_base).await,
        Action::Renew { subscription, reference, payment } => {
            renew(txn, ctx, integration, &subscription, reference, payment, portal_base).await
        }
        Action::Refund { order, full } => refund(txn, ctx, integration, &order, full).await,
        Action::Cancel(of) => cancel(txn, ctx, integration, &of).await,
        Action::Link { kind, provider_ref, external_id } => {
            let kind = match kind {
                LinkKind::Subscription => SUBSCRIPTION,
                LinkKind::Payment => PAYMENT,
            };
            link(txn, integration, kind, &provider_ref, &external_id).await?;
            Ok(Effect::processed())
        }
        Action::Customer { id, email, name } => {
            remember_customer(txn, integration, &id, &email, &name).await?;
            Ok(Effect::processed())
        }
        Action::Ignore(reason, detail) => Ok(Effect::ignored(reason, detail)),
    }
}

/// The lines `items` map to, or what keeps them from mapping.
async fn lines_of(
    txn: &DatabaseTransaction,
    integration: &integration::Model,
    items: &[Item],
) -> AppResult<Result<Vec<NewLine>, Effect>> {
    if items.len() > MAX_ITEMS {
        return Ok(Err(Effect::failed(
            "TOO_MANY_ITEMS",
            format!("an order of Keysmith's holds at most {MAX_ITEMS} items"),
        )));
    }
    if let Some(bad) = items.iter().find(|i| !(1..=fulfilment::MAX_QUANTITY).contains(&i.quantity)) {
        return Ok(Err(Effect::failed(
            "BAD_QUANTITY",
            format!(
                "{} has quantity {} (1 to {} are delivered)",
                bad.refs.join(" / "),
                bad.quantity,
                fulfilment::MAX_QUANTITY
            ),
        )));
    }
    let refs: Vec<String> = items.iter().flat_map(|i| i.refs.iter().take(4).map(|r| clip(r, MAX_REF))).collect();
    let mapped: HashMap<String, Option<String>> = integration_product::Entity::find()
        .filter(integration_product::Column::IntegrationId.eq(integration.id.as_str()))
        .filter(integration_product::Column::ProviderRef.is_in(refs))
        .all(txn)
        .await?
        .into_iter()
        .map(|m| (m.provider_ref, m.product_id))
        .collect();
    let mut lines: Vec<NewLine> = Vec::new();
    for item in items {
        let Some(product) = item.refs.iter().find_map(|r| mapped.get(&clip(r, MAX_REF))) else {
            let named = if item.refs.is_empty() { "an item without ids".to_string() } else { item.refs.join(" / ") };
            return Ok(Err(Effect::attention(
                "UNMAPPED_ITEM",
                format!("{named} is not mapped to a product: map it, then replay this event"),
            )));
        };
        let Some(product) = product else { continue };
        match lines.iter_mut().find(|l| &l.product_id == product) {
            Some(line) => line.quantity = line.quantity.saturating_add(item.quantity),
            None => lines.push(NewLine { product_id: product.clone(), quantity: item.quantity, renews: None }),
        }
    }
    Ok(Ok(lines))
}

async fn place(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    integration: &integration::Model,
    purchase: Purchase,
    portal_base: &str,
) -> AppResult<Effect> {
    // A subscription is tied to its first order even when none of its items carries a licence.
    if let Some(subscription) = &purchase.subscription {
        link(txn, integration, SUBSCRIPTION, subscription, &purchase.external_id).await?;
    }
    if purchase.items.is_empty() {
        return Ok(Effect::attention("NO_ITEMS", purchase.no_items.unwrap_or("the order names no items")));
    }
    let (email, name) = match (&purchase.email, &purchase.customer) {
        (Some(email), _) => (email.clone(), purchase.name.clone()),
        // `inbound::act` holds this customer's lock (see `hold_customer`).
        (None, Some(id)) => {
            let key = (integration.id.clone(), clip(id, MAX_REF));
            match integration_customer::Entity::find_by_id(key).one(txn).await? {
                Some(known) => (known.email, purchase.name.clone().or(Some(known.name))),
                None => {
                    let mut waiting = Effect::attention(
                        "CUSTOMER_UNKNOWN",
                        format!(
                            "no email is known yet for the provider's customer {id}: the order is placed when it is"
                        ),
                    );
                    waiting.waiting_for = Some(clip(id, MAX_REF));
                    return Ok(waiting);
                }
            }
        }
        (None, None) => return Ok(Effect::attention("CUSTOMER_UNKNOWN", "the order carries no customer email")),
    };
    let lines = match lines_of(txn, integration, &purchase.items).await? {
        Ok(lines) if lines.is_empty() => {
            let mut none = Effect::ignored("NO_LICENSED_ITEMS", "every item is mapped to no product");
            none.keep = true;
            return Ok(none);
        }
        Ok(lines) => lines,
        Err(waiting) => return Ok(waiting),
    };
    let name = name.map(|n| clip(&n, 200));
    let order = NewOrder {
        external_id: purchase.external_id.clone(),
        email,
        name,
        lines,
        email_customer: integration.email_customer,
        portal_base: Some(portal_base.to_string()),
    };
    let placed = match order_for(txn, ctx, integration, order).await? {
        Ok(placed) => placed,
        Err(refused) => return Ok(refused),
    };
    if let Some(payment) = &purchase.payment {
        link(txn, integration, PAYMENT, payment, &purchase.external_id).await?;
    }
    let mut effect = Effect::processed();
    if !placed.created {
        effect.detail = Some("the order was already placed".into());
        effect.keep = false;
    }
    effect.licences = delivered(txn, &placed).await?;
    effect.order_id = Some(placed.order.id);
    effect.pools = placed.pools;
    Ok(effect)
}

/// Places `order` for `integration`, or finds it placed before — by this
/// integration: an external id some other shop or `createOrder` took is
/// refused (`ORDER_ID_TAKEN`), never mixed with this provider's order.
async fn order_for(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    integration: &integration::Model,
    order: NewOrder,
) -> AppResult<Result<fulfilment::Placed, Effect>> {
    let external_id = order.external_id.clone();
    let placed = fulfilment::create_order_in(txn, ctx, order).await?;
    if placed.created {
        link(txn, integration, ORDER, &external_id, &external_id).await?;
        return Ok(Ok(placed));
    }
    if linked(txn, integration, ORDER, &external_id).await?.is_empty() {
        return Ok(Err(Effect::failed(
            "ORDER_ID_TAKEN",
            format!(
                "an order with external id {external_id} was placed by something other than this integration \
                 (another shop, or createOrder): nothing was delivered"
            ),
        )));
    }
    Ok(Ok(placed))
}

/// Serialises, on PostgreSQL, an order waiting for a customer's email with
/// that customer's event: whichever commits second sees the other. Taken by
/// `inbound::act` on the delivery's transaction, before the savepoint the
/// action runs in (a lock taken inside it would end with its rollback).
pub(super) async fn hold_customer(
    txn: &DatabaseTransaction,
    integration: &integration::Model,
    customer: &str,
) -> AppResult<()> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let key = xxhash_rust::xxh3::xxh3_64(format!("integration-customer\0{}\0{customer}", integration.id).as_bytes());
    let lock =
        Statement::from_sql_and_values(DbBackend::Postgres, "SELECT pg_advisory_xact_lock($1)", [(key as i64).into()]);
    txn.execute_raw(lock).await?;
    Ok(())
}

/// The external ids `provider_ref` of `kind` is linked to, for `integration`.
async fn linked(
    txn: &DatabaseTransaction,
    integration: &integration::Model,
    kind: &str,
    provider_ref: &str,
) -> AppResult<Vec<String>> {
    Ok(integration_link::Entity::find()
        .filter(integration_link::Column::IntegrationId.eq(integration.id.as_str()))
        .filter(integration_link::Column::Kind.eq(kind))
        .filter(integration_link::Column::ProviderRef.eq(clip(provider_ref, MAX_REF)))
        .all(txn)
        .await?
        .into_iter()
        .map(|l| l.external_id)
        .collect())
}

/// The licences an order holds now: as placed, or read when it was placed before.
async fn delivered(txn: &DatabaseTransaction, placed: &fulfilment::Placed) -> AppResult<Vec<String>> {
    if let Some(lines) = &placed.lines {
        return Ok(lines.iter().flat_map(|(_, keys)| keys.iter().map(|k| k.id.clone())).collect());
    }
    let lines: Vec<String> = order_line::Entity::find()
        .filter(order_line::Column::OrderId.eq(placed.order.id.as_str()))
        .all(txn)
        .await?
        .into_iter()
        .map(|l| l.id)
        .collect();
    Ok(license_key::Entity::find()
        .filter(license_key::Column::OrderLineId.is_in(lines))
        .order_by_asc(license_key::Column::Id)
        .all(txn)
        .await?
        .into_iter()
        .map(|k| k.id)
        .collect())
}

async fn link(
    txn: &DatabaseTransaction,
    integration: &integration::Model,
    kind: &str,
    provider_ref: &str,
    external_id: &str,
) -> AppResult<()> {
    let row = integration_link::ActiveModel {
        integration_id: Set(integration.id.clone()),
        kind: Set(kind.to_string()),
        provider_ref: Set(clip(provider_ref, MAX_REF)),
        external_id: Set(clip(external_id, 200)),
        created_at: Set(entity::now()),
    };
    integration_link::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                integration_link::Column::IntegrationId,
                integration_link::Column::Kind,
                integration_link::Column::ProviderRef,
                integration_link::Column::ExternalId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

async fn remember_customer(
    txn: &DatabaseTransaction,
    integration: &integration::Model,
    id: &str,
    email: &str,
    name: &str,
) -> AppResult<()> {
    // `inbound::act` holds this customer's lock (see `hold_customer`).
    let row = integration_customer::ActiveModel {
        integration_id: Set(integration.id.clone()),
        provider_customer_id: Set(clip(id, MAX_REF)),
        email: Set(clip(email, 320)),
        name: Set(clip(name, 200)),
        updated_at: Set(entity::now()),
    };
    integration_customer::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                integration_customer::Column::IntegrationId,
                integration_customer::Column::ProviderCustomerId,
            ])
            .update_columns([
                integration_customer::Column::Email,
                integration_customer::Column::Name,
                integration_customer::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// The orders a provider reference names, through this integration's
/// links (an order id names only an order this integration placed).
async fn orders_named(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    integration: &integration::Model,
    of: &OrderRef,
) -> AppResult<Vec<order::Model>> {
    let (kind, provider_ref) = match of {
        OrderRef::Order(r) => (ORDER, r),
        OrderRef::Payment(r) => (PAYMENT, r),
        OrderRef::Subscription(r) => (SUBSCRIPTION, r),
    };
    let mut external_ids = linked(txn, integration, kind, provider_ref).await?;
    if kind != ORDER {
        // A subscription or payment names an order only if this integration placed it.
        let own: HashSet<String> = integration_link::Entity::find()
            .filter(integration_link::Column::IntegrationId.eq(integration.id.as_str()))
            .filter(integration_link::Column::Kind.eq(ORDER))
            .filter(integration_link::Column::ProviderRef.is_in(external_ids.clone()))
            .all(txn)
            .await?
            .into_iter()
            .map(|l| l.provider_ref)
            .collect();
        external_ids.retain(|x| own.contains(x));
    }
    Ok(order::Entity::find()
        .filter(order::Column::Environment.eq(ctx.environment))
        .filter(order::Column::ExternalId.is_in(external_ids))
        .order_by_asc(order::Column::CreatedAt)
        .all(txn)
        .await?)
}

/// The licences a set of orders delivered that are still current: held by
/// a customer, not revoked, and not replaced by a renewal's new key.
async fn current_licences(txn: &DatabaseTransaction, orders: &[order::Model]) -> AppResult<Vec<license_key::Model>> {
    let lines: Vec<String> = order_line::Entity::find()
        .filter(order_line::Column::OrderId.is_in(orders.iter().map(|o| o.id.clone())))
        .all(txn)
        .await?
        .into_iter()
        .map(|l| l.id)
        .collect();
    let held: Vec<license_key::Model> = license_key::Entity::find()
        .filter(license_key::Column::OrderLineId.is_in(lines))
        .filter(license_key::Column::CustomerId.is_not_null())
        .filter(license_key::Column::Status.ne(LicenseStatus::Revoked))
        .order_by_asc(license_key::Column::Id)
        .all(txn)
        .await?;
    let replaced: HashSet<String> = license_key::Entity::find()
        .filter(license_key::Column::RenewedFromId.is_in(held.iter().map(|k| k.id.clone())))
        .all(txn)
        .await?
        .into_iter()
        .filter_map(|k| k.renewed_from_id)
        .collect();
    Ok(held.into_iter().filter(|k| !replaced.contains(&k.id)).collect())
}

/// A subscription's payment: a renewal order (external id: the payment's
/// id) with one line per current licence, which extends each licence or,
/// for one that has expired, delivers a new key linked to it.
async fn renew(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    integration: &integration::Model,
    subscription: &str,
    reference: String,
    payment: Option<String>,
    portal_base: &str,
) -> AppResult<Effect> {
    // This payment renewed already (another notice of it, or a replay).
    if let Some(done) = orders_named(txn, ctx, integration, &OrderRef::Order(reference.clone())).await?.pop() {
        let mut effect = Effect::processed();
        (effect.keep, effect.detail, effect.order_id) =
            (false, Some("this payment renewed already".into()), Some(done.id));
        return Ok(effect);
    }
    if linked(txn, integration, SUBSCRIPTION, subscription).await?.is_empty() {
        return Ok(Effect::attention(
            "UNKNOWN_SUBSCRIPTION",
            format!("no order of subscription {subscription} has arrived: replay this event once it has"),
        ));
    }
    let orders = orders_named(txn, ctx, integration, &OrderRef::Subscription(subscription.to_string())).await?;
    let licences = current_licences(txn, &orders).await?;
    let Some(first) = licences.first() else {
        return Ok(Effect::ignored("NO_LICENCES", "the subscription holds no current licence"));
    };
    let customer_id = first.customer_id.clone().unwrap_or_default();
    let Some(customer) = customer::Entity::find_by_id(customer_id).one(txn).await? else {
        return Err(AppError::internal("a licence's customer vanished"));
    };
    let products: Vec<String> = licences.iter().filter_map(|k| k.product_id.clone()).collect();
    let periods: HashMap<String, Option<Period>> = product::Entity::find()
        .filter(product::Column::Id.is_in(products))
        .all(txn)
        .await?
        .into_iter()
        .map(|p| {
            let period = Period::from_stored(p.renewal_period_unit.as_deref(), p.renewal_period_count);
            (p.id, period)
        })
        .collect();
    if let Some(k) =
        licences.iter().find(|k| k.product_id.as_ref().and_then(|p| periods.get(p).copied().flatten()).is_none())
    {
        return Ok(Effect::attention(
            "NO_RENEWAL_PERIOD",
            format!(
                "the product of licence {} has no renewal period: set it, then replay this event",
                license_key::key_prefix(&k.key)
            ),
        ));
    }
    let now = entity::now();
    let grace = licenses::grace_period(txn).await?;
    let reissues = licences.iter().any(|k| effective_status(k, now - grace) == LicenseStatus::Expired);
    let lines: Vec<NewLine> = licences
        .iter()
        .map(|k| NewLine {
            product_id: k.product_id.clone().unwrap_or_default(),
            quantity: 1,
            renews: Some(k.id.clone()),
        })
        .collect();
    let mut effect = Effect::processed();
    effect.licences = licences.into_iter().map(|k| k.id).collect();
    // An order holds at most MAX_LINES lines: a larger subscription renews in
    // several orders, the payment's id, then `#2`, `#3` …
    for (i, chunk) in lines.chunks(fulfilment::MAX_LINES).enumerate() {
        let external_id = if i == 0 { reference.clone() } else { format!("{reference}#{}", i + 1) };
        let order = NewOrder {
            external_id: external_id.clone(),
            email: customer.email.clone(),
            name: Some(customer.name.clone()),
            lines: chunk.to_vec(),
            // Only a new key is news to the customer; an extension shows in the portal.
            email_customer: integration.email_customer && reissues,
            portal_base: Some(portal_base.to_string()),
        };
        let placed = match order_for(txn, ctx, integration, order).await? {
            Ok(placed) => placed,
            Err(refused) => return Ok(refused),
        };
        link(txn, integration, SUBSCRIPTION, subscription, &external_id).await?;
        if let Some(payment) = &payment {
            link(txn, integration, PAYMENT, payment, &external_id).await?;
        }
        effect.licences.extend(delivered(txn, &placed).await?);
        effect.order_id.get_or_insert(placed.order.id);
        effect.pools.extend(placed.pools);
    }
    Ok(effect)
}

async fn refund(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    integration: &integration::Model,
    of: &OrderRef,
    full: bool,
) -> AppResult<Effect> {
    if !full {
        return Ok(Effect::ignored("PARTIAL_REFUND", "a partial refund leaves the keys as they are"));
    }
    // A payment may have paid several orders (a renewal of over 100 licences).
    let orders = orders_named(txn, ctx, integration, of).await?;
    if orders.is_empty() {
        return Ok(Effect::ignored("UNKNOWN_ORDER", "no order this integration placed matches the refunded payment"));
    }
    let fate = match integration.on_refund {
        RefundPolicy::Keep => RefundKeys::Keep,
        RefundPolicy::ReturnUnrevealed => RefundKeys::ReturnUnrevealed,
        RefundPolicy::Revoke => RefundKeys::Revoke,
    };
    let mut effect = Effect::ignored("ALREADY_REFUNDED", "the order was already refunded");
    for placed in orders {
        effect.order_id.get_or_insert(placed.id.clone());
        if placed.status == OrderStatus::Refunded {
            continue;
        }
        let order_id = placed.id.clone();
        let done = match fulfilment::refund_in(txn, ctx, placed, fate, None).await {
            Ok(done) => done,
            // Refunded meanwhile, by another notice of the same refund.
            Err(AppError::Conflict { reason, .. }) if reason.contains("already refunded") => continue,
            Err(e) => return Err(e),
        };
        if effect.outcome() != EventOutcome::Processed {
            effect = Effect { order_id: Some(order_id.clone()), ..Effect::processed() };
        }
        effect.licences.extend(done.changed);
        effect.returned |= done.returned;
        if fate != RefundKeys::Keep {
            effect.licences.extend(take_back_extensions(txn, ctx, &order_id).await?);
        }
    }
    Ok(effect)
}

/// A refunded renewal order's extensions taken back: each licence an
/// EXTENDED line renewed loses the period that line added (its expiry may
/// then be past). The licences changed.
async fn take_back_extensions(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    order_id: &str,
) -> AppResult<Vec<String>> {
    let lines = order_line::Entity::find()
        .filter(order_line::Column::OrderId.eq(order_id))
        .filter(order_line::Column::RenewalOutcome.eq(fulfilment::EXTENDED))
        .all(txn)
        .await?;
    let mut changed = Vec::new();
    for line in lines {
        let Some(renewal) = license_renewal::Entity::find()
            .filter(license_renewal::Column::OrderLineId.eq(line.id.as_str()))
            .one(txn)
            .await?
        else {
            continue;
        };
        let Some(key) = licenses::find(txn, ctx, &renewal.license_key_id).await? else { continue };
        let key = licenses::relocked(txn, key).await?;
        let (Some(expires_at), false) = (key.expires_at, key.status == LicenseStatus::Revoked) else { continue };
        let shortened = expires_at - (renewal.expires_after - renewal.expires_before);
        let mut row: license_key::ActiveModel = key.clone().into();
        row.expires_at = Set(Some(shortened));
        row.updated_at = Set(entity::now());
        row.update(txn).await?;
        audit::record(
            txn,
            ctx,
            Change {
                action: "license.renewal_refunded",
                target_kind: "license_key",
                target_id: &key.id,
                before: Some(json!({ "expiresAt": expires_at })),
                after: Some(json!({ "expiresAt": shortened, "orderId": order_id })),
                ..Change::default()
            },
        )
        .await?;
        changed.push(key.id);
    }
    Ok(changed)
}

async fn cancel(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    integration: &integration::Model,
    of: &OrderRef,
) -> AppResult<Effect> {
    let orders = orders_named(txn, ctx, integration, of).await?;
    if orders.is_empty() {
        return Ok(Effect::ignored("UNKNOWN_ORDER", "no order this integration placed matches the cancellation"));
    }
    let licences = current_licences(txn, &orders).await?;
    let mut effect = Effect::processed();
    effect.order_id = orders.last().map(|o| o.id.clone());
    let now = entity::now();
    let grace = licenses::grace_period(txn).await?;
    for key in licences {
        let key = licenses::relocked(txn, key).await?;
        let status = effective_status(&key, now - grace);
        let action = match integration.on_cancel {
            CancelPolicy::ExpireAtPeriodEnd => None,
            CancelPolicy::Suspend => (status == LicenseStatus::Active).then_some(LicenseAction::Suspend),
            CancelPolicy::Revoke => (status != LicenseStatus::Revoked).then_some(LicenseAction::Revoke),
        };
        if let Some(action) = action {
            effect.licences.push(key.id.clone());
            licenses::apply(txn, ctx, key, action, None).await?;
        }
    }
    effect.detail = Some(match integration.on_cancel {
        CancelPolicy::ExpireAtPeriodEnd => "renewals stop; the licences run until they expire".into(),
        CancelPolicy::Suspend => format!("{} active licence(s) suspended", effect.licences.len()),
        CancelPolicy::Revoke => format!("{} licence(s) revoked", effect.licences.len()),
    });
    Ok(effect)
}
