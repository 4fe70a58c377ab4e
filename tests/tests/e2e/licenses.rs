//! Licences: creation from generators, the strict lifecycle, editing,
//! deleting, and customers — each refusal changing nothing.

use entity::user::StaffRole;
use entity::{Environment, LicenseStatus, activation, audit_event, license_key};
use keysmith_tests::app::seed;
use keysmith_tests::{TestApp, data, error_code, on_both_databases, refusal};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use serde_json::{Value, json};

const CREATE: &str = r#"
mutation($input: CreateLicenseInput!) {
  createLicense(input: $input) {
    license { id key type status customerId productId generatorId activationLimit expiresAt featureFlags metadata tags { name } }
  }
}"#;

const LICENSE: &str =
    "query($id: ID!) { licenseKey(id: $id) { id status customerId activationLimit expiresAt featureFlags metadata } }";

struct Fixture {
    manager: String,
    product: Value,
    generator: Value,
    customer: Value,
}

async fn fixture(app: &TestApp) -> Fixture {
    let manager = app.staff_token(StaffRole::Manager).await;
    let product = app
        .graphql(Some(&manager), "mutation { createProduct(input: {name: \"Pro\"}) { product { id } } }", json!({}))
        .await;
    let generator = app
        .graphql(
            Some(&manager),
            "mutation { createGenerator(input: {name: \"Pro keys\", format: CHUNKED, prefix: \"PRO-\", defaultActivationLimit: 3, validityDays: 30, defaultFeatureFlags: {tier: \"pro\"}}) { generator { id } } }",
            json!({}),
        )
        .await;
    let customer = app
        .graphql(
            Some(&manager),
            "mutation { createCustomer(input: {email: \"Ann@Example.com\", name: \"Ann\"}) { customer { id email } } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&customer)["createCustomer"]["customer"]["email"], "ann@example.com");
    Fixture {
        product: data(&product)["createProduct"]["product"]["id"].clone(),
        generator: data(&generator)["createGenerator"]["generator"]["id"].clone(),
        customer: data(&customer)["createCustomer"]["customer"]["id"].clone(),
        manager,
    }
}

async fn create(app: &TestApp, f: &Fixture, extra: Value) -> Value {
    let mut input = json!({ "productId": f.product, "generatorId": f.generator });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        input[k] = v;
    }
    app.graphql(Some(&f.manager), CREATE, json!({ "input": input })).await
}

async fn act(app: &TestApp, token: &str, mutation: &str, id: &Value) -> Value {
    let query = format!("mutation($id: ID!) {{ {mutation}(input: {{id: $id}}) {{ license {{ id status }} }} }}");
    app.graphql(Some(token), &query, json!({ "id": id })).await
}

async fn set_status(app: &TestApp, id: &str, status: LicenseStatus, activated: bool) {
    let mut row: license_key::ActiveModel =
        license_key::Entity::find_by_id(id.to_string()).one(app.db()).await.expect("read").expect("row").into();
    row.status = Set(status);
    if activated {
        row.activated_at = Set(Some(entity::now()));
    }
    row.update(app.db()).await.expect("update");
}

on_both_databases!(
    licences_take_the_generators_defaults_unless_told_otherwise,
    bad_licence_input_is_refused_and_creates_nothing,
    the_lifecycle_allows_only_its_transitions,
    licences_are_edited_within_the_rules_and_deleted_with_care,
    customers_are_unique_per_environment,
);

async fn licences_take_the_generators_defaults_unless_told_otherwise(app: TestApp) {
    let f = fixture(&app).await;
    let body = create(&app, &f, json!({})).await;
    let license = &data(&body)["createLicense"]["license"];
    assert_eq!(license["status"], "AVAILABLE");
    assert_eq!(license["type"], "GENERATED");
    assert_eq!(license["activationLimit"], 3);
    assert_eq!(license["featureFlags"], json!({ "tier": "pro" }));
    assert_eq!(license["tags"], json!([{ "name": "auto-generated" }]));
    let key = license["key"].as_str().expect("key");
    assert!(key.starts_with("PRO-") && key.len() == 4 + 4 * 5 + 3, "{key}");
    let expires = chrono::DateTime::parse_from_rfc3339(license["expiresAt"].as_str().expect("expiry")).expect("time");
    let days = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((29.9..=30.0).contains(&days), "30 days from the generator: {days}");

    let body = create(
        &app,
        &f,
        json!({ "customerId": f.customer, "activationLimit": -1, "expiresAt": null, "featureFlags": { "seats": 5 }, "metadata": { "crm": "A-17" } }),
    )
    .await;
    let license = &data(&body)["createLicense"]["license"];
    assert_eq!(license["status"], "ASSIGNED");
    assert_eq!(license["customerId"], f.customer);
    assert_eq!((license["activationLimit"].as_i64(), license["expiresAt"].is_null()), (Some(-1), true));
    assert_eq!(license["metadata"], json!({ "crm": "A-17" }));

    let event = audit_event::Entity::find()
        .filter(audit_event::Column::TargetId.eq(license["id"].as_str().expect("id")))
        .one(app.db())
        .await
        .expect("audit")
        .expect("license.created");
    assert_eq!(event.action, "license.created");
    assert_eq!(event.key_prefix.as_deref(), license["key"].as_str().map(|k| &k[..8]));
}

async fn bad_licence_input_is_refused_and_creates_nothing(app: TestApp) {
    let f = fixture(&app).await;
    let past = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let other = "01ZZZZZZZZZZZZZZZZZZZZZZZZ";
    for (extra, expected) in [
        (json!({ "activationLimit": 0 }), ("INVALID_INPUT", "activationLimit")),
        (json!({ "activationLimit": 10001 }), ("INVALID_INPUT", "activationLimit")),
        (json!({ "expiresAt": past }), ("INVALID_INPUT", "expiresAt")),
        (json!({ "featureFlags": [1] }), ("INVALID_INPUT", "featureFlags")),
        (json!({ "metadata": { "blob": "x".repeat(11 * 1024) } }), ("INVALID_INPUT", "metadata")),
        (json!({ "productId": other }), ("NOT_FOUND", "productId")),
        (json!({ "generatorId": other }), ("NOT_FOUND", "generatorId")),
        (json!({ "customerId": other }), ("NOT_FOUND", "customerId")),
    ] {
        let body = create(&app, &f, extra.clone()).await;
        assert_eq!(refusal(&body), expected, "{extra}: {body:#}");
    }
    app.graphql(
        Some(&f.manager),
        "mutation($id: ID!) { archiveProduct(input: {id: $id}) { product { id } } }",
        json!({ "id": f.product }),
    )
    .await;
    let archived = create(&app, &f, json!({})).await;
    assert_eq!(refusal(&archived), ("INVALID_INPUT", "productId"));
    let (_, staged) = app
        .graphql_in(
            Some(&f.manager),
            Some("staging"),
            CREATE,
            json!({ "input": { "productId": f.product, "generatorId": f.generator } }),
        )
        .await;
    assert_eq!(refusal(&staged), ("NOT_FOUND", "productId"), "another environment's product is not there");
    assert_eq!(license_key::Entity::find().count(app.db()).await.expect("count"), 0);
}

async fn the_lifecycle_allows_only_its_transitions(app: TestApp) {
    let f = fixture(&app).await;
    let support = app.staff_token(StaffRole::Support).await;
    let m = f.manager.clone();
    let body = create(&app, &f, json!({})).await;
    let id = data(&body)["createLicense"]["license"]["id"].clone();
    let status = |body: &Value, mutation: &str| data(body)[mutation]["license"]["status"].as_str().map(String::from);

    let assign = "mutation($id: ID!, $c: ID!) { assignLicense(input: {id: $id, customerId: $c}) { license { status customerId } } }";
    let assigned = app.graphql(Some(&m), assign, json!({ "id": id, "c": f.customer })).await;
    assert_eq!(data(&assigned)["assignLicense"]["license"], json!({ "status": "ASSIGNED", "customerId": f.customer }));
    let returned = act(&app, &m, "returnLicenseToPool", &id).await;
    assert_eq!(status(&returned, "returnLicenseToPool").as_deref(), Some("AVAILABLE"));
    let again = app.graphql(Some(&m), assign, json!({ "id": id, "c": f.customer })).await;
    data(&again);

    // Refused from ASSIGNED: the error names the state and the action, and nothing changes.
    let refused_body = act(&app, &m, "inactivateLicense", &id).await;
    assert_eq!(error_code(&refused_body), Some("INVALID_TRANSITION"));
    assert_eq!(refused_body["errors"][0]["extensions"]["from"], "ASSIGNED");
    assert_eq!(refused_body["errors"][0]["extensions"]["action"], "inactivate");
    assert!(refused_body["errors"][0]["message"].as_str().unwrap_or_default().contains("ASSIGNED"));
    let unchanged = app.graphql(Some(&m), LICENSE, json!({ "id": id })).await;
    assert_eq!(data(&unchanged)["licenseKey"]["status"], "ASSIGNED");

    // As if activated on a device.
    set_status(&app, id.as_str().expect("id"), LicenseStatus::Active, true).await;
    let licence_id = id.as_str().expect("id");
    let activation_id = seed::device(app.db(), licence_id, "laptop", ("Laptop", "linux"), entity::now(), false).await;
    assert_eq!(error_code(&act(&app, &m, "returnLicenseToPool", &id).await), Some("INVALID_TRANSITION"));
    for (token, mutation, expected) in [
        (&support, "inactivateLicense", "INACTIVE"),
        (&support, "reactivateLicense", "ACTIVE"),
        (&m, "suspendLicense", "SUSPENDED"),
        (&m, "unsuspendLicense", "ACTIVE"),
        (&m, "revokeLicense", "REVOKED"),
    ] {
        let body = act(&app, token, mutation, &id).await;
        assert_eq!(status(&body, mutation).as_deref(), Some(expected), "{mutation}: {body:#}");
    }
    let ended = activation::Entity::find_by_id(activation_id).one(app.db()).await.expect("read").expect("row");
    assert!(ended.deactivated_at.is_some(), "revoking ends every activation");
    let revoked = license_key::Entity::find_by_id(licence_id.to_string()).one(app.db()).await.expect("read");
    assert_eq!(revoked.expect("row").devices_in_use, 0, "and counts none in use");
    for mutation in ["revokeLicense", "reactivateLicense", "unsuspendLicense"] {
        assert_eq!(error_code(&act(&app, &m, mutation, &id).await), Some("INVALID_TRANSITION"), "{mutation}");
    }
    let edit = app
        .graphql(
            Some(&m),
            "mutation($id: ID!) { updateLicense(input: {id: $id, activationLimit: 9}) { license { id } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&edit), Some("INVALID_TRANSITION"), "a revoked licence cannot be edited");
    let support_suspend = act(&app, &support, "suspendLicense", &id).await;
    assert_eq!(error_code(&support_suspend), Some("FORBIDDEN"));

    // Past its expiry a licence is EXPIRED, whether or not the sweeper wrote it down.
    let body = create(&app, &f, json!({ "customerId": f.customer })).await;
    let late = data(&body)["createLicense"]["license"]["id"].clone();
    let mut row: license_key::ActiveModel = license_key::Entity::find_by_id(late.as_str().expect("id").to_string())
        .one(app.db())
        .await
        .expect("read")
        .expect("row")
        .into();
    row.status = Set(LicenseStatus::Active);
    row.expires_at = Set(Some(entity::now() - chrono::Duration::minutes(1)));
    row.update(app.db()).await.expect("expire");
    let body = act(&app, &m, "suspendLicense", &late).await;
    assert_eq!(body["errors"][0]["extensions"]["from"], "EXPIRED", "{body:#}");
    let revoked = act(&app, &m, "revokeLicense", &late).await;
    assert_eq!(status(&revoked, "revokeLicense").as_deref(), Some("REVOKED"));

    let actions: Vec<String> = audit_event::Entity::find()
        .filter(audit_event::Column::TargetId.eq(id.as_str().expect("id")))
        .all(app.db())
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "license.created",
            "license.assigned",
            "license.returned_to_pool",
            "license.assigned",
            "license.inactivated",
            "license.reactivated",
            "license.suspended",
            "license.unsuspended",
            "license.revoked"
        ]
    );
}

async fn licences_are_edited_within_the_rules_and_deleted_with_care(app: TestApp) {
    let f = fixture(&app).await;
    let body = create(&app, &f, json!({})).await;
    let id = data(&body)["createLicense"]["license"]["id"].clone();
    let update = "mutation($input: UpdateLicenseInput!) { updateLicense(input: $input) { license { activationLimit expiresAt featureFlags metadata customerId } } }";
    let later = (chrono::Utc::now() + chrono::Duration::days(90)).to_rfc3339();
    let body = app
        .graphql(
            Some(&f.manager),
            update,
            json!({ "input": { "id": id, "activationLimit": 7, "expiresAt": later, "featureFlags": { "beta": true }, "metadata": { "note": "vip" } } }),
        )
        .await;
    let license = &data(&body)["updateLicense"]["license"];
    assert_eq!((license["activationLimit"].as_i64(), &license["featureFlags"]), (Some(7), &json!({ "beta": true })));
    let lifetime = app.graphql(Some(&f.manager), update, json!({ "input": { "id": id, "expiresAt": null } })).await;
    assert!(data(&lifetime)["updateLicense"]["license"]["expiresAt"].is_null());
    for (input, field) in [
        (json!({ "id": id, "expiresAt": "2001-01-01T00:00:00Z" }), "expiresAt"),
        (json!({ "id": id, "activationLimit": -2 }), "activationLimit"),
        (json!({ "id": id, "customerId": f.customer }), "customerId"),
    ] {
        let body = app.graphql(Some(&f.manager), update, json!({ "input": input })).await;
        assert_eq!(refusal(&body), ("INVALID_INPUT", field), "{body:#}");
    }
    let kept = app.graphql(Some(&f.manager), LICENSE, json!({ "id": id })).await;
    assert_eq!(data(&kept)["licenseKey"]["activationLimit"], 7);

    let delete =
        "mutation($id: ID!, $f: Boolean) { deleteLicense(input: {id: $id, force: $f}) { keysChanged ordersAffected } }";
    let gone = app.graphql(Some(&f.manager), delete, json!({ "id": id, "f": false })).await;
    assert_eq!(data(&gone)["deleteLicense"]["keysChanged"], 1);
    let used = seed::key(app.db(), Environment::Production, "USED-KEY-1", LicenseStatus::Available, &[]).await;
    set_status(&app, &used, LicenseStatus::Active, true).await;
    let refused_body = app.graphql(Some(&f.manager), delete, json!({ "id": used, "f": false })).await;
    assert_eq!(refusal(&refused_body), ("INVALID_INPUT", "force"));
    let forced = app.graphql(Some(&f.manager), delete, json!({ "id": used, "f": true })).await;
    assert_eq!(data(&forced)["deleteLicense"]["keysChanged"], 1);
    let prefixes: Vec<Option<String>> = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("license_key.deleted"))
        .all(app.db())
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.key_prefix)
        .collect();
    assert_eq!(prefixes.len(), 2);
    assert!(prefixes.contains(&Some("USED-KEY".to_string())));
    assert_eq!(license_key::Entity::find().count(app.db()).await.expect("count"), 0);
}

async fn customers_are_unique_per_environment(app: TestApp) {
    let f = fixture(&app).await;
    let create = "mutation($e: String!, $n: String!) { createCustomer(input: {email: $e, name: $n}) { customer { id email name environment } } }";
    let clash = app.graphql(Some(&f.manager), create, json!({ "e": "ANN@example.com", "n": "Ann again" })).await;
    assert_eq!(refusal(&clash), ("CONFLICT", "email"));
    let bad = app.graphql(Some(&f.manager), create, json!({ "e": "not-an-email", "n": "X" })).await;
    assert_eq!(refusal(&bad), ("INVALID_INPUT", "email"));
    let (_, staged) =
        app.graphql_in(Some(&f.manager), Some("staging"), create, json!({ "e": "ann@example.com", "n": "Ann" })).await;
    assert_eq!(data(&staged)["createCustomer"]["customer"]["environment"], "STAGING");
    data(&app.graphql(Some(&f.manager), create, json!({ "e": "bob@example.com", "n": "Bob Builder" })).await);

    let update =
        "mutation($id: ID!, $n: String) { updateCustomer(input: {id: $id, name: $n}) { customer { name email } } }";
    let renamed = app.graphql(Some(&f.manager), update, json!({ "id": f.customer, "n": "Ann Smith" })).await;
    assert_eq!(
        data(&renamed)["updateCustomer"]["customer"],
        json!({ "name": "Ann Smith", "email": "ann@example.com" })
    );

    let list = app
        .graphql(
            Some(&f.manager),
            "{ customers(search: \"BUILD\", orderBy: {field: EMAIL}) { totalCount edges { node { email } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&list)["customers"],
        json!({ "totalCount": 1, "edges": [{ "node": { "email": "bob@example.com" } }] })
    );
    let all = app.graphql(Some(&f.manager), "{ customers { totalCount } }", json!({})).await;
    assert_eq!(data(&all)["customers"]["totalCount"], 2, "the staging customer is not listed in production");
}

on_both_databases!(random_action_sequences_follow_the_state_machine);

/// Random walks of staff actions through the API, each checked against the
/// state machine: allowed actions land where the table says, refused ones
/// leave the stored licence exactly as it was.
async fn random_action_sequences_follow_the_state_machine(app: TestApp) {
    use entity::LicenseAction as A;
    let f = fixture(&app).await;
    let actions = [
        (A::Assign, "assignLicense"),
        (A::ReturnToPool, "returnLicenseToPool"),
        (A::Inactivate, "inactivateLicense"),
        (A::Reactivate, "reactivateLicense"),
        (A::Suspend, "suspendLicense"),
        (A::Unsuspend, "unsuspendLicense"),
        (A::Revoke, "revokeLicense"),
    ];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    for start in [LicenseStatus::Available, LicenseStatus::Active, LicenseStatus::Suspended, LicenseStatus::Inactive] {
        let body = create(&app, &f, json!({ "customerId": f.customer })).await;
        let id = data(&body)["createLicense"]["license"]["id"].as_str().expect("id").to_string();
        match start {
            LicenseStatus::Available => data(&act(&app, &f.manager, "returnLicenseToPool", &json!(id)).await),
            other => {
                set_status(&app, &id, other, true).await;
                &Value::Null
            }
        };
        for _ in 0..25 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let (action, mutation) = actions[(state % actions.len() as u64) as usize];
            let before = license_key::Entity::find_by_id(id.clone()).one(app.db()).await.expect("read").expect("row");
            let expected = entity::lifecycle::transition(before.status, action);
            let body = if action == A::Assign {
                app.graphql(
                    Some(&f.manager),
                    "mutation($id: ID!, $c: ID!) { assignLicense(input: {id: $id, customerId: $c}) { license { status } } }",
                    json!({ "id": id, "c": f.customer }),
                )
                .await
            } else {
                act(&app, &f.manager, mutation, &json!(id)).await
            };
            let after = license_key::Entity::find_by_id(id.clone()).one(app.db()).await.expect("read").expect("row");
            match expected {
                Ok(to) => {
                    assert_eq!(
                        data(&body)[mutation]["license"]["status"],
                        to.as_str(),
                        "{mutation} from {:?}",
                        before.status
                    );
                    assert_eq!(after.status, to);
                }
                Err(_) => {
                    assert_eq!(
                        error_code(&body),
                        Some("INVALID_TRANSITION"),
                        "{mutation} from {:?}: {body:#}",
                        before.status
                    );
                    assert_eq!(after, before, "a refused {mutation} changed the licence");
                }
            }
        }
    }
}

on_both_databases!(the_sweeper_expires_licences_past_their_date);

async fn the_sweeper_expires_licences_past_their_date(app: TestApp) {
    let f = fixture(&app).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let body = create(&app, &f, json!({ "customerId": f.customer })).await;
        ids.push(data(&body)["createLicense"]["license"]["id"].as_str().expect("id").to_string());
    }
    let waiting = seed::key(app.db(), Environment::Production, "POOL-PAST-1", LicenseStatus::Available, &[]).await;
    let past = entity::now() - chrono::Duration::seconds(5);
    set_status(&app, &ids[1], LicenseStatus::Active, true).await;
    for id in [&ids[0], &ids[1], &waiting] {
        let mut row: license_key::ActiveModel =
            license_key::Entity::find_by_id(id.clone()).one(app.db()).await.expect("read").expect("row").into();
        row.expires_at = Set(Some(past));
        row.update(app.db()).await.expect("backdate");
    }

    // The server's own sweeper runs every second in tests.
    let app = &app;
    let status = |id: String| async move {
        license_key::Entity::find_by_id(id).one(app.db()).await.expect("read").expect("row").status
    };
    keysmith_tests::until("the sweeper expires the licence past its expiry", || async {
        (status(ids[1].clone()).await == LicenseStatus::Expired).then_some(())
    })
    .await;
    assert_eq!(status(ids[0].clone()).await, LicenseStatus::Expired);
    assert_eq!(status(ids[2].clone()).await, LicenseStatus::Assigned, "not due yet");
    assert_eq!(status(waiting.clone()).await, LicenseStatus::Available, "pool keys do not expire");
    assert_eq!(keysmith::services::licenses::expire_due(app.db()).await.ok(), Some(0), "nothing is expired twice");
    let events = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("license.expired"))
        .all(app.db())
        .await
        .expect("audit");
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.actor_kind == "system" && e.key_prefix.as_deref().is_some_and(|p| p.len() == 8)));
}

on_both_databases!(licences_are_found_by_customer_product_and_expiry_in_their_environment_only);

async fn licences_are_found_by_customer_product_and_expiry_in_their_environment_only(app: TestApp) {
    let f = fixture(&app).await;
    let soon = (chrono::Utc::now() + chrono::Duration::days(10)).to_rfc3339();
    let a = create(&app, &f, json!({ "customerId": f.customer, "expiresAt": soon })).await;
    let a = data(&a)["createLicense"]["license"]["id"].clone();
    data(&create(&app, &f, json!({})).await);
    let c = create(&app, &f, json!({ "customerId": f.customer, "expiresAt": null })).await;
    let c = data(&c)["createLicense"]["license"]["id"].clone();

    let body = app
        .graphql(
            Some(&f.manager),
            "query($id: ID!) { customer(id: $id) { licenses(orderBy: {field: CREATED_AT}) { totalCount edges { node { id } } } } }",
            json!({ "id": f.customer }),
        )
        .await;
    let owned = &data(&body)["customer"]["licenses"];
    assert_eq!(owned["totalCount"], 2);
    assert_eq!(owned["edges"], json!([{ "node": { "id": a } }, { "node": { "id": c } }]));

    let count = |filter: Value| {
        let app = &app;
        let token = f.manager.clone();
        async move {
            let body = app
                .graphql(
                    Some(&token),
                    "query($f: LicenseKeyFilter) { licenseKeys(filter: $f) { totalCount } }",
                    json!({ "f": filter }),
                )
                .await;
            data(&body)["licenseKeys"]["totalCount"].as_i64().expect("count")
        }
    };
    assert_eq!(count(json!({ "customerId": f.customer })).await, 2);
    assert_eq!(count(json!({ "productId": f.product })).await, 3);
    let in_twenty_days = (chrono::Utc::now() + chrono::Duration::days(20)).to_rfc3339();
    assert_eq!(count(json!({ "expiringBefore": in_twenty_days })).await, 1);
    assert_eq!(count(json!({ "productId": f.product, "status": "ASSIGNED" })).await, 2);

    // Nothing of production is visible or changeable from staging.
    for (query, vars) in [
        (LICENSE, json!({ "id": a })),
        ("mutation($id: ID!) { suspendLicense(input: {id: $id}) { license { id } } }", json!({ "id": a })),
        ("mutation($id: ID!) { revokeLicense(input: {id: $id}) { license { id } } }", json!({ "id": a })),
        (
            "mutation($id: ID!) { updateLicense(input: {id: $id, activationLimit: 5}) { license { id } } }",
            json!({ "id": a }),
        ),
        ("mutation($id: ID!) { deleteLicense(input: {id: $id}) { keysChanged } }", json!({ "id": a })),
        ("query($id: ID!) { customer(id: $id) { id } }", json!({ "id": f.customer })),
        (
            "mutation($id: ID!) { updateCustomer(input: {id: $id, name: \"X\"}) { customer { id } } }",
            json!({ "id": f.customer }),
        ),
    ] {
        let (_, body) = app.graphql_in(Some(&f.manager), Some("staging"), query, vars).await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{query}: {body:#}");
    }
    let (_, staged) =
        app.graphql_in(Some(&f.manager), Some("staging"), "{ licenseKeys { totalCount } }", json!({})).await;
    assert_eq!(data(&staged)["licenseKeys"]["totalCount"], 0);
    let untouched = app.graphql(Some(&f.manager), LICENSE, json!({ "id": a })).await;
    assert_eq!(data(&untouched)["licenseKey"]["status"], "ASSIGNED");
}

on_both_databases!(a_page_of_licences_costs_the_same_statements_whatever_its_size);

/// Nested fields come through DataLoaders: 100 licences with their product,
/// customer, tags, activations and order cost what 10 do.
async fn a_page_of_licences_costs_the_same_statements_whatever_its_size(app: TestApp) {
    let f = fixture(&app).await;
    // Licence id → the order that delivered it (every fifth licence).
    let mut ordered = std::collections::HashMap::new();
    for i in 0..120 {
        let extra = if i % 2 == 0 { json!({ "customerId": f.customer }) } else { json!({}) };
        let body = create(&app, &f, extra).await;
        let id = data(&body)["createLicense"]["license"]["id"].as_str().expect("id").to_string();
        if i % 3 == 0 {
            let device = format!("device-{i}");
            seed::device(app.db(), &id, &device, ("Device", "linux"), entity::now(), false).await;
        }
        if i % 5 == 0 {
            ordered.insert(id.clone(), seed::deliver(app.db(), &id, false).await);
        }
    }
    let query = "query($n: Int) { licenseKeys(first: $n) { edges { node { id key product { name } customer { email } \
                 tags { name } activations { fingerprint } activationsUsed orderId order { externalId } } } } }";
    let cost = |n: i64| {
        let app = &app;
        let token = f.manager.clone();
        async move {
            // The fewest of sixteen tries: background work (the sweeper, the job runner, the webhook and
            // email workers, each polling every second in tests) may add a statement now and then.
            let mut fewest = u64::MAX;
            for _ in 0..16 {
                let before = app.state.statements.load(std::sync::atomic::Ordering::SeqCst);
                let body = app.graphql(Some(&token), query, json!({ "n": n })).await;
                let after = app.state.statements.load(std::sync::atomic::Ordering::SeqCst);
                assert_eq!(data(&body)["licenseKeys"]["edges"].as_array().map(Vec::len), Some(n as usize));
                fewest = fewest.min(after - before);
            }
            fewest
        }
    };
    let ten = cost(10).await;
    let hundred = cost(100).await;
    assert_eq!(ten, hundred, "a page of 100 costs what a page of 10 does");
    // The account, the page, then one each: tags, activations, products,
    // customers, and order lines with their orders.
    assert_eq!(hundred, 7, "a handful of statements");
    // Each licence shows its own order (the order's line and the order are read together).
    let first = "query { licenseKeys(first: 100) { edges { node { id orderId order { id status } } } } }";
    let page = app.graphql(Some(&f.manager), first, json!({})).await;
    let nodes = data(&page)["licenseKeys"]["edges"].as_array().cloned().unwrap_or_default();
    assert_eq!(nodes.len(), 100, "{page:#}");
    let with_orders =
        nodes.iter().filter(|e| ordered.contains_key(e["node"]["id"].as_str().unwrap_or_default())).count();
    assert!(with_orders >= 16, "the page holds delivered licences: {with_orders}");
    for node in nodes.iter().map(|e| &e["node"]) {
        let id = node["id"].as_str().expect("id");
        match ordered.get(id) {
            Some(order) => {
                assert_eq!(node["orderId"], json!(order), "{node:#}");
                assert_eq!((&node["order"]["id"], &node["order"]["status"]), (&json!(order), &json!("FULFILLED")));
            }
            None => assert_eq!((&node["orderId"], &node["order"]), (&Value::Null, &Value::Null), "{node:#}"),
        }
    }
}

on_both_databases!(one_licence_is_read_with_its_product_in_one_statement);

/// `licenseKey(id)` reads the licence and its product together: the account
/// check and one statement. A licence without a product shows none.
async fn one_licence_is_read_with_its_product_in_one_statement(app: TestApp) {
    let f = fixture(&app).await;
    let made = create(&app, &f, json!({})).await;
    let id = data(&made)["createLicense"]["license"]["id"].as_str().expect("id").to_string();
    let bare = seed::key(app.db(), Environment::Production, "BARE-KEY-1", LicenseStatus::Available, &[]).await;
    let query = "query($id: ID!) { licenseKey(id: $id) { id status product { id name } } }";
    let read = |id: String| {
        let (app, token) = (&app, f.manager.clone());
        async move {
            let mut fewest = u64::MAX;
            let mut body = Value::Null;
            for _ in 0..16 {
                let before = app.state.statements.load(std::sync::atomic::Ordering::SeqCst);
                body = app.graphql(Some(&token), query, json!({ "id": id })).await;
                let after = app.state.statements.load(std::sync::atomic::Ordering::SeqCst);
                fewest = fewest.min(after - before);
            }
            (body, fewest)
        }
    };
    let (body, statements) = read(id.clone()).await;
    let licence = &data(&body)["licenseKey"];
    assert_eq!((&licence["id"], &licence["product"]["id"]), (&json!(id), &f.product), "{body:#}");
    assert_eq!(licence["product"]["name"], "Pro");
    assert_eq!(statements, 2, "the account, then the licence with its product");
    let (body, statements) = read(bare).await;
    assert_eq!(data(&body)["licenseKey"]["product"], Value::Null, "{body:#}");
    assert_eq!(statements, 2);
    // Another environment's licence is not found, product or not.
    let (_, elsewhere) = app.graphql_in(Some(&f.manager), Some("staging"), query, json!({ "id": id })).await;
    assert_eq!(error_code(&elsewhere), Some("NOT_FOUND"), "{elsewhere:#}");
}

on_both_databases!(licences_are_searched_across_customers_and_products_and_sorted_by_every_field);

/// The licence list finds a licence by its customer or product as well as its
/// key, and pages through every sort order, both ways, without losing or
/// repeating a row.
async fn licences_are_searched_across_customers_and_products_and_sorted_by_every_field(app: TestApp) {
    let f = fixture(&app).await;
    let m = Some(f.manager.as_str());
    let basic =
        app.graphql(m, "mutation { createProduct(input: {name: \"Basic Plan\"}) { product { id } } }", json!({})).await;
    let basic = data(&basic)["createProduct"]["product"]["id"].clone();
    let mut customers = vec![f.customer.clone()];
    for (email, name) in [("zed@corp.io", "Zed Quinn"), ("bob@corp.io", "")] {
        let body = app
            .graphql(
                m,
                "mutation($e: String!, $n: String!) { createCustomer(input: {email: $e, name: $n}) { customer { id } } }",
                json!({ "e": email, "n": name }),
            )
            .await;
        customers.push(data(&body)["createCustomer"]["customer"]["id"].clone());
    }
    let (ann, zed, bob) = (&customers[0], &customers[1], &customers[2]);
    let days = |n: i64| (chrono::Utc::now() + chrono::Duration::days(n)).to_rfc3339();
    let mut made = Vec::new();
    for (product, extra, then) in [
        (&f.product, json!({ "customerId": ann }), None),
        (&f.product, json!({}), None),
        (
            &basic,
            json!({ "customerId": zed, "activationLimit": -1, "expiresAt": null }),
            Some(LicenseStatus::Suspended),
        ),
        (&basic, json!({ "customerId": bob, "activationLimit": 10, "expiresAt": days(5) }), None),
        (&f.product, json!({ "customerId": ann, "activationLimit": 1 }), Some(LicenseStatus::Revoked)),
        (&basic, json!({ "activationLimit": 1, "expiresAt": days(400) }), None),
        (&f.product, json!({ "customerId": zed, "expiresAt": days(5) }), Some(LicenseStatus::Inactive)),
    ] {
        let mut input = extra;
        input["productId"] = product.clone();
        input["generatorId"] = f.generator.clone();
        let body = app.graphql(m, CREATE, json!({ "input": input })).await;
        let id = data(&body)["createLicense"]["license"]["id"].clone();
        if let Some(status) = then {
            set_status(&app, id.as_str().expect("id"), status, true).await;
        }
        made.push(id);
    }
    // An uploaded key has neither product nor customer.
    made.push(json!(
        seed::key(app.db(), Environment::Production, "UPLOADED-KEY-1", LicenseStatus::Available, &[]).await
    ));

    let query = "query($f: LicenseKeyFilter, $o: LicenseKeyOrder, $after: String) { licenseKeys(first: 3, after: $after, \
                 filter: $f, orderBy: $o) { totalCount edges { cursor node { id key status activationLimit expiresAt \
                 createdAt product { name } customer { name email } } } pageInfo { hasNextPage } } }";
    let list = |filter: Value, order: Value| {
        let app = &app;
        async move {
            let (mut nodes, mut after, mut total) = (Vec::new(), Value::Null, None);
            loop {
                let body = app.graphql(m, query, json!({ "f": filter, "o": order, "after": after })).await;
                let page = &data(&body)["licenseKeys"];
                total = total.or(page["totalCount"].as_u64());
                let edges = page["edges"].as_array().expect("edges");
                nodes.extend(edges.iter().map(|e| e["node"].clone()));
                if page["pageInfo"]["hasNextPage"] != json!(true) {
                    break;
                }
                after = edges.last().expect("a full page")["cursor"].clone();
            }
            assert_eq!(total, Some(nodes.len() as u64), "totalCount matches the rows paged through ({order})");
            nodes
        }
    };
    let ids = |nodes: &[Value]| nodes.iter().map(|n| n["id"].as_str().expect("id").to_string()).collect::<Vec<_>>();
    let ids_of = |list: &[&Value]| {
        let mut v = list.iter().map(|v| v.as_str().expect("id").to_string()).collect::<Vec<_>>();
        v.sort();
        v
    };

    // Search: terms holding characters no key has, so only customers and products can match.
    let found = |term: &str| {
        let list = &list;
        let term = term.to_string();
        async move {
            let mut found = ids(&list(json!({ "search": term }), json!({ "field": "KEY" })).await);
            found.sort();
            found
        }
    };
    assert_eq!(found("@EXAMPLE.c").await, ids_of(&[&made[0], &made[4]]), "customer email, any case");
    assert_eq!(found("d qui").await, ids_of(&[&made[2], &made[6]]), "customer name");
    assert_eq!(found("c pl").await, ids_of(&[&made[2], &made[3], &made[5]]), "product name");
    assert_eq!(found("ro").await, Vec::<String>::new(), "short terms match the beginning only");
    assert_eq!(found("ba").await, ids_of(&[&made[2], &made[3], &made[5]]), "a product name's beginning");
    assert_eq!(found("bob@").await, ids_of(&[&made[3]]));
    let key = app.graphql(m, "query($id: ID!) { licenseKey(id: $id) { key } }", json!({ "id": made[1] })).await;
    let key = data(&key)["licenseKey"]["key"].as_str().expect("key").to_string();
    assert_eq!(found(&key[6..14].to_lowercase()).await, ids_of(&[&made[1]]), "any part of the key");
    let narrowed = list(json!({ "search": "corp.io", "status": "SUSPENDED" }), json!({ "field": "KEY" })).await;
    assert_eq!(ids(&narrowed), ids_of(&[&made[2]]), "search narrows with the other filters");

    // Every order, both directions, paged three at a time.
    let lifecycle = ["AVAILABLE", "ASSIGNED", "ACTIVE", "INACTIVE", "SUSPENDED", "EXPIRED", "REVOKED"];
    let everything = list(json!({}), json!({ "field": "KEY" })).await;
    assert_eq!(everything.len(), 8);
    let sort_key = |field: &str, n: &Value| -> String {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let time = |v: &Value| {
            let t = chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time")).expect("RFC 3339");
            t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        };
        match field {
            "KEY" => text(&n["key"]),
            "CREATED_AT" => time(&n["createdAt"]),
            "PRODUCT" => text(&n["product"]["name"]),
            "CUSTOMER" => {
                let name = text(&n["customer"]["name"]);
                if name.is_empty() { text(&n["customer"]["email"]) } else { name }
            }
            "STATUS" => lifecycle.iter().position(|s| n["status"] == *s).expect("a status").to_string(),
            "ACTIVATION_LIMIT" => match n["activationLimit"].as_i64().expect("limit") {
                -1 => format!("{:010}", i32::MAX),
                l => format!("{l:010}"),
            },
            "EXPIRES_AT" => {
                if n["expiresAt"].is_null() {
                    "9999".to_string()
                } else {
                    time(&n["expiresAt"])
                }
            }
            other => panic!("unknown field {other}"),
        }
    };
    for field in ["KEY", "CREATED_AT", "PRODUCT", "CUSTOMER", "STATUS", "ACTIVATION_LIMIT", "EXPIRES_AT"] {
        let mut expected = everything.clone();
        expected.sort_by_key(|n| (sort_key(field, n), n["id"].as_str().expect("id").to_string()));
        let ascending = list(json!({}), json!({ "field": field, "direction": "ASC" })).await;
        assert_eq!(ids(&ascending), ids(&expected), "{field} ascending");
        expected.reverse();
        let descending = list(json!({}), json!({ "field": field, "direction": "DESC" })).await;
        assert_eq!(ids(&descending), ids(&expected), "{field} descending");
    }
    // The first rows under each order, spelled out.
    let by_status = list(json!({}), json!({ "field": "STATUS" })).await;
    assert_eq!(by_status.first().expect("rows")["status"], "AVAILABLE");
    assert_eq!(by_status.last().expect("rows")["status"], "REVOKED");
    let by_limit = list(json!({}), json!({ "field": "ACTIVATION_LIMIT", "direction": "DESC" })).await;
    assert_eq!(by_limit[0]["id"], made[2], "unlimited sorts as the largest");
    let by_customer = list(json!({}), json!({ "field": "CUSTOMER" })).await;
    let names: Vec<String> = by_customer.iter().map(|n| sort_key("CUSTOMER", n)).collect();
    assert_eq!(names, ["", "", "", "Ann", "Ann", "Zed Quinn", "Zed Quinn", "bob@corp.io"]);
    let by_expiry = list(json!({}), json!({ "field": "EXPIRES_AT", "direction": "DESC" })).await;
    assert_eq!(by_expiry[0]["expiresAt"], Value::Null, "lifetime keys expire last");
}
