use crate::auth::{Viewer, may};
use crate::error::AppError;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::portal::{
    CreatePortalLinkInput, PortalLinkPayload, PortalSessionPayload, RequestPortalLinkInput, RequestPortalLinkPayload,
    RevealLicenseKeyInput, RevealLicenseKeyPayload, SignInWithPortalLinkInput,
};
use crate::graphql::types::session::SignOutPayload;
use crate::services::{own, portal};
use async_graphql::{Context, Object, Result};

#[derive(Default)]
pub struct PortalMutation;

#[Object]
impl PortalMutation {
    /// Emails a single-use portal sign-in link, valid 15 minutes, to the
    /// customer with this email. The answer is the same whether or not the
    /// email is known. Limited per client address and per email (`RATE_LIMITED`).
    #[graphql(guard = "RoleGuard::new(may::ANYONE)")]
    async fn request_portal_link(
        &self,
        ctx: &Context<'_>,
        input: RequestPortalLinkInput,
    ) -> Result<RequestPortalLinkPayload> {
        let (state, rc) = request(ctx)?;
        if let Err(limited) = state.login_limits.check(rc.client_address, &input.email) {
            return Err(AppError::RateLimited { retry_after_secs: limited.retry_after_seconds() }.into());
        }
        portal::request_link(&state.db, rc, &input.email, &state.config.address_for_links()).await?;
        Ok(RequestPortalLinkPayload {
            message:
                "If this email belongs to a customer, a sign-in link is on its way. It works once, for 15 minutes."
                    .into(),
        })
    }

    /// A single-use portal sign-in link for a customer, valid 24 hours, for
    /// staff to hand over or, with `sendEmail`, to email to the customer
    /// (support and up).
    #[graphql(guard = "RoleGuard::new(may::SWITCH)")]
    async fn create_portal_link(&self, ctx: &Context<'_>, input: CreatePortalLinkInput) -> Result<PortalLinkPayload> {
        let (state, rc) = request(ctx)?;
        let base = state.config.address_for_staff(rc.host.as_deref());
        // An emailed link never takes the request's Host.
        let email_base = input.send_email.then(|| state.config.address_for_links());
        let (url, expires_at) =
            portal::create_link(&state.db, rc, &input.customer_id, &base, email_base.as_deref()).await?;
        Ok(PortalLinkPayload { url, expires_at })
    }

    /// Spends a portal link's token and opens a session: the answer's token
    /// acts as the customer. An unknown, used or expired link is refused.
    #[graphql(guard = "RoleGuard::new(may::ANYONE)")]
    async fn sign_in_with_portal_link(
        &self,
        ctx: &Context<'_>,
        input: SignInWithPortalLinkInput,
    ) -> Result<PortalSessionPayload> {
        let (state, _) = request(ctx)?;
        let session = portal::sign_in(&state.db, &state.jwt, &input.token).await?;
        Ok(PortalSessionPayload { token: session.token, expires_at: session.expires_at })
    }

    /// Shows the whole key of a licence: a customer's own (the first reveal of
    /// an uploaded key marks it ACTIVE, in use), or any for staff, which
    /// changes nothing.
    #[graphql(guard = "RoleGuard::new(may::READ_OWN)")]
    async fn reveal_license_key(
        &self,
        ctx: &Context<'_>,
        input: RevealLicenseKeyInput,
    ) -> Result<RevealLicenseKeyPayload> {
        let (state, rc) = request(ctx)?;
        Ok(RevealLicenseKeyPayload { licence: own::reveal(&state.db, rc, &input.license_id).await? })
    }

    /// Ends the caller's portal session; its token stops working at once.
    /// Staff have no portal session (theirs end with `signOut`).
    #[graphql(guard = "RoleGuard::new(may::READ_OWN)")]
    async fn sign_out_of_portal(&self, ctx: &Context<'_>) -> Result<SignOutPayload> {
        let (state, rc) = request(ctx)?;
        let signed_out = matches!(rc.viewer, Viewer::Customer { .. }) && rc.session_id.is_some();
        if signed_out {
            portal::sign_out(&state.db, rc).await?;
        }
        Ok(SignOutPayload { signed_out })
    }
}
