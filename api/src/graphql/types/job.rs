//! Background jobs as clients see them.

use crate::AppState;
use crate::services::jobs;
use async_graphql::{Context, Enum, ID, Json, Object};
use chrono::{DateTime, Utc};
use entity::job::Model;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl From<JobStatus> for jobs::JobStatus {
    fn from(s: JobStatus) -> Self {
        match s {
            JobStatus::Queued => jobs::JobStatus::Queued,
            JobStatus::Running => jobs::JobStatus::Running,
            JobStatus::Succeeded => jobs::JobStatus::Succeeded,
            JobStatus::Failed => jobs::JobStatus::Failed,
        }
    }
}

pub struct Job(pub Model);

#[Object]
impl Job {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// What the job does: `GENERATE_LICENSES`, `IMPORT_LICENSE_KEYS`,
    /// `EXPORT_LICENSE_KEYS`, or one of the recurring `EXPIRE_LICENSES`,
    /// `SEND_EXPIRY_NOTICES`, `DELIVER_WEBHOOKS`, `SEND_EMAILS`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// Whether the job runs again on a schedule; its figures are then its latest run's.
    async fn recurring(&self) -> bool {
        self.0.every_seconds.is_some()
    }
    /// A recurring job's next run, at the earliest.
    async fn next_run_at(&self) -> Option<DateTime<Utc>> {
        self.0.every_seconds.and(self.0.run_after)
    }
    async fn status(&self) -> JobStatus {
        match jobs::JobStatus::parse(&self.0.status) {
            Some(jobs::JobStatus::Running) => JobStatus::Running,
            Some(jobs::JobStatus::Succeeded) => JobStatus::Succeeded,
            Some(jobs::JobStatus::Failed) => JobStatus::Failed,
            _ => JobStatus::Queued,
        }
    }
    /// Units done (see `unit`), out of `total`. Live while the job runs on
    /// the node answering.
    async fn progress(&self, ctx: &Context<'_>) -> i64 {
        ctx.data_opt::<AppState>().and_then(|state| state.jobs.live_progress(&self.0.id)).unwrap_or(self.0.progress)
    }
    /// The units of work, when known in advance; 0 when not.
    async fn total(&self) -> i64 {
        self.0.total
    }
    /// What `progress` and `total` count: `licences`, `bytes` (of an
    /// imported list), `keys`, `notices`, `delivery attempts`, `emails`.
    async fn unit(&self) -> &'static str {
        jobs::unit(&self.0.kind)
    }
    async fn result(&self) -> Option<Json<serde_json::Value>> {
        self.0.result.clone().map(Json)
    }
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Job").field(&self.0.id).finish()
    }
}
