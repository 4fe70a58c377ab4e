//! One job runner for everything done in the background: the recurring
//! sweeps and deliveries, imports and exports are jobs that `jobs` and
//! `job(id)` show; several nodes run each job once; a node killed mid-job
//! resumes it, or marks it failed, when it starts again.

use crate::cli::{Served, create_admin, keysmith};
use entity::user::StaffRole;
use entity::{Environment, LicenseStatus, job, license_key};
use keysmith_tests::app::{config, fresh_database, seed};
use keysmith_tests::{Backend, TestApp, data, on_both_databases};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, Set};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const JOBS: &str = "query($kind: String) { jobs(kind: $kind) { totalCount edges { node { \
                    id kind status recurring progress total unit result error startedAt finishedAt nextRunAt } } } }";

/// The jobs of `kind`, once `done` holds for them (within 30 s).
async fn jobs_when(app: &TestApp, token: &str, kind: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = app.graphql(Some(token), JOBS, json!({ "kind": kind })).await;
        let jobs: Vec<Value> =
            data(&body)["jobs"]["edges"].as_array().expect("edges").iter().map(|e| e["node"].clone()).collect();
        if done(&jobs) {
            return jobs;
        }
        assert!(Instant::now() < deadline, "{kind}: {jobs:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_both_databases!(every_background_task_is_a_job_to_follow, imports_and_exports_are_recorded_as_jobs);

async fn every_background_task_is_a_job_to_follow(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    // A licence past its expiry: the sweep's job expires it and says so.
    let key = seed::key(app.db(), Environment::Production, "RUNNER-EXPIRES-1", LicenseStatus::Available, &[]).await;
    seed::deliver(app.db(), &key, false).await;
    let mut row = license_key::Entity::find_by_id(key.clone()).one(app.db()).await.expect("key").expect("row");
    row.expires_at = Some(entity::now() - chrono::Duration::hours(1));
    row.into_active_model().reset_all().update(app.db()).await.expect("expired");
    // The row shows its latest run: the one that expired the licence, until the next.
    let sweeps = jobs_when(&app, &admin, "EXPIRE_LICENSES", |jobs| {
        jobs.iter().any(|j| j["status"] == "SUCCEEDED" && j["result"]["expired"] == 1 && j["progress"] == 1)
    })
    .await;
    assert_eq!(sweeps.len(), 1, "one row for the recurring sweep: {sweeps:#?}");
    assert_eq!((&sweeps[0]["recurring"], &sweeps[0]["unit"]), (&json!(true), &json!("licences")));
    assert!(sweeps[0]["nextRunAt"].is_string(), "{sweeps:#?}");
    let status = license_key::Entity::find_by_id(key).one(app.db()).await.expect("key").expect("row").status;
    assert_eq!(status, LicenseStatus::Expired);
    for kind in ["SEND_EXPIRY_NOTICES", "DELIVER_WEBHOOKS", "SEND_EMAILS"] {
        let runs = jobs_when(&app, &admin, kind, |jobs| jobs.iter().any(|j| j["finishedAt"].is_string())).await;
        assert_eq!(runs.len(), 1, "{kind}: {runs:#?}");
        assert_eq!(runs[0]["recurring"], true, "{kind}");
        assert_eq!(runs[0]["error"], Value::Null, "{kind}: {runs:#?}");
    }
    // The sweep comes round again (every second in tests), on the same row.
    let first = sweeps[0]["finishedAt"].clone();
    let again = jobs_when(&app, &admin, "EXPIRE_LICENSES", |jobs| {
        jobs.len() == 1 && jobs[0]["finishedAt"].is_string() && jobs[0]["finishedAt"] != first
    })
    .await;
    assert_eq!(again[0]["id"], sweeps[0]["id"]);
}

const IMPORT: &str = "mutation($input: ImportLicenseKeysInput!) { importLicenseKeys(input: $input) { \
                      committed imported jobId } }";

async fn imports_and_exports_are_recorded_as_jobs(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let text = "JOB-IMPORT-1\nJOB-IMPORT-2\nJOB-IMPORT-3\n";
    let body = app.graphql(Some(&manager), IMPORT, json!({ "input": { "text": text } })).await;
    let imported = &data(&body)["importLicenseKeys"];
    assert_eq!((imported["committed"].as_bool(), imported["imported"].as_i64()), (Some(true), Some(3)));
    let job = app
        .graphql(
            Some(&manager),
            "query($id: ID!) { job(id: $id) { kind status progress total unit result } }",
            json!({ "id": imported["jobId"] }),
        )
        .await;
    assert_eq!(
        data(&job)["job"],
        json!({
            "kind": "IMPORT_LICENSE_KEYS", "status": "SUCCEEDED", "progress": text.len(), "total": text.len(),
            "unit": "bytes",
            "result": { "imported": 3, "duplicatesInFile": 0, "duplicatesInPool": 0, "invalid": 0, "createdTags": [] },
        })
    );
    // A refused import is a failed job, and imports nothing.
    let bad = "JOB-IMPORT-4\n\u{7}bad\n";
    let body = app.graphql(Some(&manager), IMPORT, json!({ "input": { "text": bad } })).await;
    let refused = &data(&body)["importLicenseKeys"];
    assert_eq!(refused["committed"], false, "{body:#}");
    let failed = jobs_when(&app, &manager, "IMPORT_LICENSE_KEYS", |jobs| jobs.len() == 2).await;
    assert_eq!((&failed[0]["id"], &failed[0]["status"]), (&refused["jobId"], &json!("FAILED")));
    let error = failed[0]["error"].as_str().expect("error");
    assert!(error.contains("nothing was imported") && error.contains("line 2"), "{error}");
    assert_eq!(license_key::Entity::find().count(app.db()).await.expect("count"), 3);

    let export = app
        .http
        .get(app.url("/export/license-keys.csv"))
        .bearer_auth(&manager)
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("body");
    assert_eq!(export.lines().count(), 4, "a header and three keys: {export}");
    let exports =
        jobs_when(&app, &manager, "EXPORT_LICENSE_KEYS", |jobs| jobs.len() == 1 && jobs[0]["status"] != "RUNNING")
            .await;
    assert_eq!(
        (&exports[0]["status"], &exports[0]["progress"], &exports[0]["unit"], &exports[0]["result"]),
        (&json!("SUCCEEDED"), &json!(3), &json!("keys"), &json!({ "exported": 3 }))
    );
}

/// Two nodes on one PostgreSQL: a generation job is made once, and each
/// recurring job has one row, run by one node at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_run_each_job_once() {
    let dir = tempfile::tempdir().expect("dir");
    let Some(url) = fresh_database(Backend::Postgres, dir.path()).await else { return };
    let first = TestApp::spawn_with(Backend::Postgres, config(&url), dir).await;
    let second = TestApp::spawn_with(Backend::Postgres, config(&url), tempfile::tempdir().expect("dir")).await;
    let manager = first.staff_token(StaffRole::Manager).await;
    let product = first
        .graphql(Some(&manager), "mutation { createProduct(input: {name: \"Twice\"}) { product { id } } }", json!({}))
        .await;
    let generator = first
        .graphql(
            Some(&manager),
            "mutation { createGenerator(input: {name: \"Twice\", format: PATTERN, pattern: \"TW-{X:16}\"}) { generator { id } } }",
            json!({}),
        )
        .await;
    let (product, generator) =
        (&data(&product)["createProduct"]["product"]["id"], &data(&generator)["createGenerator"]["generator"]["id"]);
    let generate = "mutation($g: ID!, $p: ID!) { generateLicenses(input: {generatorId: $g, productId: $p, count: 20000}) { job { id } } }";
    // Queued through both nodes: both runners race for both jobs.
    for node in [&first, &second] {
        let body = node.graphql(Some(&manager), generate, json!({ "g": generator, "p": product })).await;
        assert!(body.get("errors").is_none(), "{body:#}");
    }
    let done = jobs_when(&first, &manager, "GENERATE_LICENSES", |jobs| {
        jobs.len() == 2 && jobs.iter().all(|j| j["status"] == "SUCCEEDED")
    })
    .await;
    assert!(done.iter().all(|j| j["progress"] == 20000), "{done:#?}");
    assert_eq!(license_key::Entity::find().count(first.db()).await.expect("count"), 40000, "each job made once");
    for kind in ["EXPIRE_LICENSES", "SEND_EXPIRY_NOTICES", "DELIVER_WEBHOOKS", "SEND_EMAILS"] {
        let rows = job::Entity::find().filter(job::Column::Kind.eq(kind)).count(first.db()).await.expect("count");
        assert_eq!(rows, 1, "{kind}");
    }
    second.stop().await;
    first.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_job_resumes_or_fails_it_when_it_starts_again_sqlite() {
    killed_mid_job(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_job_resumes_or_fails_it_when_it_starts_again_postgres() {
    killed_mid_job(Backend::Postgres).await;
}

/// A node killed with SIGKILL in the middle of jobs: started again under the
/// same name, it resumes the generation it held at once (not after its
/// claim lapses) and marks the import it was running FAILED.
async fn killed_mid_job(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(url) = fresh_database(backend, dir.path()).await else { return };
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("KEYSMITH_JWT_SECRET", "runner-restart-secret-0123456789abcdef"),
        ("KEYSMITH_NODE_ID", "node-a"),
        ("KEYSMITH_MAX_BODY_BYTES", "67108864"),
    ];
    assert!(create_admin(dir.path(), "runner@example.com", "a long enough password", &env).status.success());
    let out = keysmith(dir.path()).envs(env).args(["token", "--email", "runner@example.com"]).output().expect("token");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let db = keysmith::db::connect(&url, 2).await.expect("database");
    let gql = |base: String, query: &'static str, variables: Value| {
        let token = token.clone();
        async move {
            let body: Value = reqwest::Client::new()
                .post(format!("{base}/graphql"))
                .bearer_auth(token)
                .json(&json!({ "query": query, "variables": variables }))
                .send()
                .await
                .expect("answer")
                .json()
                .await
                .expect("json");
            body
        }
    };
    let mut cmd = keysmith(dir.path());
    cmd.envs(env);
    let served = Served::start(cmd, dir.path()).await;
    let base = served.base.clone();
    let product =
        gql(base.clone(), "mutation { createProduct(input: {name: \"Resumed\"}) { product { id } } }", json!({})).await;
    let generator = gql(
        base.clone(),
        "mutation { createGenerator(input: {name: \"Resumed\", format: PATTERN, pattern: \"RS-{X:16}\"}) { generator { id } } }",
        json!({}),
    )
    .await;
    // A generation this node holds, one batch in; its claim would hold for an hour.
    let generation = entity::new_id();
    job::ActiveModel {
        id: Set(generation.clone()),
        environment: Set(Some("production".into())),
        kind: Set("GENERATE_LICENSES".into()),
        status: Set("RUNNING".into()),
        progress: Set(2000),
        total: Set(3000),
        payload: Set(json!({
            "generatorId": data(&generator)["createGenerator"]["generator"]["id"],
            "productId": data(&product)["createProduct"]["product"]["id"],
        })),
        result: Set(None),
        error: Set(None),
        created_by: Set(None),
        locked_by: Set(Some("node-a".into())),
        locked_until: Set(Some(entity::now() + chrono::Duration::hours(1))),
        created_at: Set(entity::now()),
        started_at: Set(Some(entity::now())),
        finished_at: Set(None),
        run_after: Set(None),
        every_seconds: Set(None),
    }
    .insert(&db)
    .await
    .expect("job");

    // A big import, killed while it runs.
    let list: String = (0..300_000).map(|i| format!("KILLED-IMPORT-{i:08}\n")).collect();
    let import = tokio::spawn(gql(base.clone(), IMPORT, json!({ "input": { "text": list } })));
    let running = "{ jobs(kind: \"IMPORT_LICENSE_KEYS\", status: RUNNING) { edges { node { id } } } }";
    let deadline = Instant::now() + Duration::from_secs(60);
    let import_job = loop {
        let body = gql(base.clone(), running, json!({})).await;
        if let Some(id) = data(&body)["jobs"]["edges"][0]["node"]["id"].as_str() {
            break id.to_string();
        }
        assert!(Instant::now() < deadline && !import.is_finished(), "the import never showed as running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (status, _) = served.kill();
    assert!(!status.success(), "killed, not stopped");
    let _ = import.await;
    assert_eq!(license_key::Entity::find().count(&db).await.expect("count"), 0, "the import is one transaction");

    let mut cmd = keysmith(dir.path());
    cmd.envs(env);
    let restarted = Served::start(cmd, dir.path()).await;
    let job = "query($id: ID!) { job(id: $id) { status progress error } }";
    let deadline = Instant::now() + Duration::from_secs(30);
    let resumed = loop {
        let body = gql(restarted.base.clone(), job, json!({ "id": generation })).await;
        let resumed = data(&body)["job"].clone();
        if resumed["status"] == "SUCCEEDED" {
            break resumed;
        }
        assert!(Instant::now() < deadline, "the generation was not resumed: {resumed:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(resumed["progress"], 3000);
    assert_eq!(license_key::Entity::find().count(&db).await.expect("count"), 1000, "only the missing batch");
    let body = gql(restarted.base.clone(), job, json!({ "id": import_job })).await;
    let failed = &data(&body)["job"];
    assert_eq!(failed["status"], "FAILED", "{failed:#}");
    let error = failed["error"].as_str().expect("error");
    assert!(
        error.contains("interrupted: node node-a stopped") && error.contains("none of its keys were kept"),
        "{error}"
    );
    restarted.terminate();
}
