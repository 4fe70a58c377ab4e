//! Internal failures reach clients as INTERNAL, with no SQL or driver text,
//! and change nothing.

use entity::user::StaffRole;
use keysmith_tests::{TestApp, data, error_code, on_both_databases};
use sea_orm::ConnectionTrait;
use serde_json::json;

on_both_databases!(a_database_error_is_internal_and_leaks_nothing);

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
