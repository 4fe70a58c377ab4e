//! Email: messages are queued in the outbox in the same transaction as what
//! they announce, and a worker on every node sends the due ones through the
//! configured SMTP server (claimed with a lease, so no two nodes send one
//! message at once), retrying for a day. Without SMTP configured they are
//! held in the outbox and logged by recipient and subject only — a body may
//! carry a sign-in link.

use crate::error::{AppError, AppResult};
use crate::services::sql::claim_due;
use chrono::Duration;
use entity::{Environment, email};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryTrait, Set, Statement};

pub const PENDING: &str = "PENDING";
pub const SENT: &str = "SENT";
pub const FAILED: &str = "FAILED";
pub const HELD: &str = "HELD";
const BATCH: i64 = 20;
const LEASE_SECONDS: i64 = 120;
const RETRY_FOR_HOURS: i64 = 24;

/// Queues a message inside the caller's transaction.
pub async fn queue(
    db: &impl ConnectionTrait,
    environment: Option<Environment>,
    kind: &str,
    to: &str,
    subject: &str,
    body: &str,
) -> AppResult<()> {
    db.execute_raw(queued(db.get_database_backend(), environment, kind, to, subject, body)).await?;
    Ok(())
}

/// The insert that queues a message (see [`queue`]), for a caller that
/// chains it with other writes.
pub fn queued(
    backend: DbBackend,
    environment: Option<Environment>,
    kind: &str,
    to: &str,
    subject: &str,
    body: &str,
) -> Statement {
    let now = entity::now();
    let insert = email::Entity::insert(email::ActiveModel {
        id: Set(entity::new_id()),
        environment: Set(environment.map(|e| e.as_str().to_string())),
        kind: Set(kind.to_string()),
        to_address: Set(to.to_string()),
        subject: Set(subject.to_string()),
        body: Set(body.to_string()),
        status: Set(PENDING.to_string()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        locked_until: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
    });
    QueryTrait::build(&insert, backend)
}

/// How this node sends email: through SMTP, or not at all (held).
#[derive(Clone)]
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("smtp", &self.transport.is_some()).field("from", &self.from).finish()
    }
}

impl Mailer {
    pub fn new(smtp_url: Option<&str>, from: &str) -> anyhow::Result<Self> {
        let from: Mailbox =
            from.parse().map_err(|e| anyhow::anyhow!("KEYSMITH_MAIL_FROM is not an email address: {e}"))?;
        let transport = smtp_url
            .map(|url| {
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map(|b| b.timeout(Some(std::time::Duration::from_secs(20))).build())
                    .map_err(|e| anyhow::anyhow!("KEYSMITH_SMTP_URL is not usable: {e}"))
            })
            .transpose()?;
        Ok(Self { transport, from })
    }
}

/// Sends (or holds) the messages due now. Returns how many were handled.
pub async fn send_due(db: &DatabaseConnection, mailer: &Mailer) -> AppResult<u64> {
    let claimed: Vec<email::Model> = claim_due(db, "email", None, BATCH, Duration::seconds(LEASE_SECONDS)).await?;
    let handled = claimed.len() as u64;
    for message in claimed {
        let outcome = match &mailer.transport {
            None => {
                tracing::info!(kind = %message.kind, to = %message.to_address, subject = %message.subject,
                    "email held in the outbox: no SMTP server is configured (KEYSMITH_SMTP_URL)");
                None
            }
            Some(transport) => Some(send_one(transport, &mailer.from, &message).await),
        };
        record(db, &message, outcome).await?;
    }
    Ok(handled)
}

async fn send_one(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    message: &email::Model,
) -> Result<(), String> {
    let to: Mailbox = message.to_address.parse().map_err(|e| format!("the recipient is not an address: {e}"))?;
    let built = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(&message.subject)
        .header(ContentType::TEXT_PLAIN)
        .body(message.body.clone())
        .map_err(|e| format!("the message cannot be built: {e}"))?;
    transport.send(built).await.map(|_| ()).map_err(|e| e.to_string())
}

async fn record(db: &DatabaseConnection, message: &email::Model, outcome: Option<Result<(), String>>) -> AppResult<()> {
    let now = entity::now();
    let mut row: email::ActiveModel = message.clone().into();
    row.locked_until = Set(None);
    match outcome {
        None => row.status = Set(HELD.to_string()),
        Some(Ok(())) => {
            row.status = Set(SENT.to_string());
            row.attempts = Set(message.attempts + 1);
            row.sent_at = Set(Some(now));
            row.last_error = Set(None);
        }
        Some(Err(error)) => {
            tracing::warn!(kind = %message.kind, error = %error, "sending an email failed; retrying");
            let attempts = message.attempts + 1;
            row.attempts = Set(attempts);
            row.last_error = Set(Some(error));
            if now - message.created_at >= Duration::hours(RETRY_FOR_HOURS) {
                row.status = Set(FAILED.to_string());
            } else {
                let wait = 30i64.saturating_mul(1 << attempts.clamp(1, 7)).min(3600);
                row.next_attempt_at = Set(now + Duration::seconds(wait));
            }
        }
    }
    let _turn = crate::db::write_turn(db).await;
    sea_orm::ActiveModelTrait::update(row, db).await.map_err(AppError::from)?;
    Ok(())
}
