//! Schema hygiene: introspection and suggestions for staff only, depth and
//! complexity limits for everyone.

use entity::user::StaffRole;
use keysmith_tests::{TestApp, data, on_both_databases};
use serde_json::json;

on_both_databases!(introspection_and_suggestions_are_for_staff_only, deep_and_costly_queries_are_refused);

async fn introspection_and_suggestions_are_for_staff_only(app: TestApp) {
    let introspect = "{ __schema { queryType { name } } }";
    let admin = app.staff_token(StaffRole::Support).await;
    let staff = app.graphql(Some(&admin), introspect, json!({})).await;
    assert_eq!(data(&staff)["__schema"]["queryType"]["name"], "Query");

    let customer = app.customer_token(&entity::new_id()).await;
    for token in [None, Some(customer.as_str())] {
        // With introspection off, the schema's fields answer null.
        let body = app.graphql(token, introspect, json!({})).await;
        assert!(body["data"]["__schema"].is_null(), "introspection must be off: {body:#}");
        let body = app.graphql(token, "{ __type(name: \"Product\") { fields { name } } }", json!({})).await;
        assert!(body["data"]["__type"].is_null(), "introspection must be off: {body:#}");

        let typo = app.graphql(token, "{ prodcts { totalCount } }", json!({})).await;
        let message = typo["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(!message.contains("Did you mean"), "no suggestions for {token:?}: {message}");
    }
    let typo = app.graphql(Some(&admin), "{ prodcts { totalCount } }", json!({})).await;
    let message = typo["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("Did you mean"), "staff get suggestions: {message}");
}

async fn deep_and_costly_queries_are_refused(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    // Fourteen levels of fields, through a licence's devices and back.
    let deep =
        format!("{{ licenseKey(id: \"x\") {{ {}id{} }} }}", "activations { license { ".repeat(6), " } }".repeat(6));
    let body = app.graphql(Some(&admin), &deep, json!({})).await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.to_lowercase().contains("nested too deep"), "{body:#}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "QUERY_TOO_DEEP", "{body:#}");
    // The standard introspection query, whose type references nest eight
    // levels deep, is what every GraphQL tool sends first: staff may.
    let introspection = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(8),
        " }".repeat(8)
    );
    let body = app.graphql(Some(&admin), &introspection, json!({})).await;
    assert!(body["errors"].is_null() && body["data"]["__schema"]["types"].is_array(), "{body:#}");

    let aliases: String =
        (0..30).map(|i| format!("p{i}: products(first: 100) {{ edges {{ node {{ id name status }} }} }} ")).collect();
    let body = app.graphql(Some(&admin), &format!("{{ {aliases} }}"), json!({})).await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.to_lowercase().contains("complex"), "{body:#}");
}
