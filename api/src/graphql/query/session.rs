use crate::auth::{Viewer, may};
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::common::{ListConnection, connection};
use crate::graphql::types::session::{Me, StaffUser};
use crate::services::pagination::PageArgs;
use crate::services::users;
use async_graphql::{Context, Object, Result};

#[derive(Default)]
pub struct SessionQuery;

#[Object]
impl SessionQuery {
    /// The caller: role, environment and, for staff, the account.
    async fn me(&self, ctx: &Context<'_>) -> Result<Me> {
        let (state, rc) = request(ctx)?;
        let user = match &rc.viewer {
            Viewer::Staff { user_id, .. } => users::get(&state.db, user_id).await?.map(StaffUser),
            _ => None,
        };
        Ok(Me { role: rc.viewer.role().into(), environment: rc.environment.into(), user })
    }

    /// Staff accounts, oldest first (admin).
    #[graphql(
        guard = "RoleGuard::new(may::ADMINISTER)",
        complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ListConnection<StaffUser>> {
        let (state, rc) = request(ctx)?;
        let args = PageArgs::parse(first, after)?;
        let want_total = ctx.look_ahead().field("totalCount").exists();
        Ok(connection(users::list(&state.db, rc, &args, want_total).await?, StaffUser))
    }
}
