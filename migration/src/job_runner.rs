//! One job runner for everything a node does in the background: a job may
//! wait until a time (`run_after`), and the recurring ones (the expiry
//! sweep, reminders, webhook and email delivery) are one row each, run again
//! `every_seconds` after their last run.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000008_job_runner"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("job")
                    .add_column(ColumnDef::new("run_after").timestamp_with_time_zone().null())
                    .take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table("job").add_column(ColumnDef::new("every_seconds").big_integer().null()).take(),
            )
            .await?;
        // One row per recurring kind, however many nodes start at once.
        manager
            .get_connection()
            .execute_unprepared("CREATE UNIQUE INDEX ux_job_recurring ON job (kind) WHERE every_seconds IS NOT NULL")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX ux_job_recurring").await?;
        manager.alter_table(Table::alter().table("job").drop_column("every_seconds").take()).await?;
        manager.alter_table(Table::alter().table("job").drop_column("run_after").take()).await?;
        Ok(())
    }
}
