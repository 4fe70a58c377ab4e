use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::pool::LicenseKey;
use crate::graphql::types::validation::LicensePreview;
use crate::services::licenses;
use async_graphql::{Context, ID, Object, Result};

#[derive(Default)]
pub struct LicenseQuery;

#[Object]
impl LicenseQuery {
    /// One licence of the request's environment.
    #[graphql(guard = "RoleGuard::new(may::READ)")]
    async fn license_key(&self, ctx: &Context<'_>, id: ID) -> Result<LicenseKey> {
        let (state, rc) = request(ctx)?;
        Ok(LicenseKey::from(licenses::get(&state.db, rc, &id).await?))
    }

    /// A licence with its activation history and ready-to-run validation
    /// samples. With `previewRequiresRecentSignIn` set, only a token issued in
    /// the last five minutes may open it (`UNAUTHENTICATED` otherwise).
    #[graphql(guard = "RoleGuard::new(may::READ)")]
    async fn license_preview(&self, ctx: &Context<'_>, id: ID) -> Result<LicensePreview> {
        let (state, rc) = request(ctx)?;
        let base_url = state.config.address_for_staff(rc.host.as_deref());
        Ok(licenses::preview(&state.db, rc, &state.offline, &base_url, &id).await?.into())
    }
}
