use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::common::{ListConnection, connection};
use crate::graphql::types::product::{Product, ProductFilter, ProductOrder};
use crate::services::pagination::PageArgs;
use crate::services::products;
use async_graphql::{Context, ID, Object, Result};

#[derive(Default)]
pub struct ProductQuery;

#[Object]
impl ProductQuery {
    /// Products of the request's environment; newest first unless `orderBy` says otherwise.
    #[graphql(
        guard = "RoleGuard::new(may::READ)",
        complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn products(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<ProductFilter>,
        order_by: Option<ProductOrder>,
    ) -> Result<ListConnection<Product>> {
        let (state, rc) = request(ctx)?;
        let args = PageArgs::parse(first, after)?;
        let order = order_by
            .map(Into::into)
            .unwrap_or(products::ProductOrder { field: products::ProductOrderField::CreatedAt, descending: true });
        let want_total = ctx.look_ahead().field("totalCount").exists();
        let page = products::list(&state.db, rc, &filter.unwrap_or_default().into(), order, &args, want_total).await?;
        Ok(connection(page, Product))
    }

    /// One product of the request's environment (`NOT_FOUND` otherwise).
    #[graphql(guard = "RoleGuard::new(may::READ)")]
    async fn product(&self, ctx: &Context<'_>, id: ID) -> Result<Product> {
        let (state, rc) = request(ctx)?;
        Ok(Product(products::get(&state.db, rc, &id).await?))
    }
}
