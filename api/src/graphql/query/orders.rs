use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::common::{ListConnection, connection};
use crate::graphql::types::order::{Order, OrderFilter, OrderOrder, list_orders};
use crate::graphql::types::pool::LicenseKey;
use crate::services::pagination::PageArgs;
use crate::services::{fulfilment, orders};
use async_graphql::{Context, ID, Object, Result};

#[derive(Default)]
pub struct OrderQuery;

#[Object]
impl OrderQuery {
    /// Orders of the request's environment, newest first unless `orderBy` says otherwise.
    #[graphql(
        guard = "RoleGuard::new(may::READ)",
        complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<OrderFilter>,
        order_by: Option<OrderOrder>,
    ) -> Result<ListConnection<Order>> {
        list_orders(ctx, first, after, filter.unwrap_or_default(), order_by).await
    }

    #[graphql(guard = "RoleGuard::new(may::READ)")]
    async fn order(&self, ctx: &Context<'_>, id: ID) -> Result<Order> {
        let (state, rc) = request(ctx)?;
        Ok(Order::from(orders::get(&state.db, rc, &id).await?))
    }

    /// The AVAILABLE keys an order line could be given (its product's pool,
    /// deliverable to that product), searchable by any part of the key (`search`:
    /// at most 256 characters), in the order automatic delivery takes them: the
    /// first is the one it would take next.
    #[graphql(
        guard = "RoleGuard::new(may::READ)",
        complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn available_keys_for_line(
        &self,
        ctx: &Context<'_>,
        line_id: ID,
        search: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ListConnection<LicenseKey>> {
        let (state, rc) = request(ctx)?;
        let args = PageArgs::parse(first, after)?;
        let page = fulfilment::available_for_line(&state.db, rc, &line_id, search, &args).await?;
        Ok(connection(page, LicenseKey::from))
    }
}
