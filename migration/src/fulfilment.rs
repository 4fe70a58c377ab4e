//! Fulfilment: the event outbox (domain events, written in the same transaction
//! as the change they announce, for webhooks and email to deliver), the
//! exhaustion state of each pool, and an index over the order lines still
//! waiting for keys.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000003_fulfilment"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("event")
                    .col(ColumnDef::new("id").string_len(26).not_null().primary_key())
                    .col(ColumnDef::new("environment").string_len(24).null())
                    .col(ColumnDef::new("kind").string_len(64).not_null())
                    .col(ColumnDef::new("subject_kind").string_len(24).not_null())
                    .col(ColumnDef::new("subject_id").string_len(26).not_null())
                    .col(ColumnDef::new("payload").json_binary().not_null())
                    .col(ColumnDef::new("created_at").timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new("dispatched_at").timestamp_with_time_zone().null())
                    .take(),
            )
            .await?;
        manager
            .create_index(Index::create().name("ix_event_kind").table("event").col("kind").col("created_at").take())
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("pool_alert")
                    .col(ColumnDef::new("environment").string_len(24).not_null())
                    .col(ColumnDef::new("pool_id").string_len(26).not_null())
                    .col(ColumnDef::new("exhausting_at").timestamp_with_time_zone().null())
                    .col(ColumnDef::new("exhausted_at").timestamp_with_time_zone().null())
                    .primary_key(Index::create().col("environment").col("pool_id"))
                    .take(),
            )
            .await?;
        let db = manager.get_connection();
        // Waiting lines by product, oldest first; only lines still short are indexed.
        db.execute_unprepared(
            "CREATE INDEX ix_order_line_waiting ON order_line (product_id, created_at) WHERE missing > 0",
        )
        .await?;
        // The first available key, oldest first: with the id in the index the
        // order is complete, so a claim reads the index from its start and
        // stops at the first deliverable key instead of sorting every key that
        // shares a creation time (a whole import does).
        // (A new name: SQLite connections of the pool that still hold the old
        // schema would refuse to create an index of the old name.)
        db.execute_unprepared(
            "CREATE INDEX ix_license_key_status_order ON license_key (environment, status, created_at, id)",
        )
        .await?;
        db.execute_unprepared("DROP INDEX ix_license_key_environment_status").await?;
        // The pool state moved to `pool_alert`, which also covers "no tag".
        db.execute_unprepared("ALTER TABLE tag DROP COLUMN exhausting_notified_at").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE tag ADD COLUMN exhausting_notified_at TIMESTAMP NULL").await?;
        db.execute_unprepared("DROP INDEX ix_order_line_waiting").await?;
        db.execute_unprepared(
            "CREATE INDEX ix_license_key_environment_status ON license_key (environment, status, created_at)",
        )
        .await?;
        db.execute_unprepared("DROP INDEX ix_license_key_status_order").await?;
        manager.drop_table(Table::drop().table("pool_alert").take()).await?;
        manager.drop_table(Table::drop().table("event").take()).await?;
        Ok(())
    }
}
