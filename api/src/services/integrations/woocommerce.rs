//! WooCommerce: the topic is the `X-WC-Webhook-Topic` header; the body is
//! the order (REST API v3 shape). WooCommerce sends no event id, so a
//! delivery is known by its webhook, topic, order, modification time and status.
//!
//! - `order.created` / `order.updated` with a paid status (the
//!   integration's `paidStatuses`, `completed` unless set) places an order of
//!   the line items' variations (then products). A WooCommerce
//!   Subscriptions renewal order (meta `_subscription_renewal`) renews that
//!   subscription's licences instead.
//! - Status `refunded` (the whole order) refunds it; `cancelled` cancels it.
//! - `subscription.created` / `subscription.updated` (WooCommerce
//!   Subscriptions) tie the subscription to its parent order; status
//!   `cancelled` cancels the subscription.

use super::reading::{
    Action, Headers, Interpreted, LinkKind, OrderRef, Purchase, each, full_name, item, not_acted_on, text,
};
use serde_json::Value;

pub fn interpret(headers: &Headers, body: &Value, paid: &[String]) -> Option<Interpreted> {
    let event_type = headers.get("x-wc-webhook-topic")?.to_string();
    let id = text(body, "/id")?;
    let status = text(body, "/status").unwrap_or_default();
    let event_id = format!(
        "{}:{event_type}:{id}:{}:{status}",
        headers.get("x-wc-webhook-id").unwrap_or_default(),
        text(body, "/date_modified_gmt").unwrap_or_default()
    );
    let action = match event_type.as_str() {
        "order.created" | "order.updated" => order(body, id, &status, paid),
        "subscription.created" | "subscription.updated" if status == "cancelled" => {
            Action::Cancel(OrderRef::Subscription(id))
        }
        "subscription.created" | "subscription.updated" => match text(body, "/parent_id").filter(|p| p != "0") {
            Some(parent) => Action::Link { kind: LinkKind::Subscription, provider_ref: id, external_id: parent },
            None => Action::Ignore("UNREADABLE", "the subscription names no parent order".into()),
        },
        other => not_acted_on(other),
    };
    Some(Interpreted { event_id, event_type, test_mode: false, action })
}

fn order(body: &Value, id: String, status: &str, paid: &[String]) -> Action {
    match status {
        "refunded" => return Action::Refund { order: OrderRef::Order(id), full: true },
        "cancelled" => return Action::Cancel(OrderRef::Order(id)),
        _ => {}
    }
    if !paid.iter().any(|p| p == status) {
        return Action::Ignore("NOT_PAID", format!("orders in status {status} are not delivered (paidStatuses)"));
    }
    let renews = each(body, "/meta_data").find(|m| text(m, "/key").as_deref() == Some("_subscription_renewal"));
    if let Some(subscription) = renews.and_then(|m| text(m, "/value")) {
        return Action::Renew { subscription, reference: id, payment: None };
    }
    Action::Order(Purchase {
        external_id: id,
        email: text(body, "/billing/email"),
        name: full_name(body, "/billing/first_name", "/billing/last_name"),
        items: each(body, "/line_items")
            .map(|l| item(l, &["/variation_id", "/product_id", "/sku"], "/quantity"))
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
            ("X-WC-Webhook-Topic".to_string(), topic.to_string()),
            ("X-WC-Webhook-ID".to_string(), "3".to_string()),
        ])
    }

    #[test]
    fn a_completed_order_orders_its_products_and_processing_waits() {
        let body = |status: &str| {
            json!({ "id": 727, "status": status, "date_modified_gmt": "2026-12-04T10:00:00",
            "billing": { "email": "a@example.com", "first_name": "Ada", "last_name": "B" },
            "line_items": [{ "product_id": 93, "variation_id": 0, "quantity": 2 }] })
        };
        let paid = vec!["completed".to_string()];
        let read = interpret(&headers("order.updated"), &body("completed"), &paid).unwrap();
        assert_eq!(read.event_id, "3:order.updated:727:2026-12-04T10:00:00:completed");
        let Action::Order(p) = read.action else { panic!() };
        assert_eq!(p.items, vec![Item { refs: vec!["93".into()], quantity: 2 }], "variation 0 means none");
        let waiting = interpret(&headers("order.updated"), &body("processing"), &paid).unwrap();
        assert!(matches!(waiting.action, Action::Ignore("NOT_PAID", _)));
    }

    #[test]
    fn a_renewal_order_renews() {
        let body = json!({ "id": 900, "status": "completed", "meta_data": [{ "id": 1, "key": "_subscription_renewal", "value": "801" }] });
        let read = interpret(&headers("order.created"), &body, &["completed".to_string()]).unwrap();
        assert_eq!(read.action, Action::Renew { subscription: "801".into(), reference: "900".into(), payment: None });
    }
}
