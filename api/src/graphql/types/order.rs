//! Orders as staff see them: lines, the keys each line was given, the customer.

use super::common::{ListConnection, OrderDirection, connection};
use super::customer::Customer;
use super::pool::{LicenseKey, loaders};
use super::product::Product;
use crate::graphql::request;
use crate::services::fulfilment::{NewLine, NewOrder, Reassignment};
use crate::services::orders::{self, OrderFilter as ServiceFilter};
use crate::services::pagination::PageArgs;
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{order, order_line};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "order::OrderStatus")]
pub enum OrderStatus {
    /// No line has a key yet.
    Waiting,
    PartiallyFulfilled,
    Fulfilled,
    Refunded,
}

/// An order; `lines` carries the order's lines and their keys when the
/// request that placed the order has them already (answered without reading
/// them again, and without the loaders' wait for a batch).
pub struct Order(pub order::Model, pub Option<Vec<OrderLine>>);

impl From<order::Model> for Order {
    fn from(order: order::Model) -> Self {
        Order(order, None)
    }
}

impl Order {
    /// The order with its lines and each line's keys, as placed.
    pub fn placed(order: order::Model, lines: Vec<(order_line::Model, Vec<entity::license_key::Model>)>) -> Self {
        let lines = lines.into_iter().map(|(line, keys)| OrderLine(line, Some(keys))).collect();
        Order(order, Some(lines))
    }
}

#[Object]
impl Order {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// The seller's own id for the order.
    async fn external_id(&self) -> &str {
        &self.0.external_id
    }
    async fn status(&self) -> OrderStatus {
        self.0.status.into()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn refunded_at(&self) -> Option<DateTime<Utc>> {
        self.0.refunded_at
    }
    async fn customer(&self, ctx: &Context<'_>) -> Result<Option<Customer>> {
        Ok(loaders(ctx)?.customers.load_one(self.0.customer_id.clone()).await?.map(Customer))
    }
    async fn lines(&self, ctx: &Context<'_>) -> Result<Vec<OrderLine>> {
        if let Some(lines) = &self.1 {
            return Ok(lines.clone());
        }
        let lines = loaders(ctx)?.lines_of_order.load_one(self.0.id.clone()).await?.unwrap_or_default();
        Ok(lines.into_iter().map(OrderLine::from).collect())
    }
}

/// One product and quantity of an order; with its keys when they are known
/// already (see [`Order`]).
#[derive(Clone)]
pub struct OrderLine(pub order_line::Model, pub Option<Vec<entity::license_key::Model>>);

impl From<order_line::Model> for OrderLine {
    fn from(line: order_line::Model) -> Self {
        OrderLine(line, None)
    }
}

#[Object]
impl OrderLine {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn quantity(&self) -> i32 {
        self.0.quantity
    }
    /// Units still waiting for a key.
    async fn missing(&self) -> i32 {
        self.0.missing
    }
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<Product>> {
        Ok(loaders(ctx)?.products.load_one(self.0.product_id.clone()).await?.map(Product))
    }
    /// The licence this line renews, if it is a renewal.
    async fn renews(&self, ctx: &Context<'_>) -> Result<Option<LicenseKey>> {
        let Some(id) = &self.0.renews_license_id else {
            return Ok(None);
        };
        Ok(super::pool::licence_named(ctx, id).await?.map(LicenseKey::from))
    }
    /// What renewing did: the licence runs longer, or it had expired and the
    /// line delivers a new key in its place.
    async fn renewal_outcome(&self) -> Option<RenewalOutcome> {
        RenewalOutcome::of(&self.0)
    }
    /// The keys delivered on this line.
    async fn keys(&self, ctx: &Context<'_>) -> Result<Vec<LicenseKey>> {
        if let Some(keys) = &self.1 {
            return Ok(keys.iter().cloned().map(LicenseKey::from).collect());
        }
        let keys = loaders(ctx)?.keys_of_line.load_one(self.0.id.clone()).await?.unwrap_or_default();
        Ok(keys.into_iter().map(LicenseKey::from).collect())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum RenewalOutcome {
    /// The licence was extended by the product's renewal period.
    Extended,
    /// The licence had expired: the line delivers a new key (`renewedFrom` names the old one).
    Reissued,
}

impl RenewalOutcome {
    /// What renewing did on `line`, when it renews a licence.
    pub fn of(line: &order_line::Model) -> Option<Self> {
        match line.renewal_outcome.as_deref()? {
            "EXTENDED" => Some(RenewalOutcome::Extended),
            "REISSUED" => Some(RenewalOutcome::Reissued),
            _ => None,
        }
    }
}

#[derive(Debug, Default, InputObject)]
pub struct OrderFilter {
    /// Any part of the external id or of the customer's email, any case; at
    /// most 256 characters, every character taken literally.
    pub search: Option<String>,
    pub status: Option<OrderStatus>,
    pub customer_id: Option<ID>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum OrderOrderField {
    CreatedAt,
}

#[derive(Debug, InputObject)]
pub struct OrderOrder {
    pub field: OrderOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

/// A page of orders, newest first unless `order_by` says otherwise.
pub(crate) async fn list_orders(
    ctx: &Context<'_>,
    first: Option<i32>,
    after: Option<String>,
    filter: OrderFilter,
    order_by: Option<OrderOrder>,
) -> Result<ListConnection<Order>> {
    let (state, rc) = request(ctx)?;
    let args = PageArgs::parse(first, after)?;
    let descending = order_by.is_none_or(|o| o.direction.descending());
    let filter = ServiceFilter {
        search: filter.search,
        status: filter.status.map(Into::into),
        customer_id: filter.customer_id.map(|id| id.0),
    };
    let want_total = ctx.look_ahead().field("totalCount").exists();
    let page = orders::list(&state.db, rc, &filter, descending, &args, want_total).await?;
    Ok(connection(page, Order::from))
}

impl std::fmt::Debug for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Order").field(&self.0.id).finish()
    }
}

#[derive(Debug, InputObject)]
pub struct OrderCustomerInput {
    /// The customer is found by this email, or created with it; at most 254 characters.
    pub email: String,
    /// Used when the customer is created (or has no name yet); up to 200 characters.
    pub name: Option<String>,
}

#[derive(Debug, InputObject)]
pub struct OrderLineInput {
    pub product_id: ID,
    /// 1–1000 units; each gets one key.
    pub quantity: i32,
    /// A licence of this product and customer that this line renews (its
    /// quantity 1): extended by the product's renewal period, or, once
    /// expired, replaced by a new key (`renewedFrom`).
    pub renews: Option<ID>,
}

#[derive(Debug, InputObject)]
pub struct CreateOrderInput {
    /// The seller's own id for the order, 1–200 characters. Sending it again
    /// with the same customer email and lines returns the stored order;
    /// with other content it is a `CONFLICT`.
    pub external_id: String,
    pub customer: OrderCustomerInput,
    /// 1–100 lines.
    pub lines: Vec<OrderLineInput>,
    /// Email the customer a link to their keys on the portal (single use,
    /// valid 7 days). Off when the seller sends their own email (hand over
    /// a link from `createPortalLink` then).
    #[graphql(default = true)]
    pub email_customer: bool,
}

impl From<CreateOrderInput> for NewOrder {
    fn from(i: CreateOrderInput) -> Self {
        NewOrder {
            external_id: i.external_id,
            email: i.customer.email,
            name: i.customer.name,
            portal_base: None,
            email_customer: i.email_customer,
            lines: i
                .lines
                .into_iter()
                .map(|l| NewLine {
                    product_id: l.product_id.0,
                    quantity: i64::from(l.quantity),
                    renews: l.renews.map(|r| r.0),
                })
                .collect(),
        }
    }
}

#[derive(SimpleObject)]
pub struct CreateOrderPayload {
    pub order: Order,
    /// False when the external id was known and the stored order is returned.
    pub created: bool,
}

/// What happens to the key taken off a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "crate::services::fulfilment::OldKey")]
pub enum OldKeyFate {
    /// Back to AVAILABLE; only for a key never activated or revealed.
    ReturnToPool,
    /// Retired from circulation (REVOKED).
    Revoke,
}

#[derive(Debug, InputObject)]
pub struct ReassignOrderKeyInput {
    pub line_id: ID,
    /// The key to replace. Without it the line gets one more key (it must have fewer keys than its quantity).
    pub license_id: Option<ID>,
    /// The key to give (from `availableKeysForLine`). Without it: the first available key of the
    /// line's pool, or a fresh key for an auto-generated product.
    pub new_license_id: Option<ID>,
    /// Without it: back to the pool if it was never activated or revealed, retired otherwise.
    pub old_key: Option<OldKeyFate>,
    /// Tell the customer about the new key by email. Default false.
    #[graphql(default)]
    pub notify_customer: bool,
}

impl From<ReassignOrderKeyInput> for Reassignment {
    fn from(i: ReassignOrderKeyInput) -> Self {
        Reassignment {
            line_id: i.line_id.0,
            license_id: i.license_id.map(|id| id.0),
            new_license_id: i.new_license_id.map(|id| id.0),
            old_key: i.old_key.map(Into::into),
            // The resolver fills in the portal's address when the customer is to be told.
            notify_customer: None,
        }
    }
}

#[derive(SimpleObject)]
pub struct ReassignOrderKeyPayload {
    pub line: OrderLine,
    /// The key now on the line.
    pub license: LicenseKey,
    /// The key it replaced, as it is now (AVAILABLE or REVOKED).
    pub previous: Option<LicenseKey>,
}

/// Where an unassigned key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "crate::services::fulfilment::UnassignTo")]
pub enum UnassignTarget {
    /// Back to the pool ("pending"), for a key never activated or revealed.
    Pool,
    /// Retired as used (REVOKED).
    Used,
}

#[derive(Debug, InputObject)]
pub struct UnassignLicenseInput {
    pub id: ID,
    pub to: UnassignTarget,
}

/// What a refund does with the order's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Enum)]
#[graphql(remote = "crate::services::fulfilment::RefundKeys")]
pub enum RefundKeys {
    /// The customer keeps them.
    #[default]
    Keep,
    /// Back to the pool; refused if one was activated or revealed.
    ReturnToPool,
    /// Keys never revealed nor activated go back to the pool; the others stay with the customer.
    ReturnUnrevealed,
    /// Retired (REVOKED).
    Revoke,
}

#[derive(Debug, InputObject)]
pub struct RefundOrderInput {
    pub id: ID,
    /// Default (or null): `KEEP`.
    pub keys: Option<RefundKeys>,
    /// Tell the customer by email. Default false.
    #[graphql(default)]
    pub notify_customer: bool,
}

#[derive(SimpleObject)]
pub struct OrderPayload {
    pub order: Order,
}

impl std::fmt::Debug for OrderLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("OrderLine").field(&self.0.id).finish()
    }
}
