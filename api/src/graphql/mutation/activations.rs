use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::pool::Activation;
use crate::services::activations;
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};

#[derive(Debug, InputObject)]
pub struct DeactivateActivationInput {
    pub id: ID,
}

#[derive(Debug, SimpleObject)]
pub struct ActivationPayload {
    pub activation: Activation,
}

#[derive(Default)]
pub struct ActivationMutation;

#[Object]
impl ActivationMutation {
    /// Ends a device's activation, freeing its slot: a customer's own, or
    /// (support and up) any. Ending an ended one changes nothing.
    #[graphql(guard = "RoleGuard::new(may::END_DEVICE)")]
    async fn deactivate_activation(
        &self,
        ctx: &Context<'_>,
        input: DeactivateActivationInput,
    ) -> Result<ActivationPayload> {
        let (state, rc) = request(ctx)?;
        Ok(ActivationPayload { activation: activations::deactivate_by_id(&state.db, rc, &input.id).await?.into() })
    }
}
