use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::portal::{PortalAccount, PortalOrder};
use crate::services::own;
use async_graphql::{Context, Object, Result};

#[derive(Default)]
pub struct PortalQuery;

#[Object]
impl PortalQuery {
    /// The signed-in customer.
    #[graphql(guard = "RoleGuard::new(may::CUSTOMER)")]
    async fn my_account(&self, ctx: &Context<'_>) -> Result<PortalAccount> {
        let (state, rc) = request(ctx)?;
        Ok(PortalAccount(own::me(&state.db, rc).await?))
    }

    /// The signed-in customer's orders, newest first (the latest 100), with
    /// each line's licences and the devices they are active on.
    #[graphql(guard = "RoleGuard::new(may::CUSTOMER)", complexity = 50)]
    async fn my_orders(&self, ctx: &Context<'_>) -> Result<Vec<PortalOrder>> {
        let (state, rc) = request(ctx)?;
        Ok(own::orders(&state.db, rc).await?.into_iter().map(PortalOrder).collect())
    }
}
