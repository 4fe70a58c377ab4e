//! Generators: key formats, their strength, their defaults, and who may change them.

use entity::user::StaffRole;
use keysmith_tests::{TestApp, data, error_code, on_both_databases, refusal};
use serde_json::{Value, json};

const CREATE: &str = r#"
mutation($input: CreateGeneratorInput!) {
  createGenerator(input: $input) {
    generator { id name format prefix chunkCount chunkLength alphabet separator pattern bits example
                defaultActivationLimit validityDays defaultFeatureFlags }
  }
}"#;
const UPDATE: &str = r#"
mutation($input: UpdateGeneratorInput!) {
  updateGenerator(input: $input) { generator { id format pattern bits example validityDays defaultActivationLimit } }
}"#;

async fn create(app: &TestApp, token: &str, input: Value) -> Value {
    app.graphql(Some(token), CREATE, json!({ "input": input })).await
}

fn message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

on_both_databases!(
    a_format_is_previewed_before_it_is_saved,
    generators_make_keys_in_their_format,
    weak_or_malformed_formats_are_refused,
    generators_change_and_go
);

async fn generators_make_keys_in_their_format(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let ulid = create(&app, &manager, json!({ "name": "Default" })).await;
    let g = &data(&ulid)["createGenerator"]["generator"];
    assert_eq!((g["format"].as_str(), g["bits"].as_f64()), (Some("ULID"), Some(80.0)));
    assert_eq!(g["example"].as_str().map(str::len), Some(26));
    assert_eq!(g["defaultActivationLimit"], 1);
    assert_eq!(g["validityDays"], Value::Null);

    let chunked = create(
        &app,
        &manager,
        json!({ "name": "Pro keys", "format": "CHUNKED", "prefix": "PRO-", "chunkCount": 4, "chunkLength": 5,
                "defaultActivationLimit": 3, "validityDays": 365, "defaultFeatureFlags": { "tier": "pro" } }),
    )
    .await;
    let g = &data(&chunked)["createGenerator"]["generator"];
    assert_eq!(g["bits"], 100.0);
    assert_eq!(g["alphabet"], "ABCDEFGHJKLMNPQRSTUVWXYZ23456789");
    let example = g["example"].as_str().expect("example");
    let groups: Vec<&str> = example.trim_start_matches("PRO-").split('-').collect();
    assert!(example.starts_with("PRO-") && groups.len() == 4 && groups.iter().all(|c| c.len() == 5), "{example}");
    assert_eq!((g["defaultActivationLimit"].as_i64(), g["validityDays"].as_i64()), (Some(3), Some(365)));
    assert_eq!(g["defaultFeatureFlags"], json!({ "tier": "pro" }));

    let pattern =
        create(&app, &manager, json!({ "name": "Pattern", "format": "PATTERN", "pattern": "KS-{X:8}-{9:4}-{h:12}" }))
            .await;
    let g = &data(&pattern)["createGenerator"]["generator"];
    let example = g["example"].as_str().expect("example");
    assert!(example.starts_with("KS-") && example.len() == 3 + 8 + 1 + 4 + 1 + 12, "{example}");
    assert_eq!(g["bits"], 101.3);

    let uuid = create(&app, &manager, json!({ "name": "Uuid", "format": "UUID" })).await;
    assert_eq!(data(&uuid)["createGenerator"]["generator"]["bits"], 122.0);

    let listed = app.graphql(Some(&manager), "{ generators { totalCount edges { node { name } } } }", json!({})).await;
    let names: Vec<&str> = data(&listed)["generators"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["Default", "Pattern", "Pro keys", "Uuid"]);
}

async fn weak_or_malformed_formats_are_refused(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let weak =
        create(&app, &manager, json!({ "name": "Short", "format": "CHUNKED", "chunkCount": 3, "chunkLength": 5 }))
            .await;
    assert_eq!(refusal(&weak), ("INVALID_INPUT", "format"));
    let text = message(&weak);
    assert!(text.contains("75.0 bits") && text.contains("at least 80"), "{text}");
    let pin = create(&app, &manager, json!({ "name": "Pin", "format": "PATTERN", "pattern": "PIN-{9:6}" })).await;
    assert_eq!(refusal(&pin).1, "pattern");
    assert!(message(&pin).contains("19.9 bits"), "{}", message(&pin));
    for (input, expected) in [
        (json!({ "name": "A", "format": "CHUNKED", "alphabet": "ABCDEFGH0" }), "alphabet"),
        (json!({ "name": "A", "format": "CHUNKED", "chunkCount": 40 }), "chunkCount"),
        (json!({ "name": "A", "format": "PATTERN" }), "pattern"),
        (json!({ "name": "A", "format": "PATTERN", "pattern": "{Q:30}" }), "pattern"),
        (json!({ "name": "A", "defaultActivationLimit": 0 }), "defaultActivationLimit"),
        (json!({ "name": "A", "validityDays": 0 }), "validityDays"),
        (json!({ "name": "A", "defaultFeatureFlags": [1, 2] }), "defaultFeatureFlags"),
        (json!({ "name": "  " }), "name"),
    ] {
        let body = create(&app, &manager, input.clone()).await;
        assert_eq!(refusal(&body).0, "INVALID_INPUT", "{input}: {body:#}");
        assert_eq!(refusal(&body).1, expected, "{input}: {body:#}");
    }
    data(&create(&app, &manager, json!({ "name": "Taken" })).await);
    let clash = create(&app, &manager, json!({ "name": "Taken" })).await;
    assert_eq!(refusal(&clash).0, "CONFLICT");
    let count = app.graphql(Some(&manager), "{ generators { totalCount } }", json!({})).await;
    assert_eq!(data(&count)["generators"]["totalCount"], 1, "refused generators are not stored");
}

async fn generators_change_and_go(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let created = create(&app, &manager, json!({ "name": "Evolving", "validityDays": 30 })).await;
    let id = data(&created)["createGenerator"]["generator"]["id"].clone();

    let to_pattern = app.graphql(Some(&manager), UPDATE, json!({ "input": { "id": id, "format": "PATTERN" } })).await;
    assert_eq!(refusal(&to_pattern).1, "pattern", "a pattern is needed");
    let body = app
        .graphql(
            Some(&manager),
            UPDATE,
            json!({ "input": { "id": id, "format": "PATTERN", "pattern": "EV-{X:20}", "validityDays": null } }),
        )
        .await;
    let g = &data(&body)["updateGenerator"]["generator"];
    assert_eq!(
        (g["format"].as_str(), g["bits"].as_f64(), g["validityDays"].as_i64()),
        (Some("PATTERN"), Some(100.0), None)
    );
    assert!(g["example"].as_str().is_some_and(|e| e.starts_with("EV-") && e.len() == 23));
    let weaker = app.graphql(Some(&manager), UPDATE, json!({ "input": { "id": id, "pattern": "EV-{X:10}" } })).await;
    assert_eq!(refusal(&weaker).0, "INVALID_INPUT");
    let kept =
        app.graphql(Some(&manager), "query($id: ID!) { generator(id: $id) { pattern } }", json!({ "id": id })).await;
    assert_eq!(data(&kept)["generator"]["pattern"], "EV-{X:20}", "a refused update changes nothing");

    let product = app
        .graphql(
            Some(&manager),
            "mutation($g: ID!) { createProduct(input: {name: \"Gen\", delivery: {mode: AUTO_GENERATED, generatorId: $g}}) { product { id } } }",
            json!({ "g": id }),
        )
        .await;
    let product_id = data(&product)["createProduct"]["product"]["id"].clone();
    let delete = "mutation($id: ID!) { deleteGenerator(input: {id: $id}) { deletedId } }";
    let in_use = app.graphql(Some(&manager), delete, json!({ "id": id })).await;
    assert_eq!(error_code(&in_use), Some("CONFLICT"));
    app.graphql(
        Some(&manager),
        "mutation($p: ID!) { updateProduct(input: {id: $p, delivery: {mode: NO_TAG}}) { product { id } } }",
        json!({ "p": product_id }),
    )
    .await;
    let gone = app.graphql(Some(&manager), delete, json!({ "id": id })).await;
    assert_eq!(data(&gone)["deleteGenerator"]["deletedId"], id);
    let missing =
        app.graphql(Some(&manager), "query($id: ID!) { generator(id: $id) { id } }", json!({ "id": id })).await;
    assert_eq!(error_code(&missing), Some("NOT_FOUND"));
}

/// `keyFormatPreview`: a format's bits and examples before it is saved,
/// checked as `createGenerator` checks it; nothing is saved; managers only.
async fn a_format_is_previewed_before_it_is_saved(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let query = "query($input: CreateGeneratorInput!) { keyFormatPreview(input: $input) { bits examples } }";
    let strong = json!({ "input": { "name": "", "format": "PATTERN", "pattern": "PRO-{X:5}-{X:5}-{X:5}-{X:5}" } });
    let body = app.graphql(Some(&manager), query, strong.clone()).await;
    let preview = &data(&body)["keyFormatPreview"];
    assert_eq!(preview["bits"].as_f64(), Some(100.0), "20 characters of 32: 100 bits");
    let examples: Vec<&str> =
        preview["examples"].as_array().expect("examples").iter().filter_map(Value::as_str).collect();
    assert_eq!(examples.len(), 3);
    assert!(examples.iter().all(|e| e.len() == 27 && e.starts_with("PRO-")), "{examples:?}");
    let weak = json!({ "input": { "name": "Weak", "format": "CHUNKED", "chunkCount": 2, "chunkLength": 5 } });
    let body = app.graphql(Some(&manager), query, weak).await;
    assert_eq!(error_code(&body), Some("INVALID_INPUT"), "{body}");
    assert!(body.to_string().contains("50"), "the error says how many bits: {body}");
    let count = app.graphql(Some(&manager), "{ generators { totalCount } }", json!({})).await;
    assert_eq!(data(&count)["generators"]["totalCount"], 0, "nothing saved");
    let support = app.staff_token(StaffRole::Support).await;
    let body = app.graphql(Some(&support), query, strong).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"));
}
