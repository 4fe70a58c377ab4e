//! Offline licence files: a licence's public facts, signed with Ed25519, that
//! shipped software can check without reaching Keysmith until the file's
//! `validUntil`.
//!
//! The file is JSON:
//!
//! ```json
//! { "format": "keysmith-offline-licence/1", "algorithm": "Ed25519", "keyId": "…",
//!   "payload": "<base64 of the facts as UTF-8 JSON>",
//!   "signature": "<base64 of the 64-byte Ed25519 signature of the payload's bytes>" }
//! ```
//!
//! The signature covers the decoded payload bytes exactly as they are, so a
//! verifier in any language needs base64, Ed25519 and a JSON parser — no
//! canonical JSON. The signing key comes from configuration or is generated
//! once and kept in the database, so every node signs with the same key.

use crate::error::{AppError, AppResult};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use entity::signing_key;
use rand::RngCore;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, EntityTrait, Set};
use serde::{Deserialize, Serialize};

/// The `format` of every file this version writes.
pub const FORMAT: &str = "keysmith-offline-licence/1";
pub const ALGORITHM: &str = "Ed25519";
/// The row of `signing_key` that holds the generated key.
const PURPOSE: &str = "offline-licence";
/// How far a file's `issuedAt` may lie in the verifier's future (clock skew).
const SKEW_SECONDS: i64 = 300;

/// What a file says about its licence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfflineFacts {
    pub license_id: String,
    pub key: String,
    pub environment: String,
    pub product: Option<ProductFacts>,
    pub status: String,
    /// Null for a lifetime licence.
    pub expires_at: Option<DateTime<Utc>>,
    pub feature_flags: serde_json::Value,
    /// `-1` for unlimited.
    pub activation_limit: i32,
    pub issued_at: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductFacts {
    pub id: String,
    pub name: String,
}

/// The signed document as it is written to a file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OfflineFile {
    pub format: String,
    pub algorithm: String,
    pub key_id: String,
    pub payload: String,
    pub signature: String,
}

/// The key that signs offline files.
#[derive(Clone)]
pub struct OfflineSigner {
    signing: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for OfflineSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineSigner").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// A short public name for a public key: the hex of its first 8 bytes.
pub fn key_id_of(public: &VerifyingKey) -> String {
    public.as_bytes()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A 32-byte value from base64 (`what` names it in the error).
fn thirty_two(what: &str, b64: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD.decode(b64.trim()).map_err(|_| format!("{what} is not base64"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| format!("{what} must be 32 bytes (got {})", bytes.len()))
}

/// A public key given as base64 of its 32 bytes.
pub fn parse_public_key(b64: &str) -> Result<VerifyingKey, String> {
    VerifyingKey::from_bytes(&thirty_two("the public key", b64)?).map_err(|_| "not an Ed25519 public key".to_string())
}

impl OfflineSigner {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        let key_id = key_id_of(&signing.verifying_key());
        Self { signing, key_id }
    }

    /// A signer from a configured key: base64 of the 32-byte Ed25519 seed.
    pub fn from_config(b64: &str) -> Result<Self, String> {
        thirty_two("KEYSMITH_OFFLINE_SIGNING_KEY", b64).map(Self::from_seed)
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The public key as base64 of its 32 bytes.
    pub fn public_key_base64(&self) -> String {
        STANDARD.encode(self.public_key().as_bytes())
    }

    /// The public key as a PEM document (SubjectPublicKeyInfo), for tools like OpenSSL.
    pub fn public_key_pem(&self) -> AppResult<String> {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        self.public_key().to_public_key_pem(LineEnding::LF).map_err(AppError::internal)
    }

    /// The file for `facts`, as JSON text.
    pub fn sign(&self, facts: &OfflineFacts) -> AppResult<String> {
        let payload = serde_json::to_vec(facts).map_err(AppError::internal)?;
        let signature = self.signing.sign(&payload);
        let file = OfflineFile {
            format: FORMAT.to_string(),
            algorithm: ALGORITHM.to_string(),
            key_id: self.key_id.clone(),
            payload: STANDARD.encode(&payload),
            signature: STANDARD.encode(signature.to_bytes()),
        };
        serde_json::to_string_pretty(&file).map_err(AppError::internal)
    }
}

/// The configured signing key, or the one kept in the database (generated
/// by whichever node needed it first; the others read the same row).
pub async fn load_or_create(db: &impl ConnectionTrait, configured: Option<&str>) -> anyhow::Result<OfflineSigner> {
    if let Some(b64) = configured {
        return OfflineSigner::from_config(b64).map_err(anyhow::Error::msg);
    }
    if let Some(row) = signing_key::Entity::find_by_id(PURPOSE).one(db).await? {
        return stored(&row);
    }
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let signer = OfflineSigner::from_seed(seed);
    signing_key::Entity::insert(signing_key::ActiveModel {
        purpose: Set(PURPOSE.to_string()),
        key_id: Set(signer.key_id.clone()),
        secret: Set(STANDARD.encode(seed)),
        public_key: Set(signer.public_key_base64()),
        created_at: Set(entity::now()),
    })
    .on_conflict(OnConflict::column(signing_key::Column::Purpose).do_nothing().to_owned())
    .exec_without_returning(db)
    .await?;
    let row = signing_key::Entity::find_by_id(PURPOSE)
        .one(db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the offline signing key was not stored"))?;
    let kept = stored(&row)?;
    if kept.key_id == signer.key_id {
        tracing::info!(key_id = %kept.key_id, "generated the key that signs offline licence files");
    }
    Ok(kept)
}

fn stored(row: &signing_key::Model) -> anyhow::Result<OfflineSigner> {
    thirty_two("the stored offline signing key", &row.secret).map(OfflineSigner::from_seed).map_err(anyhow::Error::msg)
}

/// Why a file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not a Keysmith offline licence file: {0}")]
    Malformed(String),
    #[error("signed by another key (key id {found}; expected {expected})")]
    OtherKey { found: String, expected: String },
    #[error("the signature does not match the contents: the file was altered or signed by another key")]
    BadSignature,
    #[error("the file is not valid yet (issued {0})")]
    NotYetValid(DateTime<Utc>),
    #[error("the file expired at {0}; fetch a fresh one")]
    Expired(DateTime<Utc>),
}

/// Checks `text` against `public` at `now`: the format, the signature over
/// the payload's exact bytes, then the validity window. Returns the facts.
pub fn verify(text: &str, public: &VerifyingKey, now: DateTime<Utc>) -> Result<OfflineFacts, Refused> {
    let file: OfflineFile = serde_json::from_str(text).map_err(|e| Refused::Malformed(e.to_string()))?;
    if file.format != FORMAT || file.algorithm != ALGORITHM {
        return Err(Refused::Malformed(format!("format {:?} with {:?}", file.format, file.algorithm)));
    }
    let expected = key_id_of(public);
    if file.key_id != expected {
        return Err(Refused::OtherKey { found: file.key_id, expected });
    }
    let payload = STANDARD.decode(&file.payload).map_err(|_| Refused::Malformed("payload is not base64".into()))?;
    let signature = STANDARD
        .decode(&file.signature)
        .ok()
        .and_then(|s| Signature::from_slice(&s).ok())
        .ok_or_else(|| Refused::Malformed("signature is not 64 bytes of base64".into()))?;
    public.verify_strict(&payload, &signature).map_err(|_| Refused::BadSignature)?;
    let facts: OfflineFacts = serde_json::from_slice(&payload).map_err(|e| Refused::Malformed(e.to_string()))?;
    if facts.issued_at > now + chrono::Duration::seconds(SKEW_SECONDS) {
        return Err(Refused::NotYetValid(facts.issued_at));
    }
    if facts.valid_until <= now {
        return Err(Refused::Expired(facts.valid_until));
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(now: DateTime<Utc>) -> OfflineFacts {
        OfflineFacts {
            license_id: "01LICENCE".into(),
            key: "KEY-1234-5678".into(),
            environment: "production".into(),
            product: Some(ProductFacts { id: "01PRODUCT".into(), name: "Pro".into() }),
            status: "ACTIVE".into(),
            expires_at: None,
            feature_flags: serde_json::json!({ "pro": true }),
            activation_limit: 3,
            issued_at: now,
            valid_until: now + chrono::Duration::hours(24),
        }
    }

    #[test]
    fn a_signed_file_verifies_and_any_change_is_refused() {
        let signer = OfflineSigner::from_seed([7; 32]);
        let now = Utc::now();
        let text = signer.sign(&facts(now)).unwrap();
        assert_eq!(verify(&text, &signer.public_key(), now).unwrap(), facts(now));

        let mut file: OfflineFile = serde_json::from_str(&text).unwrap();
        let mut payload = STANDARD.decode(&file.payload).unwrap();
        let at = payload.len() / 2;
        payload[at] ^= 1;
        file.payload = STANDARD.encode(&payload);
        let tampered = serde_json::to_string(&file).unwrap();
        assert_eq!(verify(&tampered, &signer.public_key(), now), Err(Refused::BadSignature));

        let other = OfflineSigner::from_seed([8; 32]);
        assert!(matches!(verify(&text, &other.public_key(), now), Err(Refused::OtherKey { .. })));
        let later = now + chrono::Duration::hours(25);
        assert!(matches!(verify(&text, &signer.public_key(), later), Err(Refused::Expired(_))));
        assert!(matches!(verify("{}", &signer.public_key(), now), Err(Refused::Malformed(_))));
    }

    #[test]
    fn configured_keys_are_checked() {
        assert!(OfflineSigner::from_config(&STANDARD.encode([1u8; 32])).is_ok());
        let err = OfflineSigner::from_config(&STANDARD.encode([1u8; 16])).unwrap_err();
        assert!(err.contains("32 bytes"), "{err}");
        assert!(OfflineSigner::from_config("not base64!").is_err());
    }
}

/// A file issued for one licence.
#[derive(Debug, Clone)]
pub struct IssuedFile {
    pub content: String,
    pub facts: OfflineFacts,
}

impl IssuedFile {
    /// A file name for downloads: the key's first 8 characters and the licence id.
    pub fn file_name(&self) -> String {
        let prefix: String = entity::license_key::key_prefix(&self.facts.key)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
            .collect();
        format!("{prefix}-{}.keysmith-licence.json", self.facts.license_id)
    }
}

/// Signs the current facts of `licence`, valid for the configured hours.
pub async fn issue(
    db: &impl ConnectionTrait,
    signer: &OfflineSigner,
    settings: &super::settings::Settings,
    licence: &entity::license_key::Model,
) -> AppResult<IssuedFile> {
    let product = match &licence.product_id {
        Some(id) => entity::product::Entity::find_by_id(id.clone())
            .one(db)
            .await?
            .map(|p| ProductFacts { id: p.id, name: p.name }),
        None => None,
    };
    let now = entity::now();
    let grace = chrono::Duration::minutes(i64::from(settings.grace_period_minutes));
    let facts = OfflineFacts {
        license_id: licence.id.clone(),
        key: licence.key.clone(),
        environment: licence.environment.as_str().to_string(),
        product,
        status: super::licenses::effective_status(licence, now - grace).as_str().to_string(),
        expires_at: licence.expires_at,
        feature_flags: licence.feature_flags.clone(),
        activation_limit: licence.activation_limit,
        issued_at: now,
        valid_until: now + chrono::Duration::hours(i64::from(settings.offline_file_validity_hours)),
    };
    Ok(IssuedFile { content: signer.sign(&facts)?, facts })
}

/// The offline file of licence `id`: staff may have any licence's, a
/// customer only their own (another's is `NOT_FOUND`, as a missing one).
///
/// The file holds the whole key, so a customer's download is the key's
/// reveal, exactly as `revealLicenseKey` is, in the same transaction as the
/// signing: an uploaded key still ASSIGNED goes into use and can no longer go
/// back to the pool for another buyer. A revoked licence's file is handed over
/// as it is. Staff downloading a file changes nothing.
pub async fn for_licence(
    db: &sea_orm::DatabaseConnection,
    ctx: &crate::auth::RequestContext,
    signer: &OfflineSigner,
    id: &str,
) -> AppResult<IssuedFile> {
    use crate::auth::{Viewer, may};
    ctx.viewer.require(may::READ_OWN)?;
    let settings = super::settings::current(db).await?;
    if let Viewer::Customer { customer_id } = &ctx.viewer {
        let licence = super::licenses::find(db, ctx, id)
            .await?
            .filter(|l| l.customer_id.as_deref() == Some(customer_id.as_str()))
            .ok_or_else(|| AppError::not_found_in("licence", "licenseId"))?;
        // A revoked licence's file tells offline software so; the key can
        // never serve anyone again, so handing it over reveals nothing.
        if licence.status == entity::LicenseStatus::Revoked {
            return issue(db, signer, &settings, &licence).await;
        }
        let txn = crate::db::begin_write(db).await?;
        let licence = super::own::reveal_own(&txn, ctx, id).await?;
        let file = issue(&txn, signer, &settings, &licence).await?;
        txn.commit().await?;
        return Ok(file);
    }
    let licence =
        super::licenses::find(db, ctx, id).await?.ok_or_else(|| AppError::not_found_in("licence", "licenseId"))?;
    issue(db, signer, &settings, &licence).await
}
