use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::common::{ListConnection, connection};
use crate::graphql::types::pool::{
    LicenseKey, LicenseKeyFilter, LicenseKeyOrder, Tag, TagOrder, TagOrderField, list_keys,
};
use crate::services::pagination::PageArgs;
use crate::services::tags::{self, TagOrder as ServiceTagOrder, TagOrderField as ServiceField};
use async_graphql::{Context, ID, Object, Result};

#[derive(Default)]
pub struct PoolQuery;

#[Object]
impl PoolQuery {
    /// Every pool with its figures, the system tags `auto-generated` and `no tag` included;
    /// `search` (at most 256 characters) matches any part of the name.
    #[graphql(
        guard = "RoleGuard::new(may::READ)",
        complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn tags(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        search: Option<String>,
        order_by: Option<TagOrder>,
    ) -> Result<ListConnection<Tag>> {
        let (state, rc) = request(ctx)?;
        let args = PageArgs::parse(first, after)?;
        let order = order_by
            .map(|o| ServiceTagOrder {
                field: match o.field {
                    TagOrderField::Name => ServiceField::Name,
                    TagOrderField::Remaining => ServiceField::Remaining,
                },
                descending: o.direction.descending(),
            })
            .unwrap_or_default();
        let page = tags::overview(&state.db, rc, search.as_deref(), order, &args).await?;
        Ok(connection(page, Tag))
    }

    /// The pools at or past the exhaustion threshold (`settings {
    /// exhaustionThreshold }`), fullest first: the seller's tags and "no tag"
    /// (never `auto-generated`, never an empty pool). What a dashboard warns of.
    #[graphql(guard = "RoleGuard::new(may::READ)")]
    async fn pools_running_low(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> {
        let (state, rc) = request(ctx)?;
        Ok(tags::running_low(&state.db, rc).await?.into_iter().map(Tag).collect())
    }

    /// One pool; `no-tag` is the keys without any tag.
    #[graphql(guard = "RoleGuard::new(may::READ)")]
    async fn tag(&self, ctx: &Context<'_>, id: ID) -> Result<Tag> {
        let (state, rc) = request(ctx)?;
        Ok(Tag(tags::stats(&state.db, rc, &id).await?))
    }

    /// Licence keys of the request's environment, newest first unless `orderBy` says otherwise.
    #[graphql(
        guard = "RoleGuard::new(may::READ)",
        complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn license_keys(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<LicenseKeyFilter>,
        order_by: Option<LicenseKeyOrder>,
    ) -> Result<ListConnection<LicenseKey>> {
        list_keys(ctx, first, after, filter.unwrap_or_default().into_filter()?, order_by).await
    }
}
