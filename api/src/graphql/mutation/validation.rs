//! What shipped software calls, with no login: validate, activate and
//! deactivate by key. A bad key is an answer (`code`), not an error; only
//! malformed input is an error. Each call, aliases included, spends one
//! call of the caller's rate-limit budgets.

use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::validation::{
    ActivateLicenseInput, DeactivateLicenseInput, ValidateLicenseInput, ValidationPayload,
};
use crate::services::activations::{self, Device};
use crate::services::validation::{self, ClientRules};
use async_graphql::{Context, Object, Result};

/// What one client call counts for in a query's complexity, so that a
/// request packing many calls as aliases hits the complexity limit early
/// (at most 2000 / 50 = 40 calls a request).
const CLIENT_CALL_COMPLEXITY: usize = 50;

#[derive(Default)]
pub struct ValidationMutation;

#[Object]
impl ValidationMutation {
    /// Is this key good (on this device)? For shipped software; no login.
    #[graphql(guard = "RoleGuard::new(may::ANYONE)", complexity = "CLIENT_CALL_COMPLEXITY + child_complexity")]
    async fn validate_license(&self, ctx: &Context<'_>, input: ValidateLicenseInput) -> Result<ValidationPayload> {
        let (state, rc) = request(ctx)?;
        let settings = state.settings.get(&state.db).await?;
        let rules = ClientRules { settings: &settings, limits: &state.client_limits, sightings: &state.sightings };
        Ok(validation::validate(&state.db, rc, rules, &input.key, input.fingerprint.as_deref()).await?.into())
    }

    /// Activates the key on this device: takes a slot unless the device has
    /// one already (then nothing changes). The first activation makes an
    /// ASSIGNED licence ACTIVE. For shipped software; no login.
    #[graphql(guard = "RoleGuard::new(may::ANYONE)", complexity = "CLIENT_CALL_COMPLEXITY + child_complexity")]
    async fn activate_license(&self, ctx: &Context<'_>, input: ActivateLicenseInput) -> Result<ValidationPayload> {
        let (state, rc) = request(ctx)?;
        let settings = state.settings.get(&state.db).await?;
        let rules = ClientRules { settings: &settings, limits: &state.client_limits, sightings: &state.sightings };
        let device = Device { fingerprint: input.fingerprint, name: input.name, platform: input.platform };
        Ok(activations::activate(&state.db, rc, rules, &input.key, device).await?.into())
    }

    /// Frees the slot this device holds. For shipped software; no login.
    #[graphql(guard = "RoleGuard::new(may::ANYONE)", complexity = "CLIENT_CALL_COMPLEXITY + child_complexity")]
    async fn deactivate_license(&self, ctx: &Context<'_>, input: DeactivateLicenseInput) -> Result<ValidationPayload> {
        let (state, rc) = request(ctx)?;
        let settings = state.settings.get(&state.db).await?;
        let rules = ClientRules { settings: &settings, limits: &state.client_limits, sightings: &state.sightings };
        Ok(activations::deactivate(&state.db, rc, rules, &input.key, &input.fingerprint).await?.into())
    }
}
