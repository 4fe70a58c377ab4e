//! Opening the database (SQLite by default, PostgreSQL by URL), migrating it,
//! and starting write transactions the way each engine needs.

use crate::error::{AppError, AppResult};
use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use std::path::PathBuf;
use std::time::Duration;

/// How long a SQLite writer waits for the write lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// The file a SQLite URL points at, or `None` for in-memory and other databases.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<DatabaseConnection> {
    // The password goes to the driver apart from the URL: the ORM records its
    // connection options (the URL included) in debug-level log spans.
    let (bare, password) = split_password(url);
    let mut options = ConnectOptions::new(bare);
    if let Some(password) = password {
        options.map_sqlx_postgres_opts(move |o| o.password(&password));
    }
    options
        .max_connections(max_connections.max(1))
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    if is_sqlite(url) {
        options.map_sqlx_sqlite_opts(|o| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
        });
    }
    Database::connect(options).await.with_context(|| format!("cannot open the database at {}", redact_url(url)))
}

pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await.context("migrating the database")
}

/// Starts a transaction that will write. On SQLite it takes the write lock up
/// front (`BEGIN IMMEDIATE`): a transaction that reads first and upgrades later
/// fails at once with "database is locked" when another writer got in between,
/// busy timeout or not. Waiting at BEGIN is what makes concurrent writers queue.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let options = TransactionOptions {
        sqlite_transaction_mode: (db.get_database_backend() == DbBackend::Sqlite)
            .then_some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    db.begin_with_options(options).await
}

/// How often a transaction that lost a race is run again before giving up.
const ATTEMPTS: u32 = 12;

/// Runs `attempt` again while it loses races to concurrent transactions
/// ([`AppError::Contended`]: each attempt was rolled back whole), with a
/// short random pause between tries.
pub async fn retrying<T, F, Fut>(mut attempt: F) -> AppResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = AppResult<T>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(AppError::Contended(detail)) if tries + 1 < ATTEMPTS => {
                tries += 1;
                tracing::debug!(%detail, tries, "transaction lost a race; running it again");
                let pause = rand::random_range(1..=5u64 * u64::from(tries));
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            other => return other,
        }
    }
}

/// The URL without its password, and the password (percent-decoded).
fn split_password(url: &str) -> (String, Option<String>) {
    let (Some(scheme), Some(at)) = (url.find("://"), url.rfind('@')) else {
        return (url.to_string(), None);
    };
    if at < scheme + 3 {
        return (url.to_string(), None);
    }
    match url[scheme + 3..at].split_once(':') {
        Some((user, password)) if !password.is_empty() => {
            let decoded = percent_encoding::percent_decode_str(password).decode_utf8_lossy().into_owned();
            (format!("{}{user}{}", &url[..scheme + 3], &url[at..]), Some(decoded))
        }
        _ => (url.to_string(), None),
    }
}

/// A database URL fit for logs: any password replaced.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_found_in_urls() {
        assert_eq!(sqlite_file("sqlite://keysmith.db"), Some(PathBuf::from("keysmith.db")));
        assert_eq!(sqlite_file("sqlite:///var/lib/k.db?mode=rwc"), Some(PathBuf::from("/var/lib/k.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u:p@h/db"), None);
    }

    #[test]
    fn passwords_are_handed_to_the_driver_apart_from_the_url() {
        assert_eq!(
            split_password("postgres://ks:p%40ss%3Aword@db:5432/ks"),
            ("postgres://ks@db:5432/ks".to_string(), Some("p@ss:word".to_string()))
        );
        assert_eq!(split_password("postgres://ks@db/ks"), ("postgres://ks@db/ks".to_string(), None));
        assert_eq!(split_password("sqlite://keysmith.db"), ("sqlite://keysmith.db".to_string(), None));
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(redact_url("postgres://ks:hunter2@db:5432/ks"), "postgres://ks:***@db:5432/ks");
        assert_eq!(redact_url("sqlite://keysmith.db"), "sqlite://keysmith.db");
    }
}
