//! Stripe: events are `{id, type, livemode, data: {object}}`.
//!
//! - `checkout.session.completed` and `checkout.session.async_payment_succeeded`
//!   place an order once the session is paid. A session carries no line
//!   items, so its items come from the session's metadata `keysmith_items`
//!   (`price_1:2,price_2`: ids with an optional quantity) or, without it,
//!   from the Payment Link it was bought through (quantity 1). A
//!   subscription's session is passed over: its first invoice delivers.
//! - `invoice.paid` for a subscription's first invoice places an order from
//!   the invoice's lines (their price and product ids, in both the shape of
//!   API versions from 2025-03-31 on and the older one); for a later cycle
//!   it renews the subscription's licences.
//! - `invoice_payment.paid` (API versions from 2025-03-31, whose invoices no
//!   longer name their payment intent) ties the payment to the invoice's order.
//! - `charge.refunded` (a full refund) refunds the order its payment paid.
//! - `customer.subscription.deleted` cancels the subscription.

use super::reading::{Action, Interpreted, Item, LinkKind, OrderRef, Purchase, each, item, not_acted_on, text};
use serde_json::Value;

/// The metadata key a checkout session names its items in.
pub const ITEMS_KEY: &str = "keysmith_items";

pub fn interpret(body: &Value) -> Option<Interpreted> {
    let event_id = text(body, "/id")?;
    let event_type = text(body, "/type")?;
    let object = body.pointer("/data/object")?;
    let action = match event_type.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => checkout(object),
        "invoice.paid" => invoice(object),
        "invoice_payment.paid" => match (text(object, "/payment/payment_intent"), text(object, "/invoice")) {
            (Some(payment), Some(invoice)) => {
                Action::Link { kind: LinkKind::Payment, provider_ref: payment, external_id: invoice }
            }
            _ => Action::Ignore("NOT_A_PAYMENT_INTENT", "the invoice was not paid by a payment intent".into()),
        },
        "charge.refunded" => match text(object, "/payment_intent") {
            Some(payment) => Action::Refund {
                order: OrderRef::Payment(payment),
                full: object.get("refunded").and_then(Value::as_bool).unwrap_or(false),
            },
            None => Action::Ignore("UNKNOWN_PAYMENT", "the charge names no payment intent".into()),
        },
        "customer.subscription.deleted" => match text(object, "/id") {
            Some(id) => Action::Cancel(OrderRef::Subscription(id)),
            None => Action::Ignore("UNREADABLE", "the subscription has no id".into()),
        },
        other => not_acted_on(other),
    };
    let test_mode = body.get("livemode").and_then(Value::as_bool) == Some(false);
    Some(Interpreted { event_id, event_type, test_mode, action })
}

fn checkout(session: &Value) -> Action {
    let Some(id) = text(session, "/id") else {
        return Action::Ignore("UNREADABLE", "the checkout session has no id".into());
    };
    match text(session, "/payment_status").as_deref() {
        Some("paid" | "no_payment_required") => {}
        status => {
            return Action::Ignore(
                "NOT_PAID",
                format!("the session's payment status is {}", status.unwrap_or("absent")),
            );
        }
    }
    if text(session, "/mode").as_deref() == Some("subscription") {
        return Action::Ignore("DELIVERED_BY_INVOICE", "a subscription is delivered by its first invoice.paid".into());
    }
    let items = match text(session, &format!("/metadata/{ITEMS_KEY}")) {
        Some(listed) => listed_items(&listed),
        None => {
            text(session, "/payment_link").map(|link| vec![Item { refs: vec![link], quantity: 1 }]).unwrap_or_default()
        }
    };
    Action::Order(Purchase {
        external_id: id,
        email: text(session, "/customer_details/email").or_else(|| text(session, "/customer_email")),
        name: text(session, "/customer_details/name"),
        items,
        payment: text(session, "/payment_intent"),
        no_items: Some("set the session's metadata keysmith_items, or map its Payment Link"),
        ..Purchase::default()
    })
}

/// `price_1:2, price_2` → items; a bad quantity counts as 0 (refused later, naming the item).
fn listed_items(listed: &str) -> Vec<Item> {
    listed
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| match entry.split_once(':') {
            Some((id, quantity)) => {
                Item { refs: vec![id.trim().to_string()], quantity: quantity.trim().parse().unwrap_or(0) }
            }
            None => Item { refs: vec![entry.to_string()], quantity: 1 },
        })
        .collect()
}

fn invoice(invoice: &Value) -> Action {
    let Some(id) = text(invoice, "/id") else {
        return Action::Ignore("UNREADABLE", "the invoice has no id".into());
    };
    let subscription =
        text(invoice, "/parent/subscription_details/subscription").or_else(|| text(invoice, "/subscription"));
    let Some(subscription) = subscription else {
        return Action::Ignore("NOT_A_SUBSCRIPTION", "the invoice is not a subscription's".into());
    };
    match text(invoice, "/billing_reason").as_deref() {
        Some("subscription_create") => {
            let items = each(invoice, "/lines/data")
                .map(|line| {
                    item(
                        line,
                        &[
                            "/pricing/price_details/price",
                            "/price/id",
                            "/pricing/price_details/product",
                            "/price/product",
                        ],
                        "/quantity",
                    )
                })
                .collect();
            Action::Order(Purchase {
                external_id: id,
                email: text(invoice, "/customer_email"),
                name: text(invoice, "/customer_name"),
                items,
                subscription: Some(subscription),
                payment: text(invoice, "/payment_intent"),
                no_items: Some("the invoice has no lines"),
                ..Purchase::default()
            })
        }
        Some("subscription_cycle") => {
            Action::Renew { subscription, reference: id, payment: text(invoice, "/payment_intent") }
        }
        reason => Action::Ignore(
            "NOT_A_RENEWAL",
            format!("invoices with billing reason {} are not acted on", reason.unwrap_or("absent")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, object: Value) -> Value {
        json!({ "id": "evt_1", "object": "event", "type": kind, "livemode": true, "data": { "object": object } })
    }

    #[test]
    fn a_paid_session_orders_its_listed_items() {
        let read = interpret(&event(
            "checkout.session.completed",
            json!({ "id": "cs_1", "mode": "payment", "payment_status": "paid", "payment_intent": "pi_1",
                    "customer_details": { "email": "a@example.com", "name": "Ada" },
                    "metadata": { "keysmith_items": "price_a:2, price_b" } }),
        ))
        .unwrap();
        let Action::Order(p) = read.action else { panic!("{read:?}") };
        assert_eq!(p.external_id, "cs_1");
        assert_eq!(p.payment.as_deref(), Some("pi_1"));
        assert_eq!(
            p.items,
            vec![
                Item { refs: vec!["price_a".into()], quantity: 2 },
                Item { refs: vec!["price_b".into()], quantity: 1 }
            ]
        );
        assert!(!read.test_mode);
    }

    #[test]
    fn unpaid_and_subscription_sessions_are_passed_over() {
        let unpaid = interpret(&event("checkout.session.completed", json!({ "id": "cs", "payment_status": "unpaid" })));
        assert!(matches!(unpaid.unwrap().action, Action::Ignore("NOT_PAID", _)));
        let sub = interpret(&event(
            "checkout.session.completed",
            json!({ "id": "cs", "payment_status": "paid", "mode": "subscription" }),
        ));
        assert!(matches!(sub.unwrap().action, Action::Ignore("DELIVERED_BY_INVOICE", _)));
    }

    #[test]
    fn invoices_read_both_shapes() {
        let basil = json!({ "id": "in_1", "billing_reason": "subscription_create", "customer_email": "a@example.com",
            "parent": { "subscription_details": { "subscription": "sub_1" } },
            "lines": { "data": [{ "quantity": 3, "pricing": { "price_details": { "price": "price_a", "product": "prod_a" } } }] } });
        let Action::Order(p) = interpret(&event("invoice.paid", basil)).unwrap().action else { panic!() };
        assert_eq!(p.subscription.as_deref(), Some("sub_1"));
        assert_eq!(p.items, vec![Item { refs: vec!["price_a".into(), "prod_a".into()], quantity: 3 }]);
        let legacy = json!({ "id": "in_2", "billing_reason": "subscription_cycle", "subscription": "sub_1",
            "lines": { "data": [{ "quantity": 1, "price": { "id": "price_a", "product": "prod_a" } }] } });
        assert_eq!(
            interpret(&event("invoice.paid", legacy)).unwrap().action,
            Action::Renew { subscription: "sub_1".into(), reference: "in_2".into(), payment: None }
        );
    }
}
