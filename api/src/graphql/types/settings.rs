//! Server-wide settings and the input that changes them.

use crate::services::settings::Settings as ServiceSettings;
use async_graphql::{InputObject, SimpleObject};

/// Server-wide settings.
#[derive(Debug, SimpleObject)]
pub struct Settings {
    /// Licence previews need a token issued in the last five minutes.
    pub preview_requires_recent_sign_in: bool,
    /// The used share of a pool, in percent, at which `pool.exhausting` fires (default 80).
    pub exhaustion_threshold: i32,
}

impl From<ServiceSettings> for Settings {
    fn from(s: ServiceSettings) -> Self {
        Self {
            preview_requires_recent_sign_in: s.preview_requires_recent_sign_in,
            exhaustion_threshold: i32::from(s.exhaustion_threshold),
        }
    }
}

#[derive(Debug, InputObject)]
pub struct UpdateSettingsInput {
    pub preview_requires_recent_sign_in: Option<bool>,
    /// 1–100.
    pub exhaustion_threshold: Option<i32>,
}

#[derive(Debug, SimpleObject)]
pub struct SettingsPayload {
    pub settings: Settings,
}
