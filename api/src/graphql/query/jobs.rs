use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::common::{ListConnection, connection};
use crate::graphql::types::job::{Job, JobStatus};
use crate::services::jobs;
use crate::services::pagination::PageArgs;
use async_graphql::{Context, ID, Object, Result};

#[derive(Default)]
pub struct JobQuery;

#[Object]
impl JobQuery {
    /// Background jobs of the request's environment and the recurring jobs
    /// every environment shares, newest first; `kind` (at most 100 characters) picks one kind.
    #[graphql(
        guard = "RoleGuard::new(may::READ)",
        complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<JobStatus>,
        kind: Option<String>,
    ) -> Result<ListConnection<Job>> {
        let (state, rc) = request(ctx)?;
        let args = PageArgs::parse(first, after)?;
        let want_total = ctx.look_ahead().field("totalCount").exists();
        Ok(connection(
            jobs::list(&state.db, rc, status.map(Into::into), kind.as_deref(), &args, want_total).await?,
            Job,
        ))
    }

    #[graphql(guard = "RoleGuard::new(may::READ)")]
    async fn job(&self, ctx: &Context<'_>, id: ID) -> Result<Job> {
        let (state, rc) = request(ctx)?;
        Ok(Job(jobs::get(&state.db, rc, &id).await?))
    }
}
