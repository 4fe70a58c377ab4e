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
    /// Minutes after its expiry that a licence still validates (default 0).
    pub grace_period_minutes: i64,
    /// The abuse rule: more than this many distinct device fingerprints
    /// trying one key within `abuseWindowMinutes` suspends it (default 20; 0
    /// turns the rule off).
    pub abuse_max_fingerprints: i64,
    /// The abuse rule's window, in minutes (default 60).
    pub abuse_window_minutes: i64,
    /// How long an offline licence file stays valid, in hours (default 24).
    pub offline_file_validity_hours: i64,
    /// Client calls (validate, activate, deactivate) allowed per key per
    /// minute on each node (default 60; 0: no limit).
    pub rate_limit_per_key: i64,
    /// Client calls allowed per client address per minute on each node
    /// (default 600; 0: no limit).
    pub rate_limit_per_address: i64,
    /// Where pool alerts are emailed; null for none.
    pub notification_email: Option<String>,
    /// Webhooks may reach addresses that are not globally reachable (private, loopback, link-local …)
    /// (default false; `KEYSMITH_WEBHOOK_ALLOW_PRIVATE` allows them for the
    /// whole deployment whatever this says).
    pub webhook_allow_private_addresses: bool,
    /// A staff session (the admin portal's sign-in, `login` with `session`)
    /// left unused this many minutes ends (default 30). Bearer tokens without
    /// a session are not affected.
    pub admin_idle_timeout_minutes: i64,
}

impl From<ServiceSettings> for Settings {
    fn from(s: ServiceSettings) -> Self {
        Self {
            preview_requires_recent_sign_in: s.preview_requires_recent_sign_in,
            exhaustion_threshold: i32::from(s.exhaustion_threshold),
            grace_period_minutes: i64::from(s.grace_period_minutes),
            abuse_max_fingerprints: i64::from(s.abuse_max_fingerprints),
            abuse_window_minutes: i64::from(s.abuse_window_minutes),
            offline_file_validity_hours: i64::from(s.offline_file_validity_hours),
            rate_limit_per_key: i64::from(s.rate_limit_per_key),
            rate_limit_per_address: i64::from(s.rate_limit_per_address),
            notification_email: s.notification_email,
            webhook_allow_private_addresses: s.webhook_allow_private_addresses,
            admin_idle_timeout_minutes: i64::from(s.admin_idle_timeout_minutes),
        }
    }
}

#[derive(Debug, InputObject)]
pub struct UpdateSettingsInput {
    pub preview_requires_recent_sign_in: Option<bool>,
    /// 1–100.
    pub exhaustion_threshold: Option<i32>,
    /// 0–525600.
    pub grace_period_minutes: Option<i32>,
    /// 0 (off) – 100000.
    pub abuse_max_fingerprints: Option<i32>,
    /// 1–525600.
    pub abuse_window_minutes: Option<i32>,
    /// 1–8784.
    pub offline_file_validity_hours: Option<i32>,
    /// 0 (no limit) – 1000000.
    pub rate_limit_per_key: Option<i32>,
    /// 0 (no limit) – 10000000.
    pub rate_limit_per_address: Option<i32>,
    /// An email address (at most 254 characters); an empty string clears it.
    pub notification_email: Option<String>,
    pub webhook_allow_private_addresses: Option<bool>,
    /// 1–1440.
    pub admin_idle_timeout_minutes: Option<i32>,
}

#[derive(Debug, SimpleObject)]
pub struct SettingsPayload {
    pub settings: Settings,
}
