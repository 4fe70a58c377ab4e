use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::loaders::{KeyFields, KeyPrefetch};
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
        // What the query asks of the licence is read now, not through the
        // loaders, whose batches wait for more keys to come; its product in
        // the same statement as the licence.
        let fields = KeyFields::selected(&ctx.look_ahead());
        let (key, product) = match fields.product {
            true => licenses::get_with_product(&state.db, rc, &id).await?,
            false => (licenses::get(&state.db, rc, &id).await?, None),
        };
        let rest = KeyFields { product: false, ..fields };
        let mut prefetch = KeyPrefetch::load(&state.db, std::slice::from_ref(&key), rest).await?;
        if fields.product {
            prefetch.products = Some(product.map(|p| (p.id.clone(), p)).into_iter().collect());
        }
        Ok(LicenseKey(key, Some(std::sync::Arc::new(prefetch))))
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
