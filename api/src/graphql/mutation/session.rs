use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::session::{LoginInput, LoginPayload, StaffUser};
use crate::services::users;
use async_graphql::{Context, Object, Result};

#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Signs a staff account in and returns a bearer token.
    #[graphql(guard = "RoleGuard::new(may::ANYONE)")]
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<LoginPayload> {
        let (state, _) = request(ctx)?;
        let ttl = state.config.token_ttl_seconds();
        let (issued, user) = users::login(&state.db, &state.jwt, ttl, &input.email, &input.password).await?;
        Ok(LoginPayload { token: issued.token, expires_at: issued.expires_at, user: StaffUser(user) })
    }
}
