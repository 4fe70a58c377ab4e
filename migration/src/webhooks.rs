//! Webhooks: an endpoint belongs to one environment, and the outbox's events
//! not yet turned into deliveries are found by an index of their own.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000005_webhooks"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "ALTER TABLE webhook_endpoint ADD COLUMN environment VARCHAR(24) NOT NULL DEFAULT 'production'",
        )
        .await?;
        db.execute_unprepared("CREATE INDEX ix_event_undispatched ON event (created_at) WHERE dispatched_at IS NULL")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX ix_event_undispatched").await?;
        db.execute_unprepared("ALTER TABLE webhook_endpoint DROP COLUMN environment").await?;
        Ok(())
    }
}
