use crate::auth::may;
use crate::error::AppError;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::session::{
    ChangePasswordInput, CreateUserInput, LoginInput, LoginPayload, SignOutPayload, StaffUser, TokenPayload,
    UpdateUserInput, UserPayload,
};
use crate::services::staff_sessions;
use crate::services::users::{self, AccountPatch};
use async_graphql::{Context, Object, Result};

#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Signs a staff account in and returns a bearer token; with `session`,
    /// the token of a new server-side session, which `signOut` ends. Attempts
    /// are limited per client address and per email (`RATE_LIMITED`).
    #[graphql(guard = "RoleGuard::new(may::ANYONE)")]
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<LoginPayload> {
        let (state, rc) = request(ctx)?;
        if let Err(limited) = state.login_limits.check(rc.client_address, &input.email) {
            return Err(AppError::RateLimited { retry_after_secs: limited.retry_after_seconds() }.into());
        }
        let ttl = state.config.token_ttl_seconds();
        let (issued, user) =
            users::login(&state.db, rc, &state.jwt, ttl, &input.email, &input.password, input.session).await?;
        Ok(LoginPayload { token: issued.token, expires_at: issued.expires_at, user: StaffUser(user) })
    }

    /// Ends the caller's staff session (opened by `login` with `session`):
    /// its token stops working at once. A bearer token without a session has
    /// nothing to end and answers `signedOut: false`.
    #[graphql(guard = "RoleGuard::new(may::READ)")]
    async fn sign_out(&self, ctx: &Context<'_>) -> Result<SignOutPayload> {
        let (state, rc) = request(ctx)?;
        Ok(SignOutPayload { signed_out: staff_sessions::sign_out(&state.db, rc).await? })
    }

    /// Creates a staff account (admin).
    #[graphql(guard = "RoleGuard::new(may::ADMINISTER)")]
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> Result<UserPayload> {
        let (state, rc) = request(ctx)?;
        let created = users::create(&state.db, rc, &input.email, &input.password, input.role.into()).await?;
        Ok(UserPayload { user: StaffUser(created) })
    }

    /// Changes a staff account's role, enabled state or password (admin).
    /// The account's existing tokens stop working at once.
    #[graphql(guard = "RoleGuard::new(may::ADMINISTER)")]
    async fn update_user(&self, ctx: &Context<'_>, input: UpdateUserInput) -> Result<UserPayload> {
        let (state, rc) = request(ctx)?;
        let patch =
            AccountPatch { role: input.role.map(Into::into), disabled: input.disabled, password: input.password };
        Ok(UserPayload { user: StaffUser(users::update(&state.db, rc, &input.id, patch).await?) })
    }

    /// Changes the signed-in staff member's password. Their other tokens and
    /// sessions stop working; the answer carries a fresh token (of the
    /// caller's session, which goes on, when they signed in with one).
    #[graphql(guard = "RoleGuard::new(may::READ)")]
    async fn change_password(&self, ctx: &Context<'_>, input: ChangePasswordInput) -> Result<TokenPayload> {
        let (state, rc) = request(ctx)?;
        let ttl = state.config.token_ttl_seconds();
        let issued =
            users::change_password(&state.db, rc, &state.jwt, ttl, &input.current_password, &input.new_password)
                .await?;
        Ok(TokenPayload { token: issued.token, expires_at: issued.expires_at })
    }
}
