//! Renewals. A product's renewal period: what a renewal adds when it names
//! no period of its own (a renewal order, a subscription's payment), a count
//! of days, months or years, both columns null when the product sets none.
//! An order line may renew a licence (`renews_license_id`), extending it or,
//! once it has expired, delivering a new key (`renewal_outcome`); such a new
//! key names the licence it replaces (`renewed_from_id`). Every renewal is
//! recorded (`license_renewal`); one given a reference (a payment's id) is
//! recorded once per licence, which makes a repeated notice harmless.

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
        manager
            .create_table(
                Table::create()
                    .table("license_renewal")
                    .col(ColumnDef::new("id").string_len(26).not_null().primary_key())
                    .col(ColumnDef::new("license_key_id").string_len(26).not_null())
                    .col(ColumnDef::new("reference").string_len(200).null())
                    .col(ColumnDef::new("period").string_len(16).not_null())
                    .col(ColumnDef::new("basis").string_len(24).not_null())
                    .col(ColumnDef::new("expires_before").timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new("expires_after").timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new("order_line_id").string_len(26).null())
                    .col(ColumnDef::new("created_at").timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_license_renewal_license_key_id")
                            .from("license_renewal", "license_key_id")
                            .to("license_key", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        // Null references are distinct on both databases: only referenced renewals are kept to one.
        manager
            .create_index(
                Index::create()
                    .name("ux_license_renewal_reference")
                    .table("license_renewal")
                    .col("license_key_id")
                    .col("reference")
                    .unique()
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("license_renewal").take()).await?;
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
