//! Background jobs: one table and one runner for everything a node does off
//! the request path, so `jobs` and `job(id)` show all of it.
//!
//! - **Queued** jobs (bulk generation) wait for any node's runner to claim
//!   them. Their work commits in batches with their progress, so a job cut
//!   off by a stop is resumed where it was.
//! - **Attached** jobs (imports and exports) run inside the request that
//!   carries their data; they are recorded as jobs so they can be followed.
//!   They cannot move to another node (the upload or the download was that
//!   request's), so a stop marks them FAILED, saying so.
//! - **Recurring** jobs (the expiry sweep, expiry notices, webhook and email
//!   delivery) are one row each, claimed by one node at a time and run again
//!   `every_seconds` after each run.
//!
//! A claim is a lease on the row (`locked_by`, `locked_until`): a node that
//! dies loses it when it lapses, and a node restarting under the same name
//! (`KEYSMITH_NODE_ID`, by default host and port) takes its jobs back at once.

mod attached;
mod generate;

pub use attached::Attached;
pub use generate::{MAX_GENERATE, generate_licenses};

use super::pagination::{Keyset, Page, PageArgs, SortKind, paginate, time_value};
use crate::auth::{RequestContext, may};
use crate::error::{AppError, AppResult};
use chrono::Duration;
use entity::job;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

pub const GENERATE_LICENSES: &str = "GENERATE_LICENSES";
pub const IMPORT_LICENSE_KEYS: &str = "IMPORT_LICENSE_KEYS";
pub const EXPORT_LICENSE_KEYS: &str = "EXPORT_LICENSE_KEYS";
pub const EXPIRE_LICENSES: &str = "EXPIRE_LICENSES";
pub const SEND_EXPIRY_NOTICES: &str = "SEND_EXPIRY_NOTICES";
pub const DELIVER_WEBHOOKS: &str = "DELIVER_WEBHOOKS";
pub const SEND_EMAILS: &str = "SEND_EMAILS";

/// Kinds that run inside a request and cannot be taken over by another node.
const ATTACHED: [&str; 2] = [IMPORT_LICENSE_KEYS, EXPORT_LICENSE_KEYS];
/// How long a claim holds without the node renewing it.
pub(crate) const LEASE_SECONDS: i64 = 60;

/// What a job's `progress` and `total` count.
pub fn unit(kind: &str) -> &'static str {
    match kind {
        GENERATE_LICENSES | EXPIRE_LICENSES => "licences",
        IMPORT_LICENSE_KEYS => "bytes",
        EXPORT_LICENSE_KEYS => "keys",
        SEND_EXPIRY_NOTICES => "notices",
        DELIVER_WEBHOOKS => "delivery attempts",
        SEND_EMAILS => "emails",
        _ => "items",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "QUEUED",
            JobStatus::Running => "RUNNING",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [JobStatus::Queued, JobStatus::Running, JobStatus::Succeeded, JobStatus::Failed]
            .into_iter()
            .find(|j| j.as_str() == s)
    }
}

/// This node's side of the job table: its name, and the live progress of
/// the attached jobs it runs (an import on SQLite holds the write lock, so
/// its progress is kept in memory until it ends).
#[derive(Default)]
pub struct Runner {
    node: OnceLock<String>,
    live: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl Runner {
    /// Names this node; the first name given sticks.
    pub fn set_node(&self, name: String) {
        let _ = self.node.set(name);
    }

    /// The node's name. A process never named (a command-line import) gets
    /// a name of its own, so it never holds another node's claims.
    pub fn node(&self) -> &str {
        self.node.get_or_init(|| {
            let host = hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
            format!("{host}:pid{}-{}", std::process::id(), entity::new_id())
        })
    }

    pub fn live_progress(&self, id: &str) -> Option<i64> {
        let live = self.live.lock().ok()?;
        live.get(id).map(|p| p.load(Ordering::Relaxed) as i64)
    }

    fn track(&self, id: &str, progress: Arc<AtomicU64>) {
        if let Ok(mut live) = self.live.lock() {
            live.insert(id.to_string(), progress);
        }
    }

    fn untrack(&self, id: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(id);
        }
    }
}

/// A job of the environment, or one of the recurring jobs every environment shares.
fn visible_in(ctx: &RequestContext) -> Condition {
    Condition::any().add(job::Column::Environment.eq(ctx.environment.as_str())).add(job::Column::Environment.is_null())
}

pub async fn get(db: &DatabaseConnection, ctx: &RequestContext, id: &str) -> AppResult<job::Model> {
    ctx.viewer.require(may::READ)?;
    job::Entity::find_by_id(id.to_string())
        .filter(visible_in(ctx))
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found("job"))
}

pub async fn list(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    status: Option<JobStatus>,
    kind: Option<&str>,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<job::Model>> {
    ctx.viewer.require(may::READ)?;
    let mut query = job::Entity::find().filter(visible_in(ctx));
    if let Some(status) = status {
        query = query.filter(job::Column::Status.eq(status.as_str()));
    }
    if let Some(kind) = super::limits::filter_word("kind", kind)? {
        query = query.filter(job::Column::Kind.eq(kind));
    }
    let keyset = Keyset { column: job::Column::CreatedAt, kind: SortKind::Time, id: job::Column::Id, descending: true };
    paginate(db, query, keyset, args, want_total, |j| time_value(&j.created_at), |j| j.id.clone()).await
}

fn blank(kind: &str, status: JobStatus) -> job::ActiveModel {
    job::ActiveModel {
        id: Set(entity::new_id()),
        environment: Set(None),
        kind: Set(kind.to_string()),
        status: Set(status.as_str().into()),
        progress: Set(0),
        total: Set(0),
        payload: Set(serde_json::json!({})),
        result: Set(None),
        error: Set(None),
        created_by: Set(None),
        locked_by: Set(None),
        locked_until: Set(None),
        created_at: Set(entity::now()),
        started_at: Set(None),
        finished_at: Set(None),
        run_after: Set(None),
        every_seconds: Set(None),
    }
}

/// Makes sure each recurring job has its row, run every so many seconds.
/// Several nodes starting at once make one row each kind; the last to start
/// sets the interval.
pub async fn ensure_recurring(db: &DatabaseConnection, schedule: &[(&str, u64)]) -> AppResult<()> {
    let _turn = crate::db::write_turn(db).await;
    for (kind, every) in schedule {
        let every = (*every).max(1) as i64;
        let mut row = blank(kind, JobStatus::Queued);
        row.every_seconds = Set(Some(every));
        row.run_after = Set(Some(entity::now()));
        job::Entity::insert(row).on_conflict(OnConflict::new().do_nothing().to_owned()).try_insert().exec(db).await?;
        job::Entity::update_many()
            .col_expr(job::Column::EverySeconds, Expr::value(every))
            .filter(job::Column::Kind.eq(*kind))
            .filter(job::Column::EverySeconds.is_not_null())
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Jobs a runner may take: queued and due, recurring and due (or `woken`:
/// work for them just arrived), or held by a claim that lapsed.
fn claimable(now: chrono::DateTime<chrono::Utc>, woken: &[&str]) -> Condition {
    let due = Condition::any().add(job::Column::RunAfter.is_null()).add(job::Column::RunAfter.lte(now));
    let mut recurring_due = Condition::any().add(job::Column::RunAfter.lte(now));
    if !woken.is_empty() {
        recurring_due = recurring_due.add(job::Column::Kind.is_in(woken.iter().copied()));
    }
    Condition::any()
        .add(Condition::all().add(job::Column::Status.eq(JobStatus::Queued.as_str())).add(due))
        .add(
            Condition::all()
                .add(job::Column::EverySeconds.is_not_null())
                .add(job::Column::Status.is_in([JobStatus::Succeeded.as_str(), JobStatus::Failed.as_str()]))
                .add(recurring_due),
        )
        .add(
            Condition::all()
                .add(job::Column::Status.eq(JobStatus::Running.as_str()))
                .add(job::Column::LockedUntil.lt(now))
                .add(job::Column::Kind.is_not_in(ATTACHED)),
        )
}

/// Claims the oldest job a runner may take, for `node`. Kinds in `skip` are
/// left alone (this node is running them already).
pub async fn claim(
    db: &DatabaseConnection,
    node: &str,
    woken: &[&str],
    skip: &[&str],
) -> AppResult<Option<job::Model>> {
    let now = entity::now();
    let mut candidates = job::Entity::find().filter(claimable(now, woken));
    if !skip.is_empty() {
        candidates = candidates.filter(job::Column::Kind.is_not_in(skip.iter().copied()));
    }
    for candidate in candidates.order_by_asc(job::Column::CreatedAt).limit(8).all(db).await? {
        let mut update = job::Entity::update_many()
            .col_expr(job::Column::Status, Expr::value(JobStatus::Running.as_str()))
            .col_expr(job::Column::LockedBy, Expr::value(node))
            .col_expr(job::Column::LockedUntil, Expr::value(now + Duration::seconds(LEASE_SECONDS)));
        // A recurring job's figures are its latest run's; a resumed job keeps its own.
        let started = if candidate.every_seconds.is_some() && candidate.status != JobStatus::Running.as_str() {
            update = update.col_expr(job::Column::Progress, Expr::value(0i64));
            now
        } else {
            candidate.started_at.unwrap_or(now)
        };
        let _turn = crate::db::write_turn(db).await;
        let claimed = update
            .col_expr(job::Column::StartedAt, Expr::value(started))
            .filter(job::Column::Id.eq(candidate.id.as_str()))
            .filter(job::Column::Status.eq(candidate.status.as_str()))
            .filter(claimable(now, woken))
            .exec(db)
            .await?
            .rows_affected;
        if claimed == 1 {
            return Ok(job::Entity::find_by_id(candidate.id).one(db).await?);
        }
    }
    Ok(None)
}

/// Extends `node`'s claim on a job, recording its progress. False when the
/// claim was lost to another node.
pub async fn renew(db: &DatabaseConnection, id: &str, node: &str, progress: i64) -> AppResult<bool> {
    let _turn = crate::db::write_turn(db).await;
    let kept = job::Entity::update_many()
        .col_expr(job::Column::Progress, Expr::value(progress))
        .col_expr(job::Column::LockedUntil, Expr::value(entity::now() + Duration::seconds(LEASE_SECONDS)))
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::LockedBy.eq(node))
        .filter(job::Column::Status.eq(JobStatus::Running.as_str()))
        .exec(db)
        .await?
        .rows_affected;
    Ok(kept == 1)
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    pub progress: i64,
    pub result: serde_json::Value,
}

/// Records how `node`'s run of `job` ended. A recurring job is due again
/// `every_seconds` later.
pub async fn finish(
    db: &DatabaseConnection,
    job: &job::Model,
    node: &str,
    outcome: Result<Done, String>,
) -> AppResult<()> {
    let now = entity::now();
    let (status, progress, result, error) = match outcome {
        Ok(done) => (JobStatus::Succeeded, Some(done.progress), Some(done.result), None),
        Err(error) => (JobStatus::Failed, None, None, Some(error)),
    };
    let mut update = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(status.as_str()))
        .col_expr(job::Column::Result, Expr::value(result))
        .col_expr(job::Column::Error, Expr::value(error))
        .col_expr(job::Column::FinishedAt, Expr::value(now))
        .col_expr(job::Column::LockedUntil, Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None));
    if let Some(progress) = progress {
        update = update.col_expr(job::Column::Progress, Expr::value(progress));
    }
    if let Some(every) = job.every_seconds {
        update = update.col_expr(job::Column::RunAfter, Expr::value(now + Duration::seconds(every)));
    }
    let _turn = crate::db::write_turn(db).await;
    update
        .filter(job::Column::Id.eq(job.id.as_str()))
        .filter(job::Column::LockedBy.eq(node))
        .filter(job::Column::Status.eq(JobStatus::Running.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// Why an attached job of `kind` cannot be resumed.
fn interrupted(kind: &str, node: &str) -> String {
    let what = match kind {
        IMPORT_LICENSE_KEYS => "an import is one transaction, so none of its keys were kept; import the list again",
        EXPORT_LICENSE_KEYS => "the download was cut off; export again",
        _ => "run it again",
    };
    format!("interrupted: node {node} stopped while the job ran ({what})")
}

/// Takes back what `node` held when it stopped (at its start, and when it
/// shuts down): queued and recurring jobs go back to the queue to be
/// resumed; attached jobs are marked FAILED. Returns how many were found.
pub async fn recover(db: &DatabaseConnection, node: &str) -> AppResult<u64> {
    let _turn = crate::db::write_turn(db).await;
    let held = || {
        job::Entity::update_many()
            .filter(job::Column::LockedBy.eq(node))
            .filter(job::Column::Status.eq(JobStatus::Running.as_str()))
    };
    let requeued = held()
        .col_expr(job::Column::Status, Expr::value(JobStatus::Queued.as_str()))
        .col_expr(job::Column::LockedUntil, Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None))
        .filter(job::Column::Kind.is_not_in(ATTACHED))
        .exec(db)
        .await?
        .rows_affected;
    let mut failed = 0;
    for kind in ATTACHED {
        failed += held()
            .col_expr(job::Column::Status, Expr::value(JobStatus::Failed.as_str()))
            .col_expr(job::Column::Error, Expr::value(interrupted(kind, node)))
            .col_expr(job::Column::FinishedAt, Expr::value(entity::now()))
            .col_expr(job::Column::LockedUntil, Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None))
            .filter(job::Column::Kind.eq(kind))
            .exec(db)
            .await?
            .rows_affected;
    }
    if requeued + failed > 0 {
        tracing::info!(node, requeued, failed, "took back the jobs this node held when it stopped");
    }
    Ok(requeued + failed)
}

/// Marks FAILED the attached jobs of other nodes that stopped renewing their
/// claim: the node is gone, and the job's data with it.
pub async fn fail_abandoned(db: &DatabaseConnection, node: &str) -> AppResult<u64> {
    let now = entity::now();
    let lapsed = job::Entity::find()
        .filter(job::Column::Status.eq(JobStatus::Running.as_str()))
        .filter(job::Column::Kind.is_in(ATTACHED))
        .filter(job::Column::LockedUntil.lt(now))
        .filter(job::Column::LockedBy.ne(node))
        .all(db)
        .await?;
    let mut failed = 0;
    for job in lapsed {
        let holder = job.locked_by.clone().unwrap_or_default();
        let _turn = crate::db::write_turn(db).await;
        failed += job::Entity::update_many()
            .col_expr(job::Column::Status, Expr::value(JobStatus::Failed.as_str()))
            .col_expr(job::Column::Error, Expr::value(interrupted(&job.kind, &holder)))
            .col_expr(job::Column::FinishedAt, Expr::value(now))
            .filter(job::Column::Id.eq(job.id.as_str()))
            .filter(job::Column::Status.eq(JobStatus::Running.as_str()))
            .filter(job::Column::LockedUntil.lt(now))
            .exec(db)
            .await?
            .rows_affected;
    }
    Ok(failed)
}

/// Runs one generation job for `node`; `None` when another node took it over.
pub async fn run_generation(db: &DatabaseConnection, node: &str, job: &job::Model) -> AppResult<Option<Done>> {
    Ok(generate::run(db, node, job).await?.map(|result| Done { progress: job.total, result }))
}
