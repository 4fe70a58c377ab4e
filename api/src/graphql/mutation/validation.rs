use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::validation::{ValidateLicenseInput, ValidationPayload};
use crate::services::validation;
use async_graphql::{Context, Object, Result};

#[derive(Default)]
pub struct ValidationMutation;

#[Object]
impl ValidationMutation {
    /// Is this key good (on this device)? For shipped software; no login.
    /// A bad key is an answer (`code`), not an error.
    #[graphql(guard = "RoleGuard::new(may::ANYONE)")]
    async fn validate_license(&self, ctx: &Context<'_>, input: ValidateLicenseInput) -> Result<ValidationPayload> {
        let (state, rc) = request(ctx)?;
        Ok(validation::validate(&state.db, rc, &input.key, input.fingerprint.as_deref()).await?.into())
    }
}
