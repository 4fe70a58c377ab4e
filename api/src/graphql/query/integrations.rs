use crate::auth::may;
use crate::error::AppResult;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::common::{ListConnection, connection};
use crate::graphql::types::integration::{Integration, IntegrationEvent, IntegrationEventOutcome};
use crate::services::integrations;
use crate::services::pagination::{Page, PageArgs};
use async_graphql::{Context, ID, Object, Result};
use entity::integration;
use sea_orm::DatabaseConnection;

#[derive(Default)]
pub struct IntegrationQuery;

/// Integrations with their mappings and attention counts, read for all of them at once.
pub async fn complete(db: &DatabaseConnection, found: Vec<integration::Model>) -> AppResult<Vec<Integration>> {
    let ids: Vec<String> = found.iter().map(|i| i.id.clone()).collect();
    let mut mappings = integrations::mappings_of(db, &ids).await?;
    let attention = integrations::needing_attention(db, &ids).await?;
    Ok(found
        .into_iter()
        .map(|model| Integration {
            mappings: mappings.remove(&model.id).unwrap_or_default(),
            needs_attention: attention.get(&model.id).copied().unwrap_or_default(),
            model,
        })
        .collect())
}

#[Object]
impl IntegrationQuery {
    /// The environment's integrations, oldest first (admin).
    #[graphql(
        guard = "RoleGuard::new(may::ADMINISTER)",
        complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn integrations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ListConnection<Integration>> {
        let (state, rc) = request(ctx)?;
        let args = PageArgs::parse(first, after)?;
        let want_total = ctx.look_ahead().field("totalCount").exists();
        let page = integrations::list(&state.db, rc, &args, want_total).await?;
        let (cursors, models): (Vec<String>, Vec<integration::Model>) = page.items.into_iter().unzip();
        let items = cursors.into_iter().zip(complete(&state.db, models).await?).collect();
        let page = Page {
            items,
            has_next_page: page.has_next_page,
            has_previous_page: page.has_previous_page,
            total_count: page.total_count,
        };
        Ok(connection(page, |i| i))
    }

    #[graphql(guard = "RoleGuard::new(may::ADMINISTER)")]
    async fn integration(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Integration>> {
        let (state, rc) = request(ctx)?;
        if id.len() > 26 {
            return Ok(None);
        }
        match integrations::get(&state.db, rc, &id).await {
            Ok(found) => Ok(complete(&state.db, vec![found]).await?.pop()),
            Err(crate::error::AppError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// An integration's events, newest first (admin); `outcome` picks one outcome.
    #[graphql(
        guard = "RoleGuard::new(may::ADMINISTER)",
        complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn integration_events(
        &self,
        ctx: &Context<'_>,
        integration_id: ID,
        outcome: Option<IntegrationEventOutcome>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ListConnection<IntegrationEvent>> {
        let (state, rc) = request(ctx)?;
        let args = PageArgs::parse(first, after)?;
        let want_total = ctx.look_ahead().field("totalCount").exists();
        if integration_id.len() > 26 {
            return Err(crate::error::AppError::not_found_in("integration", "integrationId").into());
        }
        let page =
            integrations::events(&state.db, rc, &integration_id, outcome.map(Into::into), &args, want_total).await?;
        Ok(connection(page, IntegrationEvent))
    }
}
