//! Which "licence expiring" notices (30, 14 and 7 days ahead) each licence
//! has had, so that each is announced once, however many nodes sweep.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000006_expiry_notices"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("expiry_notice")
                    .col(ColumnDef::new("license_key_id").string_len(26).not_null())
                    .col(ColumnDef::new("days").integer().not_null())
                    .col(ColumnDef::new("expires_at").timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new("created_at").timestamp_with_time_zone().not_null())
                    .primary_key(Index::create().col("license_key_id").col("days").col("expires_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_expiry_notice_license_key_id")
                            .from("expiry_notice", "license_key_id")
                            .to("license_key", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("expiry_notice").take()).await?;
        Ok(())
    }
}
