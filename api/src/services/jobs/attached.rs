//! Jobs that run inside the request carrying their data (an import's list,
//! an export's download), recorded in the job table so they can be followed
//! like any other. The request holds an [`Attached`]: its claim is renewed
//! while the work goes on, and however the request ends, the job does too.

use super::{Done, JobStatus, LEASE_SECONDS, Runner, blank, finish, renew};
use crate::auth::{RequestContext, Viewer};
use crate::error::AppResult;
use entity::job;
use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A running attached job. Finish it with [`Attached::finish`]; dropped
/// unfinished (the request was cancelled), it is marked FAILED.
pub struct Attached {
    job: job::Model,
    db: DatabaseConnection,
    runner: Arc<Runner>,
    progress: Arc<AtomicU64>,
    failure: Arc<Mutex<Option<String>>>,
    renewal: tokio::task::JoinHandle<()>,
    finished: bool,
}

impl Attached {
    /// Records a RUNNING job of `kind` held by this node, whose work
    /// advances `progress`.
    pub async fn start(
        db: &DatabaseConnection,
        runner: &Arc<Runner>,
        ctx: &RequestContext,
        kind: &str,
        (progress, total): (Arc<AtomicU64>, i64),
        payload: serde_json::Value,
    ) -> AppResult<Self> {
        let node = runner.node().to_string();
        let now = entity::now();
        let mut row = blank(kind, JobStatus::Running);
        row.environment = Set(Some(ctx.environment.as_str().to_string()));
        row.total = Set(total);
        row.payload = Set(payload);
        row.created_by = Set(match &ctx.viewer {
            Viewer::Staff { user_id, .. } => Some(user_id.clone()),
            _ => None,
        });
        row.locked_by = Set(Some(node.clone()));
        row.locked_until = Set(Some(now + chrono::Duration::seconds(LEASE_SECONDS)));
        row.started_at = Set(Some(now));
        let job = {
            let _turn = crate::db::write_turn(db).await;
            row.insert(db).await?
        };
        runner.track(&job.id, progress.clone());
        // Renewed at a third of the lease. On SQLite an import holds the
        // write lock, so a renewal may wait for it; the node's own jobs are
        // never taken from it while it runs, only by other nodes.
        let renewal = {
            let (db, id, progress) = (db.clone(), job.id.clone(), progress.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs((LEASE_SECONDS / 3) as u64));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if let Err(e) = renew(&db, &id, &node, progress.load(Ordering::Relaxed) as i64).await {
                        tracing::debug!(job = %id, error = %e.detail(), "renewing a job's claim failed; retrying");
                    }
                }
            })
        };
        Ok(Self {
            job,
            db: db.clone(),
            runner: runner.clone(),
            progress,
            failure: Arc::default(),
            renewal,
            finished: false,
        })
    }

    pub fn id(&self) -> &str {
        &self.job.id
    }

    /// The counter the work advances.
    pub fn progress(&self) -> Arc<AtomicU64> {
        self.progress.clone()
    }

    /// Where the work reports why it stopped, should the job be dropped unfinished.
    pub fn failure(&self) -> Arc<Mutex<Option<String>>> {
        self.failure.clone()
    }

    /// Records the outcome: a result, or the reason it failed.
    pub async fn finish(mut self, outcome: Result<serde_json::Value, String>) -> AppResult<()> {
        self.finished = true;
        self.renewal.abort();
        self.runner.untrack(&self.job.id);
        let progress = self.progress.load(Ordering::Relaxed) as i64;
        let outcome = outcome.map(|result| Done { progress, result });
        finish(&self.db, &self.job, self.runner.node(), outcome).await
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.renewal.abort();
        self.runner.untrack(&self.job.id);
        let reason = self.failure.lock().ok().and_then(|mut f| f.take()).unwrap_or_else(|| {
            "cancelled: the request ended before the job finished (a client that disconnects ends its import or export)"
                .to_string()
        });
        let (db, job, runner) = (self.db.clone(), self.job.clone(), self.runner.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = finish(&db, &job, runner.node(), Err(reason)).await {
                    tracing::warn!(job = %job.id, error = %e.detail(), "recording a cancelled job failed");
                }
            });
        }
    }
}
