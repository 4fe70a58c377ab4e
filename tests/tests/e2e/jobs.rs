//! Bulk generation as a background job: queued at once, done in batches,
//! resumed after a stop, never a duplicate.

use entity::keygen::KeySpec;
use entity::user::StaffRole;
use entity::{LicenseStatus, job, license_key, tag};
use keysmith_tests::{TestApp, data, error_code, on_both_databases};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const GENERATE: &str = "mutation($g: ID!, $p: ID!, $n: Int!) { generateLicenses(input: {generatorId: $g, productId: $p, count: $n}) { job { id kind status progress total } } }";
const JOB: &str = "query($id: ID!) { job(id: $id) { id status progress total result error startedAt finishedAt } }";

async fn setup(app: &TestApp) -> (String, Value, Value) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let product = app
        .graphql(Some(&manager), "mutation { createProduct(input: {name: \"Bulk\"}) { product { id } } }", json!({}))
        .await;
    let generator = app
        .graphql(
            Some(&manager),
            "mutation { createGenerator(input: {name: \"Bulk keys\", format: PATTERN, pattern: \"BK-{X:16}\", defaultActivationLimit: 2}) { generator { id } } }",
            json!({}),
        )
        .await;
    (
        manager,
        data(&generator)["createGenerator"]["generator"]["id"].clone(),
        data(&product)["createProduct"]["product"]["id"].clone(),
    )
}

async fn wait_for(app: &TestApp, token: &str, id: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = app.graphql(Some(token), JOB, json!({ "id": id })).await;
        let job = data(&body)["job"].clone();
        if job["status"] == "SUCCEEDED" || job["status"] == "FAILED" {
            return job;
        }
        assert!(Instant::now() < deadline, "the job did not finish: {job:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

on_both_databases!(
    generation_runs_in_the_background_and_makes_distinct_keys,
    a_job_cut_off_half_way_is_resumed,
    bad_generation_requests_queue_nothing
);

async fn generation_runs_in_the_background_and_makes_distinct_keys(app: TestApp) {
    let (manager, generator, product) = setup(&app).await;
    let body = app.graphql(Some(&manager), GENERATE, json!({ "g": generator, "p": product, "n": 2500 })).await;
    let queued = &data(&body)["generateLicenses"]["job"];
    assert_eq!((queued["kind"].as_str(), queued["total"].as_i64()), (Some("GENERATE_LICENSES"), Some(2500)));
    let job = wait_for(&app, &manager, &queued["id"]).await;
    assert_eq!(job["status"], "SUCCEEDED", "{job:#}");
    assert_eq!((job["progress"].as_i64(), &job["result"]), (Some(2500), &json!({ "generated": 2500 })));

    let keys = license_key::Entity::find().all(app.db()).await.expect("keys");
    assert_eq!(keys.len(), 2500);
    let format = KeySpec::pattern("BK-{X:16}").expect("pattern");
    assert!(
        keys.iter().all(|k| format.matches(&k.key) && k.status == LicenseStatus::Available && k.activation_limit == 2)
    );
    assert_eq!(keys.iter().map(|k| k.key.as_str()).collect::<HashSet<_>>().len(), 2500, "no duplicate");
    let pool = app
        .graphql(
            Some(&manager),
            "query($id: ID!) { tag(id: $id) { total remaining } }",
            json!({ "id": tag::auto_generated_id(entity::Environment::Production) }),
        )
        .await;
    assert_eq!(data(&pool)["tag"], json!({ "total": 2500, "remaining": 2500 }));
    let listed = app
        .graphql(Some(&manager), "{ jobs(status: SUCCEEDED, kind: \"GENERATE_LICENSES\") { totalCount } }", json!({}))
        .await;
    assert_eq!(data(&listed)["jobs"]["totalCount"], 1);
}

async fn a_job_cut_off_half_way_is_resumed(app: TestApp) {
    let (manager, generator, product) = setup(&app).await;
    // A job a node claimed, made one batch of, then died with: its claim lapsed.
    let id = entity::new_id();
    job::ActiveModel {
        id: Set(id.clone()),
        environment: Set(Some("production".into())),
        kind: Set("GENERATE_LICENSES".into()),
        status: Set("RUNNING".into()),
        progress: Set(1000),
        total: Set(1500),
        payload: Set(json!({ "generatorId": generator, "productId": product })),
        result: Set(None),
        error: Set(None),
        created_by: Set(None),
        locked_by: Set(Some("a-node-that-died".into())),
        locked_until: Set(Some(entity::now() - chrono::Duration::seconds(1))),
        created_at: Set(entity::now()),
        started_at: Set(Some(entity::now())),
        finished_at: Set(None),
        run_after: Set(None),
        every_seconds: Set(None),
    }
    .insert(app.db())
    .await
    .expect("job");
    let job = wait_for(&app, &manager, &json!(id)).await;
    assert_eq!((job["status"].as_str(), job["progress"].as_i64()), (Some("SUCCEEDED"), Some(1500)));
    assert_eq!(
        license_key::Entity::find().count(app.db()).await.expect("count"),
        500,
        "only the missing batch was made"
    );
}

async fn bad_generation_requests_queue_nothing(app: TestApp) {
    let (manager, generator, product) = setup(&app).await;
    for (n, field) in [(0, "count"), (100_001, "count")] {
        let body = app.graphql(Some(&manager), GENERATE, json!({ "g": generator, "p": product, "n": n })).await;
        assert_eq!(error_code(&body), Some("INVALID_INPUT"));
        assert_eq!(body["errors"][0]["extensions"]["field"], field);
    }
    let missing =
        app.graphql(Some(&manager), GENERATE, json!({ "g": "01ZZZZZZZZZZZZZZZZZZZZZZZZ", "p": product, "n": 5 })).await;
    assert_eq!(error_code(&missing), Some("NOT_FOUND"));
    let support = app.staff_token(StaffRole::Support).await;
    let refused = app.graphql(Some(&support), GENERATE, json!({ "g": generator, "p": product, "n": 5 })).await;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"));
    let one_off = || job::Entity::find().filter(job::Column::EverySeconds.is_null());
    assert_eq!(one_off().count(app.db()).await.expect("count"), 0);
    let (_, elsewhere) = app
        .graphql_in(Some(&manager), Some("staging"), "{ jobs(kind: \"GENERATE_LICENSES\") { totalCount } }", json!({}))
        .await;
    assert_eq!(data(&elsewhere)["jobs"]["totalCount"], 0);
    assert_eq!(one_off().filter(job::Column::Status.eq("QUEUED")).count(app.db()).await.expect("count"), 0);
}
