//! Shopify: the topic is the `X-Shopify-Topic` header, the event id the
//! `X-Shopify-Webhook-Id` header (the same on every retry); the body is the
//! object itself.
//!
//! - `orders/paid` (and `orders/create` or `orders/updated` once paid)
//!   places an order of the line items' variants (then products). An order
//!   Shopify created for a subscription's billing is a renewal, not a sale:
//!   it is passed over, and its billing attempt renews.
//! - `orders/updated` with `financial_status` `refunded` refunds the order
//!   (`partially_refunded` is a partial refund).
//! - `orders/cancelled` cancels the order.
//! - `subscription_contracts/create` ties the contract to its first order;
//!   `subscription_billing_attempts/success` renews the contract's licences;
//!   `subscription_contracts/cancel` cancels it.

use super::reading::{
    Action, Headers, Interpreted, LinkKind, OrderRef, Purchase, each, full_name, item, not_acted_on, text,
};
use serde_json::Value;

pub fn interpret(headers: &Headers, body: &Value) -> Option<Interpreted> {
    let event_type = headers.get("x-shopify-topic")?.to_string();
    let event_id =
        headers.get("x-shopify-webhook-id").or_else(|| headers.get("x-shopify-event-id")).map(str::to_string).or_else(
            || Some(format!("{event_type}:{}:{}", text(body, "/id")?, text(body, "/updated_at").unwrap_or_default())),
        )?;
    let id = text(body, "/id");
    let action = match (event_type.as_str(), id) {
        ("orders/paid" | "orders/create" | "orders/updated", Some(id)) => order(body, id, &event_type),
        // The topic is not signed: the body must say it was cancelled.
        ("orders/cancelled", Some(id)) if text(body, "/cancelled_at").is_some() => Action::Cancel(OrderRef::Order(id)),
        ("orders/cancelled", Some(_)) => Action::Ignore("NOT_CANCELLED", "the order has no cancelled_at".into()),
        ("subscription_contracts/create", Some(id)) => match text(body, "/origin_order_id") {
            Some(order) => Action::Link { kind: LinkKind::Subscription, provider_ref: id, external_id: order },
            None => Action::Ignore("UNREADABLE", "the contract names no order".into()),
        },
        ("subscription_contracts/cancel", Some(id)) => Action::Cancel(OrderRef::Subscription(id)),
        ("subscription_billing_attempts/success", _) => {
            match (text(body, "/subscription_contract_id"), text(body, "/order_id").or_else(|| text(body, "/id"))) {
                (Some(subscription), Some(reference)) => Action::Renew { subscription, reference, payment: None },
                _ => Action::Ignore("UNREADABLE", "the billing attempt names no contract".into()),
            }
        }
        ("refunds/create", _) => Action::Ignore(
            "SEE_ORDER_STATUS",
            "refunds are acted on from orders/updated, whose financial_status says whether the whole order was refunded"
                .into(),
        ),
        (other, None) if other.starts_with("orders/") => Action::Ignore("UNREADABLE", "the order has no id".into()),
        (other, _) => not_acted_on(other),
    };
    let test_mode = body.get("test").and_then(Value::as_bool).unwrap_or(false);
    Some(Interpreted { event_id, event_type, test_mode, action })
}

fn order(body: &Value, id: String, topic: &str) -> Action {
    let status = text(body, "/financial_status").unwrap_or_default();
    if text(body, "/source_name").as_deref() == Some("subscription_contract") {
        return Action::Ignore("RENEWAL_ORDER", "a subscription's renewal order: its billing attempt renews".into());
    }
    match status.as_str() {
        "refunded" => return Action::Refund { order: OrderRef::Order(id), full: true },
        "partially_refunded" => return Action::Refund { order: OrderRef::Order(id), full: false },
        _ => {}
    }
    if topic == "orders/updated" && text(body, "/cancelled_at").is_some() {
        return Action::Cancel(OrderRef::Order(id));
    }
    if status != "paid" {
        return Action::Ignore("NOT_PAID", format!("the order's financial status is {status}"));
    }
    Action::Order(Purchase {
        external_id: id,
        email: text(body, "/email").or_else(|| text(body, "/contact_email")).or_else(|| text(body, "/customer/email")),
        name: full_name(body, "/customer/first_name", "/customer/last_name")
            .or_else(|| text(body, "/billing_address/name")),
        items: each(body, "/line_items")
            .map(|l| item(l, &["/variant_id", "/product_id", "/sku"], "/quantity"))
            .collect(),
        no_items: Some("the order has no line items"),
        ..Purchase::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::integrations::reading::Item;
    use serde_json::json;

    fn headers(topic: &str) -> Headers {
        Headers::from_pairs([
            ("X-Shopify-Topic".to_string(), topic.to_string()),
            ("X-Shopify-Webhook-Id".to_string(), "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043".to_string()),
        ])
    }

    #[test]
    fn a_paid_order_orders_its_variants() {
        let body = json!({ "id": 820982911946154508u64, "email": "jon@example.com", "financial_status": "paid",
            "customer": { "first_name": "Jon", "last_name": "Snow" },
            "line_items": [{ "variant_id": 447654529, "product_id": 632910392, "quantity": 2 }] });
        let read = interpret(&headers("orders/paid"), &body).unwrap();
        assert_eq!(read.event_id, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
        let Action::Order(p) = read.action else { panic!() };
        assert_eq!((p.external_id.as_str(), p.name.as_deref()), ("820982911946154508", Some("Jon Snow")));
        assert_eq!(p.items, vec![Item { refs: vec!["447654529".into(), "632910392".into()], quantity: 2 }]);
    }

    #[test]
    fn refunded_and_renewal_orders_are_told_apart() {
        let refunded = json!({ "id": 1, "financial_status": "refunded" });
        assert_eq!(
            interpret(&headers("orders/updated"), &refunded).unwrap().action,
            Action::Refund { order: OrderRef::Order("1".into()), full: true }
        );
        let renewal = json!({ "id": 2, "financial_status": "paid", "source_name": "subscription_contract" });
        assert!(matches!(
            interpret(&headers("orders/paid"), &renewal).unwrap().action,
            Action::Ignore("RENEWAL_ORDER", _)
        ));
    }
}
