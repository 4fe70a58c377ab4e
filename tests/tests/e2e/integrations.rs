//! Integrations, with Stripe as the provider: admins connect it and never
//! see its secret again; deliveries signed as Stripe signs them place
//! orders once however often they come; forged, stale, oversized and
//! unknown deliveries are refused and leave nothing but a count; an
//! unmapped item waits for an admin and is replayed; a disabled
//! integration records without acting; each integration has its own rate.

use crate::fulfilment::Shop;
use crate::providers::{change, connect, deliver, events, now, read, replay, stripe};
use entity::user::StaffRole;
use entity::{audit_event, integration_event, order};
use futures_util::future::join_all;
use keysmith_tests::{TestApp, data, error_code, error_field, on_both_databases};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

on_both_databases!(
    admins_connect_a_provider_and_never_see_its_secret,
    a_paid_stripe_checkout_delivers_the_mapped_keys_once,
    forged_stale_oversized_and_unknown_deliveries_are_refused,
    an_unmapped_item_waits_for_an_admin_and_is_replayed,
    a_disabled_integration_records_and_acts_on_replay,
    each_integration_has_its_own_rate,
    a_delivery_that_cannot_commit_is_answered_500_and_taken_when_sent_again,
);

pub const SECRET: &str = "whsec_test_5f1c0e7a9b2d4c6e8f0a1b3c5d7e9f21";

/// A Stripe event around `object`.
pub fn stripe_event(id: &str, kind: &str, object: Value) -> String {
    json!({ "id": id, "object": "event", "type": kind, "livemode": true, "api_version": "2025-03-31.basil",
            "created": now(), "data": { "object": object } })
    .to_string()
}

/// A paid Checkout Session naming its items in metadata.
pub fn checkout(session: &str, email: &str, items: &str, payment_intent: &str) -> Value {
    json!({ "id": session, "object": "checkout.session", "mode": "payment", "payment_status": "paid",
            "payment_intent": payment_intent, "customer_details": { "email": email, "name": "Ada Buyer" },
            "metadata": { "keysmith_items": items } })
}

/// Sends a Stripe event signed now.
pub async fn send(app: &TestApp, integration: &str, body: &str) -> (u16, Value) {
    deliver(app, integration, &[stripe(SECRET, now(), body)], body).await
}

/// A shop with two pool products and an admin.
pub struct Store<'a> {
    pub shop: Shop<'a>,
    pub admin: String,
}

impl<'a> Store<'a> {
    /// The store, its app product (six keys) and its add-on (three keys).
    pub async fn new(app: &'a TestApp) -> (Store<'a>, String, String) {
        let shop = Shop::new(app).await;
        let admin = app.staff_token(StaffRole::Admin).await;
        let app_pool = shop.tag("app-keys").await;
        let addon_pool = shop.tag("addon-keys").await;
        let app_keys = ["APP-KEY-0001", "APP-KEY-0002", "APP-KEY-0003", "APP-KEY-0004", "APP-KEY-0005", "APP-KEY-0006"];
        shop.import(&app_keys, &[&app_pool]).await;
        shop.import(&["ADDON-KEY-0001", "ADDON-KEY-0002", "ADDON-KEY-0003"], &[&addon_pool]).await;
        let product = shop.product("Desktop App", json!({ "mode": "TAG", "tagId": app_pool })).await;
        let addon = shop.product("Add-on", json!({ "mode": "TAG", "tagId": addon_pool })).await;
        (Store { shop, admin }, product, addon)
    }
}

/// A Stripe integration selling `product` as `price_app`, with `extra` settings.
pub async fn stripe_selling(app: &TestApp, admin: &str, product: &str, extra: Value) -> String {
    connect(app, admin, "STRIPE", SECRET, json!([{ "providerRef": "price_app", "productId": product }]), extra).await
}

async fn orders_in(app: &TestApp) -> u64 {
    order::Entity::find().count(app.db()).await.expect("count")
}

async fn admins_connect_a_provider_and_never_see_its_secret(app: TestApp) {
    let (store, product, _) = Store::new(&app).await;
    let admin = store.admin.clone();
    let id = connect(
        &app,
        &admin,
        "STRIPE",
        SECRET,
        json!([{ "providerRef": "price_app", "productId": product }, { "providerRef": "price_shirt", "productId": null }]),
        json!({ "onRefund": "REVOKE" }),
    )
    .await;
    let shown = read(&app, &admin, &id).await;
    assert_eq!(
        (&shown["provider"], &shown["enabled"], &shown["onRefund"]),
        (&json!("STRIPE"), &json!(true), &json!("REVOKE"))
    );
    assert_eq!(shown["onCancel"], "EXPIRE_AT_PERIOD_END", "the default");
    assert!(shown["inboundUrl"].as_str().expect("a url").ends_with(&format!("/integrations/{id}/webhook")));
    assert_eq!(
        shown["productMappings"],
        json!([{ "providerRef": "price_app", "product": { "id": product } }, { "providerRef": "price_shirt", "product": null }])
    );
    // A new secret, the old one kept for an hour while the provider switches.
    let rolled = change(
        &app,
        &admin,
        json!({ "id": id, "secret": "whsec_rolled_0123456789", "keepPreviousSecretHours": 1, "name": "Main shop" }),
    )
    .await;
    assert_eq!(data(&rolled)["updateIntegration"]["integration"]["name"], "Main shop", "{rolled:#}");
    let event = stripe_event("evt_old_secret", "customer.created", json!({ "id": "cus_1" }));
    let (status, answer) = send(&app, &id, &event).await;
    assert_eq!((status, &answer["outcome"]), (200, &json!("IGNORED")), "the previous secret still holds: {answer}");
    let with_new = [stripe("whsec_rolled_0123456789", now(), &event)];
    assert_eq!(deliver(&app, &id, &with_new, &event).await.0, 200);

    // Nothing ever shows a secret: not the API, not the audit trail.
    let everything = app
        .graphql(
            Some(&admin),
            "{ integrations { nodes { id name inboundUrl productMappings { providerRef } } } }",
            json!({}),
        )
        .await;
    let audit = audit_event::Entity::find()
        .filter(audit_event::Column::TargetKind.eq("integration"))
        .all(app.db())
        .await
        .expect("audit");
    assert_eq!(audit.len(), 2, "created and updated");
    for text in [everything.to_string(), shown.to_string(), rolled.to_string(), format!("{audit:?}")] {
        assert!(!text.contains(SECRET) && !text.contains("whsec_rolled_0123456789"), "a secret shows: {text}");
    }
    assert!(format!("{audit:?}").contains("changed"), "the audit says the secret changed");

    // Bad settings name their field and change nothing.
    for (input, code, field) in [
        (json!({ "id": id, "secret": "short" }), "INVALID_INPUT", "secret"),
        (json!({ "id": id, "secret": " whsec_padded_value " }), "INVALID_INPUT", "secret"),
        (json!({ "id": id, "name": "" }), "INVALID_INPUT", "name"),
        (json!({ "id": id, "toleranceSeconds": 0 }), "INVALID_INPUT", "toleranceSeconds"),
        (
            json!({ "id": id, "keepPreviousSecretHours": 169, "secret": "whsec_another_value" }),
            "INVALID_INPUT",
            "keepPreviousSecretHours",
        ),
        (
            json!({ "id": id, "productMappings": [{ "providerRef": "p", "productId": "01NOSUCHPRODUCT0000000000" }] }),
            "NOT_FOUND",
            "productMappings[0].productId",
        ),
        (
            json!({ "id": id, "productMappings": [{ "providerRef": "p", "productId": null }, { "providerRef": "p", "productId": null }] }),
            "INVALID_INPUT",
            "productMappings[1].providerRef",
        ),
        (
            json!({ "id": id, "productMappings": [{ "providerRef": "x".repeat(201), "productId": null }] }),
            "INVALID_INPUT",
            "productMappings[0].providerRef",
        ),
    ] {
        let body = change(&app, &admin, input.clone()).await;
        assert_eq!((error_code(&body), error_field(&body)), (Some(code), Some(field)), "{input}: {body:#}");
    }
    assert_eq!(read(&app, &admin, &id).await["productMappings"].as_array().map(Vec::len), Some(2), "unchanged");

    // Managers run the shop but do not connect providers.
    let manager = app.staff_token(StaffRole::Manager).await;
    let body = app.graphql(Some(&manager), "{ integrations { nodes { id } } }", json!({})).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"));

    let deleted = app
        .graphql(
            Some(&admin),
            "mutation($id: ID!) { deleteIntegration(input: {id: $id}) { deletedId } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data(&deleted)["deleteIntegration"]["deletedId"], json!(id));
    assert_eq!(read(&app, &admin, &id).await, Value::Null);
    assert_eq!(deliver(&app, &id, &[stripe(SECRET, now(), &event)], &event).await.0, 404, "its address is gone");
}

async fn a_paid_stripe_checkout_delivers_the_mapped_keys_once(app: TestApp) {
    let (store, product, addon) = Store::new(&app).await;
    let admin = store.admin.clone();
    let mappings = json!([
        { "providerRef": "price_app", "productId": product },
        { "providerRef": "price_addon", "productId": addon },
        { "providerRef": "price_shirt", "productId": null },
    ]);
    let id = connect(&app, &admin, "STRIPE", SECRET, mappings, json!({})).await;

    let session = checkout("cs_test_a1", "ada@example.com", "price_app:2, price_addon, price_shirt:3", "pi_a1");
    let body = stripe_event("evt_paid_1", "checkout.session.completed", session.clone());
    let (status, answer) = send(&app, &id, &body).await;
    assert_eq!((status, &answer["outcome"]), (200, &json!("PROCESSED")), "{answer}");
    let recorded = events(&app, &admin, &id).await;
    let placed = &recorded[0]["order"];
    assert_eq!((&placed["externalId"], &placed["status"]), (&json!("cs_test_a1"), &json!("FULFILLED")));
    assert_eq!(placed["customer"]["email"], "ada@example.com");
    let order = store.shop.read(placed["id"].as_str().expect("an order id")).await;
    let keys: Vec<(&str, i64)> = order["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| (l["product"]["id"].as_str().unwrap_or_default(), l["keys"].as_array().map_or(0, |k| k.len() as i64)))
        .collect();
    assert_eq!(keys, vec![(product.as_str(), 2), (addon.as_str(), 1)], "two app keys, one add-on, no shirt");
    assert_eq!(order["lines"][0]["keys"][0]["key"], "APP-KEY-0001", "the pool's first key");
    assert_eq!(recorded[0]["licenses"].as_array().map(Vec::len), Some(3));

    // Stripe sends the same event again, ten times at once (each signed anew): one order.
    let sends = (0..10).map(|_| send(&app, &id, &body));
    for (status, answer) in join_all(sends).await {
        assert_eq!((status, &answer["outcome"]), (200, &json!("DUPLICATE")), "{answer}");
    }
    let recorded = events(&app, &admin, &id).await;
    assert_eq!((recorded.len(), &recorded[0]["duplicates"]), (1, &json!(10)));
    assert_eq!(orders_in(&app).await, 1);
    // Another event about the same session (a delayed payment's success) is the same order.
    let later = stripe_event("evt_paid_2", "checkout.session.async_payment_succeeded", session);
    let (status, answer) = send(&app, &id, &later).await;
    assert_eq!((status, &answer["outcome"]), (200, &json!("PROCESSED")));
    assert_eq!(events(&app, &admin, &id).await[0]["order"]["id"], placed["id"]);
    assert_eq!(orders_in(&app).await, 1, "the session's id is the order's external id");

    // Three different paid sessions at once: three orders, no key twice.
    let sends: Vec<String> = (0..3)
        .map(|i| {
            stripe_event(
                &format!("evt_many_{i}"),
                "checkout.session.completed",
                checkout(
                    &format!("cs_many_{i}"),
                    &format!("buyer{i}@example.com"),
                    "price_app",
                    &format!("pi_many_{i}"),
                ),
            )
        })
        .collect();
    for (status, answer) in join_all(sends.iter().map(|b| send(&app, &id, b))).await {
        assert_eq!((status, &answer["outcome"]), (200, &json!("PROCESSED")), "{answer}");
    }
    let delivered: Vec<String> = events(&app, &admin, &id)
        .await
        .iter()
        .flat_map(|e| e["licenses"].as_array().cloned().unwrap_or_default())
        .map(|l| l["key"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut unique = delivered.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 6, "3 + 3 distinct keys across the events: {delivered:?}");

    // Unpaid, test-mode and unknown events are recorded and do nothing.
    let unpaid = stripe_event(
        "evt_unpaid",
        "checkout.session.completed",
        json!({ "id": "cs_unpaid", "mode": "payment", "payment_status": "unpaid", "metadata": { "keysmith_items": "price_app" } }),
    );
    let mut test_mode: Value = serde_json::from_str(&stripe_event(
        "evt_test",
        "checkout.session.completed",
        checkout("cs_test_mode", "t@example.com", "price_app", "pi_t"),
    ))
    .expect("json");
    test_mode["livemode"] = json!(false);
    let other = stripe_event("evt_other", "payment_intent.created", json!({ "id": "pi_x" }));
    for (body, reason) in [(unpaid, "NOT_PAID"), (test_mode.to_string(), "TEST_MODE"), (other, "UNHANDLED_TYPE")] {
        let (status, answer) = send(&app, &id, &body).await;
        assert_eq!((status, &answer["outcome"]), (200, &json!("IGNORED")), "{answer}");
        assert_eq!(events(&app, &admin, &id).await[0]["reason"], reason);
    }
    assert_eq!(orders_in(&app).await, 4);
}

async fn forged_stale_oversized_and_unknown_deliveries_are_refused(app: TestApp) {
    let (store, product, _) = Store::new(&app).await;
    let admin = store.admin.clone();
    let id = stripe_selling(&app, &admin, &product, json!({})).await;
    let body = stripe_event(
        "evt_forge",
        "checkout.session.completed",
        checkout("cs_forge", "eve@example.com", "price_app", "pi_f"),
    );
    let t = now();
    let forged = [
        vec![stripe("whsec_guessed_secret_value", t, &body)],
        vec![],
        vec![("Stripe-Signature", "v1=deadbeef".to_string())],
        // Signed correctly, six minutes ago: a captured delivery sent again.
        vec![stripe(SECRET, t - 360, &body)],
        // A signature for another body.
        vec![stripe(SECRET, t, "{}")],
    ];
    for headers in &forged {
        let (status, answer) = deliver(&app, &id, headers, &body).await;
        assert_eq!((status, &answer["error"]), (401, &json!("signature")), "{headers:?}: {answer}");
    }
    // A signed body changed on the way.
    let (_, signature) = stripe(SECRET, t, &body);
    let tampered = body.replace("eve@example.com", "mallory@example.com");
    assert_eq!(deliver(&app, &id, &[("Stripe-Signature", signature)], &tampered).await.0, 401);
    let shown = read(&app, &admin, &id).await;
    assert_eq!(shown["refusedCount"], 6, "{shown:#}");
    assert_eq!(shown["lastRefusal"], "the signature does not match the secret");
    let refused = integration_event::Entity::find().count(app.db()).await.expect("count");
    assert_eq!((refused, orders_in(&app).await), (0, 0), "nothing recorded but the count");

    // Unknown integration, oversized body.
    assert_eq!(deliver(&app, "01NOSUCHINTEGRATION000000", &[stripe(SECRET, t, &body)], &body).await.0, 404);
    assert_eq!(deliver(&app, &"x".repeat(300), &[], &body).await.0, 404);
    let huge = format!("{{\"id\":\"evt_big\",\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    let (status, answer) = deliver(&app, &id, &[stripe(SECRET, now(), &huge)], &huge).await;
    assert_eq!(status, 413, "{answer}");
    // Signed, but not a Stripe event (bytes that are not even text included): recorded as unreadable.
    for junk in ["[1, 2, 3]", "{\"id\": \"evt_\u{0}\u{1}\"", "\u{0}\u{0}"] {
        let (status, answer) = send(&app, &id, junk).await;
        assert_eq!((status, &answer["outcome"]), (200, &json!("IGNORED")), "{junk:?}: {answer}");
        assert_eq!(events(&app, &admin, &id).await[0]["reason"], "UNREADABLE");
    }
    let invalid_utf8 = [0xffu8, 0xfe, b'{'];
    let t = now();
    let signature = hex::encode(crate::providers::hmac(SECRET, &[t.to_string().as_bytes(), b".", &invalid_utf8]));
    let answer = app
        .http
        .post(app.url(&format!("/integrations/{id}/webhook")))
        .header("Stripe-Signature", format!("t={t},v1={signature}"))
        .body(invalid_utf8.to_vec())
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status().as_u16(), 200);

    // The real delivery still goes through.
    let (status, answer) = send(&app, &id, &body).await;
    assert_eq!((status, &answer["outcome"]), (200, &json!("PROCESSED")), "{answer}");
    assert_eq!(orders_in(&app).await, 1);
}

async fn an_unmapped_item_waits_for_an_admin_and_is_replayed(app: TestApp) {
    let (store, product, addon) = Store::new(&app).await;
    let admin = store.admin.clone();
    let id = stripe_selling(&app, &admin, &product, json!({})).await;
    let body = stripe_event(
        "evt_new_price",
        "checkout.session.completed",
        checkout("cs_new_price", "ada@example.com", "price_app, price_new_addon", "pi_n"),
    );
    let (status, answer) = send(&app, &id, &body).await;
    assert_eq!((status, &answer["outcome"]), (200, &json!("NEEDS_ATTENTION")));
    let event = events(&app, &admin, &id).await[0].clone();
    assert_eq!(event["reason"], "UNMAPPED_ITEM");
    assert!(event["detail"].as_str().unwrap_or_default().contains("price_new_addon"), "{event:#}");
    assert_eq!(
        (orders_in(&app).await, &read(&app, &admin, &id).await["needsAttention"]),
        (0, &json!(1)),
        "all or nothing"
    );
    // The seller hears of it: a webhook and subscription event.
    let told = entity::event::Entity::find()
        .filter(entity::event::Column::Kind.eq("integration_event.needs_attention"))
        .all(app.db())
        .await
        .expect("events");
    assert_eq!(told.len(), 1);
    assert_eq!(
        (&told[0].subject_id, &told[0].payload["reason"]),
        (&event["id"].as_str().expect("id").to_string(), &json!("UNMAPPED_ITEM"))
    );
    // A session with no items at all also waits.
    let bare = stripe_event(
        "evt_bare",
        "checkout.session.completed",
        json!({ "id": "cs_bare", "mode": "payment", "payment_status": "paid", "customer_details": { "email": "b@example.com" } }),
    );
    assert_eq!(send(&app, &id, &bare).await.1["outcome"], "NEEDS_ATTENTION");
    assert_eq!(events(&app, &admin, &id).await[0]["reason"], "NO_ITEMS");

    // Mapped, and replayed: the order is placed.
    let mapped = json!([{ "providerRef": "price_app", "productId": product }, { "providerRef": "price_new_addon", "productId": addon }]);
    assert!(change(&app, &admin, json!({ "id": id, "productMappings": mapped })).await.get("errors").is_none());
    let replayed = replay(&app, &admin, event["id"].as_str().expect("an id")).await;
    let replayed = &data(&replayed)["replayIntegrationEvent"]["event"];
    assert_eq!((&replayed["outcome"], &replayed["attempts"]), (&json!("PROCESSED"), &json!(2)), "{replayed:#}");
    assert_eq!(replayed["order"]["externalId"], "cs_new_price");
    assert_eq!(orders_in(&app).await, 1);
    // A processed event is not replayed; a stranger's id is not found.
    let again = replay(&app, &admin, event["id"].as_str().expect("an id")).await;
    assert_eq!((error_code(&again), error_field(&again)), (Some("INVALID_INPUT"), Some("id")), "{again:#}");
    let missing = replay(&app, &admin, "01NOSUCHEVENT000000000000").await;
    assert_eq!(error_code(&missing), Some("NOT_FOUND"));
    assert_eq!(orders_in(&app).await, 1);
}

async fn a_disabled_integration_records_and_acts_on_replay(app: TestApp) {
    let (store, product, _) = Store::new(&app).await;
    let admin = store.admin.clone();
    let id = stripe_selling(&app, &admin, &product, json!({ "enabled": false })).await;
    let body = stripe_event(
        "evt_while_off",
        "checkout.session.completed",
        checkout("cs_off", "ada@example.com", "price_app", "pi_o"),
    );
    let (status, answer) = send(&app, &id, &body).await;
    assert_eq!((status, &answer["outcome"]), (200, &json!("DISABLED")), "recorded, so the provider does not retry");
    assert_eq!(orders_in(&app).await, 0);
    let event = events(&app, &admin, &id).await[0]["id"].as_str().expect("an id").to_string();
    let refused = replay(&app, &admin, &event).await;
    assert_eq!(error_code(&refused), Some("INVALID_INPUT"), "enable it first: {refused:#}");
    assert!(change(&app, &admin, json!({ "id": id, "enabled": true })).await.get("errors").is_none());
    let replayed = replay(&app, &admin, &event).await;
    assert_eq!(data(&replayed)["replayIntegrationEvent"]["event"]["outcome"], "PROCESSED");
    assert_eq!(orders_in(&app).await, 1);
}

async fn each_integration_has_its_own_rate(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let slow = connect(&app, &admin, "STRIPE", SECRET, json!([]), json!({ "rateLimitPerMinute": 2 })).await;
    let other = connect(&app, &admin, "STRIPE", SECRET, json!([]), json!({ "rateLimitPerMinute": 2 })).await;
    let body = |i: usize| stripe_event(&format!("evt_rate_{i}"), "customer.created", json!({ "id": "cus" }));
    // A flood of forged deliveries is refused without spending the provider's budget.
    for i in 0..5 {
        let forged = [stripe("whsec_not_the_secret_at_all", now(), &body(i))];
        assert_eq!(deliver(&app, &slow, &forged, &body(i)).await.0, 401);
    }
    assert_eq!(read(&app, &admin, &slow).await["refusedCount"], 2, "counted within a budget of their own");
    assert_eq!(send(&app, &slow, &body(1)).await.0, 200);
    assert_eq!(send(&app, &slow, &body(2)).await.0, 200);
    let (name, value) = stripe(SECRET, now(), &body(3));
    let answer = app
        .http
        .post(app.url(&format!("/integrations/{slow}/webhook")))
        .header(name, value)
        .body(body(3))
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status().as_u16(), 429);
    let wait: u64 = answer.headers()["retry-after"].to_str().expect("text").parse().expect("seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(send(&app, &other, &body(4)).await.0, 200, "another integration has its own budget");
    let recorded = integration_event::Entity::find().count(app.db()).await.expect("count");
    assert_eq!(recorded, 3);
}

async fn a_delivery_that_cannot_commit_is_answered_500_and_taken_when_sent_again(app: TestApp) {
    let (store, product, _) = Store::new(&app).await;
    let admin = store.admin.clone();
    let id = stripe_selling(&app, &admin, &product, json!({})).await;
    let body = stripe_event(
        "evt_db_down",
        "checkout.session.completed",
        checkout("cs_db", "ada@example.com", "price_app", "pi_d"),
    );
    use sea_orm::ConnectionTrait;
    app.db().execute_unprepared("ALTER TABLE customer RENAME TO customer_away").await.expect("rename");
    let (status, _) = send(&app, &id, &body).await;
    app.db().execute_unprepared("ALTER TABLE customer_away RENAME TO customer").await.expect("rename back");
    assert_eq!(status, 500, "not committed: the provider must send it again");
    assert_eq!(integration_event::Entity::find().count(app.db()).await.expect("count"), 0, "nothing recorded");
    let (status, answer) = send(&app, &id, &body).await;
    assert_eq!((status, &answer["outcome"]), (200, &json!("PROCESSED")), "{answer}");
    assert_eq!(orders_in(&app).await, 1);

    // A delivery that fails alike every time (the database is up, the order
    // cannot be placed) is recorded as FAILED at its fifth try, for an admin
    // to replay once the cause is fixed, and the provider stops sending it.
    let stuck = stripe_event(
        "evt_stuck",
        "checkout.session.completed",
        checkout("cs_stuck", "bo@example.com", "price_app", "pi_s"),
    );
    app.db().execute_unprepared("ALTER TABLE customer RENAME TO customer_away").await.expect("rename");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(send(&app, &id, &stuck).await);
    }
    app.db().execute_unprepared("ALTER TABLE customer_away RENAME TO customer").await.expect("rename back");
    let codes: Vec<u16> = statuses.iter().map(|(s, _)| *s).collect();
    assert_eq!(codes, [500, 500, 500, 500, 200], "{statuses:?}");
    assert_eq!(statuses[4].1["outcome"], "FAILED");
    let failed = events(&app, &admin, &id).await[0].clone();
    assert_eq!((&failed["outcome"], &failed["reason"]), (&json!("FAILED"), &json!("INTERNAL")), "{failed:#}");
    let replayed = replay(&app, &admin, failed["id"].as_str().expect("id")).await;
    assert_eq!(data(&replayed)["replayIntegrationEvent"]["event"]["outcome"], "PROCESSED");
    assert_eq!(orders_in(&app).await, 2);
}

/// Deliveries spread over two server processes on one PostgreSQL, each
/// event sent five times at once: every event acts once, no key twice, and
/// a subscription's payment notified five times renews once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_take_each_delivery_once() {
    use crate::cli::{Served, keysmith};
    let Some(app) = TestApp::spawn(keysmith_tests::Backend::Postgres).await else { return };
    let (store, product, _) = Store::new(&app).await;
    let set = "mutation($id: ID!) { updateProduct(input: {id: $id, renewalPeriod: {days: 30}}) { product { id } } }";
    assert!(store.shop.call(set, json!({ "id": product })).await.get("errors").is_none());
    let id = stripe_selling(&app, &store.admin, &product, json!({})).await;
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let mut cmd = keysmith(app.dir());
        cmd.env("DATABASE_URL", &app.database_url).env("KEYSMITH_JWT_SECRET", keysmith_tests::app::TEST_SECRET);
        nodes.push(Served::start(cmd, app.dir()).await);
    }
    let post = |node: usize, body: String| {
        let url = format!("{}/integrations/{id}/webhook", nodes[node % 2].base);
        let (name, value) = stripe(SECRET, now(), &body);
        let http = app.http.clone();
        async move { http.post(url).header(name, value).body(body).send().await.expect("an answer").status().as_u16() }
    };
    // Four checkouts, each delivered five times, and a subscription's first invoice.
    let mut bodies: Vec<String> = (0..4)
        .map(|i| {
            stripe_event(
                &format!("evt_node_{i}"),
                "checkout.session.completed",
                checkout(&format!("cs_node_{i}"), &format!("n{i}@example.com"), "price_app", &format!("pi_node_{i}")),
            )
        })
        .collect();
    bodies.push(stripe_event(
        "evt_node_sub",
        "invoice.paid",
        json!({ "id": "in_node_1", "billing_reason": "subscription_create",
        "customer_email": "sub@example.com", "subscription": "sub_node",
        "lines": { "data": [{ "quantity": 1, "price": { "id": "price_app", "product": "prod_app" } }] } }),
    ));
    let sends = bodies.iter().flat_map(|b| (0..5).map(move |n| (n, b.clone()))).map(|(n, b)| post(n, b));
    assert!(join_all(sends).await.iter().all(|s| *s == 200));
    assert_eq!(orders_in(&app).await, 5);
    let keys: Vec<String> = entity::license_key::Entity::find()
        .all(app.db())
        .await
        .expect("keys")
        .into_iter()
        .filter(|k| k.customer_id.is_some())
        .map(|k| k.key)
        .collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((keys.len(), unique.len()), (5, 5), "{keys:?}");
    let recorded = integration_event::Entity::find().all(app.db()).await.expect("events");
    assert!(recorded.iter().all(|e| e.duplicates == 4 && e.attempts == 1), "{recorded:?}");

    // The next invoice, notified five times with five event ids over both nodes: one month more.
    let first = recorded.iter().find(|e| e.provider_event_id == "evt_node_sub").expect("the first invoice");
    let licence = first.license_ids[0].as_str().expect("its licence").to_string();
    let licence = entity::license_key::Entity::find_by_id(licence).one(app.db()).await.expect("read").expect("licence");
    let cycle = |n: usize| {
        stripe_event(
            &format!("evt_cycle_{n}"),
            "invoice.paid",
            json!({ "id": "in_node_2",
        "billing_reason": "subscription_cycle", "subscription": "sub_node",
        "lines": { "data": [{ "quantity": 1, "price": { "id": "price_app", "product": "prod_app" } }] } }),
        )
    };
    assert!(join_all((0..5).map(|n| post(n, cycle(n)))).await.iter().all(|s| *s == 200));
    let after = entity::license_key::Entity::find_by_id(licence.id.clone())
        .one(app.db())
        .await
        .expect("read")
        .expect("licence");
    let cycles: Vec<_> = integration_event::Entity::find()
        .all(app.db())
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.provider_event_id.starts_with("evt_cycle"))
        .map(|e| (e.outcome, e.reason, e.detail))
        .collect();
    assert_eq!(
        after.expires_at,
        licence.expires_at.map(|t| t + chrono::Duration::days(30)),
        "renewed once: {cycles:?}"
    );
    for node in nodes {
        node.terminate();
    }
}

on_both_databases!(handled_events_are_forgotten_after_90_days_and_waiting_ones_kept);

async fn handled_events_are_forgotten_after_90_days_and_waiting_ones_kept(app: TestApp) {
    use sea_orm::{ActiveModelTrait, Set};
    let admin = app.staff_token(StaffRole::Admin).await;
    let id = connect(&app, &admin, "STRIPE", SECRET, json!([]), json!({})).await;
    let old = entity::stored_time(chrono::Utc::now() - chrono::Duration::days(91));
    let mut made = Vec::new();
    for (outcome, age) in [
        (integration_event::EventOutcome::Processed, old),
        (integration_event::EventOutcome::NeedsAttention, old),
        (integration_event::EventOutcome::Processed, entity::now()),
    ] {
        let row = integration_event::ActiveModel {
            id: Set(entity::new_id()),
            integration_id: Set(id.clone()),
            provider_event_id: Set(entity::new_id()),
            body_sha256: Set(entity::new_id()),
            waiting_for: Set(None),
            event_type: Set("checkout.session.completed".into()),
            outcome: Set(outcome),
            reason: Set(None),
            detail: Set(None),
            order_id: Set(None),
            license_ids: Set(json!([])),
            headers: Set(json!({})),
            body: Set("{}".into()),
            attempts: Set(1),
            duplicates: Set(0),
            received_at: Set(age),
            processed_at: Set(Some(age)),
        };
        made.push(row.insert(app.db()).await.expect("an event").id);
    }
    keysmith_tests::until("the sweeper to forget the old handled event", || async {
        let left = integration_event::Entity::find().all(app.db()).await.expect("events");
        (left.len() == 2).then_some(())
    })
    .await;
    let left: Vec<String> =
        integration_event::Entity::find().all(app.db()).await.expect("events").into_iter().map(|e| e.id).collect();
    assert!(left.contains(&made[1]) && left.contains(&made[2]) && !left.contains(&made[0]), "{left:?} of {made:?}");
}
