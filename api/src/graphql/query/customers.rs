use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::common::{ListConnection, connection};
use crate::graphql::types::customer::{Customer, CustomerOrder, CustomerOrderField};
use crate::services::customers::{self, CustomerOrderField as Field};
use crate::services::pagination::PageArgs;
use async_graphql::{Context, ID, Object, Result};

#[derive(Default)]
pub struct CustomerQuery;

#[Object]
impl CustomerQuery {
    /// Customers of the request's environment; `search` (at most 256
    /// characters, every character taken literally) matches any part of the
    /// email or name, any case.
    #[graphql(
        guard = "RoleGuard::new(may::READ)",
        complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn customers(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        search: Option<String>,
        order_by: Option<CustomerOrder>,
    ) -> Result<ListConnection<Customer>> {
        let (state, rc) = request(ctx)?;
        let args = PageArgs::parse(first, after)?;
        let order = order_by
            .map(|o| {
                let field = match o.field {
                    CustomerOrderField::Email => Field::Email,
                    CustomerOrderField::Name => Field::Name,
                    CustomerOrderField::CreatedAt => Field::CreatedAt,
                };
                (field, o.direction.descending())
            })
            .unwrap_or((Field::CreatedAt, true));
        let want_total = ctx.look_ahead().field("totalCount").exists();
        let page = customers::list(&state.db, rc, search.as_deref(), order, &args, want_total).await?;
        Ok(connection(page, Customer))
    }

    #[graphql(guard = "RoleGuard::new(may::READ)")]
    async fn customer(&self, ctx: &Context<'_>, id: ID) -> Result<Customer> {
        let (state, rc) = request(ctx)?;
        Ok(Customer(customers::get(&state.db, rc, &id).await?))
    }
}
