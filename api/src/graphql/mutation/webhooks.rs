use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::webhook::{
    CreateWebhookEndpointInput, CreateWebhookEndpointPayload, DeleteWebhookEndpointInput, DeleteWebhookEndpointPayload,
    RedeliverWebhookInput, UpdateWebhookEndpointInput, WebhookDeliveryPayload, WebhookEndpointPayload,
};
use crate::services::limits;
use crate::services::webhooks::{self, EndpointPatch};
use async_graphql::{Context, ID, Object, Result};

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Creates an endpoint (admin); the answer shows its signing secret, once.
    #[graphql(guard = "RoleGuard::new(may::ADMINISTER)")]
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookEndpointInput,
    ) -> Result<CreateWebhookEndpointPayload> {
        let (state, rc) = request(ctx)?;
        limits::at_most("url", &input.url, limits::URL)?;
        let allow = state.webhooks_may_reach_private().await?;
        let created = webhooks::create(&state.db, rc, allow, &input.url, &input.events, input.enabled).await?;
        Ok(CreateWebhookEndpointPayload { endpoint: created.endpoint.into(), secret: created.secret })
    }

    #[graphql(guard = "RoleGuard::new(may::ADMINISTER)")]
    async fn update_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: UpdateWebhookEndpointInput,
    ) -> Result<WebhookEndpointPayload> {
        let (state, rc) = request(ctx)?;
        if let Some(url) = &input.url {
            limits::at_most("url", url, limits::URL)?;
        }
        let patch = EndpointPatch { url: input.url, events: input.events, enabled: input.enabled };
        let allow = state.webhooks_may_reach_private().await?;
        Ok(WebhookEndpointPayload { endpoint: webhooks::update(&state.db, rc, allow, &input.id, patch).await?.into() })
    }

    /// Deletes an endpoint and its deliveries (admin).
    #[graphql(guard = "RoleGuard::new(may::ADMINISTER)")]
    async fn delete_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: DeleteWebhookEndpointInput,
    ) -> Result<DeleteWebhookEndpointPayload> {
        let (state, rc) = request(ctx)?;
        Ok(DeleteWebhookEndpointPayload { deleted_id: ID(webhooks::delete(&state.db, rc, &input.id).await?) })
    }

    /// Sends a delivery again, with the same event id (admin).
    #[graphql(guard = "RoleGuard::new(may::ADMINISTER)")]
    async fn redeliver_webhook(
        &self,
        ctx: &Context<'_>,
        input: RedeliverWebhookInput,
    ) -> Result<WebhookDeliveryPayload> {
        let (state, rc) = request(ctx)?;
        let delivery = webhooks::redeliver(&state.db, rc, &input.id).await?;
        state.events_written.notify_one();
        Ok(WebhookDeliveryPayload { delivery: delivery.into() })
    }
}
