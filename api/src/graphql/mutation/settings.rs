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
            grace_period_minutes: input.grace_period_minutes.map(i64::from),
            abuse_max_fingerprints: input.abuse_max_fingerprints.map(i64::from),
            abuse_window_minutes: input.abuse_window_minutes.map(i64::from),
            offline_file_validity_hours: input.offline_file_validity_hours.map(i64::from),
            rate_limit_per_key: input.rate_limit_per_key.map(i64::from),
            rate_limit_per_address: input.rate_limit_per_address.map(i64::from),
            notification_email: input.notification_email,
            webhook_allow_private_addresses: input.webhook_allow_private_addresses,
            admin_idle_timeout_minutes: input.admin_idle_timeout_minutes.map(i64::from),
        };
        let updated = settings::update(&state.db, rc, patch).await;
        state.settings.forget();
        Ok(SettingsPayload { settings: updated?.into() })
    }
}
