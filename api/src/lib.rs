//! Keysmith: a licence-key server. This crate holds the GraphQL schema, the
//! domain services, authentication, the HTTP server and the `keysmith` binary's
//! commands; `main.rs` only parses the command line and calls in here.

pub mod auth;
pub mod background;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod graphql;
pub mod http;
pub mod services;

use anyhow::Context;
use auth::jwt::JwtKeys;
use config::Config;
use rand::RngCore;
use sea_orm::DatabaseConnection;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What every request handler shares: the database, the token keys and the configuration.
#[derive(Clone)]
pub struct AppState(Arc<StateInner>);

pub struct StateInner {
    pub db: DatabaseConnection,
    /// On SQLite, the connection every write transaction of `db` runs on.
    pub writer: Option<Arc<db::Writer>>,
    pub jwt: JwtKeys,
    pub config: Config,
    /// SQL statements this node has run: for operators and for tests that
    /// prove a page costs a constant number of queries.
    pub statements: Arc<AtomicU64>,
    /// Wakes this node's job runner when a request queues a job, so the job
    /// starts at once instead of at the runner's next tick.
    pub jobs_queued: Arc<tokio::sync::Notify>,
    /// This node's name and the live progress of the jobs it runs.
    pub jobs: Arc<services::jobs::Runner>,
    /// Pools this node's requests took keys from, for the background runner
    /// to check against the exhaustion threshold off the request path.
    pub pools_to_check: Arc<PoolWatch>,
    /// The settings as this node last read them (the client operations' view).
    pub settings: services::settings::SettingsCache,
    /// This node's rate-limit budgets for the client operations.
    pub client_limits: services::ratelimit::ClientLimits,
    /// Devices this node's client calls saw, written about once a second.
    pub sightings: services::validation::Sightings,
    /// This node's budgets for staff sign-in attempts.
    pub login_limits: services::ratelimit::LoginLimits,
    /// Deliveries per minute to each integration's inbound address.
    pub integration_limits: services::ratelimit::IntegrationLimits,
    /// Deliveries to integrations that failed for an internal reason, counted.
    pub integration_failures: services::integrations::Failures,
    /// The key that signs offline licence files.
    pub offline: services::offline::OfflineSigner,
    /// The HTTP client webhooks go out through.
    pub webhooks: services::webhooks::Sender,
    /// How this node sends email.
    pub mailer: services::email::Mailer,
    /// Wakes this node's webhook worker when a request writes events.
    pub events_written: Arc<tokio::sync::Notify>,
    /// Events as they commit, for this node's subscriptions.
    pub live: Arc<services::live::Live>,
    /// How many subscriptions each token holds on this node.
    pub subscription_rooms: Arc<graphql::subscription::TokenRoom>,
}

/// Pools waiting for an exhaustion check. Only a shortcut: every node also
/// checks every delivering pool on the sweeper's schedule, so a pool noted
/// here by a node that then stops is still checked.
#[derive(Default)]
pub struct PoolWatch(std::sync::Mutex<std::collections::HashSet<(entity::Environment, services::keys::TagRef)>>);

impl PoolWatch {
    pub fn note(&self, pools: impl IntoIterator<Item = (entity::Environment, services::keys::TagRef)>) {
        if let Ok(mut set) = self.0.lock() {
            set.extend(pools);
        }
    }

    pub fn take(&self) -> Vec<(entity::Environment, services::keys::TagRef)> {
        self.0.lock().map(|mut set| set.drain().collect()).unwrap_or_default()
    }
}

impl std::ops::Deref for AppState {
    type Target = StateInner;
    fn deref(&self) -> &StateInner {
        &self.0
    }
}

impl AppState {
    /// Whether webhooks may reach private, loopback and link-local addresses:
    /// allowed by configuration or by the setting.
    pub async fn webhooks_may_reach_private(&self) -> error::AppResult<bool> {
        Ok(self.config.webhook_allow_private || self.settings.get(&self.db).await?.webhook_allow_private_addresses)
    }

    pub fn new(
        mut db: DatabaseConnection,
        jwt: JwtKeys,
        offline: services::offline::OfflineSigner,
        webhooks: services::webhooks::Sender,
        mailer: services::email::Mailer,
        config: Config,
    ) -> Self {
        let statements = Arc::new(AtomicU64::new(0));
        let count = |db: &mut DatabaseConnection| {
            let counter = statements.clone();
            db.set_metric_callback(move |_| {
                counter.fetch_add(1, Ordering::Relaxed);
            });
        };
        count(&mut db);
        let writer = db::Writer::new(&db, count);
        Self(Arc::new(StateInner {
            db,
            writer,
            jwt,
            config,
            statements,
            jobs_queued: Arc::default(),
            jobs: Arc::default(),
            pools_to_check: Arc::default(),
            settings: services::settings::SettingsCache::default(),
            client_limits: services::ratelimit::ClientLimits::default(),
            sightings: services::validation::Sightings::default(),
            login_limits: services::ratelimit::LoginLimits::default(),
            integration_limits: services::ratelimit::IntegrationLimits::default(),
            integration_failures: services::integrations::Failures::default(),
            offline,
            webhooks,
            mailer,
            events_written: Arc::default(),
            live: Arc::default(),
            subscription_rooms: Arc::default(),
        }))
    }

    /// Opens and migrates the configured database and loads the signing secret.
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        let db = db::connect(&config.database_url, config.db_max_connections).await?;
        db::migrate(&db).await?;
        let jwt = JwtKeys::new(&signing_secret(&config)?).map_err(anyhow::Error::msg)?;
        let offline = services::offline::load_or_create(&db, config.offline_signing_key.as_deref())
            .await
            .context("loading the offline licence signing key")?;
        let webhooks = services::webhooks::Sender::new()?;
        let mailer = services::email::Mailer::new(config.smtp_url.as_deref(), &config.mail_from)?;
        Ok(Self::new(db, jwt, offline, webhooks, mailer, config))
    }
}

/// The JWT secret: configured, or generated once beside the SQLite file.
/// PostgreSQL deployments may run several nodes, which must share one secret,
/// so there it has to be configured.
pub fn signing_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(secret.as_bytes().to_vec());
    }
    if let Some(file) = db::sqlite_file(&config.database_url) {
        let path = auth::secret::secret_path_for(&file);
        return auth::secret::load_or_create(&path).with_context(|| format!("loading {}", path.display()));
    }
    anyhow::ensure!(
        db::is_sqlite(&config.database_url),
        "KEYSMITH_JWT_SECRET must be set when the database is not a SQLite file \
         (every node must sign tokens with the same secret)"
    );
    tracing::warn!("no KEYSMITH_JWT_SECRET with an in-memory database: tokens will not survive a restart");
    let mut secret = vec![0u8; 48];
    rand::rng().fill_bytes(&mut secret);
    Ok(secret)
}
