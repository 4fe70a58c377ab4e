//! Integrations: a payment provider's or shop's webhooks delivered straight
//! to Keysmith. An integration holds the provider, its signing secret (and
//! the previous one while a rolled secret is still in use), what its refunds
//! and cancellations do, and counts the deliveries it refused. Its
//! `integration_product` rows map the provider's item ids (prices, variants,
//! products) to Keysmith products, or to nothing (an item that carries no
//! licence). Every verified delivery is one `integration_event`, unique per
//! provider event id: a duplicate is counted, never acted on twice; its body
//! is kept so an admin can replay it. `integration_link` ties a provider's
//! subscriptions and payments to the orders they placed; `integration_customer`
//! keeps the customers a provider names only by id (Paddle), and an event
//! waiting for one names it (`waiting_for`). A body is recorded once per
//! integration too (`body_sha256`): a captured delivery sent again under
//! other unsigned headers is a duplicate. A key whose expiry was set when it
//! was delivered (one renewal period of its product) says so
//! (`license_key.expiry_from_delivery`): back in the pool, it loses it.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000013_integrations"
    }
}

fn at(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().not_null().take()
}

fn text(name: &'static str, len: u32) -> ColumnDef {
    ColumnDef::new(name).string_len(len).not_null().take()
}

fn cascade(table: &'static str, column: &'static str, to: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_{column}"))
        .from(table, column)
        .to(to, "id")
        .on_delete(ForeignKeyAction::Cascade)
        .take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("integration")
                    .col(ColumnDef::new("id").string_len(26).not_null().primary_key())
                    .col(text("environment", 24))
                    .col(text("provider", 24))
                    .col(text("name", 200))
                    .col(text("secret", 500))
                    .col(ColumnDef::new("previous_secret").string_len(500).null())
                    .col(ColumnDef::new("previous_secret_until").timestamp_with_time_zone().null())
                    .col(ColumnDef::new("enabled").boolean().not_null())
                    .col(text("on_refund", 24))
                    .col(text("on_cancel", 24))
                    .col(ColumnDef::new("email_customer").boolean().not_null())
                    .col(ColumnDef::new("tolerance_seconds").integer().not_null())
                    .col(ColumnDef::new("rate_limit_per_minute").integer().not_null())
                    .col(ColumnDef::new("paid_statuses").json_binary().not_null())
                    .col(ColumnDef::new("refused_count").big_integer().not_null().default(0))
                    .col(ColumnDef::new("last_refused_at").timestamp_with_time_zone().null())
                    .col(ColumnDef::new("last_refusal").string_len(200).null())
                    .col(at("created_at"))
                    .col(at("updated_at"))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_integration_environment")
                    .table("integration")
                    .col("environment")
                    .col("created_at")
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("integration_product")
                    .col(text("integration_id", 26))
                    .col(text("provider_ref", 200))
                    .col(ColumnDef::new("product_id").string_len(26).null())
                    .primary_key(Index::create().col("integration_id").col("provider_ref"))
                    .foreign_key(&mut cascade("integration_product", "integration_id", "integration"))
                    .foreign_key(&mut cascade("integration_product", "product_id", "product"))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("integration_event")
                    .col(ColumnDef::new("id").string_len(26).not_null().primary_key())
                    .col(text("integration_id", 26))
                    .col(text("provider_event_id", 200))
                    .col(text("body_sha256", 64))
                    .col(ColumnDef::new("waiting_for").string_len(200).null())
                    .col(text("event_type", 100))
                    .col(text("outcome", 24))
                    .col(ColumnDef::new("reason").string_len(48).null())
                    .col(ColumnDef::new("detail").string_len(1000).null())
                    .col(ColumnDef::new("order_id").string_len(26).null())
                    .col(ColumnDef::new("license_ids").json_binary().not_null())
                    .col(ColumnDef::new("headers").json_binary().not_null())
                    .col(ColumnDef::new("body").text().not_null())
                    .col(ColumnDef::new("attempts").integer().not_null())
                    .col(ColumnDef::new("duplicates").integer().not_null())
                    .col(at("received_at"))
                    .col(ColumnDef::new("processed_at").timestamp_with_time_zone().null())
                    .foreign_key(&mut cascade("integration_event", "integration_id", "integration"))
                    .take(),
            )
            .await?;
        for (name, cols, unique) in [
            ("ux_integration_event_provider_id", ["integration_id", "provider_event_id"], true),
            ("ux_integration_event_body", ["integration_id", "body_sha256"], true),
            ("ix_integration_event_received", ["integration_id", "received_at"], false),
            ("ix_integration_event_waiting", ["integration_id", "waiting_for"], false),
        ] {
            let mut index = Index::create().name(name).table("integration_event").take();
            for col in cols {
                index.col(col);
            }
            if unique {
                index.unique();
            }
            manager.create_index(index).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("integration_link")
                    .col(text("integration_id", 26))
                    .col(text("kind", 24))
                    .col(text("provider_ref", 200))
                    .col(text("external_id", 200))
                    .col(at("created_at"))
                    .primary_key(
                        Index::create().col("integration_id").col("kind").col("provider_ref").col("external_id"),
                    )
                    .foreign_key(&mut cascade("integration_link", "integration_id", "integration"))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("integration_customer")
                    .col(text("integration_id", 26))
                    .col(text("provider_customer_id", 200))
                    .col(text("email", 320))
                    .col(text("name", 200))
                    .col(at("updated_at"))
                    .primary_key(Index::create().col("integration_id").col("provider_customer_id"))
                    .foreign_key(&mut cascade("integration_customer", "integration_id", "integration"))
                    .take(),
            )
            .await?;
        let delivered = ColumnDef::new("expiry_from_delivery").boolean().not_null().default(false).take();
        manager.alter_table(Table::alter().table("license_key").add_column(delivered).take()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let key = Table::alter().table("license_key").drop_column("expiry_from_delivery").take();
        manager.alter_table(key).await?;
        for table in
            ["integration_customer", "integration_link", "integration_event", "integration_product", "integration"]
        {
            manager.drop_table(Table::drop().table(table).take()).await?;
        }
        Ok(())
    }
}
