//! A product's renewal period: what a renewal adds when it names no period
//! of its own (a renewal order, a subscription's payment). A count of days,
//! months or years, both columns null when the product sets none.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000012_renewals"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ColumnDef::new("renewal_period_unit").string_len(8).null().take(),
            ColumnDef::new("renewal_period_count").integer().null().take(),
        ] {
            manager.alter_table(Table::alter().table("product").add_column(column).take()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["renewal_period_count", "renewal_period_unit"] {
            manager.alter_table(Table::alter().table("product").drop_column(column).take()).await?;
        }
        Ok(())
    }
}
