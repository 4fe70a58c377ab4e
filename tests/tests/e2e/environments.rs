//! Environments, systematically: every mutation in the schema, aimed from
//! staging at a production record, finds nothing and changes nothing; every
//! list and lookup in staging shows nothing of production.

use crate::roles::{MATRIX, request_for};
use entity::user::StaffRole;
use entity::{audit_event, license_key};
use keysmith_tests::{TestApp, data, error_code, on_both_databases};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;

/// Mutations that name no record of an environment, with the reason.
const NOT_ENVIRONMENT_BOUND: &[(&str, &str)] = &[
    ("createProduct", "creates a record in the request's environment"),
    ("createCustomer", "creates a record in the request's environment"),
    ("createTag", "creates a record in the request's environment"),
    ("importLicenseKeys", "creates records in the request's environment"),
    ("createGenerator", "generators are formats shared by both environments"),
    ("updateGenerator", "generators are formats shared by both environments"),
    ("deleteGenerator", "generators are formats shared by both environments"),
    ("updateSettings", "settings are server-wide"),
    ("login", "names an account, not a record"),
    ("createWebhookEndpoint", "creates a record in the request's environment"),
    ("createIntegration", "creates a record in the request's environment"),
    ("createUser", "staff accounts are server-wide"),
    ("updateUser", "staff accounts are server-wide"),
    ("changePassword", "staff accounts are server-wide"),
    ("validateLicense", "answers NOT_FOUND as a code: see the preview and client tests"),
    ("activateLicense", "answers NOT_FOUND as a code: see the client tests"),
    ("deactivateLicense", "answers NOT_FOUND as a code: see the client tests"),
    ("requestPortalLink", "answers the same for any email"),
    ("signInWithPortalLink", "a link names its customer; the session takes the customer's environment"),
    ("signOutOfPortal", "ends the caller's own session"),
    ("signOut", "ends the caller's own session"),
];

on_both_databases!(every_mutation_from_staging_misses_production_records, staging_lists_show_nothing_of_production);

async fn every_mutation_from_staging_misses_production_records(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    for (mutation, _) in MATRIX {
        if NOT_ENVIRONMENT_BOUND.iter().any(|(m, _)| m == mutation) {
            continue;
        }
        // The request names records made in production.
        let (query, variables) = request_for(&app, &admin, mutation).await;
        let events = audit_event::Entity::find().count(app.db()).await.expect("count");
        let keys = license_key::Entity::find().count(app.db()).await.expect("count");
        let (_, body) = app.graphql_in(Some(&admin), Some("staging"), &query, variables.clone()).await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{mutation} from staging: {body:#}");
        assert_eq!(audit_event::Entity::find().count(app.db()).await.expect("count"), events, "{mutation}");
        assert_eq!(license_key::Entity::find().count(app.db()).await.expect("count"), keys, "{mutation}");
        // The same request in production is fine: the refusal was the environment's.
        let body = app.graphql(Some(&admin), &query, variables).await;
        assert!(body.get("errors").is_none(), "{mutation} in production: {body:#}");
        wait_for_jobs(&app, &admin).await;
    }
}

/// Background jobs write too: let them finish before counting rows again.
pub(crate) async fn wait_for_jobs(app: &TestApp, token: &str) {
    for _ in 0..300 {
        let query = "{ jobs(first: 100) { edges { node { status recurring } } } }";
        let body = app.graphql(Some(token), query, json!({})).await;
        // The recurring jobs come round again and again: only one-off jobs end.
        let busy = data(&body)["jobs"]["edges"].as_array().is_some_and(|jobs| {
            jobs.iter().any(|j| {
                j["node"]["recurring"] == false && (j["node"]["status"] == "QUEUED" || j["node"]["status"] == "RUNNING")
            })
        });
        if !busy {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("jobs did not finish");
}

async fn staging_lists_show_nothing_of_production(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let mut ids = Vec::new();
    for mutation in ["createLicense", "generateLicenses", "updateCustomer", "renameTag"] {
        let (query, variables) = request_for(&app, &admin, mutation).await;
        ids.push(variables.clone());
        data(&app.graphql(Some(&admin), &query, variables).await);
    }
    let production = "{ products { totalCount } customers { totalCount } tags { totalCount } \
                      licenseKeys { totalCount edges { node { id } } } \
                      jobs(kind: \"GENERATE_LICENSES\") { totalCount edges { node { id } } } }";
    let seen = app.graphql(Some(&admin), production, json!({})).await;
    let seen = data(&seen);
    assert!(seen["products"]["totalCount"].as_i64() > Some(0));
    assert!(seen["customers"]["totalCount"].as_i64() > Some(0));
    assert!(seen["licenseKeys"]["totalCount"].as_i64() > Some(0));
    assert!(seen["jobs"]["totalCount"].as_i64() > Some(0));
    let (_, staged) = app.graphql_in(Some(&admin), Some("staging"), production, json!({})).await;
    assert_eq!(
        data(&staged),
        &json!({
            "products": { "totalCount": 0 },
            "customers": { "totalCount": 0 },
            // Each environment has its own system tags.
            "tags": { "totalCount": 2 },
            "licenseKeys": { "totalCount": 0, "edges": [] },
            "jobs": { "totalCount": 0, "edges": [] },
        })
    );
    let licence = seen["licenseKeys"]["edges"][0]["node"]["id"].clone();
    let job = seen["jobs"]["edges"][0]["node"]["id"].clone();
    let product = ids[0]["p"].clone();
    let customer = ids[2]["id"].clone();
    let tag = ids[3]["id"].clone();
    for (query, id) in [
        ("query($id: ID!) { product(id: $id) { id } }", &product),
        ("query($id: ID!) { customer(id: $id) { id } }", &customer),
        ("query($id: ID!) { tag(id: $id) { id } }", &tag),
        ("query($id: ID!) { licenseKey(id: $id) { id } }", &licence),
        ("query($id: ID!) { licensePreview(id: $id) { license { id } } }", &licence),
        ("query($id: ID!) { offlineLicenseFile(licenseId: $id) { keyId } }", &licence),
        ("query($id: ID!) { job(id: $id) { id } }", &job),
    ] {
        let (_, body) = app.graphql_in(Some(&admin), Some("staging"), query, json!({ "id": id })).await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{query}: {body:#}");
        let body = app.graphql(Some(&admin), query, json!({ "id": id })).await;
        assert!(body.get("errors").is_none(), "{query} in production: {body:#}");
    }
}
