//! GraphQL over HTTP: `application/graphql-response+json` chosen by
//! `Accept` (a request refused before execution is then a 400 without
//! `data`), `application/json` unchanged for clients that ask for it, and
//! queries by GET (mutations refused with 405 and `Allow: POST`, a browser
//! still given GraphiQL).

use entity::user::StaffRole;
use keysmith_tests::{TestApp, on_both_databases};
use serde_json::{Value, json};
use sha2::Digest;

on_both_databases!(
    the_graphql_over_http_audit_passes,
    the_response_type_follows_accept_and_refusals_before_execution_are_4xx,
    queries_travel_by_get_and_mutations_do_not,
    persisted_queries_send_the_text_once_and_only_for_its_hash,
);

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// The reference audit of the GraphQL-over-HTTP specification (npm
/// `graphql-http`, pinned in `tests/audit/package-lock.json`) against the
/// server: every MUST and every SHOULD passes.
async fn the_graphql_over_http_audit_passes(app: TestApp) {
    let Some((node, dir)) = keysmith_tests::npm::clients().await else { return };
    let out = tokio::process::Command::new(node)
        .arg("audit.js")
        .arg(app.url("/graphql"))
        .current_dir(&dir)
        .output()
        .await
        .expect("node runs");
    assert!(out.status.success(), "the audit did not run: {}", String::from_utf8_lossy(&out.stderr));
    let levels: Value = serde_json::from_slice(&out.stdout).expect("the audit's JSON");
    for level in ["MUST", "SHOULD"] {
        let tally = &levels[level];
        assert!(tally["total"].as_u64().is_some_and(|t| t > 0), "{level}: {levels}");
        assert_eq!(tally["passed"], tally["total"], "{level} audits failed: {:#}", tally["failed"]);
    }
    eprintln!(
        "graphql-http audit: MUST {}/{}, SHOULD {}/{}, MAY {}/{}",
        levels["MUST"]["passed"],
        levels["MUST"]["total"],
        levels["SHOULD"]["passed"],
        levels["SHOULD"]["total"],
        levels["MAY"]["passed"],
        levels["MAY"]["total"]
    );
}

async fn post(app: &TestApp, token: &str, accept: Option<&str>, body: Value) -> (u16, String, Value) {
    let mut request = app.http.post(app.url("/graphql")).bearer_auth(token).json(&body);
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let resp = request.send().await.expect("answer");
    let status = resp.status().as_u16();
    let kind = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (status, kind, resp.json().await.expect("JSON"))
}

async fn the_response_type_follows_accept_and_refusals_before_execution_are_4xx(app: TestApp) {
    let token = app.staff_token(StaffRole::Manager).await;
    let good = json!({ "query": "{ products { totalCount } }" });
    let broken = json!({ "query": "{ products { " });
    let unknown = json!({ "query": "{ nothing }" });
    let uncoerced =
        json!({ "query": "query($n: Int) { products(first: $n) { totalCount } }", "variables": { "n": "ten" } });

    // Asked for alone or first: the spec's media type.
    for accept in [GRAPHQL_RESPONSE, "application/graphql-response+json, application/json;q=0.9"] {
        let (status, kind, body) = post(&app, &token, Some(accept), good.clone()).await;
        assert_eq!((status, kind.starts_with(GRAPHQL_RESPONSE)), (200, true), "{accept}: {kind} {body}");
        assert_eq!(body["data"]["products"]["totalCount"], 0);
        for (what, request, code) in [
            ("a parse error", broken.clone(), "GRAPHQL_PARSE_FAILED"),
            ("a validation error", unknown.clone(), "GRAPHQL_VALIDATION_FAILED"),
            ("a variable that does not coerce", uncoerced.clone(), "BAD_USER_INPUT"),
        ] {
            let (status, kind, body) = post(&app, &token, Some(accept), request).await;
            assert_eq!(status, 400, "{what}: {body}");
            assert!(kind.starts_with(GRAPHQL_RESPONSE), "{what}: {kind}");
            assert!(body.get("data").is_none(), "{what}: no data entry: {body}");
            assert_eq!(body["errors"][0]["extensions"]["code"], code, "{what}: {body}");
        }
    }

    // application/json (first, alone, or no Accept): today's answers.
    for accept in [Some("application/json"), Some("application/json, application/graphql-response+json"), None] {
        let (status, kind, body) = post(&app, &token, accept, broken.clone()).await;
        assert_eq!((status, kind.starts_with("application/json")), (200, true), "{accept:?}: {kind} {body}");
        assert_eq!(body["data"], Value::Null);
        assert_eq!(body["errors"][0]["extensions"]["code"], "GRAPHQL_PARSE_FAILED");
    }
}

async fn queries_travel_by_get_and_mutations_do_not(app: TestApp) {
    let token = app.staff_token(StaffRole::Manager).await;
    let get = |params: Vec<(&'static str, String)>, accept: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            let resp = app
                .http
                .get(app.url("/graphql"))
                .query(&params)
                .bearer_auth(token)
                .header("Accept", accept)
                .send()
                .await
                .expect("answer");
            let status = resp.status().as_u16();
            let allow = resp.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            let kind = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            (status, allow, kind, resp.text().await.expect("body"))
        }
    };
    let query = "query($n: Int) { products(first: $n) { totalCount } }".to_string();
    let (status, _, kind, body) =
        get(vec![("query", query.clone()), ("variables", json!({ "n": 5 }).to_string())], GRAPHQL_RESPONSE).await;
    assert_eq!(status, 200, "{body}");
    assert!(kind.starts_with(GRAPHQL_RESPONSE), "{kind}");
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["data"]["products"]["totalCount"], 0);

    let mutation = "mutation { createProduct(input: {name: \"By GET\"}) { product { id } } }".to_string();
    let (status, allow, _, body) = get(vec![("query", mutation)], "application/json").await;
    assert_eq!((status, allow.as_str()), (405, "POST"), "{body}");
    let count = app.graphql(Some(&token), "{ products { totalCount } }", json!({})).await;
    assert_eq!(count["data"]["products"]["totalCount"], 0, "nothing was created");

    let (status, _, _, body) = get(vec![("query", query), ("variables", "[1]".into())], "application/json").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("variables"), "{body}");

    // A browser asking for HTML still gets GraphiQL.
    let (status, _, kind, body) = get(vec![], "text/html,application/xhtml+xml").await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/html") && body.contains("GraphiQL"), "{kind}");
}

/// urql with its persisted-queries exchange: the first call's hash is
/// unknown (`PERSISTED_QUERY_NOT_FOUND`), so it sends the text once; after
/// that the hash alone, by GET, runs the query. A text sent with another
/// text's hash is refused and runs nothing.
async fn persisted_queries_send_the_text_once_and_only_for_its_hash(app: TestApp) {
    let Some((node, dir)) = keysmith_tests::npm::clients().await else { return };
    let admin = app.staff_token(StaffRole::Admin).await;
    let query = "query Me { me { role user { email } } }";
    let out = tokio::process::Command::new(node)
        .args(["persisted.js", &app.url("/graphql"), &admin, query])
        .current_dir(&dir)
        .output()
        .await
        .expect("node runs");
    assert!(out.status.success(), "urql did not run: {}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the script's JSON");
    let requests = seen["requests"].as_array().expect("requests");
    assert_eq!(requests.len(), 4, "hash, text, hash, hash: {seen:#}");
    assert_eq!(requests[0]["hashOnly"], true);
    assert_eq!(requests[0]["codes"][0], "PERSISTED_QUERY_NOT_FOUND", "{seen:#}");
    assert_eq!(requests[1]["hashOnly"], false, "the text, once: {seen:#}");
    for later in &requests[2..] {
        assert_eq!(later["method"], "GET", "{seen:#}");
        assert_eq!(later["hashOnly"], true, "{seen:#}");
        assert_eq!(later["status"], 200, "{seen:#}");
    }
    for result in seen["results"].as_array().expect("results") {
        assert_eq!(result["data"]["me"]["role"], "ADMIN", "{seen:#}");
    }

    // A text sent with the hash of another text is refused; nothing runs.
    let hash = hex::encode(sha2::Sha256::digest(query.as_bytes()));
    let (status, _, body) = post(
        &app,
        &admin,
        None,
        json!({
            "query": "mutation { createProduct(input: {name: \"Sneaky\"}) { product { id } } }",
            "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } },
        }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body:#}");
    let products = app.graphql(Some(&admin), "{ products { totalCount } }", json!({})).await;
    assert_eq!(products["data"]["products"]["totalCount"], 0, "nothing ran");
}
