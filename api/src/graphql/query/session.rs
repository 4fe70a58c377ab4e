use crate::auth::Viewer;
use crate::graphql::request;
use crate::graphql::types::session::{Me, StaffUser};
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
}
