//! Email through a real SMTP exchange: pool alerts to the seller's
//! notification address and expiry reminders to customers; without SMTP,
//! messages are held in the outbox.

use entity::user::StaffRole;
use entity::{email, license_key};
use keysmith_tests::app::{config, fresh_database};
use keysmith_tests::smtp::SmtpServer;
use keysmith_tests::{Backend, TestApp, data, error_code, error_field, on_both_databases};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;
use std::time::{Duration, Instant};

/// A server over a fresh database that sends its email to `smtp`.
pub(crate) async fn app_with_smtp(backend: Backend, smtp: &SmtpServer) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("dir");
    let url = fresh_database(backend, dir.path()).await?;
    let mut cfg = config(&url);
    cfg.smtp_url = Some(smtp.url());
    Some(TestApp::spawn_with(backend, cfg, dir).await)
}

/// A pool of five keys and a product delivering from it; an order of four
/// (without the order's own email, which the portal tests cover) crosses
/// the 80 % threshold. Returns the delivered key ids.
async fn drain_a_pool(app: &TestApp, admin: &str) -> Vec<String> {
    let t = Some(admin);
    let tag = app.graphql(t, "mutation { createTag(input: {name: \"mailed\"}) { tag { id } } }", json!({})).await;
    let tag = data(&tag)["createTag"]["tag"]["id"].clone();
    let keys: Vec<String> = (1..=5).map(|i| format!("MAILED-KEY-{i:04}")).collect();
    let imported = app
        .graphql(
            t,
            "mutation($k: String!, $t: [ID!]!) { importLicenseKeys(input: {text: $k, tagIds: $t}) { imported } }",
            json!({ "k": keys.join("\n"), "t": [tag] }),
        )
        .await;
    assert_eq!(data(&imported)["importLicenseKeys"]["imported"], 5);
    let product = app
        .graphql(t, "mutation($t: ID!) { createProduct(input: {name: \"Mailed Pro\", delivery: {mode: TAG, tagId: $t}}) { product { id } } }", json!({ "t": tag }))
        .await;
    let product = data(&product)["createProduct"]["product"]["id"].clone();
    let order = app
        .graphql(
            t,
            "mutation($p: ID!) { createOrder(input: {externalId: \"mail-1\", customer: {email: \"ada@buyer.example\", \
             name: \"Ada\"}, lines: [{productId: $p, quantity: 4}], emailCustomer: false}) { order { lines { keys { id } } } } }",
            json!({ "p": product }),
        )
        .await;
    data(&order)["createOrder"]["order"]["lines"][0]["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_alerts_and_expiry_reminders_go_out_by_smtp_sqlite() {
    pool_alerts_and_expiry_reminders_go_out_by_smtp(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_alerts_and_expiry_reminders_go_out_by_smtp_postgres() {
    pool_alerts_and_expiry_reminders_go_out_by_smtp(Backend::Postgres).await;
}

async fn pool_alerts_and_expiry_reminders_go_out_by_smtp(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let Some(app) = app_with_smtp(backend, &smtp).await else { return };
    let admin = app.staff_token(StaffRole::Admin).await;
    let set =
        "mutation($e: String) { updateSettings(input: {notificationEmail: $e}) { settings { notificationEmail } } }";
    let bad = app.graphql(Some(&admin), set, json!({ "e": "not an address" })).await;
    assert_eq!((error_code(&bad), error_field(&bad)), (Some("INVALID_INPUT"), Some("notificationEmail")));
    let body = app.graphql(Some(&admin), set, json!({ "e": "alerts@seller.example" })).await;
    assert_eq!(data(&body)["updateSettings"]["settings"]["notificationEmail"], "alerts@seller.example");

    let delivered = drain_a_pool(&app, &admin).await;
    assert_eq!(delivered.len(), 4);
    // One of Ada's licences expires in five days: she is reminded.
    let mut row: license_key::ActiveModel =
        license_key::Entity::find_by_id(delivered[0].clone()).one(app.db()).await.expect("read").expect("row").into();
    row.expires_at = Set(Some(entity::now() + chrono::Duration::days(5)));
    row.update(app.db()).await.expect("update");

    let deadline = Instant::now() + Duration::from_secs(30);
    while smtp.mails().len() < 2 {
        assert!(Instant::now() < deadline, "mails so far: {:#?}", smtp.mails());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mails = smtp.mails();
    let alert = mails.iter().find(|m| m.to == ["alerts@seller.example"]).expect("the pool alert");
    assert!(alert.data.contains("Subject: Keysmith: the pool mailed is running out of keys"), "{}", alert.data);
    assert!(alert.data.contains("1 of 5 keys left"), "{}", alert.data);
    assert_eq!(alert.from, "keysmith@example.com");
    let reminder = mails.iter().find(|m| m.to == ["ada@buyer.example"]).expect("the reminder");
    assert!(reminder.data.contains("Subject: Your Mailed Pro licence expires in 7 days"), "{}", reminder.data);
    assert!(reminder.data.contains("Hello Ada") && reminder.data.contains("MAILED-K"), "{}", reminder.data);
    assert!(!reminder.data.contains("MAILED-KEY-0001"), "only the key's first 8 characters");
    let sent = email::Entity::find().filter(email::Column::Status.eq("SENT")).all(app.db()).await.expect("outbox");
    assert_eq!(sent.len(), 2);
    app.stop().await;
}

on_both_databases!(without_smtp_emails_are_held_in_the_outbox);

async fn without_smtp_emails_are_held_in_the_outbox(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    app.graphql(Some(&admin), "mutation { updateSettings(input: {notificationEmail: \"alerts@seller.example\"}) { settings { notificationEmail } } }", json!({}))
        .await;
    drain_a_pool(&app, &admin).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let held = email::Entity::find().all(app.db()).await.expect("outbox");
        if held.iter().any(|m| m.status == "HELD" && m.to_address == "alerts@seller.example") {
            break;
        }
        assert!(Instant::now() < deadline, "{held:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
