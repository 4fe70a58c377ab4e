use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::settings::Settings;
use crate::services::settings;
use async_graphql::{Context, Object, Result};

#[derive(Default)]
pub struct SettingsQuery;

#[Object]
impl SettingsQuery {
    /// Server-wide settings (admin).
    #[graphql(guard = "RoleGuard::new(may::ADMINISTER)")]
    async fn settings(&self, ctx: &Context<'_>) -> Result<Settings> {
        let (state, rc) = request(ctx)?;
        Ok(settings::get(&state.db, rc).await?.into())
    }
}
