//! The audit trail: every mutation that changes data writes an event (checked
//! for every mutation in the schema against a snapshot of every table), and
//! `auditEvents` lists them for admin and support, filtered.

use crate::client::{activate, delivered};
use crate::environments::wait_for_jobs;
use crate::roles::{MATRIX, Outcome, request_for};
use entity::user::StaffRole;
use entity::{Environment, LicenseStatus, audit_event, email};
use keysmith_tests::app::{config, fresh_database, seed};
use keysmith_tests::{Backend, TestApp, data, error_code, on_both_databases};
use sea_orm::{
    ColumnTrait, DbBackend, EntityTrait, FromQueryResult, JsonValue, PaginatorTrait, QueryFilter, Statement,
};
use serde_json::json;
use std::collections::BTreeMap;

/// Tables whose changes are not changes of state, with the reason.
const NOT_STATE: &[(&str, &str)] = &[
    ("audit_event", "the trail itself"),
    ("event", "the outbox: announcements written beside the audited change"),
    ("pool_alert", "bookkeeping of which exhaustion alerts fired, written by the background checks"),
    ("seaql_migrations", "the schema's version"),
];

async fn tables(app: &TestApp) -> Vec<String> {
    let db = app.db();
    let sql = match db.get_database_backend() {
        DbBackend::Postgres => {
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' \
             AND table_type = 'BASE TABLE'"
        }
        // The search index's own tables mirror `license_key`.
        _ => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
              AND name NOT LIKE 'license_key_fts%'"
        }
    };
    let rows = JsonValue::find_by_statement(Statement::from_string(db.get_database_backend(), sql))
        .all(db)
        .await
        .expect("tables");
    let mut names: Vec<String> = rows
        .into_iter()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .filter(|name| !NOT_STATE.iter().any(|(t, _)| t == name))
        .collect();
    names.sort();
    names
}

/// Every row of every table that holds state.
async fn snapshot(app: &TestApp, tables: &[String]) -> BTreeMap<String, Vec<String>> {
    let db = app.db();
    let mut all = BTreeMap::new();
    for table in tables {
        // The recurring jobs' rows record their runs, not anyone's change.
        let only = if table == "job" { " WHERE every_seconds IS NULL" } else { "" };
        let stmt = Statement::from_string(db.get_database_backend(), format!("SELECT * FROM \"{table}\"{only}"));
        let mut rows: Vec<String> =
            JsonValue::find_by_statement(stmt).all(db).await.expect("rows").iter().map(|r| r.to_string()).collect();
        rows.sort();
        all.insert(table.clone(), rows);
    }
    all
}

async fn quiet_app(backend: Backend) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("dir");
    let url = fresh_database(backend, dir.path()).await?;
    let mut cfg = config(&url);
    // No sweeper run between two snapshots.
    cfg.sweep_interval_seconds = 3600;
    Some(TestApp::spawn_with(backend, cfg, dir).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutation_that_changes_data_writes_an_audit_event_sqlite() {
    if let Some(app) = quiet_app(Backend::Sqlite).await {
        every_mutation_that_changes_data_writes_an_audit_event(app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutation_that_changes_data_writes_an_audit_event_postgres() {
    if let Some(app) = quiet_app(Backend::Postgres).await {
        every_mutation_that_changes_data_writes_an_audit_event(app).await;
    }
}

async fn every_mutation_that_changes_data_writes_an_audit_event(app: TestApp) {
    let mut admin = app.staff_token(StaffRole::Admin).await;
    let tables = tables(&app).await;
    assert!(tables.iter().any(|t| t == "license_key") && tables.iter().any(|t| t == "activation"), "{tables:?}");
    let mut changed = Vec::new();
    for (mutation, outcomes) in MATRIX {
        assert_eq!(outcomes[0], Outcome::Allowed, "{mutation}: admins may run every mutation");
        let (query, variables) = request_for(&app, &admin, mutation).await;
        settle(&app, &admin).await;
        let before = snapshot(&app, &tables).await;
        let events = audit_event::Entity::find().count(app.db()).await.expect("count");
        let body = app.graphql(Some(&admin), &query, variables).await;
        if *mutation != "login" {
            assert!(body.get("errors").is_none(), "{mutation}: {body:#}");
        }
        // A password change ends the caller's token and hands a fresh one.
        if let Some(fresh) = body["data"]["changePassword"]["token"].as_str() {
            admin = fresh.to_string();
        }
        settle(&app, &admin).await;
        let after = snapshot(&app, &tables).await;
        let differ: Vec<&String> = tables.iter().filter(|t| before.get(*t) != after.get(*t)).collect();
        if differ.is_empty() {
            continue;
        }
        let written = audit_event::Entity::find().count(app.db()).await.expect("count") - events;
        assert!(written > 0, "{mutation} changed {differ:?} without an audit event");
        changed.push(*mutation);
    }
    // The walk means something only if the requests did change data: all but these.
    let expected: Vec<&str> =
        MATRIX.iter().map(|(m, _)| *m).filter(|m| !UNCHANGED.iter().any(|(u, _)| u == m)).collect();
    assert_eq!(changed, expected);
}

/// Waits for one-off jobs to end and for the email worker to have taken up
/// every queued email (without SMTP it marks them `HELD`): the preparation
/// of a request (an order, which emails its customer) must not change the
/// outbox while the request is watched.
async fn settle(app: &TestApp, admin: &str) {
    wait_for_jobs(app, admin).await;
    for _ in 0..300 {
        let pending =
            email::Entity::find().filter(email::Column::Status.eq("PENDING")).count(app.db()).await.expect("count");
        if pending == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("queued emails were never taken up");
}

/// Mutations whose request in the role matrix changes nothing, and why.
const UNCHANGED: &[(&str, &str)] = &[
    ("tagLicenseKeys", "the key already carries the tag"),
    ("moveLicenseKeys", "both tags are empty"),
    ("cleanUpDuplicates", "the tag has no duplicates"),
    ("updateSettings", "sets the value it already has"),
    ("login", "wrong credentials"),
    ("validateLicense", "an unknown key: an answer, no change"),
    ("activateLicense", "an unknown key: an answer, no change"),
    ("deactivateLicense", "an unknown key: an answer, no change"),
    ("revealLicenseKey", "staff see the key; only the customer's own reveal is its use"),
    ("signOutOfPortal", "staff have no portal session"),
    ("signOut", "a bearer token has no staff session (ending one is audited: see staff_sessions)"),
];

on_both_databases!(the_audit_trail_is_listed_and_filtered_for_admin_and_support);

async fn the_audit_trail_is_listed_and_filtered_for_admin_and_support(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let support = app.staff_token(StaffRole::Support).await;
    let started = chrono::Utc::now() - chrono::Duration::seconds(1);
    let (licence, _, _) = delivered(&app, "AUDITED-KEY-0001", 2).await;
    assert_eq!(activate(&app, "AUDITED-KEY-0001", "pc-1").await["code"], "VALID");
    let product = app
        .graphql(Some(&admin), "mutation { createProduct(input: {name: \"Audited\"}) { product { id } } }", json!({}))
        .await;
    let product = data(&product)["createProduct"]["product"]["id"].clone();
    let list = "query($f: AuditEventFilter, $n: Int) { auditEvents(filter: $f, first: $n) { totalCount \
                edges { node { actorKind actorId action targetKind targetId keyPrefix before after createdAt } } } }";
    let nodes = |body: &serde_json::Value| -> Vec<serde_json::Value> {
        data(body)["auditEvents"]["edges"].as_array().expect("edges").iter().map(|e| e["node"].clone()).collect()
    };

    let all = app.graphql(Some(&support), list, json!({})).await;
    let all = nodes(&all);
    assert_eq!(all[0]["action"], "product.created", "newest first");
    let by_licence = app.graphql(Some(&support), list, json!({ "f": { "targetId": licence } })).await;
    let activated = nodes(&by_licence);
    assert_eq!(activated.len(), 1, "{activated:#?}");
    assert_eq!(
        (&activated[0]["action"], &activated[0]["actorKind"], &activated[0]["keyPrefix"]),
        (&json!("license.activated"), &json!("client"), &json!("AUDITED-"))
    );
    assert_eq!(activated[0]["after"]["fingerprint"], "pc-1");
    let by_action = app.graphql(Some(&admin), list, json!({ "f": { "action": "product.created" } })).await;
    assert_eq!(nodes(&by_action).iter().map(|n| n["targetId"].clone()).collect::<Vec<_>>(), [product]);
    let by_actor = app.graphql(Some(&admin), list, json!({ "f": { "actorKind": "client" } })).await;
    assert_eq!(nodes(&by_actor).len(), 1);
    let admin_id = nodes(&by_action)[0]["actorId"].clone();
    assert!(admin_id.is_string());
    let by_user = app.graphql(Some(&admin), list, json!({ "f": { "actorId": admin_id } })).await;
    assert!(nodes(&by_user).iter().all(|n| n["actorKind"] == "user"));
    let later = app
        .graphql(Some(&admin), list, json!({ "f": { "since": chrono::Utc::now() + chrono::Duration::hours(1) } }))
        .await;
    assert_eq!(data(&later)["auditEvents"]["totalCount"], 0);
    let window = app
        .graphql(
            Some(&admin),
            list,
            json!({ "f": { "since": started, "until": chrono::Utc::now() + chrono::Duration::seconds(5) } }),
        )
        .await;
    assert_eq!(data(&window)["auditEvents"]["totalCount"].as_u64(), Some(all.len() as u64));
    // Pages follow each other without gaps.
    let first = app.graphql(Some(&admin), list, json!({ "n": 1 })).await;
    assert_eq!(nodes(&first)[0], all[0]);

    // Only admin and support read the trail; another environment's is its own.
    let manager = app.staff_token(StaffRole::Manager).await;
    assert_eq!(error_code(&app.graphql(Some(&manager), list, json!({})).await), Some("FORBIDDEN"));
    assert_eq!(
        error_code(&app.graphql(Some(&app.customer_token(&entity::new_id()).await), list, json!({})).await),
        Some("FORBIDDEN")
    );
    assert_eq!(error_code(&app.graphql(None, list, json!({})).await), Some("UNAUTHENTICATED"));
    let (_, staged) =
        app.graphql_in(Some(&admin), Some("staging"), list, json!({ "f": { "targetId": licence } })).await;
    assert_eq!(data(&staged)["auditEvents"]["totalCount"], 0);
}

on_both_databases!(every_deleted_key_leaves_its_own_event);

/// "Look for the deletion in the audit trail" is what staff are told when a
/// licence cannot be found: every key deleted in bulk or with its tag has its
/// own event (its first 8 characters, its status and order as they were)
/// beside the operation's summary, and the whole key is nowhere in the trail.
async fn every_deleted_key_leaves_its_own_event(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let manager = app.staff_token(StaffRole::Manager).await;
    let (db, p) = (app.db(), Environment::Production);
    // (licence id, key, status when deleted, order) of every key that goes.
    let mut gone: Vec<(String, String, &str, Option<String>)> = Vec::new();

    for key in ["BULK-AAAA-0001", "BULK-BBBB-0002"] {
        gone.push((seed::key(db, p, key, LicenseStatus::Available, &[]).await, key.into(), "AVAILABLE", None));
    }
    let sold = seed::key(db, p, "BULK-SOLD-0003", LicenseStatus::Available, &[]).await;
    let order = seed::deliver(db, &sold, false).await;
    gone.push((sold, "BULK-SOLD-0003".into(), "ASSIGNED", Some(order)));
    let kept = seed::key(db, p, "BULK-KEEP-0004", LicenseStatus::Available, &[]).await;
    let ids: Vec<&str> = gone.iter().map(|g| g.0.as_str()).collect();
    let delete = "mutation($k: [ID!]!) { deleteLicenseKeys(input: {keyIds: $k}) { keysChanged } }";
    let body = app.graphql(Some(&manager), delete, json!({ "k": ids })).await;
    assert_eq!(data(&body)["deleteLicenseKeys"]["keysChanged"], 3);

    // A tag with many keys: one event each, whatever the count.
    let body =
        app.graphql(Some(&manager), "mutation { createTag(input: {name: \"going\"}) { tag { id } } }", json!({})).await;
    let tag = data(&body)["createTag"]["tag"]["id"].as_str().expect("a tag").to_string();
    let many: Vec<String> = (0..250).map(|i| format!("TAGGED-{i:04}-ABCDEFGH")).collect();
    let import = "mutation($k: String!, $t: [ID!]!) { importLicenseKeys(input: {text: $k, tagIds: $t}) { imported } }";
    let body = app.graphql(Some(&manager), import, json!({ "k": many.join("\n"), "t": [tag] })).await;
    assert_eq!(data(&body)["importLicenseKeys"]["imported"], many.len());
    let sold = seed::key(db, p, "TAGGED-SOLD-0001", LicenseStatus::Available, &[&tag]).await;
    let order = seed::deliver(db, &sold, false).await;
    gone.push((sold, "TAGGED-SOLD-0001".into(), "ASSIGNED", Some(order)));
    let waiting = seed::key(db, p, "TAGGED-WAIT-0002", LicenseStatus::Available, &[&tag]).await;
    gone.push((waiting, "TAGGED-WAIT-0002".into(), "AVAILABLE", None));
    let delete = "mutation($id: ID!) { deleteTag(input: {id: $id}) { keysChanged } }";
    let body = app.graphql(Some(&manager), delete, json!({ "id": tag })).await;
    assert_eq!(data(&body)["deleteTag"]["keysChanged"], many.len() + 2);

    let per_key = "query($id: ID) { auditEvents(filter: {action: \"license_key.deleted\", targetId: $id}, first: 5) \
                   { totalCount edges { node { actorKind targetKind targetId keyPrefix before } } } }";
    let all = app.graphql(Some(&admin), per_key, json!({ "id": null })).await;
    assert_eq!(data(&all)["auditEvents"]["totalCount"], gone.len() + many.len(), "one event per deleted key");
    for (id, key, status, order) in &gone {
        let body = app.graphql(Some(&admin), per_key, json!({ "id": id })).await;
        let events = &data(&body)["auditEvents"];
        assert_eq!(events["totalCount"], 1, "{key}: {body:#}");
        let event = &events["edges"][0]["node"];
        assert_eq!(event["keyPrefix"], &key[..8], "{key}");
        assert_eq!((event["targetKind"].as_str(), event["actorKind"].as_str()), (Some("license_key"), Some("user")));
        assert_eq!(event["before"]["status"], *status, "{key}: {event:#}");
        assert_eq!(event["before"]["orderId"], json!(order), "{key}: {event:#}");
    }
    let untouched = app.graphql(Some(&admin), per_key, json!({ "id": kept })).await;
    assert_eq!(data(&untouched)["auditEvents"]["totalCount"], 0, "a key that stays has no deletion event");

    // The operations' summaries stay.
    let summary = "query($a: String) { auditEvents(filter: {action: $a}) { totalCount edges { node { after } } } }";
    for (action, count) in [("license_keys.deleted", 3), ("tag.keys_deleted", many.len() + 2)] {
        let body = app.graphql(Some(&admin), summary, json!({ "a": action })).await;
        assert_eq!(data(&body)["auditEvents"]["totalCount"], 1, "{action}");
        assert_eq!(data(&body)["auditEvents"]["edges"][0]["node"]["after"]["keysDeleted"], count, "{action}");
    }

    // Never the whole key, anywhere in the trail.
    let trail = serde_json::to_string(&audit_event::Entity::find().all(db).await.expect("the trail")).expect("JSON");
    for key in gone.iter().map(|g| g.1.as_str()).chain(many.iter().map(String::as_str)) {
        assert!(!trail.contains(key), "the trail holds {key} whole");
    }
}
