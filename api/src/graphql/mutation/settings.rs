use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::settings::{SettingsPayload, UpdateSettingsInput};
use crate::services::settings::{self, SettingsPatch};
use async_graphql::{Context, Object, Result};

#[derive(Default)]
pub struct SettingsMutation;

#[Object]
impl SettingsMutation {
    /// Changes server-wide settings (admin); omitted ones stay as they are.
    #[graphql(guard = "RoleGuard::new(may::ADMINISTER)")]
    async fn update_settings(&self, ctx: &Context<'_>, input: UpdateSettingsInput) -> Result<SettingsPayload> {
        let (state, rc) = request(ctx)?;
        let patch = SettingsPatch {
            preview_requires_recent_sign_in: input.preview_requires_recent_sign_in,
            exhaustion_threshold: input.exhaustion_threshold.map(i64::from),
        };
        Ok(SettingsPayload { settings: settings::update(&state.db, rc, patch).await?.into() })
    }
}
