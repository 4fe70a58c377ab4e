//! Hostile input: searches with wildcards, quotes, full-text operators, NUL
//! bytes and Unicode find exactly what they spell (or are refused, naming the
//! search); inputs past their documented maximum are refused naming the
//! field, and change nothing. Never an `INTERNAL` error.

use entity::user::StaffRole;
use entity::{Environment, LicenseStatus, license_key, order};
use keysmith_tests::app::seed;
use keysmith_tests::{TestApp, data, on_both_databases, refusal};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};

const LITERAL_KEY: &str = r#"AB%C_D"E"#;
/// What `LITERAL_KEY`'s searches would also find if `%` and `_` were wildcards.
const DECOY_KEY: &str = r#"ABXCYD"E"#;
const UNICODE_KEY: &str = "Zoë-Ünal-KEY-9";

/// One place a search can be typed: its query (`$s` the search, `$id` the
/// parent when there is one), the path to its connection, and the field each
/// found node is recognised by.
struct Place {
    what: &'static str,
    query: &'static str,
    id: Option<String>,
    path: &'static [&'static str],
    shows: &'static str,
}

impl Place {
    async fn search(&self, app: &TestApp, token: &str, term: &str) -> Value {
        let mut variables = json!({ "s": term });
        if let Some(id) = &self.id {
            variables["id"] = json!(id);
        }
        app.graphql(Some(token), self.query, variables).await
    }

    fn found(&self, body: &Value) -> Vec<String> {
        let mut connection = data(body);
        for step in self.path {
            connection = &connection[*step];
        }
        let mut found: Vec<String> = connection["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no list in {body:#}", self.what))
            .iter()
            .map(|e| e["node"][self.shows].as_str().expect("a text").to_string())
            .collect();
        found.sort();
        found
    }
}

fn places(tag_id: &str, customer_id: &str) -> [Place; 7] {
    [
        Place {
            what: "licenseKeys",
            query: "query($s: String) { licenseKeys(first: 100, filter: {search: $s}) { edges { node { key } } } }",
            id: None,
            path: &["licenseKeys"],
            shows: "key",
        },
        Place {
            what: "tag.keys",
            query: "query($id: ID!, $s: String) { tag(id: $id) { keys(first: 100, filter: {search: $s}) \
                    { edges { node { key } } } } }",
            id: Some(tag_id.to_string()),
            path: &["tag", "keys"],
            shows: "key",
        },
        Place {
            what: "customer.licenses",
            query: "query($id: ID!, $s: String) { customer(id: $id) { licenses(first: 100, filter: {search: $s}) \
                    { edges { node { key } } } } }",
            id: Some(customer_id.to_string()),
            path: &["customer", "licenses"],
            shows: "key",
        },
        Place {
            what: "customers",
            query: "query($s: String) { customers(first: 100, search: $s) { edges { node { name } } } }",
            id: None,
            path: &["customers"],
            shows: "name",
        },
        Place {
            what: "products",
            query: "query($s: String) { products(first: 100, filter: {search: $s}) { edges { node { name } } } }",
            id: None,
            path: &["products"],
            shows: "name",
        },
        Place {
            what: "orders",
            query: "query($s: String) { orders(first: 100, filter: {search: $s}) { edges { node { externalId } } } }",
            id: None,
            path: &["orders"],
            shows: "externalId",
        },
        Place {
            what: "tags",
            query: "query($s: String) { tags(first: 100, search: $s) { edges { node { name } } } }",
            id: None,
            path: &["tags"],
            shows: "name",
        },
    ]
}

async fn ok(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    data(&app.graphql(Some(token), query, variables).await).clone()
}

async fn create_tag(app: &TestApp, token: &str, name: &str) -> String {
    let body =
        ok(app, token, "mutation($n: String!) { createTag(input: {name: $n}) { tag { id } } }", json!({ "n": name }))
            .await;
    body["createTag"]["tag"]["id"].as_str().expect("tag id").to_string()
}

async fn create_customer(app: &TestApp, token: &str, email: &str, name: &str) -> String {
    let query =
        "mutation($e: String!, $n: String!) { createCustomer(input: {email: $e, name: $n}) { customer { id } } }";
    let body = ok(app, token, query, json!({ "e": email, "n": name })).await;
    body["createCustomer"]["customer"]["id"].as_str().expect("customer id").to_string()
}

async fn create_product(app: &TestApp, token: &str, name: &str) -> String {
    let query = "mutation($n: String!) { createProduct(input: {name: $n}) { product { id } } }";
    let body = ok(app, token, query, json!({ "n": name })).await;
    body["createProduct"]["product"]["id"].as_str().expect("product id").to_string()
}

async fn create_order(app: &TestApp, token: &str, external_id: &str, email: &str, product: &str) {
    let query = "mutation($x: String!, $e: String!, $p: ID!) { createOrder(input: {externalId: $x, \
                 customer: {email: $e}, lines: [{productId: $p, quantity: 1}], emailCustomer: false}) { order { id } } }";
    ok(app, token, query, json!({ "x": external_id, "e": email, "p": product })).await;
}

/// A search term and what it must find, sorted.
fn case(term: &'static str, want: &[&str]) -> (&'static str, Vec<String>) {
    let mut want: Vec<String> = want.iter().map(|w| w.to_string()).collect();
    want.sort();
    (term, want)
}

/// Gives the key `key_id` to `customer_id`, as a delivery would.
async fn hand_to(app: &TestApp, key_id: &str, customer_id: &str) {
    let key = license_key::Entity::find_by_id(key_id.to_string()).one(app.db()).await.expect("read").expect("key");
    let mut key: license_key::ActiveModel = key.into();
    key.customer_id = Set(Some(customer_id.to_string()));
    key.status = Set(LicenseStatus::Assigned);
    key.update(app.db()).await.expect("assign");
}

on_both_databases!(
    hostile_searches_find_exactly_what_they_spell,
    searches_past_their_maximum_are_refused_naming_the_search,
    inputs_past_their_maximum_are_refused_naming_the_field_and_change_nothing,
);

async fn hostile_searches_find_exactly_what_they_spell(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let t = admin.as_str();

    let tag = create_tag(&app, t, "hostile").await;
    let literal = seed::key(app.db(), Environment::Production, LITERAL_KEY, LicenseStatus::Available, &[&tag]).await;
    let decoy = seed::key(app.db(), Environment::Production, DECOY_KEY, LicenseStatus::Available, &[&tag]).await;
    let unicode = seed::key(app.db(), Environment::Production, UNICODE_KEY, LicenseStatus::Available, &[&tag]).await;
    let delivered = seed::deliver(app.db(), &literal, false).await;
    let buyer = order::Entity::find_by_id(delivered).one(app.db()).await.expect("read").expect("order").customer_id;
    hand_to(&app, &decoy, &buyer).await;
    hand_to(&app, &unicode, &buyer).await;

    let ann = r#"Zoë Ünal 50%_off "VIP" \ team"#;
    create_customer(&app, t, "zoe@example.com", ann).await;
    create_customer(&app, t, "zoe-decoy@example.com", "Zoe Unal 50XYoff VIP / team").await;
    let suite = r#"Suite 70%_pro "Max" \ Ünal"#;
    let product = create_product(&app, t, suite).await;
    let other = create_product(&app, t, "Suite 70XYpro Max").await;
    let hostile_order = r#"ORD-9%_x-"q"\"#;
    create_order(&app, t, hostile_order, "first-buyer@example.com", &product).await;
    create_order(&app, t, "ORD-9XYx-q", "second-buyer@example.com", &other).await;

    // Terms no record holds: full-text operators, quotes and wildcards find nothing.
    let nothing = [r#""a" OR b*"#, r"%_\", "NEAR(x y) ^z:w -v", "a AND NOT b", "*", "(", "'"];
    let keys = vec![
        case(r#"%C_D""#, &[LITERAL_KEY]),
        case("AB%", &[LITERAL_KEY]),
        case("A_", &[]),
        case("Ünal-K", &[UNICODE_KEY]),
        case(LITERAL_KEY, &[LITERAL_KEY]),
    ];
    let expected = [
        keys.clone(),
        keys.clone(),
        keys,
        vec![case("0%_o", &[ann]), case(r#""VIP" \"#, &[ann]), case("Ünal", &[ann])],
        vec![case("0%_p", &[suite]), case(r#""Max" \"#, &[suite]), case("Ünal", &[suite])],
        vec![case("9%_x", &[hostile_order]), case(r#""q"\"#, &[hostile_order])],
        vec![case("host", &["hostile"])],
    ];
    let all = places(&tag, &buyer);
    for (place, cases) in all.iter().zip(expected) {
        for (term, want) in cases {
            let body = place.search(&app, t, term).await;
            assert_eq!(place.found(&body), want, "{} searched for {term:?}", place.what);
        }
        for term in nothing {
            let body = place.search(&app, t, term).await;
            assert_eq!(place.found(&body), Vec::<String>::new(), "{} searched for {term:?}", place.what);
        }
        // No stored text can hold a NUL: the search is refused, naming it.
        for term in ["a\u{0}b", "\u{0}", "AB%C\u{0}_D"] {
            let body = place.search(&app, t, term).await;
            assert_eq!(refusal(&body), ("INVALID_INPUT", "search"), "{} with a NUL: {body:#}", place.what);
            let message = body["errors"][0]["message"].as_str().unwrap_or_default();
            assert!(message.contains("NUL"), "the refusal says why: {message}");
        }
    }

    // An id with a NUL names nothing; it is never an internal error.
    let body =
        app.graphql(Some(t), "query($id: ID!) { licenseKey(id: $id) { key } }", json!({ "id": "a\u{0}b" })).await;
    let (code, _) = refusal(&body);
    assert!(matches!(code, "NOT_FOUND" | "INVALID_INPUT"), "{body:#}");
}

async fn searches_past_their_maximum_are_refused_naming_the_search(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let t = admin.as_str();
    let tag = create_tag(&app, t, "long").await;
    let customer = create_customer(&app, t, "long@example.com", "Long").await;
    seed::key(app.db(), Environment::Production, &"x".repeat(256), LicenseStatus::Available, &[&tag]).await;

    let huge = "x".repeat(50_000);
    for place in places(&tag, &customer) {
        let body = place.search(&app, t, &huge).await;
        assert_eq!(refusal(&body), ("INVALID_INPUT", "search"), "{}: {body:#}", place.what);
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("at most 256 characters"), "{}: the limit is named: {message}", place.what);
        assert!(message.len() < 200, "the refusal does not echo the input");

        let just = place.search(&app, t, &"x".repeat(257)).await;
        assert_eq!(refusal(&just), ("INVALID_INPUT", "search"), "{}: one past the limit", place.what);
        let at = place.search(&app, t, &"x".repeat(256)).await;
        data(&at);
    }
    // The longest search finds the longest key.
    let [license_keys, ..] = places(&tag, &customer);
    let body = license_keys.search(&app, t, &"x".repeat(256)).await;
    assert_eq!(license_keys.found(&body), ["x".repeat(256)]);
}

async fn inputs_past_their_maximum_are_refused_naming_the_field_and_change_nothing(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let t = admin.as_str();
    let refused = |body: &Value, field: &str| {
        assert_eq!(refusal(body), ("INVALID_INPUT", field), "{body:#}");
        body["errors"][0]["message"].as_str().unwrap_or_default().to_string()
    };
    let count = |name: &'static str| {
        let app = &app;
        async move {
            let body =
                ok(app, t, &format!("{{ {name}(first: 100) {{ edges {{ node {{ id }} }} }} }}"), json!({})).await;
            body[name]["edges"].as_array().expect("edges").len()
        }
    };

    let create_product = "mutation($i: CreateProductInput!) { createProduct(input: $i) { product { id } } }";
    let body = app.graphql(Some(t), create_product, json!({ "i": { "name": "P".repeat(201) } })).await;
    assert!(refused(&body, "name").contains("at most 200 characters"));
    let body =
        app.graphql(Some(t), create_product, json!({ "i": { "name": "Ok", "description": "d".repeat(2001) } })).await;
    assert!(refused(&body, "description").contains("at most 2000 characters"));
    assert_eq!(count("products").await, 0, "no product was created");

    let create_customer = "mutation($i: CreateCustomerInput!) { createCustomer(input: $i) { customer { id } } }";
    let long_email = format!("{}@example.com", "a".repeat(300));
    let body = app.graphql(Some(t), create_customer, json!({ "i": { "email": long_email } })).await;
    assert!(refused(&body, "email").contains("at most 254 characters"));
    let body = app
        .graphql(Some(t), create_customer, json!({ "i": { "email": "ok@example.com", "name": "n".repeat(201) } }))
        .await;
    assert!(refused(&body, "name").contains("at most 200 characters"));
    assert_eq!(count("customers").await, 0, "no customer was created");

    let tags_before = count("tags").await;
    let create_tag = "mutation($n: String!) { createTag(input: {name: $n}) { tag { id } } }";
    for name in ["a".repeat(65), "a".repeat(50_000)] {
        let body = app.graphql(Some(t), create_tag, json!({ "n": name })).await;
        let message = refused(&body, "name");
        assert!(message.contains("at most 64 characters") && message.len() < 300, "{message}");
    }
    assert_eq!(count("tags").await, tags_before, "no tag was created");

    let product = self::create_product(&app, t, "Limits").await;
    let create_order = "mutation($x: String!, $p: ID!) { createOrder(input: {externalId: $x, customer: \
                        {email: \"limits@example.com\"}, lines: [{productId: $p, quantity: 1}], emailCustomer: false}) \
                        { order { id } } }";
    let body = app.graphql(Some(t), create_order, json!({ "x": "X".repeat(201), "p": product })).await;
    assert!(refused(&body, "externalId").contains("at most 200 characters"));
    assert_eq!(count("orders").await, 0, "no order was placed");

    // JSON fields: at most 10 KB, and no NUL anywhere in them.
    let key = seed::key(app.db(), Environment::Production, "LIMITS-KEY-1", LicenseStatus::Available, &[]).await;
    let update = "mutation($i: UpdateLicenseInput!) { updateLicense(input: $i) { license { id } } }";
    let big = json!({ "note": "x".repeat(11 * 1024) });
    for (field, value) in [
        ("metadata", big.clone()),
        ("featureFlags", big),
        ("featureFlags", json!({ "tier": "pro\u{0}" })),
        ("metadata", json!({ "no\u{0}te": 1 })),
    ] {
        let mut input = json!({ "id": key });
        input[field] = value;
        let body = app.graphql(Some(t), update, json!({ "i": input })).await;
        refused(&body, field);
    }
    let body =
        ok(&app, t, "query($id: ID!) { licenseKey(id: $id) { featureFlags metadata } }", json!({ "id": key })).await;
    assert_eq!(body["licenseKey"], json!({ "featureFlags": {}, "metadata": {} }), "the licence is as it was");

    // A key format whose keys could not be sent back (over 256 characters).
    let create_generator = "mutation($i: CreateGeneratorInput!) { createGenerator(input: $i) { generator { id } } }";
    let huge = json!({ "name": "Huge", "format": "CHUNKED", "chunkCount": 16, "chunkLength": 32 });
    let body = app.graphql(Some(t), create_generator, json!({ "i": huge })).await;
    assert!(refused(&body, "format").contains("at most 256"));
    let long = json!({ "name": "Long", "format": "PATTERN", "pattern": "{X:64}".repeat(5) });
    let body = app.graphql(Some(t), create_generator, json!({ "i": long })).await;
    refused(&body, "pattern");
    let body =
        app.graphql(Some(t), create_generator, json!({ "i": { "name": "Affix", "prefix": "p".repeat(17) } })).await;
    refused(&body, "prefix");
    let names = ok(&app, t, "{ generators(first: 100) { edges { node { name } } } }", json!({})).await;
    for name in ["Huge", "Long", "Affix"] {
        assert!(!names.to_string().contains(name), "{name} was not created: {names}");
    }

    let hook = "mutation($u: String!) { createWebhookEndpoint(input: {url: $u, events: [\"order.created\"]}) \
                { endpoint { id } } }";
    let body = app.graphql(Some(t), hook, json!({ "u": format!("http://127.0.0.1/{}", "a".repeat(3000)) })).await;
    assert!(refused(&body, "url").contains("at most 2048 characters"));
    assert_eq!(count("webhookEndpoints").await, 0, "no endpoint was created");

    // Exact-match filters and cursors have their maximum too.
    let huge = "x".repeat(50_000);
    let filters = [
        ("kind", "query($s: String) { jobs(kind: $s) { edges { node { id } } } }"),
        ("action", "query($s: String) { auditEvents(filter: {action: $s}) { edges { node { id } } } }"),
        ("status", "query($s: String) { webhookDeliveries(status: $s) { edges { node { id } } } }"),
        ("after", "query($s: String) { customers(after: $s) { edges { node { id } } } }"),
    ];
    for (field, query) in filters {
        let body = app.graphql(Some(t), query, json!({ "s": huge })).await;
        refused(&body, field);
    }
}
