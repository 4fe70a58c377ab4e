//! What client software sends and gets back, and the licence preview with its validation samples.

use super::pool::{Activation, LicenseKey, LicenseStatus};
use crate::services::licenses::Preview;
use crate::services::offline::{IssuedFile, OfflineFile};
use crate::services::samples::Language;
use crate::services::validation::{Code, Verdict};
use async_graphql::{Enum, InputObject, Json, SimpleObject};
use chrono::{DateTime, Utc};

#[derive(Debug, InputObject)]
pub struct ValidateLicenseInput {
    /// The licence key (at most 256 characters).
    pub key: String,
    /// A stable id of the device asking (at most 200 characters). Without
    /// it, the licence is judged alone.
    pub fingerprint: Option<String>,
}

#[derive(Debug, InputObject)]
pub struct ActivateLicenseInput {
    /// The licence key (at most 256 characters).
    pub key: String,
    /// A stable id of the device (at most 200 characters).
    pub fingerprint: String,
    /// What the customer will see the device as (at most 200 characters).
    pub name: Option<String>,
    /// The device's operating system or platform (at most 200 characters).
    pub platform: Option<String>,
}

#[derive(Debug, InputObject)]
pub struct DeactivateLicenseInput {
    /// The licence key (at most 256 characters).
    pub key: String,
    /// The device to free the licence's slot from (at most 200 characters).
    pub fingerprint: String,
}

/// The answer's code. Checked in this order; the first that applies is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "Code")]
pub enum ValidationCode {
    /// Too many calls from this address or for this key: wait
    /// `retryAfterSeconds`. Checked before the key is looked up.
    RateLimited,
    /// No licence has this key in this environment.
    NotFound,
    Revoked,
    Suspended,
    /// Switched off by the seller.
    Inactive,
    /// Past its expiry, judged at the moment of the call.
    Expired,
    /// The key is in a pool, not yet delivered to a customer.
    NotAssigned,
    /// The product binds licences to devices and no fingerprint was sent.
    FingerprintRequired,
    /// The fingerprint is not one of the licence's activations.
    NotActivated,
    /// Activation only: the licence is in use on as many devices as it allows.
    TooManyActivations,
    Valid,
}

/// The licence as client software may see it.
#[derive(Debug, SimpleObject)]
pub struct LicenseFacts {
    pub status: LicenseStatus,
    /// Null for a lifetime licence.
    pub expires_at: Option<DateTime<Utc>>,
    pub feature_flags: Json<serde_json::Value>,
    /// Devices using the licence now.
    pub activations_used: i64,
    /// `-1` for unlimited.
    pub activation_limit: i32,
}

#[derive(Debug, SimpleObject)]
pub struct ValidationPayload {
    pub valid: bool,
    pub code: ValidationCode,
    /// The code in words, for logs and support.
    pub detail: String,
    /// Null when no licence has the key (and when rate limited).
    pub license: Option<LicenseFacts>,
    /// With `RATE_LIMITED`: whole seconds to wait before calling again.
    pub retry_after_seconds: Option<i32>,
}

impl From<Verdict> for ValidationPayload {
    fn from(v: Verdict) -> Self {
        let code: Code = v.code;
        Self {
            valid: v.valid(),
            code: code.into(),
            detail: code.detail().to_string(),
            license: v.license.map(|f| LicenseFacts {
                status: f.status.into(),
                expires_at: f.expires_at,
                feature_flags: Json(f.feature_flags),
                activations_used: f.activations_used,
                activation_limit: f.activation_limit,
            }),
            retry_after_seconds: v.retry_after.map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "Language")]
pub enum SampleLanguage {
    Curl,
    Php,
    JavaScript,
    Python,
}

/// A ready-to-run validation request.
#[derive(Debug, SimpleObject)]
pub struct CodeSample {
    pub language: SampleLanguage,
    pub code: String,
}

/// A licence as the admin preview shows it.
#[derive(SimpleObject)]
pub struct LicensePreview {
    pub license: LicenseKey,
    /// Every device that used the licence, ended ones included, newest first.
    pub activation_history: Vec<Activation>,
    /// `validateLicense` in cURL, PHP, JavaScript and Python, filled in with
    /// this server's address, the environment, the key and a device
    /// fingerprint (an active device's, or a placeholder to replace).
    pub samples: Vec<CodeSample>,
    /// The licence's offline file, signed at this moment.
    pub offline_file: OfflineLicenseFile,
}

impl From<Preview> for LicensePreview {
    fn from(p: Preview) -> Self {
        Self {
            license: LicenseKey::from(p.license),
            activation_history: p.activations.into_iter().map(Activation::from).collect(),
            samples: p
                .samples
                .into_iter()
                .map(|s| {
                    let language: Language = s.language;
                    CodeSample { language: language.into(), code: s.code }
                })
                .collect(),
            offline_file: p.offline_file.into(),
        }
    }
}

/// A signed offline licence file (see the README's "Offline licence files").
#[derive(Debug, SimpleObject)]
pub struct OfflineLicenseFile {
    /// A name to save it under.
    pub file_name: String,
    /// The file itself: JSON with the facts (base64) and their Ed25519 signature.
    pub content: String,
    /// The signing key's id, as in the file.
    pub key_id: String,
    pub issued_at: DateTime<Utc>,
    /// After this the file is refused; fetch a fresh one.
    pub valid_until: DateTime<Utc>,
}

impl From<IssuedFile> for OfflineLicenseFile {
    fn from(f: IssuedFile) -> Self {
        let key_id = serde_json::from_str::<OfflineFile>(&f.content).map(|file| file.key_id).unwrap_or_default();
        Self {
            file_name: f.file_name(),
            issued_at: f.facts.issued_at,
            valid_until: f.facts.valid_until,
            key_id,
            content: f.content,
        }
    }
}

/// The key offline licence files are signed with, to check them against.
#[derive(Debug, SimpleObject)]
pub struct OfflinePublicKey {
    /// Always `Ed25519`.
    pub algorithm: String,
    pub key_id: String,
    /// The 32-byte public key, base64.
    pub public_key: String,
    /// The same key as a PEM document (SubjectPublicKeyInfo).
    pub pem: String,
}
