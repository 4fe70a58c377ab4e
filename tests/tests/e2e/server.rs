//! The HTTP surface: health, readiness, GraphiQL, and the rules of POST /graphql.

use entity::user::StaffRole;
use keysmith_tests::{TestApp, data, error_code, on_both_databases};
use serde_json::json;

on_both_databases!(
    health_and_readiness,
    graphiql_is_served_on_get_and_never_executes,
    graphql_takes_json_only,
    bodies_over_the_limit_are_refused,
    concurrent_writers_all_succeed,
);

async fn health_and_readiness(app: TestApp) {
    let health = app.http.get(app.url("/healthz")).send().await.expect("answer");
    assert_eq!(health.status(), 200);
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    let ready = app.http.get(app.url("/readyz")).send().await.expect("answer");
    assert_eq!(ready.status(), 200);

    // With the database gone, the node says it is not ready (but is alive).
    app.db().clone().close().await.expect("close the pool");
    let ready = app.http.get(app.url("/readyz")).send().await.expect("answer");
    assert_eq!(ready.status(), 503);
    let health = app.http.get(app.url("/healthz")).send().await.expect("answer");
    assert_eq!(health.status(), 200);
}

async fn graphiql_is_served_on_get_and_never_executes(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    // A browser (or any client not asking for JSON) without a query gets the IDE.
    for accept in [None, Some("text/html"), Some("*/*")] {
        let mut request = app.http.get(app.url("/graphql"));
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        let page = request.send().await.expect("answer");
        assert_eq!(page.status(), 200, "{accept:?}");
        assert!(page.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/html"));
        let html = page.text().await.expect("html");
        assert!(html.to_lowercase().contains("graphiql"), "{html}");
    }
    // A mutation by GET is refused, whoever asks.
    let refused = app
        .http
        .get(app.url("/graphql"))
        .query(&[("query", "mutation { createProduct(input: {name: \"Sneaky\"}) { product { id } } }")])
        .bearer_auth(&admin)
        .header("Accept", "text/html")
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status(), 405);
    assert_eq!(refused.headers()["allow"], "POST");

    let count = app.graphql(Some(&admin), "{ products { totalCount } }", json!({})).await;
    assert_eq!(data(&count)["products"]["totalCount"], 0, "GET executed nothing");
}

async fn graphql_takes_json_only(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let query = r#"{"query":"mutation { createProduct(input: {name: \"Form\"}) { product { id } } }"}"#;
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let resp = app
            .http
            .post(app.url("/graphql"))
            .bearer_auth(&admin)
            .header("Content-Type", content_type)
            .body(query)
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 415, "{content_type}");
        let body: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(error_code(&body), Some("INVALID_INPUT"));
    }
    let resp = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&admin)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 400);

    let count = app.graphql(Some(&admin), "{ products { totalCount } }", json!({})).await;
    assert_eq!(data(&count)["products"]["totalCount"], 0);
}

async fn bodies_over_the_limit_are_refused(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let huge = "x".repeat(65 * 1024);
    let resp = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&admin)
        .json(&json!({ "query": "mutation($d: String!) { createProduct(input: {name: \"Big\", description: $d}) { product { id } } }", "variables": { "d": huge } }))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 413);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(error_code(&body), Some("INVALID_INPUT"));
    let count = app.graphql(Some(&admin), "{ products { totalCount } }", json!({})).await;
    assert_eq!(data(&count)["products"]["totalCount"], 0);
}

/// Many clients writing at once all succeed: no "database is locked" on SQLite.
async fn concurrent_writers_all_succeed(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let app = app.clone();
        let token = manager.clone();
        tasks.push(tokio::spawn(async move {
            app.graphql(
                Some(&token),
                "mutation($n: String!) { createProduct(input: {name: $n}) { product { id } } }",
                json!({ "n": format!("Product {i}") }),
            )
            .await
        }));
    }
    for task in tasks {
        let body = task.await.expect("task");
        data(&body);
    }
    let count = app.graphql(Some(&manager), "{ products { totalCount } }", json!({})).await;
    assert_eq!(data(&count)["products"]["totalCount"], 40);
    let events: u64 =
        sea_orm::PaginatorTrait::count(<entity::audit_event::Entity as sea_orm::EntityTrait>::find(), app.db())
            .await
            .expect("count");
    // Each product's creation, plus the manager account's.
    assert_eq!(events, 41);
}
