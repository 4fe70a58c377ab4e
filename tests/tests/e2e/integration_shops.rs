//! Paddle Billing, Lemon Squeezy, Shopify and WooCommerce, each delivering
//! as it documents: signed its own way, duplicates told apart its own way;
//! a paid order delivers the mapped products' keys once, a subscription's
//! payment extends the same key, refunds and cancellations follow the
//! integration's policies.

use crate::client::validate;
use crate::integrations::Store;
use crate::providers::{self, connect, deliver, events, now};
use chrono::{DateTime, Months, Utc};
use entity::{LicenseStatus, integration_event, license_key, order};
use futures_util::future::join_all;
use keysmith_tests::{TestApp, on_both_databases};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

on_both_databases!(
    paddle_transactions_deliver_renew_and_refund,
    lemon_squeezy_orders_deliver_renew_and_refund,
    shopify_orders_deliver_once_renew_and_cancel,
    woocommerce_completed_orders_deliver_once_and_renew,
);

async fn orders_in(app: &TestApp) -> u64 {
    order::Entity::find().count(app.db()).await.expect("count")
}

async fn stored(app: &TestApp, id: &str) -> license_key::Model {
    license_key::Entity::find_by_id(id.to_string()).one(app.db()).await.expect("read").expect("licence")
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("a time: {value}"))
}

/// The recorded event with provider id `id` (the newest with it).
async fn event(app: &TestApp, admin: &str, integration: &str, pick: impl Fn(&Value) -> bool) -> Value {
    events(app, admin, integration).await.into_iter().find(|e| pick(e)).expect("the event")
}

/// A store whose app product renews monthly.
async fn monthly(app: &TestApp) -> (Store<'_>, String) {
    let (store, product, _) = Store::new(app).await;
    let set = "mutation($id: ID!) { updateProduct(input: {id: $id, renewalPeriod: {months: 1}}) { product { id } } }";
    assert!(store.shop.call(set, json!({ "id": product })).await.get("errors").is_none());
    (store, product)
}

/// The one licence an event delivered: (id, key, expiry).
fn licence_of(event: &Value) -> (String, String, DateTime<Utc>) {
    let l = &event["licenses"][0];
    (l["id"].as_str().expect("id").into(), l["key"].as_str().expect("key").into(), time(&l["expiresAt"]))
}

const PADDLE_SECRET: &str = "pdl_ntfset_01hxyz_testsecret0123456789";

async fn paddle_transactions_deliver_renew_and_refund(app: TestApp) {
    let (store, product) = monthly(&app).await;
    let admin = store.admin.clone();
    let id = connect(
        &app,
        &admin,
        "PADDLE",
        PADDLE_SECRET,
        json!([{ "providerRef": "pri_app", "productId": product }]),
        json!({ "onRefund": "REVOKE" }),
    )
    .await;
    let send = |event: &str, kind: &str, data: Value| {
        let body = json!({ "event_id": event, "event_type": kind, "occurred_at": "2026-12-04T10:00:00Z",
            "notification_id": format!("ntf_{event}"), "data": data })
        .to_string();
        let (app, id) = (&app, id.clone());
        async move { deliver(app, &id, &[providers::paddle(PADDLE_SECRET, now(), &body)], &body).await }
    };
    let transaction = |txn: &str, origin: &str, customer: &str| {
        json!({ "id": txn, "status": "completed", "origin": origin,
        "customer_id": customer, "subscription_id": "sub_p1", "items": [{ "quantity": 1, "price": { "id": "pri_app", "product_id": "pro_app" } }] })
    };

    // A transaction before its customer's email is known waits, and goes through when it arrives.
    let (status, answer) = send("evt_p1", "transaction.completed", transaction("txn_1", "web", "ctm_1")).await;
    assert_eq!((status, &answer["outcome"]), (200, &json!("NEEDS_ATTENTION")), "{answer}");
    assert_eq!(orders_in(&app).await, 0);
    let customer = json!({ "id": "ctm_1", "email": "paddle@example.com", "name": "Pat Paddle" });
    assert_eq!(send("evt_p2", "customer.created", customer).await.1["outcome"], "PROCESSED");
    let first = event(&app, &admin, &id, |e| e["providerEventId"] == "evt_p1").await;
    assert_eq!((&first["outcome"], &first["order"]["externalId"]), (&json!("PROCESSED"), &json!("txn_1")), "{first:#}");
    assert_eq!(first["order"]["customer"]["email"], "paddle@example.com");
    let (licence, key, expiry) = licence_of(&first);

    // Paddle's signature: a replayed delivery five seconds late is refused; a duplicate is counted.
    let body = json!({ "event_id": "evt_p2", "event_type": "customer.created", "data": {} }).to_string();
    assert_eq!(deliver(&app, &id, &[providers::paddle(PADDLE_SECRET, now() - 6, &body)], &body).await.0, 401);
    let answers =
        join_all((0..5).map(|_| send("evt_p1", "transaction.completed", transaction("txn_1", "web", "ctm_1")))).await;
    assert!(answers.iter().all(|(s, a)| *s == 200 && a["outcome"] == "DUPLICATE"), "{answers:?}");

    // The subscription's next payment extends the same key.
    let (_, answer) =
        send("evt_p3", "transaction.completed", transaction("txn_2", "subscription_recurring", "ctm_1")).await;
    assert_eq!(answer["outcome"], "PROCESSED", "{answer}");
    let month = expiry.checked_add_months(Months::new(1)).expect("later");
    assert_eq!(time(&validate(&app, &key, None).await["license"]["expiresAt"]), month);

    // The renewal's payment refunded: the month it bought is taken back, the key kept.
    let renewal_refund =
        json!({ "id": "adj_0", "action": "refund", "type": "full", "status": "approved", "transaction_id": "txn_2" });
    assert_eq!(send("evt_p3r", "adjustment.created", renewal_refund).await.1["outcome"], "PROCESSED");
    let back = stored(&app, &licence).await;
    assert_eq!((back.expires_at, back.status), (Some(expiry), LicenseStatus::Assigned));

    // A refund pending approval waits; approved in full, the policy revokes the key.
    let refund = |status: &str| json!({ "id": "adj_1", "action": "refund", "type": "full", "status": status, "transaction_id": "txn_1" });
    assert_eq!(send("evt_p4", "adjustment.created", refund("pending_approval")).await.1["outcome"], "IGNORED");
    assert_eq!(stored(&app, &licence).await.status, LicenseStatus::Assigned);
    assert_eq!(send("evt_p5", "adjustment.updated", refund("approved")).await.1["outcome"], "PROCESSED");
    assert_eq!(stored(&app, &licence).await.status, LicenseStatus::Revoked);
}

const LEMON_SECRET: &str = "lemon-signing-secret-42";

async fn lemon_squeezy_orders_deliver_renew_and_refund(app: TestApp) {
    let (store, product) = monthly(&app).await;
    let admin = store.admin.clone();
    let id = connect(
        &app,
        &admin,
        "LEMON_SQUEEZY",
        LEMON_SECRET,
        json!([{ "providerRef": "11", "productId": product }]),
        json!({ "onRefund": "RETURN_UNREVEALED" }),
    )
    .await;
    let send = |name: &str, kind: &str, object: &str, attributes: Value| {
        let body = json!({ "meta": { "event_name": name, "test_mode": false, "custom_data": {} },
            "data": { "type": kind, "id": object, "attributes": attributes } })
        .to_string();
        let headers = [("X-Event-Name", name.to_string()), providers::lemon_squeezy(LEMON_SECRET, &body)];
        let (app, id) = (&app, id.clone());
        async move { deliver(app, &id, &headers, &body).await }
    };
    let order = json!({ "status": "paid", "user_email": "lemon@example.com", "user_name": "Lee Lemon", "total": 900,
        "updated_at": "2026-12-04T10:00:00.000000Z", "first_order_item": { "product_id": 7, "variant_id": 11, "quantity": 1 } });
    let (status, answer) = send("order_created", "orders", "1001", order.clone()).await;
    assert_eq!((status, &answer["outcome"]), (200, &json!("PROCESSED")), "{answer}");
    // Lemon Squeezy retries with the same body: a duplicate.
    assert_eq!(send("order_created", "orders", "1001", order).await.1["outcome"], "DUPLICATE");
    let first = event(&app, &admin, &id, |e| e["eventType"] == "order_created").await;
    assert_eq!(first["order"]["externalId"], "1001");
    let (licence, key, expiry) = licence_of(&first);
    // A signature made with another secret.
    let body = json!({ "meta": { "event_name": "order_created" } }).to_string();
    assert_eq!(deliver(&app, &id, &[providers::lemon_squeezy("another-secret", &body)], &body).await.0, 401);

    let link = json!({ "order_id": 1001, "status": "active", "updated_at": "2026-12-04T10:00:01.000000Z" });
    assert_eq!(send("subscription_created", "subscriptions", "9", link).await.1["outcome"], "PROCESSED");
    let invoice = |reason: &str| {
        json!({ "billing_reason": reason, "subscription_id": 9, "status": "paid",
        "updated_at": format!("2026-12-04T11:00:00.000000Z{reason}") })
    };
    assert_eq!(
        send("subscription_payment_success", "subscription-invoices", "55", invoice("initial")).await.1["outcome"],
        "IGNORED"
    );
    assert_eq!(
        send("subscription_payment_success", "subscription-invoices", "56", invoice("renewal")).await.1["outcome"],
        "PROCESSED"
    );
    let month = expiry.checked_add_months(Months::new(1)).expect("later");
    assert_eq!(time(&validate(&app, &key, None).await["license"]["expiresAt"]), month);

    // Refunded in full; the key was never revealed nor activated: back to the pool.
    let refunded = json!({ "status": "refunded", "refunded_amount": 900, "total": 900, "updated_at": "2026-12-05T10:00:00.000000Z" });
    assert_eq!(send("order_refunded", "orders", "1001", refunded).await.1["outcome"], "PROCESSED");
    let after = stored(&app, &licence).await;
    assert_eq!((after.status, after.customer_id), (LicenseStatus::Available, None));
    // The month its delivery gave it (and the renewal added) is not the next buyer's.
    assert_eq!((after.expires_at, after.expiry_from_delivery), (None, false));
}

const SHOPIFY_SECRET: &str = "shpss_0123456789abcdef0123456789abcdef";

async fn shopify_orders_deliver_once_renew_and_cancel(app: TestApp) {
    let (store, product) = monthly(&app).await;
    let admin = store.admin.clone();
    let mappings = json!([{ "providerRef": "447654529", "productId": product }, { "providerRef": "808950810", "productId": null }]);
    let id = connect(&app, &admin, "SHOPIFY", SHOPIFY_SECRET, mappings, json!({ "onCancel": "REVOKE" })).await;
    let send = |topic: &str, webhook: &str, body: Value| {
        let body = body.to_string();
        let headers = vec![
            ("X-Shopify-Topic", topic.to_string()),
            ("X-Shopify-Webhook-Id", webhook.to_string()),
            ("X-Shopify-Shop-Domain", "keysmith-test.myshopify.com".to_string()),
            providers::shopify(SHOPIFY_SECRET, &body),
        ];
        let (app, id) = (&app, id.clone());
        async move { deliver(app, &id, &headers, &body).await }
    };
    let paid = |order: u64, source: &str| {
        json!({ "id": order, "name": "#1001", "email": "shop@example.com", "financial_status": "paid",
        "source_name": source, "test": false, "customer": { "first_name": "Sam", "last_name": "Shop" },
        "line_items": [{ "id": 1, "variant_id": 447654529, "product_id": 632910392, "quantity": 1 },
                       { "id": 2, "variant_id": 808950810, "product_id": 632910393, "quantity": 3 }] })
    };

    // orders/create and orders/paid of one order, and a retry of each: one order, the T-shirt passed over.
    let sends =
        [("orders/create", "wh-1"), ("orders/paid", "wh-2"), ("orders/paid", "wh-2"), ("orders/create", "wh-1")];
    // The two topics' bodies differ (Shopify stamps each with the time it was sent).
    let stamped = |topic: &str| {
        let mut body = paid(820982911946154508, "web");
        body["updated_at"] =
            json!(if topic == "orders/create" { "2026-12-04T10:00:00Z" } else { "2026-12-04T10:00:02Z" });
        body
    };
    let answers = join_all(sends.iter().map(|(topic, webhook)| send(topic, webhook, stamped(topic)))).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let outcomes: Vec<&str> = answers.iter().map(|(_, a)| a["outcome"].as_str().unwrap_or_default()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "DUPLICATE").count(), 2, "{outcomes:?}");
    assert_eq!(orders_in(&app).await, 1);
    let first = event(&app, &admin, &id, |e| e["providerEventId"] == "wh-2").await;
    assert_eq!(first["order"]["externalId"], "820982911946154508");
    assert_eq!(first["licenses"].as_array().map(Vec::len), Some(1), "only the licensed variant");
    let (licence, key, expiry) = licence_of(&first);
    // A forged one.
    let body = paid(1, "web").to_string();
    let forged = [("X-Shopify-Topic", "orders/paid".to_string()), providers::shopify("not-the-secret", &body)];
    assert_eq!(deliver(&app, &id, &forged, &body).await.0, 401);
    // A captured signed body sent again under another (unsigned) topic does what its body says, no more:
    // a paid order's body is no cancellation, and under its own topic again it is a duplicate.
    let captured = stamped("orders/paid");
    let (_, answer) = send("orders/cancelled", "wh-forged", captured.clone()).await;
    assert_eq!(answer["outcome"], "IGNORED");
    assert_eq!(event(&app, &admin, &id, |e| e["providerEventId"] == "wh-forged").await["reason"], "NOT_CANCELLED");
    assert_eq!(send("orders/paid", "wh-forged-2", captured).await.1["outcome"], "DUPLICATE");
    assert_eq!(stored(&app, &licence).await.status, LicenseStatus::Assigned);

    // A selling-plan subscription: its billing attempt renews; its renewal order is not a sale.
    let contract = json!({ "id": 5001, "origin_order_id": 820982911946154508u64, "status": "active" });
    assert_eq!(send("subscription_contracts/create", "wh-3", contract).await.1["outcome"], "PROCESSED");
    let attempt = json!({ "id": 7001, "order_id": 9100, "subscription_contract_id": 5001, "ready": true });
    assert_eq!(send("subscription_billing_attempts/success", "wh-4", attempt).await.1["outcome"], "PROCESSED");
    let (_, answer) = send("orders/paid", "wh-5", paid(9100, "subscription_contract")).await;
    assert_eq!(answer["outcome"], "IGNORED");
    let month = expiry.checked_add_months(Months::new(1)).expect("later");
    assert_eq!(time(&validate(&app, &key, None).await["license"]["expiresAt"]), month);

    // Cancelled: the policy revokes.
    let cancelled =
        json!({ "id": 820982911946154508u64, "cancelled_at": "2026-12-05T10:00:00Z", "cancel_reason": "customer" });
    assert_eq!(send("orders/cancelled", "wh-6", cancelled).await.1["outcome"], "PROCESSED");
    assert_eq!(stored(&app, &licence).await.status, LicenseStatus::Revoked);
}

/// The secret as the seller typed it; WordPress signs with its entities decoded.
const WOO_SECRET: &str = "wc&secret'<with>\"entities\"";

async fn woocommerce_completed_orders_deliver_once_and_renew(app: TestApp) {
    let (store, product) = monthly(&app).await;
    let admin = store.admin.clone();
    // Pasted as WooCommerce shows it in its settings page, HTML-escaped.
    let escaped = "wc&amp;secret&#039;&lt;with&gt;&quot;entities&quot;";
    let id = connect(
        &app,
        &admin,
        "WOOCOMMERCE",
        escaped,
        json!([{ "providerRef": "93", "productId": product }]),
        json!({ "onRefund": "REVOKE" }),
    )
    .await;

    // Saving the webhook in WooCommerce sends an unsigned ping, which must get a 200.
    let ping = app
        .http
        .post(app.url(&format!("/integrations/{id}/webhook")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("webhook_id=3")
        .send()
        .await
        .expect("answer");
    assert_eq!(ping.status().as_u16(), 200);
    assert_eq!(integration_event::Entity::find().count(app.db()).await.expect("count"), 0, "a ping is not an event");

    let send = |topic: &str, body: Value| {
        let body = body.to_string();
        let headers = vec![
            ("X-WC-Webhook-Topic", topic.to_string()),
            ("X-WC-Webhook-ID", "3".to_string()),
            ("X-WC-Webhook-Source", "https://shop.example.com/".to_string()),
            providers::woocommerce(WOO_SECRET, &body),
        ];
        let (app, id) = (&app, id.clone());
        async move { deliver(app, &id, &headers, &body).await }
    };
    let order = |id: u64, status: &str, modified: &str, meta: Value| {
        json!({ "id": id, "status": status,
        "date_modified_gmt": modified, "billing": { "email": "woo@example.com", "first_name": "Wu", "last_name": "Commerce" },
        "line_items": [{ "id": 1, "product_id": 93, "variation_id": 0, "quantity": 1 }], "meta_data": meta })
    };

    assert_eq!(
        send("order.created", order(727, "processing", "2026-12-04T10:00:00", json!([]))).await.1["outcome"],
        "IGNORED"
    );
    let completed = order(727, "completed", "2026-12-04T10:05:00", json!([]));
    let answers = join_all((0..4).map(|_| send("order.updated", completed.clone()))).await;
    let processed = answers.iter().filter(|(_, a)| a["outcome"] == "PROCESSED").count();
    assert_eq!((processed, orders_in(&app).await), (1, 1), "{answers:?}");
    let first = event(&app, &admin, &id, |e| e["outcome"] == "PROCESSED").await;
    assert_eq!(first["order"]["externalId"], "727");
    let (licence, key, expiry) = licence_of(&first);

    // WooCommerce Subscriptions: the subscription names its parent; a renewal order renews.
    let subscription =
        json!({ "id": 801, "status": "active", "parent_id": 727, "date_modified_gmt": "2026-12-04T10:06:00" });
    assert_eq!(send("subscription.created", subscription).await.1["outcome"], "PROCESSED");
    let renewal = order(
        900,
        "completed",
        "2027-01-04T10:00:00",
        json!([{ "id": 5, "key": "_subscription_renewal", "value": "801" }]),
    );
    assert_eq!(send("order.created", renewal).await.1["outcome"], "PROCESSED");
    let month = expiry.checked_add_months(Months::new(1)).expect("later");
    assert_eq!(time(&validate(&app, &key, None).await["license"]["expiresAt"]), month);

    // Refunded: the policy revokes.
    assert_eq!(
        send("order.updated", order(727, "refunded", "2026-12-06T10:00:00", json!([]))).await.1["outcome"],
        "PROCESSED"
    );
    assert_eq!(stored(&app, &licence).await.status, LicenseStatus::Revoked);
}
