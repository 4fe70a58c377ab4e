//! `keysmith verify FILE`: checks an offline licence file the way shipped
//! software would, and prints what it says.

use crate::config::{Config, VerifyArgs};
use crate::services::offline::{self, OfflineFacts};
use anyhow::{Context, bail};
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey;

pub async fn run(config: Config, args: VerifyArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let public = match &args.public_key {
        Some(given) => parse_key(given)?,
        None => {
            let db = crate::db::connect(&config.database_url, 1).await?;
            crate::db::migrate(&db).await?;
            offline::load_or_create(&db, config.offline_signing_key.as_deref()).await?.public_key()
        }
    };
    match offline::verify(&text, &public, chrono::Utc::now()) {
        Ok(facts) => {
            print!("{}", describe(&facts));
            Ok(())
        }
        Err(refused) => bail!("{} is refused: {refused}", args.file.display()),
    }
}

/// A public key given on the command line: base64, PEM, or a file with either.
fn parse_key(given: &str) -> anyhow::Result<VerifyingKey> {
    let path = std::path::Path::new(given);
    let text = if path.is_file() {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    } else {
        given.to_string()
    };
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return VerifyingKey::from_public_key_pem(text)
            .map_err(|e| anyhow::anyhow!("--public-key: not an Ed25519 PEM key: {e}"));
    }
    offline::parse_public_key(text).map_err(|e| anyhow::anyhow!("--public-key: {e}"))
}

fn describe(f: &OfflineFacts) -> String {
    let or = |v: Option<String>, none: &str| v.unwrap_or_else(|| none.to_string());
    let limit = if f.activation_limit < 0 { "unlimited".to_string() } else { f.activation_limit.to_string() };
    let mut out = String::from("valid signature; the file is within its validity window\n");
    let rows = [
        ("licence", f.license_id.clone()),
        ("key", f.key.clone()),
        ("environment", f.environment.clone()),
        ("product", or(f.product.as_ref().map(|p| format!("{} ({})", p.name, p.id)), "none")),
        ("status", f.status.clone()),
        ("expires", or(f.expires_at.map(|t| t.to_rfc3339()), "never (lifetime)")),
        ("activation limit", limit),
        ("feature flags", f.feature_flags.to_string()),
        ("issued", f.issued_at.to_rfc3339()),
        ("valid until", f.valid_until.to_rfc3339()),
    ];
    for (name, value) in rows {
        out.push_str(&format!("{name:>17}: {value}\n"));
    }
    out
}
