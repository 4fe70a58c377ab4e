//! The product catalogue: create, update, archive, list, environments, audit.

use entity::audit_event;
use entity::user::StaffRole;
use keysmith_tests::{TestApp, data, error_code, on_both_databases};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

const CREATE: &str = r#"
mutation Create($input: CreateProductInput!) {
  createProduct(input: $input) {
    product {
      id environment name description status
      delivery { mode tagId generatorId }
      keyButtonText unavailableMessage requiresFingerprint createdAt updatedAt
    }
  }
}"#;

const UPDATE: &str = r#"
mutation Update($input: UpdateProductInput!) {
  updateProduct(input: $input) { product { id name description keyButtonText status delivery { mode } } }
}"#;

const ARCHIVE: &str = "mutation Archive($id: ID!) { archiveProduct(input: {id: $id}) { product { id status } } }";

const LIST: &str = r#"
query List($first: Int, $after: String, $filter: ProductFilter, $orderBy: ProductOrder) {
  products(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
    totalCount
    edges { cursor node { name status } }
    pageInfo { hasNextPage hasPreviousPage }
  }
}"#;

async fn create(app: &TestApp, token: &str, input: Value) -> Value {
    app.graphql(Some(token), CREATE, json!({ "input": input })).await
}

async fn product_count(app: &TestApp, token: &str) -> u64 {
    let body = app.graphql(Some(token), "{ products { totalCount } }", json!({})).await;
    data(&body)["products"]["totalCount"].as_u64().expect("totalCount")
}

async fn audit_actions(app: &TestApp, target_id: &str) -> Vec<audit_event::Model> {
    audit_event::Entity::find()
        .filter(audit_event::Column::TargetId.eq(target_id))
        .order_by_asc(audit_event::Column::CreatedAt)
        .all(app.db())
        .await
        .expect("read the audit trail")
}

on_both_databases!(
    a_manager_creates_a_product_and_an_audit_event_records_it,
    invalid_products_are_refused_naming_the_field_and_nothing_is_created,
    updating_changes_only_what_is_given_and_is_audited,
    archiving_is_recorded_once,
    lists_filter_order_and_page_with_stable_cursors,
    products_stay_in_their_environment,
);

async fn a_manager_creates_a_product_and_an_audit_event_records_it(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let body = create(
        &app,
        &manager,
        json!({ "name": "  Pro Suite ", "description": "The full suite", "requiresFingerprint": true }),
    )
    .await;
    insta::assert_json_snapshot!("created_product", body, {
        ".data.createProduct.product.id" => "[id]",
        ".data.createProduct.product.createdAt" => "[time]",
        ".data.createProduct.product.updatedAt" => "[time]",
    });
    let id = data(&body)["createProduct"]["product"]["id"].as_str().expect("id").to_string();

    let events = audit_actions(&app, &id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.action, "product.created");
    assert_eq!(event.target_kind, "product");
    assert_eq!(event.actor_kind, "user");
    let me = app.graphql(Some(&manager), "{ me { user { id } } }", json!({})).await;
    assert_eq!(event.actor_id.as_deref(), data(&me)["me"]["user"]["id"].as_str());
    assert_eq!(event.after.as_ref().expect("after")["name"], "Pro Suite");
    assert_eq!(event.environment.as_deref(), Some("production"));
}

async fn invalid_products_are_refused_naming_the_field_and_nothing_is_created(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let cases = [
        (json!({ "name": "   " }), "INVALID_INPUT", "name"),
        (json!({ "name": "x".repeat(201) }), "INVALID_INPUT", "name"),
        (json!({ "name": "Ok", "keyButtonText": "k".repeat(65) }), "INVALID_INPUT", "keyButtonText"),
        (json!({ "name": "Ok", "unavailableMessage": "" }), "INVALID_INPUT", "unavailableMessage"),
        (json!({ "name": "Ok", "delivery": { "mode": "TAG" } }), "INVALID_INPUT", "delivery.tagId"),
        (
            json!({ "name": "Ok", "delivery": { "mode": "TAG", "tagId": "01ZZZZZZZZZZZZZZZZZZZZZZZZ" } }),
            "NOT_FOUND",
            "delivery.tagId",
        ),
        (
            json!({ "name": "Ok", "delivery": { "mode": "NO_TAG", "generatorId": "01ZZZZZZZZZZZZZZZZZZZZZZZZ" } }),
            "INVALID_INPUT",
            "delivery.generatorId",
        ),
        (
            json!({ "name": "Ok", "delivery": { "mode": "AUTO_GENERATED", "generatorId": "01ZZZZZZZZZZZZZZZZZZZZZZZZ" } }),
            "NOT_FOUND",
            "delivery.generatorId",
        ),
    ];
    for (input, code, field) in cases {
        let body = create(&app, &manager, input.clone()).await;
        assert_eq!(error_code(&body), Some(code), "{input}: {body:#}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{input}: {body:#}");
        assert!(body["data"].is_null(), "{body:#}");
    }
    assert_eq!(product_count(&app, &manager).await, 0);

    data(&create(&app, &manager, json!({ "name": "Pro" })).await);
    let duplicate = create(&app, &manager, json!({ "name": "Pro" })).await;
    assert_eq!(error_code(&duplicate), Some("CONFLICT"), "{duplicate:#}");
    assert_eq!(duplicate["errors"][0]["extensions"]["field"], "name");
    assert_eq!(product_count(&app, &manager).await, 1);
}

async fn updating_changes_only_what_is_given_and_is_audited(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let created = create(&app, &manager, json!({ "name": "Pro", "description": "first" })).await;
    let id = data(&created)["createProduct"]["product"]["id"].clone();
    data(&create(&app, &manager, json!({ "name": "Lite" })).await);

    let body = app
        .graphql(
            Some(&manager),
            UPDATE,
            json!({ "input": { "id": id, "keyButtonText": "Get your key", "delivery": { "mode": "NO_TAG" } } }),
        )
        .await;
    let product = &data(&body)["updateProduct"]["product"];
    assert_eq!(product["keyButtonText"], "Get your key");
    assert_eq!(product["name"], "Pro");
    assert_eq!(product["description"], "first");
    assert_eq!(product["delivery"]["mode"], "NO_TAG");

    let events = audit_actions(&app, id.as_str().expect("id")).await;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["product.created", "product.updated"]);
    let update = &events[1];
    assert_eq!(update.before.as_ref().expect("before")["key_button_text"], "Licence Key");
    assert_eq!(update.after.as_ref().expect("after")["key_button_text"], "Get your key");

    let clash = app.graphql(Some(&manager), UPDATE, json!({ "input": { "id": id, "name": "Lite" } })).await;
    assert_eq!(error_code(&clash), Some("CONFLICT"), "{clash:#}");
    let bad = app.graphql(Some(&manager), UPDATE, json!({ "input": { "id": id, "name": "" } })).await;
    assert_eq!(error_code(&bad), Some("INVALID_INPUT"));
    let after = app.graphql(Some(&manager), "query($id: ID!) { product(id: $id) { name } }", json!({ "id": id })).await;
    assert_eq!(data(&after)["product"]["name"], "Pro", "a refused update changes nothing");
    assert_eq!(audit_actions(&app, id.as_str().expect("id")).await.len(), 2);

    let missing = app
        .graphql(Some(&manager), UPDATE, json!({ "input": { "id": "01ZZZZZZZZZZZZZZZZZZZZZZZZ", "name": "X" } }))
        .await;
    assert_eq!(error_code(&missing), Some("NOT_FOUND"));
}

async fn archiving_is_recorded_once(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let created = create(&app, &manager, json!({ "name": "Pro" })).await;
    let id = data(&created)["createProduct"]["product"]["id"].clone();
    for _ in 0..2 {
        let body = app.graphql(Some(&manager), ARCHIVE, json!({ "id": id })).await;
        assert_eq!(data(&body)["archiveProduct"]["product"]["status"], "ARCHIVED");
    }
    let actions: Vec<String> =
        audit_actions(&app, id.as_str().expect("id")).await.into_iter().map(|e| e.action).collect();
    assert_eq!(actions, ["product.created", "product.archived"]);

    let archived = app.graphql(Some(&manager), LIST, json!({ "filter": { "status": "ARCHIVED" } })).await;
    assert_eq!(data(&archived)["products"]["totalCount"], 1);
    let active = app.graphql(Some(&manager), LIST, json!({ "filter": { "status": "ACTIVE" } })).await;
    assert_eq!(data(&active)["products"]["totalCount"], 0);
}

async fn lists_filter_order_and_page_with_stable_cursors(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let support = app.staff_token(StaffRole::Support).await;
    for name in ["Delta", "alpha", "Charlie", "bravo", "Echo 100%"] {
        data(&create(&app, &manager, json!({ "name": name })).await);
    }

    // Page through by name, two at a time: every product once, in order.
    let mut names = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let body = app
            .graphql(
                Some(&support),
                LIST,
                json!({ "first": 2, "after": after, "orderBy": { "field": "NAME", "direction": "ASC" } }),
            )
            .await;
        let conn = &data(&body)["products"];
        assert_eq!(conn["totalCount"], 5);
        assert_eq!(conn["pageInfo"]["hasPreviousPage"], after.is_some());
        for edge in conn["edges"].as_array().expect("edges") {
            names.push(edge["node"]["name"].as_str().expect("name").to_string());
            after = edge["cursor"].as_str().map(String::from);
        }
        pages += 1;
        if conn["pageInfo"]["hasNextPage"] == false {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["Charlie", "Delta", "Echo 100%", "alpha", "bravo"]);

    let desc = app
        .graphql(Some(&support), LIST, json!({ "orderBy": { "field": "NAME", "direction": "DESC" }, "first": 2 }))
        .await;
    insta::assert_json_snapshot!("products_by_name_desc", data(&desc), { ".products.edges[].cursor" => "[cursor]" });

    // Newest first by default.
    let newest = app.graphql(Some(&support), LIST, json!({ "first": 1 })).await;
    assert_eq!(data(&newest)["products"]["edges"][0]["node"]["name"], "Echo 100%");

    // Search is a case-insensitive substring; wildcards in the term match themselves.
    for (term, expected) in [
        ("ALP", vec!["alpha"]),
        ("a", vec!["Charlie", "Delta", "alpha", "bravo"]),
        ("%", vec!["Echo 100%"]),
        ("_", vec![]),
    ] {
        let body = app
            .graphql(Some(&support), LIST, json!({ "filter": { "search": term }, "orderBy": { "field": "NAME" } }))
            .await;
        let found: Vec<&str> = data(&body)["products"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| e["node"]["name"].as_str().expect("name"))
            .collect();
        assert_eq!(found, expected, "search {term:?}");
    }

    let bad_cursor = app.graphql(Some(&support), LIST, json!({ "after": "garbage" })).await;
    assert_eq!(error_code(&bad_cursor), Some("INVALID_INPUT"));
    assert_eq!(bad_cursor["errors"][0]["extensions"]["field"], "after");
    let too_many = app.graphql(Some(&support), LIST, json!({ "first": 101 })).await;
    assert_eq!(too_many["errors"][0]["extensions"]["field"], "first");
}

async fn products_stay_in_their_environment(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let (_, staged) =
        app.graphql_in(Some(&manager), Some("staging"), CREATE, json!({ "input": { "name": "Beta build" } })).await;
    let product = &data(&staged)["createProduct"]["product"];
    assert_eq!(product["environment"], "STAGING");
    let id = product["id"].clone();

    let (_, in_production) = app
        .graphql_in(
            Some(&manager),
            Some("production"),
            "query($id: ID!) { product(id: $id) { name } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&in_production), Some("NOT_FOUND"));
    assert_eq!(product_count(&app, &manager).await, 0);
    let (_, archive_elsewhere) = app.graphql_in(Some(&manager), Some("production"), ARCHIVE, json!({ "id": id })).await;
    assert_eq!(error_code(&archive_elsewhere), Some("NOT_FOUND"));

    let (_, in_staging) = app
        .graphql_in(Some(&manager), Some("staging"), "{ products { totalCount edges { node { name } } } }", json!({}))
        .await;
    assert_eq!(data(&in_staging)["products"]["totalCount"], 1);
    // The same name is free in the other environment.
    data(&create(&app, &manager, json!({ "name": "Beta build" })).await);
}
