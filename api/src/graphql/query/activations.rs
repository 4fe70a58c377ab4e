//! Devices using licences, and the key offline licence files are checked against.

use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::common::{ListConnection, connection};
use crate::graphql::types::pool::Activation;
use crate::graphql::types::validation::{OfflineLicenseFile, OfflinePublicKey};
use crate::services::activations::{self, ActivationFilter as Filter};
use crate::services::offline;
use crate::services::pagination::PageArgs;
use async_graphql::{Context, ID, InputObject, Object, Result};

#[derive(Debug, Default, InputObject)]
pub struct ActivationFilter {
    pub license_id: Option<ID>,
    pub product_id: Option<ID>,
    /// Staff only: a customer always sees their own.
    pub customer_id: Option<ID>,
    /// `true`: devices in use; `false`: ended ones; omitted: both.
    pub live: Option<bool>,
}

#[derive(Default)]
pub struct ActivationQuery;

#[Object]
impl ActivationQuery {
    /// Devices that used licences, newest first: staff see the environment's,
    /// a customer their own licences'.
    #[graphql(
        guard = "RoleGuard::new(may::READ_OWN)",
        complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn activations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<ActivationFilter>,
    ) -> Result<ListConnection<Activation>> {
        let (state, rc) = request(ctx)?;
        let args = PageArgs::parse(first, after)?;
        let f = filter.unwrap_or_default();
        let filter = Filter {
            license_id: f.license_id.map(|id| id.0),
            product_id: f.product_id.map(|id| id.0),
            customer_id: f.customer_id.map(|id| id.0),
            live: f.live,
        };
        let want_total = ctx.look_ahead().field("totalCount").exists();
        let page = activations::list(&state.db, rc, &filter, &args, want_total).await?;
        Ok(connection(page, Activation::from))
    }

    /// A licence's offline file, signed now: staff for any licence, a
    /// customer for their own. The file holds the whole key, so a customer's
    /// download counts as the key's reveal, as `revealLicenseKey` does.
    #[graphql(guard = "RoleGuard::new(may::READ_OWN)")]
    async fn offline_license_file(&self, ctx: &Context<'_>, license_id: ID) -> Result<OfflineLicenseFile> {
        let (state, rc) = request(ctx)?;
        Ok(offline::for_licence(&state.db, rc, &state.offline, &license_id).await?.into())
    }

    /// The public key offline licence files are signed with (also served at
    /// `GET /offline-licence/public-key`). No login needed.
    #[graphql(guard = "RoleGuard::new(may::ANYONE)")]
    async fn offline_public_key(&self, ctx: &Context<'_>) -> Result<OfflinePublicKey> {
        let (state, _) = request(ctx)?;
        Ok(OfflinePublicKey {
            algorithm: offline::ALGORITHM.to_string(),
            key_id: state.offline.key_id().to_string(),
            public_key: state.offline.public_key_base64(),
            pem: state.offline.public_key_pem()?,
        })
    }
}
