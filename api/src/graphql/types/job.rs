//! Background jobs as clients see them.

use crate::services::jobs;
use async_graphql::{Enum, ID, Json, Object};
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
    /// What the job does, e.g. `GENERATE_LICENSES`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    async fn status(&self) -> JobStatus {
        match jobs::JobStatus::parse(&self.0.status) {
            Some(jobs::JobStatus::Running) => JobStatus::Running,
            Some(jobs::JobStatus::Succeeded) => JobStatus::Succeeded,
            Some(jobs::JobStatus::Failed) => JobStatus::Failed,
            _ => JobStatus::Queued,
        }
    }
    /// Units done (licences made, …), out of `total`.
    async fn progress(&self) -> i64 {
        self.0.progress
    }
    async fn total(&self) -> i64 {
        self.0.total
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
