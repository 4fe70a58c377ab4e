//! The client API that shipped software calls without logging in:
//! validation, activation and deactivation with every code, strict
//! activation limits under concurrency, devices managed by customers and
//! staff, the grace period, rate limits and the abuse rule.

use entity::user::StaffRole;
use entity::{Environment, LicenseStatus, activation, audit_event, event, license_key};
use keysmith_tests::app::seed;
use keysmith_tests::{TestApp, data, error_code, error_field, on_both_databases};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use serde_json::{Value, json};
use std::collections::HashMap;

const FACTS: &str = "valid code detail retryAfterSeconds \
                     license { status expiresAt featureFlags activationsUsed activationLimit }";

fn validate_query() -> String {
    format!(
        "mutation($k: String!, $f: String) {{ validateLicense(input: {{key: $k, fingerprint: $f}}) {{ {FACTS} }} }}"
    )
}

fn activate_query() -> String {
    format!(
        "mutation($k: String!, $f: String!, $n: String, $p: String) {{ activateLicense(input: {{key: $k, \
         fingerprint: $f, name: $n, platform: $p}}) {{ {FACTS} }} }}"
    )
}

fn deactivate_query() -> String {
    format!(
        "mutation($k: String!, $f: String!) {{ deactivateLicense(input: {{key: $k, fingerprint: $f}}) {{ {FACTS} }} }}"
    )
}

pub(crate) async fn validate(app: &TestApp, key: &str, fingerprint: Option<&str>) -> Value {
    let body = app.graphql(None, &validate_query(), json!({ "k": key, "f": fingerprint })).await;
    data(&body)["validateLicense"].clone()
}

pub(crate) async fn activate(app: &TestApp, key: &str, fingerprint: &str) -> Value {
    let body = app
        .graphql(
            None,
            &activate_query(),
            json!({ "k": key, "f": fingerprint, "n": format!("{fingerprint}'s PC"), "p": "linux" }),
        )
        .await;
    data(&body)["activateLicense"].clone()
}

async fn deactivate(app: &TestApp, key: &str, fingerprint: &str) -> Value {
    let body = app.graphql(None, &deactivate_query(), json!({ "k": key, "f": fingerprint })).await;
    data(&body)["deactivateLicense"].clone()
}

fn code(answer: &Value) -> &str {
    answer["code"].as_str().unwrap_or_else(|| panic!("no code in {answer:#}"))
}

fn used(answer: &Value) -> i64 {
    answer["license"]["activationsUsed"].as_i64().unwrap_or_else(|| panic!("no count in {answer:#}"))
}

/// A licence delivered to a new customer (ASSIGNED, never activated) with
/// `limit` activations; returns (licence id, customer id, product id).
pub(crate) async fn delivered(app: &TestApp, key: &str, limit: i32) -> (String, String, String) {
    let id = seed::key(app.db(), Environment::Production, key, LicenseStatus::Available, &[]).await;
    seed::deliver(app.db(), &id, false).await;
    let row = license_key::Entity::find_by_id(id.clone()).one(app.db()).await.expect("read").expect("row");
    let (customer, product) = (row.customer_id.clone().expect("customer"), row.product_id.clone().expect("product"));
    let mut row: license_key::ActiveModel = row.into();
    row.activation_limit = Set(limit);
    row.feature_flags = Set(json!({ "seats": limit }));
    row.update(app.db()).await.expect("update");
    (id, customer, product)
}

async fn licence(app: &TestApp, id: &str) -> license_key::Model {
    license_key::Entity::find_by_id(id.to_string()).one(app.db()).await.expect("read").expect("the licence")
}

async fn live_devices(app: &TestApp, id: &str) -> Vec<String> {
    let mut list: Vec<String> = activation::Entity::find()
        .filter(activation::Column::LicenseKeyId.eq(id))
        .filter(activation::Column::DeactivatedAt.is_null())
        .all(app.db())
        .await
        .expect("activations")
        .into_iter()
        .map(|a| a.fingerprint)
        .collect();
    list.sort();
    list
}

pub(crate) async fn settings(app: &TestApp, admin: &str, input: Value) {
    let body = app
        .graphql(
            Some(admin),
            "mutation($i: UpdateSettingsInput!) { updateSettings(input: $i) { settings { gracePeriodMinutes } } }",
            json!({ "i": input }),
        )
        .await;
    assert!(body.get("errors").is_none(), "settings refused: {body:#}");
}

on_both_databases!(
    activation_and_deactivation_answer_every_code,
    the_grace_period_is_judged_at_the_moment_of_the_call,
    activation_limits_hold_under_concurrent_activations,
    customers_and_staff_see_and_end_devices,
    rate_limits_count_every_call_and_throttle_one_address_at_a_time,
    the_abuse_rule_suspends_a_shared_key,
    readme_examples_work_as_written,
);

async fn activation_and_deactivation_answer_every_code(app: TestApp) {
    let (id, _, _) = delivered(&app, "ACT-KEY-0001", 2).await;
    assert_eq!(code(&validate(&app, "ACT-KEY-0001", Some("pc-1")).await), "NOT_ACTIVATED");
    assert_eq!(code(&deactivate(&app, "ACT-KEY-0001", "pc-1").await), "NOT_ACTIVATED", "nothing to free yet");

    // The first activation takes a slot and makes the licence ACTIVE.
    let first = activate(&app, "ACT-KEY-0001", "pc-1").await;
    assert_eq!((code(&first), first["valid"].as_bool(), used(&first)), ("VALID", Some(true), 1), "{first:#}");
    assert_eq!(first["license"]["status"], "ACTIVE");
    assert_eq!(first["license"]["featureFlags"], json!({ "seats": 2 }));
    let row = licence(&app, &id).await;
    assert_eq!(row.status, LicenseStatus::Active);
    assert!(row.activated_at.is_some());
    let device =
        activation::Entity::find().filter(activation::Column::LicenseKeyId.eq(id.as_str())).one(app.db()).await;
    let device = device.expect("read").expect("the activation");
    assert_eq!((device.name.as_deref(), device.platform.as_deref()), (Some("pc-1's PC"), Some("linux")));
    assert_eq!(device.client_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(code(&validate(&app, "ACT-KEY-0001", Some("pc-1")).await), "VALID");

    // The same device again changes nothing and succeeds.
    let again = activate(&app, "ACT-KEY-0001", "pc-1").await;
    assert_eq!((code(&again), used(&again)), ("VALID", 1));
    assert_eq!(live_devices(&app, &id).await, ["pc-1"]);

    // A second device fits, a third does not.
    assert_eq!(used(&activate(&app, "ACT-KEY-0001", "pc-2").await), 2);
    let full = activate(&app, "ACT-KEY-0001", "pc-3").await;
    assert_eq!((code(&full), full["valid"].as_bool(), used(&full)), ("TOO_MANY_ACTIVATIONS", Some(false), 2));
    assert_eq!(live_devices(&app, &id).await, ["pc-1", "pc-2"]);

    // Deactivating frees a slot for the third device.
    let freed = deactivate(&app, "ACT-KEY-0001", "pc-1").await;
    assert_eq!((code(&freed), used(&freed)), ("VALID", 1));
    assert_eq!(code(&validate(&app, "ACT-KEY-0001", Some("pc-1")).await), "NOT_ACTIVATED");
    assert_eq!(code(&activate(&app, "ACT-KEY-0001", "pc-3").await), "VALID");
    assert_eq!(live_devices(&app, &id).await, ["pc-2", "pc-3"]);

    // Audit and outbox events for each change, with the key cut to 8 characters.
    let audits = audit_event::Entity::find()
        .filter(audit_event::Column::TargetId.eq(id.as_str()))
        .all(app.db())
        .await
        .expect("audit");
    let count = |action: &str| audits.iter().filter(|e| e.action == action).count();
    assert_eq!((count("license.activated"), count("license.deactivated")), (3, 1));
    assert!(audits.iter().all(|e| e.key_prefix.as_deref() == Some("ACT-KEY-") && e.actor_kind == "client"));
    let outbox = event::Entity::find().filter(event::Column::SubjectId.eq(id.as_str())).all(app.db()).await;
    let kinds: Vec<String> = outbox.expect("events").into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "license.activated").count(), 3, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "license.deactivated").count(), 1, "{kinds:?}");

    // Unlimited (-1) takes any number of devices.
    let (unlimited, _, _) = delivered(&app, "ACT-KEY-UNLIMITED", -1).await;
    for i in 0..12 {
        assert_eq!(code(&activate(&app, "ACT-KEY-UNLIMITED", &format!("seat-{i}")).await), "VALID");
    }
    assert_eq!(live_devices(&app, &unlimited).await.len(), 12);

    // The licence's standing comes before the device checks, in DESIGN order.
    let missing = activate(&app, "NO-SUCH-KEY", "pc-1").await;
    assert_eq!((code(&missing), &missing["license"]), ("NOT_FOUND", &Value::Null));
    let (_, staged) =
        app.graphql_in(None, Some("staging"), &activate_query(), json!({ "k": "ACT-KEY-0001", "f": "pc-9" })).await;
    assert_eq!(data(&staged)["activateLicense"]["code"], "NOT_FOUND", "a key from another environment");
    seed::key(app.db(), Environment::Production, "ACT-POOL-0001", LicenseStatus::Available, &[]).await;
    assert_eq!(code(&activate(&app, "ACT-POOL-0001", "pc-1").await), "NOT_ASSIGNED");
    for (status, expected) in [
        (LicenseStatus::Inactive, "INACTIVE"),
        (LicenseStatus::Suspended, "SUSPENDED"),
        (LicenseStatus::Revoked, "REVOKED"),
    ] {
        let mut row: license_key::ActiveModel = licence(&app, &id).await.into();
        row.status = Set(status);
        row.update(app.db()).await.expect("update");
        assert_eq!(code(&activate(&app, "ACT-KEY-0001", "pc-4").await), expected);
        assert_eq!(code(&deactivate(&app, "ACT-KEY-0001", "pc-2").await), expected);
        assert_eq!(code(&validate(&app, "ACT-KEY-0001", Some("pc-2")).await), expected);
    }
    assert_eq!(live_devices(&app, &id).await, ["pc-2", "pc-3"], "refused calls changed nothing");

    // Bad input is an error naming the field, and changes nothing.
    let body = app.graphql(None, &activate_query(), json!({ "k": "ACT-KEY-UNLIMITED", "f": "" })).await;
    assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some("fingerprint")));
    let body = app
        .graphql(None, &activate_query(), json!({ "k": "ACT-KEY-UNLIMITED", "f": "pc-x", "n": "n".repeat(201) }))
        .await;
    assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some("name")));
    assert_eq!(live_devices(&app, &unlimited).await.len(), 12);
}

async fn the_grace_period_is_judged_at_the_moment_of_the_call(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let (id, _, _) = delivered(&app, "GRACE-KEY-0001", 1).await;
    assert_eq!(code(&activate(&app, "GRACE-KEY-0001", "pc-1").await), "VALID");
    // Expired ten minutes ago.
    settings(&app, &admin, json!({ "gracePeriodMinutes": 30 })).await;
    let mut row: license_key::ActiveModel = licence(&app, &id).await.into();
    row.expires_at = Set(Some(entity::now() - chrono::Duration::minutes(10)));
    row.update(app.db()).await.expect("update");
    let within = validate(&app, "GRACE-KEY-0001", Some("pc-1")).await;
    assert_eq!((code(&within), within["license"]["status"].as_str()), ("VALID", Some("ACTIVE")), "{within:#}");
    // A sweep now, as the sweeper runs it, leaves it alone.
    let swept = keysmith::services::licenses::expire_due(app.db()).await.expect("a sweep");
    assert_eq!(swept, 0, "nothing is due inside the grace period");
    assert_eq!(licence(&app, &id).await.status, LicenseStatus::Active, "the sweeper respects the grace period");

    // Without the grace period the same licence is expired at once, before the sweeper gets to it.
    settings(&app, &admin, json!({ "gracePeriodMinutes": 0 })).await;
    let past = validate(&app, "GRACE-KEY-0001", Some("pc-1")).await;
    assert_eq!((code(&past), past["license"]["status"].as_str()), ("EXPIRED", Some("EXPIRED")));
    assert_eq!(code(&activate(&app, "GRACE-KEY-0001", "pc-2").await), "EXPIRED");

    // Settings refuse values out of range, naming the field, and keep the old value.
    let body = app
        .graphql(
            Some(&admin),
            "mutation { updateSettings(input: {gracePeriodMinutes: -5}) { settings { gracePeriodMinutes } } }",
            json!({}),
        )
        .await;
    assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some("gracePeriodMinutes")));
    let body = app.graphql(Some(&admin), "{ settings { gracePeriodMinutes } }", json!({})).await;
    assert_eq!(data(&body)["settings"]["gracePeriodMinutes"], 0);
}

async fn activation_limits_hold_under_concurrent_activations(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    // Isolate the limit: no abuse rule, no rate limits.
    settings(&app, &admin, json!({ "abuseMaxFingerprints": 0, "rateLimitPerKey": 0, "rateLimitPerAddress": 0 })).await;
    // Five licences of 3 devices, each raced by 20 distinct devices at once;
    // one more raced by one device 20 times. The racers alternate between
    // two nodes on the same database.
    const LICENCES: usize = 5;
    let mut limited = Vec::new();
    for n in 0..LICENCES {
        limited.push(delivered(&app, &format!("RACE-KEY-LIMIT3-{n}"), 3).await.0);
    }
    let (one_device, _, _) = delivered(&app, "RACE-KEY-SAMEPC", 3).await;
    let other = keysmith_tests::app::config(&app.database_url);
    let other = TestApp::spawn_with(app.backend, other, tempfile::tempdir().expect("dir")).await;
    let nodes = std::sync::Arc::new([app, other]);
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..20 {
        for n in 0..LICENCES {
            let nodes = nodes.clone();
            racers.spawn(async move {
                let node = &nodes[(i + n) % 2];
                (n, activate(node, &format!("RACE-KEY-LIMIT3-{n}"), &format!("device-{i:02}")).await)
            });
        }
        let nodes = nodes.clone();
        racers.spawn(async move { (LICENCES, activate(&nodes[i % 2], "RACE-KEY-SAMEPC", "the-one-pc").await) });
    }
    let mut codes: HashMap<(usize, String), usize> = HashMap::new();
    while let Some(done) = racers.join_next().await {
        let (licence, answer) = done.expect("a racer");
        *codes.entry((licence, code(&answer).to_string())).or_default() += 1;
    }
    let app = &nodes[0];
    for (n, id) in limited.iter().enumerate() {
        assert_eq!(codes.get(&(n, "VALID".into())), Some(&3), "licence {n}: {codes:?}");
        assert_eq!(codes.get(&(n, "TOO_MANY_ACTIVATIONS".into())), Some(&17), "licence {n}: {codes:?}");
        assert_eq!(live_devices(app, id).await.len(), 3, "licence {n}");
        assert_eq!(licence(app, id).await.devices_in_use, 3, "licence {n}: the stored count is the live devices");
    }
    assert_eq!(codes.get(&(LICENCES, "VALID".into())), Some(&20), "{codes:?}");
    assert_eq!(codes.len(), 2 * LICENCES + 1, "no other answer and no error: {codes:?}");
    assert_eq!(live_devices(app, &one_device).await, ["the-one-pc"]);
    assert_eq!(licence(app, &one_device).await.devices_in_use, 1);
    let all =
        activation::Entity::find().filter(activation::Column::LicenseKeyId.eq(one_device.as_str())).count(app.db());
    assert_eq!(all.await.expect("count"), 1, "one row, not one per call");

    // Every device of the first licence ended twice at once, through both
    // nodes: each ends once, and the count comes down to nothing, not below.
    let mut enders = tokio::task::JoinSet::new();
    for device in live_devices(app, &limited[0]).await {
        for node in 0..2 {
            let (nodes, device) = (nodes.clone(), device.clone());
            enders
                .spawn(async move { code(&deactivate(&nodes[node], "RACE-KEY-LIMIT3-0", &device).await).to_string() });
        }
    }
    let mut ended = Vec::new();
    while let Some(done) = enders.join_next().await {
        ended.push(done.expect("an ender"));
    }
    ended.sort();
    assert_eq!(ended, ["NOT_ACTIVATED"; 3].into_iter().chain(["VALID"; 3]).collect::<Vec<_>>());
    assert!(live_devices(app, &limited[0]).await.is_empty());
    assert_eq!(licence(app, &limited[0]).await.devices_in_use, 0);
    let answer = activate(app, "RACE-KEY-LIMIT3-0", "a-new-pc").await;
    assert_eq!((code(&answer), used(&answer)), ("VALID", 1), "the freed slots are free: {answer:#}");
    if let Ok([first, second]) = std::sync::Arc::try_unwrap(nodes) {
        second.stop().await;
        first.stop().await;
    }
}

async fn customers_and_staff_see_and_end_devices(app: TestApp) {
    let (mine, me, product) = delivered(&app, "MINE-KEY-0001", 3).await;
    let (theirs, them, _) = delivered(&app, "THEIRS-KEY-0001", 3).await;
    for device in ["laptop", "desktop"] {
        assert_eq!(code(&activate(&app, "MINE-KEY-0001", device).await), "VALID");
    }
    assert_eq!(code(&activate(&app, "THEIRS-KEY-0001", "their-pc").await), "VALID");
    let list = "query($f: ActivationFilter) { activations(filter: $f) { totalCount edges { node { id licenseId \
                fingerprint name platform lastSeenAt deactivatedAt } } } }";
    let nodes = |body: &Value| -> Vec<(String, String)> {
        data(body)["activations"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| {
                (
                    e["node"]["fingerprint"].as_str().unwrap_or_default().to_string(),
                    e["node"]["id"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };

    // A customer sees only their own licences' devices, whatever they filter by.
    let customer = app.customer_token(&me).await;
    let own = nodes(&app.graphql(Some(&customer), list, json!({})).await);
    assert_eq!(own.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(), ["desktop", "laptop"], "newest first");
    let sneaky = app.graphql(Some(&customer), list, json!({ "f": { "customerId": them, "licenseId": theirs } })).await;
    assert_eq!(nodes(&sneaky), [], "another customer's devices stay hidden");
    let their_device = nodes(&app.graphql(Some(&app.customer_token(&them).await), list, json!({})).await)[0].1.clone();

    // A customer ends their own device, not another's (which looks missing).
    let end =
        "mutation($id: ID!) { deactivateActivation(input: {id: $id}) { activation { fingerprint deactivatedAt } } }";
    let laptop = own.iter().find(|(f, _)| f == "laptop").expect("laptop").1.clone();
    let body = app.graphql(Some(&customer), end, json!({ "id": laptop })).await;
    assert!(data(&body)["deactivateActivation"]["activation"]["deactivatedAt"].is_string(), "{body:#}");
    assert_eq!(live_devices(&app, &mine).await, ["desktop"]);
    assert_eq!(code(&validate(&app, "MINE-KEY-0001", Some("laptop")).await), "NOT_ACTIVATED");
    let refused = app.graphql(Some(&customer), end, json!({ "id": their_device })).await;
    assert_eq!(error_code(&refused), Some("NOT_FOUND"));
    assert_eq!(live_devices(&app, &theirs).await, ["their-pc"], "untouched");
    let audit = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("license.deactivated"))
        .one(app.db())
        .await
        .expect("audit")
        .expect("an event");
    assert_eq!((audit.actor_kind.as_str(), audit.actor_id.as_deref()), ("customer", Some(me.as_str())));

    // Staff list everything, filtered by licence, product, customer and liveness.
    let support = app.staff_token(StaffRole::Support).await;
    let count = |body: Value| data(&body)["activations"]["totalCount"].as_u64();
    assert_eq!(count(app.graphql(Some(&support), list, json!({})).await), Some(3));
    assert_eq!(count(app.graphql(Some(&support), list, json!({ "f": { "licenseId": theirs } })).await), Some(1));
    assert_eq!(count(app.graphql(Some(&support), list, json!({ "f": { "productId": product } })).await), Some(2));
    assert_eq!(count(app.graphql(Some(&support), list, json!({ "f": { "customerId": me } })).await), Some(2));
    assert_eq!(count(app.graphql(Some(&support), list, json!({ "f": { "live": true } })).await), Some(2));
    assert_eq!(count(app.graphql(Some(&support), list, json!({ "f": { "live": false } })).await), Some(1));
    // Support ends anyone's device; the slot is free for the customer's next machine.
    let body = app.graphql(Some(&support), end, json!({ "id": their_device })).await;
    assert_eq!(data(&body)["deactivateActivation"]["activation"]["fingerprint"], "their-pc");
    assert_eq!(live_devices(&app, &theirs).await, Vec::<String>::new());
    // Ending an ended one changes nothing.
    let again = app.graphql(Some(&support), end, json!({ "id": their_device })).await;
    assert!(again.get("errors").is_none());
    let ended =
        audit_event::Entity::find().filter(audit_event::Column::Action.eq("license.deactivated")).count(app.db());
    assert_eq!(ended.await.expect("count"), 2);

    // Anonymous callers see and end nothing.
    assert_eq!(error_code(&app.graphql(None, list, json!({})).await), Some("UNAUTHENTICATED"));
    assert_eq!(error_code(&app.graphql(None, end, json!({ "id": laptop })).await), Some("UNAUTHENTICATED"));
}

async fn rate_limits_count_every_call_and_throttle_one_address_at_a_time(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    settings(&app, &admin, json!({ "rateLimitPerKey": 5, "rateLimitPerAddress": 12 })).await;
    delivered(&app, "LIMIT-KEY-0001", 1).await;
    assert_eq!(code(&activate(&app, "LIMIT-KEY-0001", "pc-1").await), "VALID");

    // Eight validations packed as aliases count as eight: the key has four calls left.
    let packed: String = (0..8)
        .map(|i| format!("v{i}: validateLicense(input: {{key: \"LIMIT-KEY-0001\", fingerprint: \"pc-1\"}}) {{ code retryAfterSeconds }}"))
        .collect::<Vec<_>>()
        .join(" ");
    let body = app.graphql(None, &format!("mutation {{ {packed} }}"), json!({})).await;
    let answers: Vec<&Value> = (0..8).map(|i| &data(&body)[format!("v{i}")]).collect();
    let codes: Vec<&str> = answers.iter().map(|a| a["code"].as_str().unwrap_or_default()).collect();
    assert_eq!(
        codes,
        ["VALID", "VALID", "VALID", "VALID", "RATE_LIMITED", "RATE_LIMITED", "RATE_LIMITED", "RATE_LIMITED"]
    );
    let wait = answers[7]["retryAfterSeconds"].as_i64().expect("when to retry");
    assert!((1..=12).contains(&wait), "one call refills in 12 s at 5 a minute: {wait}");
    assert_eq!(answers[0]["retryAfterSeconds"], Value::Null);
    // Deactivation and activation spend the same budget.
    assert_eq!(code(&deactivate(&app, "LIMIT-KEY-0001", "pc-1").await), "RATE_LIMITED");
    assert_eq!(live_devices(&app, &licence_id(&app, "LIMIT-KEY-0001").await).await, ["pc-1"], "refused before acting");

    // The complexity limit caps how many calls fit in one request.
    let too_many: String = (0..41)
        .map(|i| format!("v{i}: validateLicense(input: {{key: \"K{i}\"}}) {{ code }}"))
        .collect::<Vec<_>>()
        .join(" ");
    let body = app.graphql(None, &format!("mutation {{ {too_many} }}"), json!({})).await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("complex"), "refused whole: {body:#}");

    // A flood of random keys from one address is throttled (it has spent 10 of
    // its 12 calls) while another address still validates.
    let mut answered = 0;
    let flooded = loop {
        let answer = validate(&app, &format!("RANDOM-{answered}"), None).await;
        if code(&answer) == "RATE_LIMITED" {
            break answer;
        }
        assert_eq!(code(&answer), "NOT_FOUND");
        answered += 1;
        assert!(answered <= 4, "the address is never throttled");
    };
    assert_eq!(&flooded["license"], &Value::Null, "refused before any lookup");
    delivered(&app, "OTHER-KEY-0001", 1).await;
    let elsewhere = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().expect("address")))
        .build()
        .expect("a client on another address");
    let body: Value = elsewhere
        .post(app.url("/graphql"))
        .json(&json!({ "query": validate_query(), "variables": { "k": "OTHER-KEY-0001" } }))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(data(&body)["validateLicense"]["code"], "VALID", "{body:#}");
}

async fn licence_id(app: &TestApp, key: &str) -> String {
    license_key::Entity::find()
        .filter(license_key::Column::Key.eq(key))
        .one(app.db())
        .await
        .expect("read")
        .expect("the key")
        .id
}

async fn the_abuse_rule_suspends_a_shared_key(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    settings(&app, &admin, json!({ "abuseMaxFingerprints": 3, "abuseWindowMinutes": 60 })).await;
    let (id, _, _) = delivered(&app, "SHARED-KEY-0001", 1).await;
    assert_eq!(code(&activate(&app, "SHARED-KEY-0001", "owner-pc").await), "VALID");
    // Strangers try the key: two validations and an activation are tolerated...
    assert_eq!(code(&validate(&app, "SHARED-KEY-0001", Some("stranger-1")).await), "NOT_ACTIVATED");
    assert_eq!(code(&activate(&app, "SHARED-KEY-0001", "stranger-2").await), "TOO_MANY_ACTIVATIONS");
    // The same stranger again is not a new fingerprint; the owner validating is not counted.
    assert_eq!(code(&validate(&app, "SHARED-KEY-0001", Some("stranger-1")).await), "NOT_ACTIVATED");
    assert_eq!(code(&validate(&app, "SHARED-KEY-0001", Some("owner-pc")).await), "VALID");
    assert_eq!(licence(&app, &id).await.status, LicenseStatus::Active);
    // ...the fourth distinct fingerprint (owner included) in the window suspends it.
    let tipped = validate(&app, "SHARED-KEY-0001", Some("stranger-3")).await;
    assert_eq!((code(&tipped), tipped["license"]["status"].as_str()), ("SUSPENDED", Some("SUSPENDED")), "{tipped:#}");
    assert_eq!(licence(&app, &id).await.status, LicenseStatus::Suspended);
    assert_eq!(code(&validate(&app, "SHARED-KEY-0001", Some("owner-pc")).await), "SUSPENDED");

    let audit = audit_event::Entity::find()
        .filter(audit_event::Column::TargetId.eq(id.as_str()))
        .filter(audit_event::Column::Action.eq("license.suspended"))
        .all(app.db())
        .await
        .expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor_kind, "system");
    let after = audit[0].after.clone().expect("after");
    assert_eq!(after["rule"]["rule"], "abuse.distinct-fingerprints", "{after:#}");
    assert_eq!(
        (after["rule"]["distinctFingerprints"].as_i64(), after["rule"]["maxFingerprints"].as_i64()),
        (Some(4), Some(3))
    );
    let suspended = event::Entity::find()
        .filter(event::Column::SubjectId.eq(id.as_str()))
        .filter(event::Column::Kind.eq("license.suspended"))
        .count(app.db())
        .await
        .expect("events");
    assert_eq!(suspended, 1);

    // Staff can lift it; the rule counts afresh from there.
    let manager = app.staff_token(StaffRole::Manager).await;
    let body = app
        .graphql(
            Some(&manager),
            "mutation($id: ID!) { unsuspendLicense(input: {id: $id}) { license { status } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data(&body)["unsuspendLicense"]["license"]["status"], "ACTIVE", "{body:#}");
    assert_eq!(code(&validate(&app, "SHARED-KEY-0001", Some("owner-pc")).await), "VALID");
    assert_eq!(code(&validate(&app, "SHARED-KEY-0001", Some("stranger-4")).await), "NOT_ACTIVATED", "a fresh count");
}

/// The README's requests for shipped software, run as a seller would paste
/// them: the cURL activation, then the Python validation.
async fn readme_examples_work_as_written(app: TestApp) {
    let (Some(_curl), Some(python)) = (keysmith_tests::tool("curl"), keysmith_tests::tool("python3")) else {
        return;
    };
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let section = readme
        .split("## Validating keys from your software")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the README's section on validating keys");
    let block = |language: &str| -> String {
        let start = section.find(&format!("```{language}\n")).unwrap_or_else(|| panic!("a {language} block"));
        let body = &section[start + language.len() + 4..];
        body[..body.find("```").expect("the block's end")].replace("https://licences.example.com", &app.base_url)
    };
    delivered(&app, "PRO-7Q2M-XK4D-9H3R", 2).await;

    let out = std::process::Command::new("sh").arg("-c").arg(block("sh")).output().expect("sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON from the server");
    let activated = &answer["data"]["activateLicense"];
    assert_eq!((code(activated), used(activated)), ("VALID", 1), "{answer:#}");

    let dir = tempfile::tempdir().expect("dir");
    let script = dir.path().join("validate.py");
    std::fs::write(&script, block("python")).expect("script");
    let out = std::process::Command::new(python).arg(&script).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "VALID True", "the device the cURL request activated");
}

/// Behind a reverse proxy, the configured header names the client: each
/// forwarded address has its own budget, and one the proxy appended last wins
/// over one a client wrote itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_header_names_the_client_address() {
    let dir = tempfile::tempdir().expect("dir");
    let url = keysmith_tests::app::fresh_database(keysmith_tests::Backend::Sqlite, dir.path()).await.expect("SQLite");
    let mut cfg = keysmith_tests::app::config(&url);
    cfg.client_address_header = Some("X-Forwarded-For".into());
    let app = TestApp::spawn_with(keysmith_tests::Backend::Sqlite, cfg, dir).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    settings(&app, &admin, json!({ "rateLimitPerAddress": 2, "rateLimitPerKey": 0 })).await;
    let from = |forwarded: &'static str| {
        let app = &app;
        async move {
            let body: Value = app
                .http
                .post(app.url("/graphql"))
                .header("X-Forwarded-For", forwarded)
                .json(&json!({ "query": validate_query(), "variables": { "k": "NO-SUCH-KEY" } }))
                .send()
                .await
                .expect("answer")
                .json()
                .await
                .expect("json");
            data(&body)["validateLicense"]["code"].as_str().unwrap_or_default().to_string()
        }
    };
    // The client claims 10.0.0.1; the proxy appended 198.51.100.7, which is what counts.
    assert_eq!(from("10.0.0.1, 198.51.100.7").await, "NOT_FOUND");
    assert_eq!(from("198.51.100.7").await, "NOT_FOUND");
    assert_eq!(from("10.0.0.2, 198.51.100.7").await, "RATE_LIMITED", "a spoofed first address changes nothing");
    assert_eq!(from("198.51.100.8").await, "NOT_FOUND", "another client has its own budget");
    let device = activate(&app, "NO-SUCH-KEY", "pc").await;
    assert_eq!(code(&device), "NOT_FOUND", "without the header: the connection's address, a budget of its own");
    app.stop().await;
}
