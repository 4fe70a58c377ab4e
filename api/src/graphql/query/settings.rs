use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::validation::{LicensePreview, Settings};
use crate::services::{licenses, settings};
use async_graphql::{Context, ID, Object, Result};

#[derive(Default)]
pub struct SettingsQuery;

#[Object]
impl SettingsQuery {
    /// A licence with its activation history and ready-to-run validation
    /// samples. With `previewRequiresRecentSignIn` set, only a token issued in
    /// the last five minutes may open it (`UNAUTHENTICATED` otherwise).
    #[graphql(guard = "RoleGuard::new(may::READ)")]
    async fn license_preview(&self, ctx: &Context<'_>, id: ID) -> Result<LicensePreview> {
        let (state, rc) = request(ctx)?;
        Ok(licenses::preview(&state.db, rc, state.config.public_url.as_deref(), &id).await?.into())
    }

    /// Server-wide settings (admin).
    #[graphql(guard = "RoleGuard::new(may::ADMINISTER)")]
    async fn settings(&self, ctx: &Context<'_>) -> Result<Settings> {
        let (state, rc) = request(ctx)?;
        Ok(settings::get(&state.db, rc).await?.into())
    }
}
