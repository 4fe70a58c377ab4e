use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::common::{ListConnection, connection};
use crate::graphql::types::generator::{CreateGeneratorInput, Generator, KeyFormatPreview};
use crate::services::generators;
use crate::services::pagination::PageArgs;
use async_graphql::{Context, ID, Object, Result};

#[derive(Default)]
pub struct GeneratorQuery;

#[Object]
impl GeneratorQuery {
    /// Key formats, by name.
    #[graphql(
        guard = "RoleGuard::new(may::READ)",
        complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn generators(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ListConnection<Generator>> {
        let (state, rc) = request(ctx)?;
        let args = PageArgs::parse(first, after)?;
        let want_total = ctx.look_ahead().field("totalCount").exists();
        Ok(connection(generators::list(&state.db, rc, &args, want_total).await?, Generator))
    }

    /// The keys `input` would make, checked as `createGenerator` checks it
    /// (the name may be empty) but not saved: for forms that show an example
    /// and the bits count while a format is being chosen.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn key_format_preview(&self, ctx: &Context<'_>, input: CreateGeneratorInput) -> Result<KeyFormatPreview> {
        let (_, rc) = request(ctx)?;
        let model = generators::preview(rc, input.into())?;
        let spec = generators::spec(&model).map_err(crate::error::AppError::from)?;
        let mut rng = rand::rng();
        Ok(KeyFormatPreview {
            bits: (spec.bits() * 10.0).round() / 10.0,
            examples: (0..3).map(|_| spec.generate(&mut rng)).collect(),
        })
    }

    #[graphql(guard = "RoleGuard::new(may::READ)")]
    async fn generator(&self, ctx: &Context<'_>, id: ID) -> Result<Generator> {
        let (state, rc) = request(ctx)?;
        Ok(Generator(generators::get(&state.db, rc, &id).await?))
    }
}
