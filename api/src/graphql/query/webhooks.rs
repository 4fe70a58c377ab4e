use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::common::{ListConnection, connection};
use crate::graphql::types::webhook::{WebhookDelivery, WebhookEndpoint};
use crate::services::limits;
use crate::services::pagination::PageArgs;
use crate::services::webhooks;
use async_graphql::{Context, ID, Object, Result};

#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// Every event an endpoint may subscribe to (admin).
    #[graphql(guard = "RoleGuard::new(may::ADMINISTER)")]
    async fn webhook_event_types(&self) -> Vec<&'static str> {
        crate::services::events::EventKind::ALL.iter().map(|k| k.as_str()).collect()
    }

    /// The environment's webhook endpoints, oldest first (admin).
    #[graphql(
        guard = "RoleGuard::new(may::ADMINISTER)",
        complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn webhook_endpoints(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ListConnection<WebhookEndpoint>> {
        let (state, rc) = request(ctx)?;
        let args = PageArgs::parse(first, after)?;
        let want_total = ctx.look_ahead().field("totalCount").exists();
        Ok(connection(webhooks::list(&state.db, rc, &args, want_total).await?, WebhookEndpoint::from))
    }

    /// Deliveries of the environment's endpoints, newest first (admin);
    /// `status` (at most 100 characters) picks one status.
    #[graphql(
        guard = "RoleGuard::new(may::ADMINISTER)",
        complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        endpoint_id: Option<ID>,
        status: Option<String>,
    ) -> Result<ListConnection<WebhookDelivery>> {
        let (state, rc) = request(ctx)?;
        let args = PageArgs::parse(first, after)?;
        let want_total = ctx.look_ahead().field("totalCount").exists();
        let page = webhooks::deliveries(
            &state.db,
            rc,
            endpoint_id.as_ref().map(|id| id.as_str()),
            limits::filter_word("status", status.as_deref())?,
            &args,
            want_total,
        )
        .await?;
        Ok(connection(page, WebhookDelivery::from))
    }
}
