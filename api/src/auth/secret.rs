//! Where the JWT signing secret comes from: configuration, or — for the
//! embedded SQLite default — a random secret generated once and kept in a file
//! beside the database, so that tokens survive a restart.

use super::jwt::MIN_SECRET_BYTES;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use std::path::{Path, PathBuf};

/// The file beside a SQLite database that holds its generated secret.
pub fn secret_path_for(sqlite_file: &Path) -> PathBuf {
    let mut name = sqlite_file.as_os_str().to_owned();
    name.push(".jwt-secret");
    PathBuf::from(name)
}

/// Reads the secret persisted at `path`, creating it on first use.
pub fn load_or_create(path: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let secret = STANDARD
            .decode(text.trim())
            .map_err(|e| anyhow::anyhow!("{} is not a base64 secret: {e}", path.display()))?;
        anyhow::ensure!(
            secret.len() >= MIN_SECRET_BYTES,
            "{} holds a secret shorter than {MIN_SECRET_BYTES} bytes",
            path.display()
        );
        return Ok(secret);
    }
    let mut secret = vec![0u8; 48];
    rand::rng().fill_bytes(&mut secret);
    write_private(path, STANDARD.encode(&secret).as_bytes())?;
    tracing::warn!(
        path = %path.display(),
        "no KEYSMITH_JWT_SECRET configured: generated a signing secret and saved it beside the database; \
         set KEYSMITH_JWT_SECRET to manage it yourself"
    );
    Ok(secret)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, contents).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_kept_and_reused() {
        let dir = std::env::temp_dir().join(format!("keysmith-secret-{}", ulid::Ulid::generate()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = secret_path_for(&dir.join("keysmith.db"));
        assert!(path.ends_with("keysmith.db.jwt-secret"));
        let first = load_or_create(&path).unwrap();
        assert_eq!(first.len(), 48);
        assert_eq!(load_or_create(&path).unwrap(), first);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
