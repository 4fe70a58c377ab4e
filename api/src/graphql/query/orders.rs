use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::common::ListConnection;
use crate::graphql::types::order::{Order, OrderFilter, OrderOrder, list_orders};
use crate::services::orders;
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
        Ok(Order(orders::get(&state.db, rc, &id).await?))
    }
}
