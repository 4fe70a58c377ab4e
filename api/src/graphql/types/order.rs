//! Orders as staff see them: lines, the keys each line was given, the customer.

use super::common::{ListConnection, OrderDirection, connection};
use super::customer::Customer;
use super::pool::{LicenseKey, loaders};
use super::product::Product;
use crate::graphql::request;
use crate::services::orders::{self, OrderFilter as ServiceFilter};
use crate::services::pagination::PageArgs;
use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
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

pub struct Order(pub order::Model);

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
        let lines = loaders(ctx)?.lines_of_order.load_one(self.0.id.clone()).await?.unwrap_or_default();
        Ok(lines.into_iter().map(OrderLine).collect())
    }
}

/// One product and quantity of an order.
pub struct OrderLine(pub order_line::Model);

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
    /// The keys delivered on this line.
    async fn keys(&self, ctx: &Context<'_>) -> Result<Vec<LicenseKey>> {
        let keys = loaders(ctx)?.keys_of_line.load_one(self.0.id.clone()).await?.unwrap_or_default();
        Ok(keys.into_iter().map(LicenseKey).collect())
    }
}

#[derive(Debug, Default, InputObject)]
pub struct OrderFilter {
    /// Any part of the external id or of the customer's email.
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
    Ok(connection(page, Order))
}

impl std::fmt::Debug for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Order").field(&self.0.id).finish()
    }
}
