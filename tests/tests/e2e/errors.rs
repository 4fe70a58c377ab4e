//! Internal failures reach clients as INTERNAL, with no SQL or driver text,
//! and change nothing.

use entity::user::StaffRole;
use keysmith_tests::{TestApp, data, error_code, on_both_databases};
use sea_orm::ConnectionTrait;
use serde_json::json;

on_both_databases!(a_database_error_is_internal_and_leaks_nothing, every_refusal_of_the_graphql_layer_has_a_code);

async fn a_database_error_is_internal_and_leaks_nothing(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    // Break the audit trail: creating a product inserts the product, then fails on its event.
    app.db().execute_unprepared("DROP TABLE audit_event").await.expect("drop");

    let body = app
        .graphql(Some(&manager), "mutation { createProduct(input: {name: \"Pro\"}) { product { id } } }", json!({}))
        .await;
    assert_eq!(error_code(&body), Some("INTERNAL"), "{body:#}");
    assert_eq!(body["errors"][0]["message"], "internal error");
    let text = body.to_string().to_lowercase();
    for leak in ["audit_event", "sql", "table", "relation", "insert", "database"] {
        assert!(!text.contains(leak), "the response leaks {leak:?}: {body:#}");
    }

    let count = app.graphql(Some(&manager), "{ products { totalCount } }", json!({})).await;
    assert_eq!(data(&count)["products"]["totalCount"], 0, "the product went with the failed transaction");
}

/// Parse errors, validation errors, depth and complexity refusals and values
/// that do not coerce each carry their documented code, and change nothing.
async fn every_refusal_of_the_graphql_layer_has_a_code(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let nested = "{ products { edges { node { id } } } }";
    let cases: Vec<(&str, String, serde_json::Value, &str)> = vec![
        ("a document that does not parse", "{ products { ".to_string(), json!({}), "GRAPHQL_PARSE_FAILED"),
        ("an unknown field", "{ noSuchField }".to_string(), json!({}), "GRAPHQL_VALIDATION_FAILED"),
        ("an unknown fragment", "{ ...missing }".to_string(), json!({}), "GRAPHQL_VALIDATION_FAILED"),
        (
            "an unknown input field",
            "mutation { createProduct(input: {name: \"X\", colour: \"red\"}) { product { id } } }".to_string(),
            json!({}),
            "BAD_USER_INPUT",
        ),
        (
            "a variable of the wrong type",
            "query($n: Int) { products(first: $n) { totalCount } }".to_string(),
            json!({ "n": "ten" }),
            "BAD_USER_INPUT",
        ),
        (
            "too complex",
            "{ licenseKeys(first: 100) { edges { node { id key status product { id name description } customer { id email name } \
              activations { id fingerprint name platform createdAt lastSeenAt } tags { id name } order { id externalId status } } } } \
              a: licenseKeys(first: 100) { edges { node { id key status product { id name } customer { id email } } } } \
              b: licenseKeys(first: 100) { edges { node { id key status product { id name } customer { id email } } } } }"
                .to_string(),
            json!({}),
            "QUERY_TOO_COMPLEX",
        ),
        (
            "a subscription over HTTP",
            "subscription { events { id } }".to_string(),
            json!({}),
            "WEBSOCKET_REQUIRED",
        ),
        (
            "too deep",
            "{ orders { edges { node { lines { keys { order { lines { keys { order { lines { keys { order { id } } } } } } } } } } } } }".to_string(),
            json!({}),
            "QUERY_TOO_DEEP",
        ),
    ];
    for (what, query, variables, code) in cases {
        let body = app.graphql(Some(&manager), &query, variables).await;
        assert_eq!(error_code(&body), Some(code), "{what}: {body:#}");
        assert!(
            body["errors"].as_array().is_some_and(|e| e.iter().all(|e| e["extensions"]["code"].is_string())),
            "{what}: {body:#}"
        );
    }
    let fine = app.graphql(Some(&manager), nested, json!({})).await;
    assert!(fine["errors"].is_null(), "{fine:#}");
    let count = app.graphql(Some(&manager), "{ products { totalCount } }", json!({})).await;
    assert_eq!(data(&count)["products"]["totalCount"], 0, "nothing was created");
}
