//! Rules the database itself enforces, and write transactions under contention.

use entity::license_key::{self, KeySource};
use entity::{Environment, LicenseStatus, setting};
use keysmith_tests::app::fresh_database;
use keysmith_tests::{Backend, TestApp, on_both_databases};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::json;

fn key_row(environment: Environment, key: &str, source: KeySource) -> license_key::ActiveModel {
    let now = entity::now();
    license_key::ActiveModel {
        id: Set(entity::new_id()),
        environment: Set(environment),
        key: Set(key.to_string()),
        product_id: Set(None),
        source: Set(source),
        generator_id: Set(None),
        status: Set(LicenseStatus::Available),
        customer_id: Set(None),
        order_line_id: Set(None),
        activation_limit: Set(1),
        expires_at: Set(None),
        feature_flags: Set(json!({})),
        metadata: Set(json!({})),
        created_at: Set(now),
        updated_at: Set(now),
        assigned_at: Set(None),
        activated_at: Set(None),
        revealed_at: Set(None),
        revoked_at: Set(None),
        devices_in_use: Set(0),
        renewed_from_id: Set(None),
        expiry_from_delivery: Set(false),
    }
}

on_both_databases!(
    a_key_string_is_delivered_at_most_once_per_environment,
    generated_keys_are_unique,
    migrating_twice_changes_nothing
);

async fn a_key_string_is_delivered_at_most_once_per_environment(app: TestApp) {
    let db = app.db();
    // Messy uploads may hold the same key twice while both are in the pool.
    let first = key_row(Environment::Production, "AAAA-BBBB", KeySource::Uploaded).insert(db).await.expect("first");
    let second =
        key_row(Environment::Production, "AAAA-BBBB", KeySource::Uploaded).insert(db).await.expect("a pool duplicate");

    let mut delivered: license_key::ActiveModel = first.into();
    delivered.status = Set(LicenseStatus::Assigned);
    delivered.update(db).await.expect("deliver one copy");

    let mut again: license_key::ActiveModel = second.clone().into();
    again.status = Set(LicenseStatus::Assigned);
    let err = again.update(db).await.expect_err("the same key string cannot be delivered twice");
    assert!(matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))), "{err}");
    let unchanged = license_key::Entity::find_by_id(second.id).one(db).await.expect("read").expect("row");
    assert_eq!(unchanged.status, LicenseStatus::Available);

    // Revoked counts as delivered too; the other environment is independent.
    let mut staging = key_row(Environment::Staging, "AAAA-BBBB", KeySource::Uploaded);
    staging.status = Set(LicenseStatus::Revoked);
    staging.insert(db).await.expect("the other environment is separate");
    let mut revoked = key_row(Environment::Production, "AAAA-BBBB", KeySource::Uploaded);
    revoked.status = Set(LicenseStatus::Revoked);
    assert!(revoked.insert(db).await.is_err());
}

async fn generated_keys_are_unique(app: TestApp) {
    let db = app.db();
    key_row(Environment::Production, "01GEN", KeySource::Generated).insert(db).await.expect("first");
    let err = key_row(Environment::Production, "01GEN", KeySource::Generated)
        .insert(db)
        .await
        .expect_err("a generated key is unique");
    assert!(matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))), "{err}");
    key_row(Environment::Staging, "01GEN", KeySource::Generated).insert(db).await.expect("per environment");
}

async fn migrating_twice_changes_nothing(app: TestApp) {
    keysmith::db::migrate(app.db()).await.expect("migrate again");
    let keys = license_key::Entity::find().all(app.db()).await.expect("the schema is intact");
    assert!(keys.is_empty());
}

/// Fifty transactions that each read a counter and write it back, at once: on
/// SQLite the write lock is taken at BEGIN, so they queue instead of failing
/// with "database is locked", and no increment is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_write_transactions_queue_instead_of_failing() {
    let dir = tempfile::tempdir().expect("dir");
    let url = fresh_database(Backend::Sqlite, dir.path()).await.expect("sqlite");
    let db = keysmith::db::connect(&url, 16).await.expect("connect");
    keysmith::db::migrate(&db).await.expect("migrate");
    setting::ActiveModel { name: Set("counter".into()), value: Set(json!(0)), updated_at: Set(entity::now()) }
        .insert(&db)
        .await
        .expect("seed");

    let mut tasks = Vec::new();
    for _ in 0..50 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let txn = keysmith::db::begin_write(&db).await?;
            let row = setting::Entity::find_by_id("counter".to_string()).one(&txn).await?.expect("counter");
            tokio::task::yield_now().await;
            let mut active: setting::ActiveModel = row.clone().into();
            active.value = Set(json!(row.value.as_i64().unwrap_or_default() + 1));
            active.update(&txn).await?;
            txn.commit().await
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("no transaction fails");
    }
    let counter = setting::Entity::find_by_id("counter".to_string()).one(&db).await.expect("read").expect("row");
    assert_eq!(counter.value, json!(50));
}
