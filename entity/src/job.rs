//! A background job (bulk generation, import, export, the recurring sweeps
//! and deliveries) and its progress.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "job")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub environment: Option<String>,
    pub kind: String,
    /// `QUEUED`, `RUNNING`, `SUCCEEDED` or `FAILED`.
    pub status: String,
    pub progress: i64,
    pub total: i64,
    pub payload: Json,
    pub result: Option<Json>,
    pub error: Option<String>,
    pub created_by: Option<String>,
    pub locked_by: Option<String>,
    pub locked_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// Not claimed before this time (a recurring job's next run).
    pub run_after: Option<DateTimeUtc>,
    /// Set for a recurring job: run again this long after each run.
    pub every_seconds: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
