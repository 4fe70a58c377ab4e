//! The whole data model of the design brief: products, generators, tags and
//! keys, customers and orders, activations, staff accounts, the audit trail,
//! webhooks, jobs and settings.
//!
//! Rules the database enforces itself (not only the code):
//! - one key string is delivered at most once per environment: a partial
//!   unique index over `(environment, key)` for every row that is not AVAILABLE;
//! - generated keys are unique per environment;
//! - a fingerprint holds at most one live activation per licence.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000001_initial_schema"
    }
}

const ID_LEN: u32 = 26;
const ENUM_LEN: u32 = 24;

fn id() -> ColumnDef {
    ColumnDef::new("id").string_len(ID_LEN).not_null().primary_key().take()
}
fn reference(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string_len(ID_LEN).not_null().take()
}
fn reference_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string_len(ID_LEN).null().take()
}
fn short(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string_len(ENUM_LEN).not_null().take()
}
fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().not_null().take()
}
fn text_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().null().take()
}
fn int(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).integer().not_null().take()
}
fn int_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).integer().null().take()
}
fn big(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().default(0).take()
}
fn flag(name: &'static str, default: bool) -> ColumnDef {
    ColumnDef::new(name).boolean().not_null().default(default).take()
}
fn json(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json_binary().not_null().take()
}
fn json_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json_binary().null().take()
}
fn at(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().not_null().take()
}
fn at_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().null().take()
}
fn table(name: &'static str) -> TableBuilder {
    TableBuilder(name, Table::create().table(name).take())
}

/// A table statement that remembers its name, so `down` can drop what `up` made.
struct TableBuilder(&'static str, TableCreateStatement);

impl TableBuilder {
    fn col(mut self, column: impl IntoColumnDef) -> Self {
        self.1.col(column);
        self
    }
    fn foreign_key(mut self, key: &mut ForeignKeyCreateStatement) -> Self {
        self.1.foreign_key(key);
        self
    }
    fn primary_key(mut self, index: &mut IndexCreateStatement) -> Self {
        self.1.primary_key(index);
        self
    }
    fn take(self) -> (&'static str, TableCreateStatement) {
        (self.0, self.1)
    }
}

fn fk(
    table: &'static str,
    column: &'static str,
    parent: &'static str,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_{column}"))
        .from(table, column)
        .to(parent, "id")
        .on_delete(on_delete)
        .take()
}

/// Tables in creation order (parents first), each with its name; dropped in reverse.
fn tables() -> Vec<(&'static str, TableCreateStatement)> {
    use ForeignKeyAction::{Cascade, Restrict, SetNull};
    vec![
        table("users")
            .col(id())
            .col(text("email"))
            .col(text("password_hash"))
            .col(short("role"))
            .col(flag("disabled", false))
            .col(ColumnDef::new("token_version").integer().not_null().default(0))
            .col(at("created_at"))
            .col(at("updated_at"))
            .take(),
        table("generator")
            .col(id())
            .col(text("name"))
            .col(short("format"))
            .col(ColumnDef::new("prefix").text().not_null().default(""))
            .col(int_null("chunk_count"))
            .col(int_null("chunk_length"))
            .col(text_null("alphabet"))
            .col(ColumnDef::new("separator").text().not_null().default("-"))
            .col(text_null("pattern"))
            .col(int("default_activation_limit"))
            .col(int_null("validity_days"))
            .col(json("default_feature_flags"))
            .col(at("created_at"))
            .col(at("updated_at"))
            .take(),
        table("tag")
            .col(id())
            .col(short("environment"))
            .col(text("name"))
            .col(at_null("exhausting_notified_at"))
            .col(at("created_at"))
            .take(),
        table("product")
            .col(id())
            .col(short("environment"))
            .col(text("name"))
            .col(ColumnDef::new("description").text().not_null().default(""))
            .col(short("status"))
            .col(short("delivery_mode"))
            .col(reference_null("delivery_tag_id"))
            .col(reference_null("generator_id"))
            .col(text("key_button_text"))
            .col(text("unavailable_message"))
            .col(flag("requires_fingerprint", false))
            .col(at("created_at"))
            .col(at("updated_at"))
            .foreign_key(&mut fk("product", "delivery_tag_id", "tag", SetNull))
            .foreign_key(&mut fk("product", "generator_id", "generator", SetNull))
            .take(),
        table("customer")
            .col(id())
            .col(short("environment"))
            .col(text("email"))
            .col(text("name"))
            .col(at("created_at"))
            .col(at("updated_at"))
            .take(),
        table("orders")
            .col(id())
            .col(short("environment"))
            .col(text("external_id"))
            .col(reference("customer_id"))
            .col(short("status"))
            .col(at("created_at"))
            .col(at("updated_at"))
            .col(at_null("refunded_at"))
            .foreign_key(&mut fk("orders", "customer_id", "customer", Restrict))
            .take(),
        table("order_line")
            .col(id())
            .col(reference("order_id"))
            .col(reference("product_id"))
            .col(int("quantity"))
            .col(ColumnDef::new("missing").integer().not_null().default(0))
            .col(at("created_at"))
            .foreign_key(&mut fk("order_line", "order_id", "orders", Cascade))
            .foreign_key(&mut fk("order_line", "product_id", "product", Restrict))
            .take(),
        table("license_key")
            .col(id())
            .col(short("environment"))
            .col(text("key"))
            .col(reference_null("product_id"))
            .col(short("source"))
            .col(reference_null("generator_id"))
            .col(short("status"))
            .col(reference_null("customer_id"))
            .col(reference_null("order_line_id"))
            .col(int("activation_limit"))
            .col(at_null("expires_at"))
            .col(json("feature_flags"))
            .col(json("metadata"))
            .col(at("created_at"))
            .col(at("updated_at"))
            .col(at_null("assigned_at"))
            .col(at_null("activated_at"))
            .col(at_null("revealed_at"))
            .col(at_null("revoked_at"))
            .foreign_key(&mut fk("license_key", "product_id", "product", Restrict))
            .foreign_key(&mut fk("license_key", "generator_id", "generator", SetNull))
            .foreign_key(&mut fk("license_key", "customer_id", "customer", Restrict))
            .foreign_key(&mut fk("license_key", "order_line_id", "order_line", SetNull))
            .take(),
        table("license_key_tag")
            .col(reference("license_key_id"))
            .col(reference("tag_id"))
            .primary_key(Index::create().col("license_key_id").col("tag_id"))
            .foreign_key(&mut fk("license_key_tag", "license_key_id", "license_key", Cascade))
            .foreign_key(&mut fk("license_key_tag", "tag_id", "tag", Cascade))
            .take(),
        table("activation")
            .col(id())
            .col(reference("license_key_id"))
            .col(text("fingerprint"))
            .col(text_null("name"))
            .col(text_null("platform"))
            .col(text_null("client_address"))
            .col(at("created_at"))
            .col(at("last_seen_at"))
            .col(at_null("deactivated_at"))
            .foreign_key(&mut fk("activation", "license_key_id", "license_key", Cascade))
            .take(),
        table("audit_event")
            .col(id())
            .col(ColumnDef::new("environment").string_len(ENUM_LEN).null())
            .col(short("actor_kind"))
            .col(reference_null("actor_id"))
            .col(text("action"))
            .col(short("target_kind"))
            .col(text("target_id"))
            .col(ColumnDef::new("key_prefix").string_len(8).null())
            .col(json_null("before"))
            .col(json_null("after"))
            .col(at("created_at"))
            .take(),
        table("webhook_endpoint")
            .col(id())
            .col(text("url"))
            .col(text("secret"))
            .col(json("events"))
            .col(flag("enabled", true))
            .col(at("created_at"))
            .col(at("updated_at"))
            .take(),
        table("webhook_delivery")
            .col(id())
            .col(reference("endpoint_id"))
            .col(reference("event_id"))
            .col(text("event_type"))
            .col(json("payload"))
            .col(short("status"))
            .col(ColumnDef::new("attempts").integer().not_null().default(0))
            .col(at("next_attempt_at"))
            .col(at_null("locked_until"))
            .col(int_null("last_status_code"))
            .col(text_null("last_response"))
            .col(text_null("last_error"))
            .col(at("created_at"))
            .col(at_null("delivered_at"))
            .foreign_key(&mut fk("webhook_delivery", "endpoint_id", "webhook_endpoint", Cascade))
            .take(),
        table("job")
            .col(id())
            .col(ColumnDef::new("environment").string_len(ENUM_LEN).null())
            .col(short("kind"))
            .col(short("status"))
            .col(big("progress"))
            .col(big("total"))
            .col(json("payload"))
            .col(json_null("result"))
            .col(text_null("error"))
            .col(reference_null("created_by"))
            .col(text_null("locked_by"))
            .col(at_null("locked_until"))
            .col(at("created_at"))
            .col(at_null("started_at"))
            .col(at_null("finished_at"))
            .take(),
        table("setting")
            .col(ColumnDef::new("name").string_len(64).not_null().primary_key())
            .col(json("value"))
            .col(at("updated_at"))
            .take(),
    ]
}

/// (name, table, columns, unique)
const INDEXES: &[(&str, &str, &[&str], bool)] = &[
    ("ux_users_email", "users", &["email"], true),
    ("ux_generator_name", "generator", &["name"], true),
    ("ux_tag_environment_name", "tag", &["environment", "name"], true),
    ("ux_product_environment_name", "product", &["environment", "name"], true),
    ("ix_product_environment_created", "product", &["environment", "created_at"], false),
    ("ux_customer_environment_email", "customer", &["environment", "email"], true),
    ("ix_customer_environment_name", "customer", &["environment", "name"], false),
    ("ux_orders_environment_external", "orders", &["environment", "external_id"], true),
    ("ix_orders_customer", "orders", &["customer_id", "created_at"], false),
    ("ix_orders_environment_status", "orders", &["environment", "status", "created_at"], false),
    ("ix_orders_environment_created", "orders", &["environment", "created_at"], false),
    ("ix_order_line_order", "order_line", &["order_id"], false),
    ("ix_order_line_product", "order_line", &["product_id", "created_at"], false),
    ("ix_license_key_environment_key", "license_key", &["environment", "key"], false),
    // First available key, oldest first; and the list filtered by status.
    ("ix_license_key_environment_status", "license_key", &["environment", "status", "created_at"], false),
    ("ix_license_key_environment_created", "license_key", &["environment", "created_at"], false),
    ("ix_license_key_product", "license_key", &["product_id"], false),
    ("ix_license_key_customer", "license_key", &["customer_id"], false),
    ("ix_license_key_order_line", "license_key", &["order_line_id"], false),
    ("ix_license_key_expiry", "license_key", &["status", "expires_at"], false),
    ("ix_license_key_tag_tag", "license_key_tag", &["tag_id", "license_key_id"], false),
    ("ix_activation_license", "activation", &["license_key_id", "created_at"], false),
    ("ix_audit_event_target", "audit_event", &["target_kind", "target_id", "created_at"], false),
    ("ix_audit_event_created", "audit_event", &["created_at"], false),
    ("ix_audit_event_actor", "audit_event", &["actor_id", "created_at"], false),
    ("ix_audit_event_action", "audit_event", &["action", "created_at"], false),
    ("ux_webhook_delivery_event", "webhook_delivery", &["endpoint_id", "event_id"], true),
    ("ix_webhook_delivery_due", "webhook_delivery", &["status", "next_attempt_at"], false),
    ("ix_job_status", "job", &["status", "created_at"], false),
    ("ix_job_kind", "job", &["kind", "created_at"], false),
];

/// Partial unique indexes: the same SQL is valid on SQLite and PostgreSQL.
const PARTIAL_UNIQUE_INDEXES: &[&str] = &[
    // At most one non-AVAILABLE row per (environment, key): a key string is delivered once.
    "CREATE UNIQUE INDEX ux_license_key_delivered ON license_key (environment, key) \
     WHERE status <> 'AVAILABLE'",
    "CREATE UNIQUE INDEX ux_license_key_generated ON license_key (environment, key) \
     WHERE source = 'GENERATED'",
    "CREATE UNIQUE INDEX ux_activation_live ON activation (license_key_id, fingerprint) \
     WHERE deactivated_at IS NULL",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (_, table) in tables() {
            manager.create_table(table).await?;
        }
        for (name, table, columns, unique) in INDEXES {
            let mut index = Index::create().name(*name).table(*table).take();
            for column in *columns {
                index.col(*column);
            }
            if *unique {
                index.unique();
            }
            manager.create_index(index).await?;
        }
        let db = manager.get_connection();
        for sql in PARTIAL_UNIQUE_INDEXES {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, _) in tables().into_iter().rev() {
            manager.drop_table(Table::drop().table(name).to_owned()).await?;
        }
        Ok(())
    }
}
