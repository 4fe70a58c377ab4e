//! The number of devices a licence is activated on, kept on the licence's
//! row: the client calls read it with the licence instead of counting the
//! licence's activations on every call. Every statement that starts or ends
//! an activation changes it in the same transaction.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000011_devices_in_use"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("license_key")
                    .add_column(ColumnDef::new("devices_in_use").integer().not_null().default(0))
                    .take(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE license_key SET devices_in_use = (SELECT COUNT(*) FROM activation a \
                 WHERE a.license_key_id = license_key.id AND a.deactivated_at IS NULL)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("license_key").drop_column("devices_in_use").take()).await?;
        Ok(())
    }
}
