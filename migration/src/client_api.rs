//! The client API: which fingerprints tried each key and when (for the abuse
//! rule), and the Ed25519 key that signs offline licence files, generated
//! once and shared by every node through the database.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000004_client_api"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("fingerprint_attempt")
                    .col(ColumnDef::new("license_key_id").string_len(26).not_null())
                    .col(ColumnDef::new("fingerprint").text().not_null())
                    .col(ColumnDef::new("last_tried_at").timestamp_with_time_zone().not_null())
                    .primary_key(Index::create().col("license_key_id").col("fingerprint"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_fingerprint_attempt_license_key_id")
                            .from("fingerprint_attempt", "license_key_id")
                            .to("license_key", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_fingerprint_attempt_recent")
                    .table("fingerprint_attempt")
                    .col("license_key_id")
                    .col("last_tried_at")
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("signing_key")
                    .col(ColumnDef::new("purpose").string_len(32).not_null().primary_key())
                    .col(ColumnDef::new("key_id").string_len(32).not_null())
                    .col(ColumnDef::new("secret").text().not_null())
                    .col(ColumnDef::new("public_key").text().not_null())
                    .col(ColumnDef::new("created_at").timestamp_with_time_zone().not_null())
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("signing_key").take()).await?;
        manager.drop_table(Table::drop().table("fingerprint_attempt").take()).await?;
        Ok(())
    }
}
