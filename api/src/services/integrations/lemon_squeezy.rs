//! Lemon Squeezy: JSON:API bodies, `{meta: {event_name, test_mode},
//! data: {type, id, attributes}}`, with no event id: a delivery is known by
//! its event name, object and `updated_at`, which the provider's retries
//! repeat.
//!
//! - `order_created` places an order once paid (a Lemon Squeezy order has
//!   one item: its variant, then product, is mapped).
//! - `subscription_created` ties the subscription to the order that started it.
//! - `subscription_payment_success` for a `renewal` invoice renews the
//!   subscription's licences.
//! - `order_refunded` refunds the order when the whole amount was refunded.
//! - `subscription_cancelled` cancels the subscription.

use super::reading::{Action, Interpreted, LinkKind, OrderRef, Purchase, item, not_acted_on, number, text};
use serde_json::Value;

pub fn interpret(body: &Value) -> Option<Interpreted> {
    let event_type = text(body, "/meta/event_name")?;
    let id = text(body, "/data/id")?;
    let kind = text(body, "/data/type").unwrap_or_default();
    let updated = text(body, "/data/attributes/updated_at").unwrap_or_default();
    let event_id = format!("{event_type}:{kind}:{id}:{updated}");
    let a = body.pointer("/data/attributes")?;
    let action = match event_type.as_str() {
        "order_created" => match text(a, "/status").as_deref() {
            Some("paid") => Action::Order(Purchase {
                external_id: id,
                email: text(a, "/user_email"),
                name: text(a, "/user_name"),
                items: vec![item(
                    a,
                    &["/first_order_item/variant_id", "/first_order_item/product_id"],
                    "/first_order_item/quantity",
                )],
                no_items: Some("the order has no item"),
                ..Purchase::default()
            }),
            status => Action::Ignore("NOT_PAID", format!("the order's status is {}", status.unwrap_or("absent"))),
        },
        "subscription_created" => match text(a, "/order_id") {
            Some(order) => Action::Link { kind: LinkKind::Subscription, provider_ref: id, external_id: order },
            None => Action::Ignore("UNREADABLE", "the subscription names no order".into()),
        },
        "subscription_payment_success" => match (text(a, "/billing_reason").as_deref(), text(a, "/subscription_id")) {
            // Invoices are numbered apart from orders: named so, they cannot take an order's id.
            (Some("renewal"), Some(subscription)) => {
                Action::Renew { subscription, reference: format!("subscription-invoice-{id}"), payment: None }
            }
            (reason, _) => Action::Ignore(
                "NOT_A_RENEWAL",
                format!("invoices with billing reason {} are not acted on", reason.unwrap_or("absent")),
            ),
        },
        "order_refunded" => {
            let whole = text(a, "/status").as_deref() == Some("refunded")
                && number(a, "/refunded_amount").zip(number(a, "/total")).is_none_or(|(r, t)| r >= t);
            Action::Refund { order: OrderRef::Order(id), full: whole }
        }
        "subscription_cancelled" => Action::Cancel(OrderRef::Subscription(id)),
        other => not_acted_on(other),
    };
    let test_mode = body.pointer("/meta/test_mode").and_then(Value::as_bool).unwrap_or(false);
    Some(Interpreted { event_id, event_type, test_mode, action })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::integrations::reading::Item;
    use serde_json::json;

    #[test]
    fn a_paid_order_is_an_order_of_its_variant() {
        let body = json!({ "meta": { "event_name": "order_created", "test_mode": false },
            "data": { "type": "orders", "id": "1001", "attributes": { "status": "paid", "user_email": "a@example.com",
            "updated_at": "2026-12-04T10:00:00.000000Z",
            "first_order_item": { "product_id": 7, "variant_id": 11, "quantity": 1 } } } });
        let read = interpret(&body).unwrap();
        assert_eq!(read.event_id, "order_created:orders:1001:2026-12-04T10:00:00.000000Z");
        let Action::Order(p) = read.action else { panic!() };
        assert_eq!(p.items, vec![Item { refs: vec!["11".into(), "7".into()], quantity: 1 }]);
    }

    #[test]
    fn only_renewal_invoices_renew_and_partial_refunds_are_partial() {
        let invoice = |reason: &str| {
            json!({ "meta": { "event_name": "subscription_payment_success" },
            "data": { "type": "subscription-invoices", "id": "55", "attributes": { "billing_reason": reason, "subscription_id": 9 } } })
        };
        assert_eq!(
            interpret(&invoice("renewal")).unwrap().action,
            Action::Renew { subscription: "9".into(), reference: "subscription-invoice-55".into(), payment: None }
        );
        assert!(matches!(interpret(&invoice("initial")).unwrap().action, Action::Ignore("NOT_A_RENEWAL", _)));
        let refund = json!({ "meta": { "event_name": "order_refunded" }, "data": { "type": "orders", "id": "1001",
            "attributes": { "status": "partial_refund", "refunded_amount": 100, "total": 900 } } });
        assert_eq!(
            interpret(&refund).unwrap().action,
            Action::Refund { order: OrderRef::Order("1001".into()), full: false }
        );
    }
}
