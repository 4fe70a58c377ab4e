use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::generator::{
    CreateGeneratorInput, DeleteGeneratorInput, DeleteGeneratorPayload, Generator, GeneratorPayload,
    UpdateGeneratorInput,
};
use crate::services::generators;
use async_graphql::{Context, Object, Result};

#[derive(Default)]
pub struct GeneratorMutation;

#[Object]
impl GeneratorMutation {
    /// Creates a key format; formats with less than 80 bits of randomness are refused.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn create_generator(&self, ctx: &Context<'_>, input: CreateGeneratorInput) -> Result<GeneratorPayload> {
        let (state, rc) = request(ctx)?;
        let created = generators::create(&state.db, rc, input.into()).await?;
        Ok(GeneratorPayload { generator: Generator(created) })
    }

    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn update_generator(&self, ctx: &Context<'_>, input: UpdateGeneratorInput) -> Result<GeneratorPayload> {
        let (state, rc) = request(ctx)?;
        let id = input.id.0.clone();
        let updated = generators::update(&state.db, rc, &id, input.into()).await?;
        Ok(GeneratorPayload { generator: Generator(updated) })
    }

    /// Deletes a generator that no product delivers with.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn delete_generator(&self, ctx: &Context<'_>, input: DeleteGeneratorInput) -> Result<DeleteGeneratorPayload> {
        let (state, rc) = request(ctx)?;
        generators::delete(&state.db, rc, &input.id).await?;
        Ok(DeleteGeneratorPayload { deleted_id: input.id })
    }
}
