//! The email outbox: messages written in the same transaction as what they
//! announce, sent by a worker on any node, retried, or held and logged when
//! no SMTP server is configured.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000007_email"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let at = |name: &'static str| ColumnDef::new(name).timestamp_with_time_zone().not_null().take();
        let at_null = |name: &'static str| ColumnDef::new(name).timestamp_with_time_zone().null().take();
        manager
            .create_table(
                Table::create()
                    .table("email")
                    .col(ColumnDef::new("id").string_len(26).not_null().primary_key())
                    .col(ColumnDef::new("environment").string_len(24).null())
                    .col(ColumnDef::new("kind").string_len(64).not_null())
                    .col(ColumnDef::new("to_address").text().not_null())
                    .col(ColumnDef::new("subject").text().not_null())
                    .col(ColumnDef::new("body").text().not_null())
                    .col(ColumnDef::new("status").string_len(16).not_null())
                    .col(ColumnDef::new("attempts").integer().not_null().default(0))
                    .col(at("next_attempt_at"))
                    .col(at_null("locked_until"))
                    .col(ColumnDef::new("last_error").text().null())
                    .col(at("created_at"))
                    .col(at_null("sent_at"))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("ix_email_due").table("email").col("status").col("next_attempt_at").take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("email").take()).await?;
        Ok(())
    }
}
