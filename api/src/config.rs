//! Command line and configuration: every setting is a flag with an
//! environment variable, so `keysmith` runs with nothing configured and a
//! deployment configures it entirely through the environment.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;

#[derive(Debug, Parser)]
#[command(name = "keysmith", version, about = "Keysmith licence-key server")]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Clone, Args)]
pub struct Config {
    /// Database to use: a SQLite file (created when missing) or a PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://keysmith.db", global = true)]
    pub database_url: String,
    /// HS256 signing secret for tokens, at least 32 bytes. When unset with
    /// SQLite, one is generated and kept beside the database file.
    #[arg(long, env = "KEYSMITH_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "KEYSMITH_LISTEN", default_value = "127.0.0.1:8080", global = true)]
    pub listen: SocketAddr,
    /// The address customers and client software reach Keysmith at (e.g.
    /// `https://licences.example.com`), used in code samples and links. When
    /// unset, samples shown to staff use the address the request was sent to.
    #[arg(long, env = "KEYSMITH_PUBLIC_URL", value_parser = public_url, global = true)]
    pub public_url: Option<String>,
    /// How long a token from `login` or `keysmith token` stays valid, in minutes.
    #[arg(long, env = "KEYSMITH_TOKEN_TTL_MINUTES", default_value_t = 720, global = true)]
    pub token_ttl_minutes: u64,
    /// Largest request body accepted on /graphql, in bytes.
    #[arg(long, env = "KEYSMITH_MAX_BODY_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub max_body_bytes: usize,
    /// Largest file accepted by a multipart upload (key imports), in bytes.
    #[arg(long, env = "KEYSMITH_MAX_UPLOAD_BYTES", default_value_t = 512 * 1024 * 1024, global = true)]
    pub max_upload_bytes: usize,
    /// Seconds between runs of the expiry sweeper (licences past their expiry become EXPIRED).
    #[arg(long, env = "KEYSMITH_SWEEP_INTERVAL_SECONDS", default_value_t = 60, global = true)]
    pub sweep_interval_seconds: u64,
    /// Log format.
    #[arg(long, env = "KEYSMITH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    /// Log filter (tracing directives, e.g. `info` or `keysmith=debug`).
    #[arg(long, env = "KEYSMITH_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Most database connections per node.
    #[arg(long, env = "KEYSMITH_DB_MAX_CONNECTIONS", default_value_t = 16, global = true)]
    pub db_max_connections: u32,
    /// The Ed25519 key that signs offline licence files: base64 of its 32-byte
    /// seed (e.g. `openssl rand -base64 32`). When unset, one is generated
    /// once and kept in the database, shared by every node.
    #[arg(long, env = "KEYSMITH_OFFLINE_SIGNING_KEY", hide_env_values = true, global = true)]
    pub offline_signing_key: Option<String>,
    /// The header a reverse proxy puts the client's address in (e.g.
    /// `X-Forwarded-For`; the last address in it is used). Set it only behind
    /// a proxy that writes it: otherwise clients could pick their own address
    /// and escape the per-address rate limit. Unset, the connection's peer
    /// address is the client's.
    #[arg(long, env = "KEYSMITH_CLIENT_ADDRESS_HEADER", global = true)]
    pub client_address_header: Option<String>,
    /// Let webhooks reach addresses that are not globally reachable (private, loopback, link-local …; for a
    /// receiver on the same host or network). Off: such targets are refused,
    /// judged on the address a name resolves to.
    #[arg(long, env = "KEYSMITH_WEBHOOK_ALLOW_PRIVATE", global = true)]
    pub webhook_allow_private: bool,
    /// The first retry of a failed webhook delivery waits this long, in
    /// seconds; each next one twice as long (at most an hour), for a day.
    #[arg(long, env = "KEYSMITH_WEBHOOK_RETRY_SECONDS", default_value_t = 30, global = true)]
    pub webhook_retry_seconds: u64,
    /// The SMTP server email goes through: `smtp://host:25` (plain),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS) or
    /// `smtps://user:pass@host:465`. Unset, emails are kept in the outbox and
    /// logged (recipient and subject only).
    #[arg(long, env = "KEYSMITH_SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<String>,
    /// The sender of Keysmith's emails.
    #[arg(long, env = "KEYSMITH_MAIL_FROM", default_value = "Keysmith <keysmith@localhost>", global = true)]
    pub mail_from: String,
    /// This node's name in the job table, unique among the nodes sharing a
    /// database. A node restarting under the same name takes back at once
    /// the jobs it held when it stopped; others wait for the claim to lapse
    /// (a minute). Unset: the host name and the listening port.
    #[arg(long, env = "KEYSMITH_NODE_ID", global = true)]
    pub node_id: Option<String>,
}

/// An http(s) address without a trailing slash.
fn public_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let rest = trimmed.strip_prefix("https://").or_else(|| trimmed.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(trimmed.to_string()),
        _ => Err(format!("{raw:?} is not an http:// or https:// address")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate the database, then serve the API, GraphiQL and the portal (the default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Manage staff accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Print a token for a staff account, for scripts.
    Token(TokenArgs),
    /// Import and export licence keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Check an offline licence file: its signature and validity window; prints its facts.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The offline licence file.
    pub file: std::path::PathBuf,
    /// The public key to check against: base64 of its 32 bytes, a PEM
    /// document, or a file holding either. Without it, the key of the
    /// configured database (or KEYSMITH_OFFLINE_SIGNING_KEY) is used.
    #[arg(long)]
    pub public_key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Import a key list (one key per line, or CSV: key,tags,product,expiry,activation limit).
    Import {
        /// The file to import.
        file: std::path::PathBuf,
        /// Tag every key with this tag (created when missing); repeatable.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// `text` or `csv`; by default `csv` for `.csv` files, else `text`.
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Import duplicates too (by default keys already in the pool and repeats are skipped).
        #[arg(long)]
        keep_duplicates: bool,
        /// Import the valid lines even when some are invalid.
        #[arg(long)]
        skip_invalid: bool,
        #[arg(long, default_value = "production")]
        environment: String,
    },
    /// Export keys as CSV or JSON.
    Export {
        /// Only keys with this tag (`no tag` for keys without one).
        #[arg(long)]
        tag: Option<String>,
        /// Only keys with this status (e.g. AVAILABLE).
        #[arg(long)]
        status: Option<String>,
        /// Only keys containing this text.
        #[arg(long)]
        search: Option<String>,
        #[arg(long, value_enum, default_value_t = ExportFormatArg::Csv)]
        format: ExportFormatArg,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
        #[arg(long, default_value = "production")]
        environment: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Text,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormatArg {
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a staff account. The password is asked for, or read from stdin when piped.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, value_enum, default_value_t = RoleArg::Admin)]
        role: RoleArg,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Admin,
    Manager,
    Support,
}

impl From<RoleArg> for entity::user::StaffRole {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Admin => entity::user::StaffRole::Admin,
            RoleArg::Manager => entity::user::StaffRole::Manager,
            RoleArg::Support => entity::user::StaffRole::Support,
        }
    }
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[arg(long)]
    pub email: String,
    /// Limit the token to one environment.
    #[arg(long)]
    pub environment: Option<String>,
}

/// Printed without the signing secret or the database password.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &crate::db::redact_url(&self.database_url))
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "***"))
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("token_ttl_minutes", &self.token_ttl_minutes)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("sweep_interval_seconds", &self.sweep_interval_seconds)
            .field("log_format", &self.log_format)
            .field("log", &self.log)
            .field("db_max_connections", &self.db_max_connections)
            .field("offline_signing_key", &self.offline_signing_key.as_ref().map(|_| "***"))
            .field("client_address_header", &self.client_address_header)
            .field("webhook_allow_private", &self.webhook_allow_private)
            .field("webhook_retry_seconds", &self.webhook_retry_seconds)
            .field("node_id", &self.node_id)
            .field("smtp_url", &self.smtp_url.as_deref().map(crate::db::redact_url))
            .field("mail_from", &self.mail_from)
            .finish()
    }
}

impl Config {
    pub fn token_ttl_seconds(&self) -> u64 {
        self.token_ttl_minutes.saturating_mul(60)
    }

    /// The address links sent by email point to: the configured public URL,
    /// else the listen address. Never a request's `Host`, which a caller
    /// could set to send someone a link to another site.
    pub fn address_for_links(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// The address to show staff for this server: the configured public URL,
    /// else the `Host` a request came to, else the listen address.
    pub fn address_for_staff(&self, request_host: Option<&str>) -> String {
        match (&self.public_url, request_host) {
            (Some(url), _) => url.clone(),
            (None, Some(host)) => format!("http://{host}"),
            (None, None) => format!("http://{}", self.listen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_public_url_is_an_http_address_and_wins_over_the_request_host() {
        assert_eq!(public_url("https://licences.example.com/").as_deref(), Ok("https://licences.example.com"));
        assert!(public_url("ftp://licences.example.com").unwrap_err().contains("not an http"));
        assert!(public_url("https://").is_err());
        let mut cli = Cli::parse_from(["keysmith", "--listen", "127.0.0.1:9000"]);
        assert_eq!(cli.config.address_for_staff(None), "http://127.0.0.1:9000");
        assert_eq!(cli.config.address_for_staff(Some("keys.local:8080")), "http://keys.local:8080");
        cli.config.public_url = Some("https://licences.example.com".into());
        assert_eq!(cli.config.address_for_staff(Some("keys.local:8080")), "https://licences.example.com");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let cli = Cli::parse_from([
            "keysmith",
            "--database-url",
            "postgres://ks:hunter2@db/ks",
            "--jwt-secret",
            "a-very-secret-signing-key-0123456789",
            "--offline-signing-key",
            "c2VjcmV0LXNlZWQtc2VjcmV0LXNlZWQtc2VjcmV0LXM=",
        ]);
        let printed = format!("{:?}", cli.config);
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("a-very-secret"), "{printed}");
        assert!(!printed.contains("c2VjcmV0"), "{printed}");
    }

    #[test]
    fn defaults_serve_sqlite_on_localhost() {
        let cli = Cli::try_parse_from(["keysmith"]).expect("no arguments needed");
        assert!(cli.command.is_none());
        assert_eq!(cli.config.listen.to_string(), "127.0.0.1:8080");
    }
}
