//! The customer portal: single-use sign-in links (only a hash of each link's
//! token is kept) and the sessions they open, which signing out ends.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000009_portal"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let id = |name: &'static str| ColumnDef::new(name).string_len(26).not_null().take();
        let at = |name: &'static str| ColumnDef::new(name).timestamp_with_time_zone().not_null().take();
        let at_null = |name: &'static str| ColumnDef::new(name).timestamp_with_time_zone().null().take();
        let customer = |table: &'static str| {
            ForeignKey::create()
                .name(format!("fk_{table}_customer_id"))
                .from(table, "customer_id")
                .to("customer", "id")
                .on_delete(ForeignKeyAction::Cascade)
                .take()
        };
        manager
            .create_table(
                Table::create()
                    .table("portal_link")
                    .col(id("id").primary_key())
                    .col(id("customer_id"))
                    .col(ColumnDef::new("token_hash").string_len(64).not_null().unique_key())
                    .col(ColumnDef::new("purpose").string_len(24).not_null())
                    .col(at("created_at"))
                    .col(at("expires_at"))
                    .col(at_null("used_at"))
                    .foreign_key(&mut customer("portal_link"))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("portal_session")
                    .col(id("id").primary_key())
                    .col(id("customer_id"))
                    .col(at("created_at"))
                    .col(at("expires_at"))
                    .col(at_null("ended_at"))
                    .foreign_key(&mut customer("portal_session"))
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("portal_session").take()).await?;
        manager.drop_table(Table::drop().table("portal_link").take()).await?;
        Ok(())
    }
}
