//! Integrations at their edges: two shops whose order numbers collide never
//! act on each other's orders; a subscription of more licences than an
//! order holds lines renews whole; a Stripe refund of a subscription paid
//! under the 2025-03-31 API finds its order; two notices of one refund
//! refund once.

use crate::integrations::{SECRET, Store, send, stripe_event};
use crate::providers::{self, connect, deliver, events};
use entity::user::StaffRole;
use entity::{LicenseStatus, audit_event, license_key, order};
use futures_util::future::join_all;
use keysmith_tests::{TestApp, on_both_databases};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

on_both_databases!(
    two_shops_whose_order_numbers_collide_never_act_on_each_others_orders,
    a_subscription_of_150_licences_renews_them_all,
    a_stripe_subscription_refund_finds_its_order_through_the_invoice_payment,
    two_notices_of_one_refund_refund_once,
);

const WOO_SECRET: &str = "woo-shop-secret-1";

async fn woo(app: &TestApp, id: &str, secret: &str, body: Value) -> Value {
    let body = body.to_string();
    let headers = [
        ("X-WC-Webhook-Topic", "order.updated".to_string()),
        ("X-WC-Webhook-ID", "1".to_string()),
        providers::woocommerce(secret, &body),
    ];
    let (status, answer) = deliver(app, id, &headers, &body).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn two_shops_whose_order_numbers_collide_never_act_on_each_others_orders(app: TestApp) {
    let (store, product, _) = Store::new(&app).await;
    let mapping = json!([{ "providerRef": "93", "productId": product }]);
    let a =
        connect(&app, &store.admin, "WOOCOMMERCE", WOO_SECRET, mapping.clone(), json!({ "onRefund": "REVOKE" })).await;
    let b =
        connect(&app, &store.admin, "WOOCOMMERCE", "woo-shop-secret-2", mapping, json!({ "onRefund": "REVOKE" })).await;
    let order = |status: &str, modified: &str| {
        json!({ "id": 100, "status": status, "date_modified_gmt": modified,
        "billing": { "email": "same@example.com" }, "line_items": [{ "product_id": 93, "quantity": 1 }] })
    };
    assert_eq!(woo(&app, &a, WOO_SECRET, order("completed", "2026-12-04T10:00:00")).await["outcome"], "PROCESSED");
    let licence = license_key::Entity::find()
        .filter(license_key::Column::CustomerId.is_not_null())
        .one(app.db())
        .await
        .expect("read")
        .expect("shop A's licence");

    // Shop B's order 100: the same number, the same customer and product — still not shop A's order.
    assert_eq!(
        woo(&app, &b, "woo-shop-secret-2", order("completed", "2026-12-04T11:00:00")).await["outcome"],
        "FAILED"
    );
    let refused = events(&app, &store.admin, &b).await[0].clone();
    assert_eq!(refused["reason"], "ORDER_ID_TAKEN", "{refused:#}");
    // Shop B refunding and cancelling its order 100 leaves shop A's alone.
    assert_eq!(
        woo(&app, &b, "woo-shop-secret-2", order("refunded", "2026-12-04T12:00:00")).await["outcome"],
        "IGNORED"
    );
    assert_eq!(
        woo(&app, &b, "woo-shop-secret-2", order("cancelled", "2026-12-04T13:00:00")).await["outcome"],
        "IGNORED"
    );
    let kept = license_key::Entity::find_by_id(licence.id.clone()).one(app.db()).await.expect("read").expect("licence");
    assert_eq!(kept.status, LicenseStatus::Assigned);
    assert_eq!(order::Entity::find().count(app.db()).await.expect("count"), 1);
    // Shop B's subscription naming order 100 as its parent never reaches shop A's licence.
    let subscription = |status: &str, modified: &str| json!({ "id": 801, "status": status, "parent_id": 100, "date_modified_gmt": modified });
    for (topic, body) in [
        ("subscription.created", subscription("active", "2026-12-04T14:00:00")),
        ("subscription.updated", subscription("cancelled", "2026-12-04T15:00:00")),
    ] {
        let body = body.to_string();
        let headers = [("X-WC-Webhook-Topic", topic.to_string()), providers::woocommerce("woo-shop-secret-2", &body)];
        assert_eq!(deliver(&app, &b, &headers, &body).await.0, 200);
    }
    let renewal = json!({ "id": 900, "status": "completed", "date_modified_gmt": "2026-12-04T16:00:00",
        "billing": { "email": "same@example.com" }, "line_items": [{ "product_id": 93, "quantity": 1 }],
        "meta_data": [{ "key": "_subscription_renewal", "value": "801" }] });
    assert_eq!(woo(&app, &b, "woo-shop-secret-2", renewal).await["outcome"], "IGNORED");
    let kept = license_key::Entity::find_by_id(licence.id.clone()).one(app.db()).await.expect("read").expect("licence");
    assert_eq!((kept.status, kept.expires_at), (LicenseStatus::Assigned, licence.expires_at));
    // Shop A's own refund acts.
    assert_eq!(woo(&app, &a, WOO_SECRET, order("refunded", "2026-12-05T10:00:00")).await["outcome"], "PROCESSED");
    let revoked = license_key::Entity::find_by_id(licence.id).one(app.db()).await.expect("read").expect("licence");
    assert_eq!(revoked.status, LicenseStatus::Revoked);
}

/// A monthly product delivered by a generator (as many keys as wanted) in a Stripe integration.
async fn generated_monthly(app: &TestApp) -> (String, String) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let shop = crate::fulfilment::Shop::new(app).await;
    let product = shop.product("Seats", json!({ "mode": "AUTO_GENERATED" })).await;
    let set = "mutation($id: ID!) { updateProduct(input: {id: $id, renewalPeriod: {months: 1}}) { product { id } } }";
    assert!(shop.call(set, json!({ "id": product })).await.get("errors").is_none());
    let id = connect(
        app,
        &admin,
        "STRIPE",
        SECRET,
        json!([{ "providerRef": "price_seat", "productId": product }]),
        json!({}),
    )
    .await;
    (admin, id)
}

fn invoice(id: &str, reason: &str, quantity: i64) -> Value {
    json!({ "id": id, "billing_reason": reason, "customer_email": "team@example.com",
            "parent": { "subscription_details": { "subscription": "sub_team" } },
            "lines": { "data": [{ "quantity": quantity, "pricing": { "price_details": { "price": "price_seat" } } }] } })
}

async fn a_subscription_of_150_licences_renews_them_all(app: TestApp) {
    let (admin, id) = generated_monthly(&app).await;
    let (_, answer) =
        send(&app, &id, &stripe_event("evt_team_1", "invoice.paid", invoice("in_team_1", "subscription_create", 150)))
            .await;
    assert_eq!(answer["outcome"], "PROCESSED", "{answer}");
    let before: Vec<license_key::Model> = license_key::Entity::find()
        .filter(license_key::Column::CustomerId.is_not_null())
        .all(app.db())
        .await
        .expect("keys");
    assert_eq!(before.len(), 150);
    let (_, answer) =
        send(&app, &id, &stripe_event("evt_team_2", "invoice.paid", invoice("in_team_2", "subscription_cycle", 150)))
            .await;
    assert_eq!(answer["outcome"], "PROCESSED", "{answer}");
    for key in before {
        let after =
            license_key::Entity::find_by_id(key.id.clone()).one(app.db()).await.expect("read").expect("licence");
        assert_eq!(
            after.expires_at,
            key.expires_at.and_then(|t| t.checked_add_months(chrono::Months::new(1))),
            "every seat"
        );
    }
    let renewal_orders: Vec<String> = order::Entity::find()
        .all(app.db())
        .await
        .expect("orders")
        .into_iter()
        .map(|o| o.external_id)
        .filter(|x| x.starts_with("in_team_2"))
        .collect();
    assert_eq!(renewal_orders.len(), 2, "100 lines an order: {renewal_orders:?}");
    // Each line's renewed licence is read for the whole order at once: 100 lines cost what 50 do.
    let query = "query($id: ID!) { order(id: $id) { lines { renews { id renewedFrom { id } } renewalOutcome } } }";
    let mut costs = Vec::new();
    for external in ["in_team_2", "in_team_2#2"] {
        let placed = order::Entity::find().filter(order::Column::ExternalId.eq(external)).one(app.db()).await;
        let placed = placed.expect("read").expect("the renewal order");
        let mut fewest = u64::MAX;
        for _ in 0..8 {
            let before = app.state.statements.load(std::sync::atomic::Ordering::SeqCst);
            let body = app.graphql(Some(&admin), query, json!({ "id": placed.id })).await;
            let after = app.state.statements.load(std::sync::atomic::Ordering::SeqCst);
            let lines = body["data"]["order"]["lines"].as_array().cloned().unwrap_or_default();
            assert!(
                lines.iter().all(|l| l["renews"]["id"].is_string() && l["renewalOutcome"] == "EXTENDED"),
                "{body:#}"
            );
            fewest = fewest.min(after - before);
        }
        costs.push(fewest);
    }
    assert_eq!(costs[0], costs[1], "{costs:?}");
    // The payment told again renews nothing more.
    let (_, answer) =
        send(&app, &id, &stripe_event("evt_team_2b", "invoice.paid", invoice("in_team_2", "subscription_cycle", 150)))
            .await;
    assert_eq!(answer["outcome"], "PROCESSED");
    assert_eq!(events(&app, &admin, &id).await[0]["detail"], "this payment renewed already");
}

async fn a_stripe_subscription_refund_finds_its_order_through_the_invoice_payment(app: TestApp) {
    let (admin, id) = generated_monthly(&app).await;
    let change = json!({ "id": id, "onRefund": "REVOKE" });
    assert!(providers::change(&app, &admin, change).await.get("errors").is_none());
    send(&app, &id, &stripe_event("evt_sub_a", "invoice.paid", invoice("in_sub_a", "subscription_create", 1))).await;
    // From API version 2025-03-31 an invoice no longer names its payment intent: its invoice payment does.
    let payment = json!({ "id": "inpay_1", "object": "invoice_payment", "invoice": "in_sub_a",
        "payment": { "type": "payment_intent", "payment_intent": "pi_sub_a" }, "status": "paid" });
    assert_eq!(
        send(&app, &id, &stripe_event("evt_inpay", "invoice_payment.paid", payment)).await.1["outcome"],
        "PROCESSED"
    );
    let charge = json!({ "id": "ch_sub_a", "payment_intent": "pi_sub_a", "refunded": true });
    let (_, answer) = send(&app, &id, &stripe_event("evt_sub_refund", "charge.refunded", charge)).await;
    assert_eq!(answer["outcome"], "PROCESSED", "{answer}");
    let key = license_key::Entity::find()
        .filter(license_key::Column::CustomerId.is_not_null())
        .one(app.db())
        .await
        .expect("read")
        .expect("the licence");
    assert_eq!(key.status, LicenseStatus::Revoked);
}

async fn two_notices_of_one_refund_refund_once(app: TestApp) {
    let (store, product, _) = Store::new(&app).await;
    let paddle = "pdl_ntfset_refund_once_secret";
    let id = connect(
        &app,
        &store.admin,
        "PADDLE",
        paddle,
        json!([{ "providerRef": "pri_app", "productId": product }]),
        json!({}),
    )
    .await;
    let send_paddle = |event: &str, kind: &str, data: Value| {
        let body = json!({ "event_id": event, "event_type": kind, "data": data }).to_string();
        let (app, id) = (&app, id.clone());
        async move { deliver(app, &id, &[providers::paddle(paddle, providers::now(), &body)], &body).await }
    };
    let paid = json!({ "id": "txn_once", "origin": "web", "custom_data": { "email": "once@example.com" },
        "items": [{ "quantity": 1, "price": { "id": "pri_app" } }] });
    assert_eq!(send_paddle("evt_once_1", "transaction.completed", paid).await.1["outcome"], "PROCESSED");
    let refund = json!({ "id": "adj_1", "action": "refund", "type": "full", "status": "approved", "transaction_id": "txn_once" });
    let answers = join_all([
        send_paddle("evt_once_2", "adjustment.created", refund.clone()),
        send_paddle("evt_once_3", "adjustment.updated", refund),
    ])
    .await;
    let mut outcomes: Vec<&str> = answers.iter().map(|(_, a)| a["outcome"].as_str().unwrap_or_default()).collect();
    outcomes.sort();
    assert_eq!(outcomes, ["IGNORED", "PROCESSED"], "{answers:?}");
    let refunds =
        audit_event::Entity::find().filter(audit_event::Column::Action.eq("order.refunded")).count(app.db()).await;
    assert_eq!(refunds.expect("count"), 1);
}
