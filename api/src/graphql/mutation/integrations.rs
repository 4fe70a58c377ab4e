use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::query::integrations::complete;
use crate::graphql::request;
use crate::graphql::types::integration::{
    CreateIntegrationInput, DeleteIntegrationInput, DeleteIntegrationPayload, IntegrationEvent,
    IntegrationEventPayload, IntegrationPayload, ReplayIntegrationEventInput, UpdateIntegrationInput,
};
use crate::services::integrations;
use async_graphql::{Context, ID, Object, Result};

#[derive(Default)]
pub struct IntegrationMutation;

#[Object]
impl IntegrationMutation {
    /// Connects a payment provider or shop (admin). Give the provider the
    /// integration's `inboundUrl`; the secret is never shown again.
    #[graphql(guard = "RoleGuard::new(may::ADMINISTER)")]
    async fn create_integration(&self, ctx: &Context<'_>, input: CreateIntegrationInput) -> Result<IntegrationPayload> {
        let (state, rc) = request(ctx)?;
        let (provider, settings) = input.settings();
        let created = integrations::create(&state.db, rc, provider, settings).await?;
        Ok(IntegrationPayload { integration: complete(&state.db, vec![created]).await?.remove(0) })
    }

    #[graphql(guard = "RoleGuard::new(may::ADMINISTER)")]
    async fn update_integration(&self, ctx: &Context<'_>, input: UpdateIntegrationInput) -> Result<IntegrationPayload> {
        let (state, rc) = request(ctx)?;
        let (id, settings) = input.settings();
        let updated = integrations::update(&state.db, rc, &id, settings).await?;
        Ok(IntegrationPayload { integration: complete(&state.db, vec![updated]).await?.remove(0) })
    }

    /// Deletes an integration with its mappings and events (admin); the orders it placed stay.
    #[graphql(guard = "RoleGuard::new(may::ADMINISTER)")]
    async fn delete_integration(
        &self,
        ctx: &Context<'_>,
        input: DeleteIntegrationInput,
    ) -> Result<DeleteIntegrationPayload> {
        let (state, rc) = request(ctx)?;
        Ok(DeleteIntegrationPayload { deleted_id: ID(integrations::delete(&state.db, rc, &input.id).await?) })
    }

    /// Acts again on an event that needed attention, failed or arrived while
    /// the integration was disabled, with today's mappings and policies (admin).
    #[graphql(guard = "RoleGuard::new(may::ADMINISTER)")]
    async fn replay_integration_event(
        &self,
        ctx: &Context<'_>,
        input: ReplayIntegrationEventInput,
    ) -> Result<IntegrationEventPayload> {
        let (state, rc) = request(ctx)?;
        if input.id.len() > 26 {
            return Err(crate::error::AppError::not_found_in("integration event", "id").into());
        }
        let event = integrations::replay(state, rc, &input.id).await?;
        Ok(IntegrationEventPayload { event: IntegrationEvent(event) })
    }
}
