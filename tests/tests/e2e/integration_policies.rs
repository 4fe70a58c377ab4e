//! What a provider's subscription payments, refunds and cancellations do,
//! with Stripe as the provider: a subscription's payment extends the same
//! key (and, once it has expired, delivers a new one linked to it); a full
//! refund and a cancellation follow the integration's policies.

use crate::client::{activate, validate};
use crate::integrations::{Store, checkout, send, stripe_event, stripe_selling};
use crate::providers::{change, events};
use chrono::{DateTime, Duration, Months, Utc};
use entity::license_key;
use keysmith_tests::{TestApp, on_both_databases};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};

on_both_databases!(
    a_stripe_subscription_renews_the_same_key_then_replaces_it_once_expired,
    full_refunds_follow_the_refund_policy,
    cancelled_subscriptions_follow_the_cancel_policy,
);

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("a time: {value}"))
}

async fn stored(app: &TestApp, id: &str) -> license_key::Model {
    license_key::Entity::find_by_id(id.to_string()).one(app.db()).await.expect("read").expect("licence")
}

/// A subscription's invoice as Stripe sends it: from API version 2025-03-31
/// (`basil`) the subscription and price sit under `parent` and `pricing`,
/// before it at the top and under `price`.
fn invoice(id: &str, subscription: &str, reason: &str, price: &str, basil: bool) -> Value {
    if basil {
        json!({ "id": id, "object": "invoice", "billing_reason": reason, "customer_email": "sub@example.com",
                "customer_name": "Sub Scriber",
                "parent": { "type": "subscription_details", "subscription_details": { "subscription": subscription } },
                "lines": { "data": [{ "quantity": 1, "pricing": { "price_details": { "price": price, "product": "prod_app" } } }] } })
    } else {
        json!({ "id": id, "object": "invoice", "billing_reason": reason, "customer_email": "sub@example.com",
                "subscription": subscription, "payment_intent": format!("pi_{id}"),
                "lines": { "data": [{ "quantity": 1, "price": { "id": price, "product": "prod_app" } }] } })
    }
}

/// A product billed monthly, mapped in a Stripe integration with `extra` settings.
async fn monthly<'a>(app: &'a TestApp, extra: Value) -> (Store<'a>, String, String) {
    let (store, product, _) = Store::new(app).await;
    let set = "mutation($id: ID!) { updateProduct(input: {id: $id, renewalPeriod: {months: 1}}) { product { id } } }";
    assert!(store.shop.call(set, json!({ "id": product })).await.get("errors").is_none());
    let id = stripe_selling(app, &store.admin, &product, extra).await;
    (store, product, id)
}

/// Sends a signed event and returns the event as recorded.
async fn sent(app: &TestApp, admin: &str, integration: &str, event: &str, kind: &str, object: Value) -> Value {
    let (status, answer) = send(app, integration, &stripe_event(event, kind, object)).await;
    assert_eq!(status, 200, "{answer}");
    let recorded = events(app, admin, integration).await;
    recorded.into_iter().find(|e| e["providerEventId"] == event).expect("recorded")
}

async fn a_stripe_subscription_renews_the_same_key_then_replaces_it_once_expired(app: TestApp) {
    let (store, _, id) = monthly(&app, json!({})).await;
    let admin = store.admin.clone();

    // The first invoice delivers a key that runs one month.
    let first = sent(
        &app,
        &admin,
        &id,
        "evt_sub_1",
        "invoice.paid",
        invoice("in_1", "sub_1", "subscription_create", "price_app", true),
    )
    .await;
    assert_eq!((&first["outcome"], &first["order"]["externalId"]), (&json!("PROCESSED"), &json!("in_1")), "{first:#}");
    let licence = first["licenses"][0].clone();
    let (licence_id, key) =
        (licence["id"].as_str().expect("id").to_string(), licence["key"].as_str().expect("key").to_string());
    let bought = time(&licence["expiresAt"]);
    assert!((bought - (Utc::now() + Months::new(1))).num_minutes().abs() < 5, "one month from now: {bought}");

    // The next month's invoice (the older API shape): the same key, a month longer.
    let renewed = sent(
        &app,
        &admin,
        &id,
        "evt_sub_2",
        "invoice.paid",
        invoice("in_2", "sub_1", "subscription_cycle", "price_app", false),
    )
    .await;
    assert_eq!(renewed["outcome"], "PROCESSED", "{renewed:#}");
    let month = bought.checked_add_months(Months::new(1)).expect("a month later");
    assert_eq!(stored(&app, &licence_id).await.expires_at, Some(month));
    let checked = validate(&app, &key, None).await;
    assert_eq!((&checked["code"], time(&checked["license"]["expiresAt"])), (&json!("VALID"), month), "{checked:#}");
    // Another notice of the same invoice renews nothing more.
    let again = sent(
        &app,
        &admin,
        &id,
        "evt_sub_2b",
        "invoice.paid",
        invoice("in_2", "sub_1", "subscription_cycle", "price_app", true),
    )
    .await;
    assert_eq!(again["outcome"], "PROCESSED");
    assert_eq!(stored(&app, &licence_id).await.expires_at, Some(month), "once per invoice");

    // Payments stopped and the licence expired; the next invoice delivers a new key in its place.
    let mut row: license_key::ActiveModel = stored(&app, &licence_id).await.into();
    row.expires_at = Set(Some(entity::stored_time(Utc::now() - Duration::days(3))));
    row.update(app.db()).await.expect("expire");
    let reissued = sent(
        &app,
        &admin,
        &id,
        "evt_sub_3",
        "invoice.paid",
        invoice("in_3", "sub_1", "subscription_cycle", "price_app", true),
    )
    .await;
    assert_eq!(reissued["outcome"], "PROCESSED", "{reissued:#}");
    let new = reissued["licenses"]
        .as_array()
        .expect("licences")
        .iter()
        .find(|l| l["id"] != json!(licence_id))
        .cloned()
        .expect("a new licence");
    assert_ne!(new["key"], json!(key));
    assert_eq!(new["renewedFrom"]["id"], json!(licence_id), "linked to the one it replaces");
    let new_id = new["id"].as_str().expect("id").to_string();
    let fresh = stored(&app, &new_id).await;
    assert_eq!(fresh.customer_id, stored(&app, &licence_id).await.customer_id, "the same customer");
    assert!((fresh.expires_at.expect("an expiry") - (Utc::now() + Months::new(1))).num_minutes().abs() < 5);
    assert_eq!(validate(&app, new["key"].as_str().expect("key"), None).await["code"], "VALID");

    // The month after, the new key is the one extended.
    let next = sent(
        &app,
        &admin,
        &id,
        "evt_sub_4",
        "invoice.paid",
        invoice("in_4", "sub_1", "subscription_cycle", "price_app", true),
    )
    .await;
    assert_eq!(
        next["licenses"].as_array().map(|l| l.iter().map(|l| l["id"].clone()).collect::<Vec<_>>()),
        Some(vec![json!(new_id)])
    );
    let paid_until = stored(&app, &new_id).await.expires_at;
    assert_eq!(paid_until, fresh.expires_at.and_then(|t| t.checked_add_months(Months::new(1))));

    // Staff replace that key: the replacement runs exactly as long as the paid term.
    let line = stored(&app, &new_id).await.order_line_id.expect("its order line");
    let reassign =
        "mutation($l: ID!, $k: ID!) { reassignOrderKey(input: {lineId: $l, licenseId: $k}) { license { id } } }";
    let body = store.shop.call(reassign, json!({ "l": line, "k": new_id })).await;
    let replacement =
        body["data"]["reassignOrderKey"]["license"]["id"].as_str().unwrap_or_else(|| panic!("{body:#}")).to_string();
    assert_eq!(stored(&app, &replacement).await.expires_at, paid_until);

    // An invoice of a subscription Keysmith never saw waits for an admin.
    let unknown = sent(
        &app,
        &admin,
        &id,
        "evt_sub_x",
        "invoice.paid",
        invoice("in_x", "sub_x", "subscription_cycle", "price_app", true),
    )
    .await;
    assert_eq!((&unknown["outcome"], &unknown["reason"]), (&json!("NEEDS_ATTENTION"), &json!("UNKNOWN_SUBSCRIPTION")));
}

/// Pays for `quantity` app keys in a session with payment `pi`; the licence ids.
async fn bought(app: &TestApp, admin: &str, id: &str, session: &str, pi: &str, quantity: i64) -> Vec<(String, String)> {
    let items = format!("price_app:{quantity}");
    let event = sent(
        app,
        admin,
        id,
        &format!("evt_{session}"),
        "checkout.session.completed",
        checkout(session, "ada@example.com", &items, pi),
    )
    .await;
    assert_eq!(event["outcome"], "PROCESSED", "{event:#}");
    event["licenses"]
        .as_array()
        .expect("licences")
        .iter()
        .map(|l| (l["id"].as_str().expect("id").to_string(), l["key"].as_str().expect("key").to_string()))
        .collect()
}

async fn refunded(app: &TestApp, admin: &str, id: &str, pi: &str, full: bool) -> Value {
    let charge = json!({ "id": format!("ch_{pi}"), "object": "charge", "payment_intent": pi, "refunded": full, "amount_refunded": 100 });
    sent(app, admin, id, &format!("evt_refund_{pi}_{full}"), "charge.refunded", charge).await
}

async fn full_refunds_follow_the_refund_policy(app: TestApp) {
    let (store, _, id) = monthly(&app, json!({})).await;
    let admin = store.admin.clone();

    // KEEP (the default): the order is refunded, the key stays the customer's.
    let kept = bought(&app, &admin, &id, "cs_keep", "pi_keep", 1).await;
    let event = refunded(&app, &admin, &id, "pi_keep", true).await;
    assert_eq!((&event["outcome"], &event["order"]["status"]), (&json!("PROCESSED"), &json!("REFUNDED")), "{event:#}");
    let key = stored(&app, &kept[0].0).await;
    assert_eq!((key.status, key.customer_id.is_some()), (entity::LicenseStatus::Assigned, true));
    // Another notice of the same refund changes nothing.
    let charge = json!({ "id": "ch_2", "payment_intent": "pi_keep", "refunded": true });
    let second = sent(&app, &admin, &id, "evt_refund_twice", "charge.refunded", charge).await;
    assert_eq!((&second["outcome"], &second["reason"]), (&json!("IGNORED"), &json!("ALREADY_REFUNDED")));

    // A partial refund leaves everything as it is.
    let partly = bought(&app, &admin, &id, "cs_part", "pi_part", 1).await;
    let event = refunded(&app, &admin, &id, "pi_part", false).await;
    assert_eq!((&event["outcome"], &event["reason"]), (&json!("IGNORED"), &json!("PARTIAL_REFUND")));
    assert_eq!(stored(&app, &partly[0].0).await.status, entity::LicenseStatus::Assigned);

    // RETURN_UNREVEALED: a key in use stays, and so does one already expired;
    // an untouched one goes back to the pool, without the term its delivery gave it.
    assert!(change(&app, &admin, json!({ "id": id, "onRefund": "RETURN_UNREVEALED" })).await.get("errors").is_none());
    let three = bought(&app, &admin, &id, "cs_two", "pi_two", 3).await;
    assert_eq!(activate(&app, &three[0].1, "pc-1").await["code"], "VALID");
    let mut lapsed: license_key::ActiveModel = stored(&app, &three[2].0).await.into();
    lapsed.expires_at = Set(Some(entity::stored_time(Utc::now() - Duration::days(2))));
    lapsed.update(app.db()).await.expect("expire");
    let event = refunded(&app, &admin, &id, "pi_two", true).await;
    assert_eq!(
        (&event["outcome"], event["licenses"].as_array().map(Vec::len)),
        (&json!("PROCESSED"), Some(1)),
        "{event:#}"
    );
    let (used, untouched, expired) =
        (stored(&app, &three[0].0).await, stored(&app, &three[1].0).await, stored(&app, &three[2].0).await);
    assert_eq!(used.status, entity::LicenseStatus::Active);
    assert_eq!(
        (untouched.status, untouched.customer_id, untouched.expires_at),
        (entity::LicenseStatus::Available, None, None)
    );
    assert!(expired.customer_id.is_some(), "an expired key stays with its customer");

    // REVOKE: every key of the order.
    assert!(change(&app, &admin, json!({ "id": id, "onRefund": "REVOKE" })).await.get("errors").is_none());
    let revoked = bought(&app, &admin, &id, "cs_rev", "pi_rev", 1).await;
    refunded(&app, &admin, &id, "pi_rev", true).await;
    assert_eq!(stored(&app, &revoked[0].0).await.status, entity::LicenseStatus::Revoked);
    assert_eq!(validate(&app, &revoked[0].1, None).await["code"], "REVOKED");

    // A refund of a payment this integration never placed an order for is passed over.
    let unknown = refunded(&app, &admin, &id, "pi_unknown", true).await;
    assert_eq!((&unknown["outcome"], &unknown["reason"]), (&json!("IGNORED"), &json!("UNKNOWN_ORDER")));
}

async fn cancelled_subscriptions_follow_the_cancel_policy(app: TestApp) {
    let (store, _, id) = monthly(&app, json!({ "onCancel": "SUSPEND" })).await;
    let admin = store.admin.clone();
    let subscribe = |n: &'static str| {
        let (app, admin, id) = (&app, admin.clone(), id.clone());
        async move {
            let first = invoice(&format!("in_{n}"), &format!("sub_{n}"), "subscription_create", "price_app", true);
            let event = sent(app, &admin, &id, &format!("evt_{n}"), "invoice.paid", first).await;
            let licence = &event["licenses"][0];
            (licence["id"].as_str().expect("id").to_string(), licence["key"].as_str().expect("key").to_string())
        }
    };
    let cancel = |n: &'static str| {
        let (app, admin, id) = (&app, admin.clone(), id.clone());
        async move {
            let subscription = json!({ "id": format!("sub_{n}"), "object": "subscription", "status": "canceled" });
            sent(app, &admin, &id, &format!("evt_cancel_{n}"), "customer.subscription.deleted", subscription).await
        }
    };

    // SUSPEND: a licence in use is suspended.
    let (suspended, key) = subscribe("s").await;
    assert_eq!(activate(&app, &key, "pc-1").await["code"], "VALID");
    let event = cancel("s").await;
    assert_eq!(event["outcome"], "PROCESSED", "{event:#}");
    assert_eq!(stored(&app, &suspended).await.status, entity::LicenseStatus::Suspended);
    assert_eq!(validate(&app, &key, Some("pc-1")).await["code"], "SUSPENDED");

    // REVOKE: revoked.
    assert!(change(&app, &admin, json!({ "id": id, "onCancel": "REVOKE" })).await.get("errors").is_none());
    let (revoked, _) = subscribe("r").await;
    cancel("r").await;
    assert_eq!(stored(&app, &revoked).await.status, entity::LicenseStatus::Revoked);

    // EXPIRE_AT_PERIOD_END: nothing now; the paid month runs out.
    assert!(
        change(&app, &admin, json!({ "id": id, "onCancel": "EXPIRE_AT_PERIOD_END" })).await.get("errors").is_none()
    );
    let (kept, key) = subscribe("e").await;
    let before = stored(&app, &kept).await;
    let event = cancel("e").await;
    assert_eq!((&event["outcome"], &event["licenses"]), (&json!("PROCESSED"), &json!([])));
    let after = stored(&app, &kept).await;
    assert_eq!((after.status, after.expires_at), (before.status, before.expires_at));
    assert_eq!(validate(&app, &key, None).await["code"], "VALID");
}
