//! Renewals. A product's renewal period: what a renewal adds when it names
//! no period of its own (a renewal order, a subscription's payment), a count
//! of days, months or years, both columns null when the product sets none.
//! An order line may renew a licence (`renews_license_id`), extending it or,
//! once it has expired, delivering a new key (`renewal_outcome`); such a new
//! key names the licence it replaces (`renewed_from_id`).

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
        for (table, column) in [
            ("product", ColumnDef::new("renewal_period_unit").string_len(8).null().take()),
            ("product", ColumnDef::new("renewal_period_count").integer().null().take()),
            ("license_key", ColumnDef::new("renewed_from_id").string_len(26).null().take()),
            ("order_line", ColumnDef::new("renews_license_id").string_len(26).null().take()),
            ("order_line", ColumnDef::new("renewal_outcome").string_len(16).null().take()),
        ] {
            manager.alter_table(Table::alter().table(table).add_column(column).take()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [
            ("order_line", "renewal_outcome"),
            ("order_line", "renews_license_id"),
            ("license_key", "renewed_from_id"),
            ("product", "renewal_period_count"),
            ("product", "renewal_period_unit"),
        ] {
            manager.alter_table(Table::alter().table(table).drop_column(column).take()).await?;
        }
        Ok(())
    }
}
