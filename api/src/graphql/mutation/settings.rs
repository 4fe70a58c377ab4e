use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::validation::{
    SettingsPayload, UpdateSettingsInput, ValidateLicenseInput, ValidationPayload,
};
use crate::services::settings::{self, SettingsPatch};
use crate::services::validation;
use async_graphql::{Context, Object, Result};

#[derive(Default)]
pub struct SettingsMutation;

#[Object]
impl SettingsMutation {
    /// Is this key good (on this device)? For shipped software; no login.
    /// A bad key is an answer (`code`), not an error.
    #[graphql(guard = "RoleGuard::new(may::ANYONE)")]
    async fn validate_license(&self, ctx: &Context<'_>, input: ValidateLicenseInput) -> Result<ValidationPayload> {
        let (state, rc) = request(ctx)?;
        Ok(validation::validate(&state.db, rc, &input.key, input.fingerprint.as_deref()).await?.into())
    }

    /// Changes server-wide settings (admin); omitted ones stay as they are.
    #[graphql(guard = "RoleGuard::new(may::ADMINISTER)")]
    async fn update_settings(&self, ctx: &Context<'_>, input: UpdateSettingsInput) -> Result<SettingsPayload> {
        let (state, rc) = request(ctx)?;
        let patch = SettingsPatch { preview_requires_recent_sign_in: input.preview_requires_recent_sign_in };
        Ok(SettingsPayload { settings: settings::update(&state.db, rc, patch).await?.into() })
    }
}
