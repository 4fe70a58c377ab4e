//! The admin's pages over HTTP: settings (the API's validation at its
//! field), webhooks (the secret shown once), staff and My account; and the
//! global search across licences, customers, orders and products.

use crate::admin_keys::signed_in;
use entity::user::StaffRole;
use keysmith_tests::app::TEST_PASSWORD;
use keysmith_tests::{TestApp, data, on_both_databases};
use serde_json::json;

on_both_databases!(
    settings_webhooks_and_staff_are_administered,
    one_search_finds_licences_customers_orders_and_products,
);

async fn settings_webhooks_and_staff_are_administered(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let mut boss = signed_in(&app, StaffRole::Admin).await;

    // Settings: the API's validation at its field; then saved.
    let form = boss.get("/admin/settings").await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("name=\"exhaustionThreshold\" inputmode=\"numeric\" value=\"80\""), "{}", form.body);
    let csrf = form.csrf();
    let values = |threshold: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("gracePeriodMinutes", "0".into()),
            ("offlineFileValidityHours", "24".into()),
            ("exhaustionThreshold", threshold.into()),
            ("abuseMaxFingerprints", "20".into()),
            ("abuseWindowMinutes", "60".into()),
            ("rateLimitPerKey", "60".into()),
            ("rateLimitPerAddress", "600".into()),
            ("adminIdleTimeoutMinutes", "30".into()),
            ("exhaustionEmail", "yes".into()),
            ("notificationEmail", "ops@seller.example".into()),
            ("webhookAllowPrivateAddresses", "yes".into()),
        ]
    };
    let wrong = values("150");
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = boss.post("/admin/settings", &wrong).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("id=\"exhaustionThreshold-error\""), "{}", refused.body);
    let right = values("60");
    let right: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = boss.post("/admin/settings", &right).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let now = app
        .graphql(
            Some(&admin),
            "{ settings { exhaustionThreshold notificationEmail webhookAllowPrivateAddresses } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&now)["settings"],
        json!({ "exhaustionThreshold": 60, "notificationEmail": "ops@seller.example", "webhookAllowPrivateAddresses": true })
    );

    // Webhooks: the secret is shown once.
    let hooks = boss.get("/admin/webhooks").await;
    assert!(hooks.body.contains("value=\"order.created\""), "{}", hooks.body);
    let created = boss
        .post(
            "/admin/webhooks",
            &[
                ("csrf", &hooks.csrf()),
                ("url", "http://127.0.0.1:9/hook"),
                ("event", "order.created"),
                ("event", "pool.exhausting"),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let secret = created
        .body
        .split("id=\"new-secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the secret")
        .to_string();
    assert!(secret.len() >= 32, "{secret}");
    let again = boss.get("/admin/webhooks").await;
    assert!(
        !again.body.contains(&secret) && again.body.contains("http://127.0.0.1:9/hook"),
        "shown once: {}",
        again.body
    );
    let empty = boss.post("/admin/webhooks", &[("csrf", &hooks.csrf()), ("url", "http://127.0.0.1:9/other")]).await;
    assert_eq!(empty.status, 400);
    assert!(empty.body.contains("at least one event"), "{}", empty.body);

    // Staff: added, its role changed, disabled.
    let staff_page = boss.get("/admin/users").await;
    let added = boss
        .post(
            "/admin/users",
            &[
                ("csrf", &staff_page.csrf()),
                ("email", "sam@seller.example"),
                ("role", "MANAGER"),
                ("password", "a temporary password"),
            ],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let users = app.graphql(Some(&admin), "{ users { edges { node { id email role disabled } } } }", json!({})).await;
    let sam = data(&users)["users"]["edges"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["node"]["email"] == "sam@seller.example")
        .expect("sam")["node"]
        .clone();
    assert_eq!(sam["role"], "MANAGER");
    let sam_id = sam["id"].as_str().expect("id").to_string();
    boss.post(
        &format!("/admin/users/{sam_id}"),
        &[("csrf", &staff_page.csrf()), ("change", "role"), ("role", "SUPPORT")],
    )
    .await;
    let done =
        boss.post(&format!("/admin/users/{sam_id}"), &[("csrf", &staff_page.csrf()), ("change", "disable")]).await;
    assert_eq!(done.status, 303);
    assert!(boss.get("/admin/users").await.body.contains("Account disabled"));
    let users = app.graphql(Some(&admin), "{ users { edges { node { email role disabled } } } }", json!({})).await;
    assert!(
        data(&users)["users"]["edges"]
            .as_array()
            .expect("users")
            .iter()
            .any(|u| u["node"] == json!({ "email": "sam@seller.example", "role": "SUPPORT", "disabled": true })),
        "{users}"
    );

    // Managers and support see none of it.
    let mut manager = signed_in(&app, StaffRole::Manager).await;
    let home = manager.get("/admin/").await;
    assert!(
        !home.body.contains("/admin/settings")
            && !home.body.contains("/admin/users")
            && !home.body.contains("/admin/webhooks")
    );
    for path in ["/admin/settings", "/admin/users", "/admin/webhooks"] {
        assert_eq!(manager.get(path).await.status, 403, "{path}");
    }

    // My account: a wrong current password is said at its field; the right one signs out everywhere.
    let account = manager.get("/admin/account").await;
    assert_eq!(account.status, 200);
    let wrong = manager
        .post(
            "/admin/account/password",
            &[("csrf", &account.csrf()), ("currentPassword", "not it at all"), ("newPassword", "a brand new password")],
        )
        .await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert!(wrong.body.contains("id=\"currentPassword-error\""), "{}", wrong.body);
    let changed = manager
        .post(
            "/admin/account/password",
            &[("csrf", &account.csrf()), ("currentPassword", TEST_PASSWORD), ("newPassword", "a brand new password")],
        )
        .await;
    assert_eq!((changed.status, changed.location()), (303, "/admin/login?notice=password-changed"), "{}", changed.body);
    assert_eq!(manager.get("/admin/").await.status, 303, "signed out");
}

async fn one_search_finds_licences_customers_orders_and_products(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let product = app
        .graphql(
            Some(&admin),
            "mutation { createProduct(input: {name: \"Grace Studio\"}) { product { id } } }",
            json!({}),
        )
        .await;
    let product = data(&product)["createProduct"]["product"]["id"].clone();
    let order = app
        .graphql(
            Some(&admin),
            "mutation($p: ID!) { createOrder(input: {externalId: \"GRACE-42\", customer: {email: \"grace@navy.example\", name: \"Grace Hopper\"}, \
             lines: [{productId: $p, quantity: 1}], emailCustomer: false}) { order { id lines { keys { key } } } } }",
            json!({ "p": product }),
        )
        .await;
    let key = data(&order)["createOrder"]["order"]["lines"][0]["keys"][0]["key"].as_str().expect("key").to_string();
    let mut support = signed_in(&app, StaffRole::Support).await;
    let home = support.get("/admin/").await;
    assert!(home.body.contains("id=\"global-search\""), "the header's search: {}", home.body);
    let found = support.get("/admin/search?q=navy.exa").await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(found.body.contains(">grace@navy.example</a>"), "the customer by part of the email: {}", found.body);
    assert!(found.body.contains("<code>GRACE-42</code>"), "the order by its customer's email");
    assert!(found.body.contains(&format!("<code>{key}</code>")), "the licence by its customer's email");
    let part: String = key.chars().skip(5).take(6).collect();
    let by_key = support.get(&format!("/admin/search?q={part}")).await;
    assert!(by_key.body.contains(&format!("<code>{key}</code>")), "any part of the key: {}", by_key.body);
    let product_hit = support.get("/admin/search?q=grace%20stu").await;
    assert!(product_hit.body.contains(">Grace Studio</a>"), "{}", product_hit.body);
    let nothing = support.get("/admin/search?q=zzzzzz").await;
    assert_eq!(nothing.body.matches("No match.").count(), 4);
}
