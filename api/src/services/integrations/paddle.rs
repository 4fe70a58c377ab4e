//! Paddle Billing: events are `{event_id, event_type, occurred_at, data}`.
//!
//! - `transaction.completed` places an order when its origin is a checkout
//!   (`web`, `api`) and renews the subscription's licences when it is a
//!   subscription's next payment (`subscription_recurring`). A transaction
//!   names its customer only by id: the email comes from the customer's own
//!   `customer.created` / `customer.updated` events (or the checkout's
//!   `custom_data.email`); a transaction whose customer is not known yet
//!   waits, and is taken up when that customer's event arrives.
//! - `adjustment.created` / `adjustment.updated`: an approved refund of the
//!   whole transaction refunds the order.
//! - `subscription.canceled` cancels the subscription.

use super::reading::{Action, Interpreted, OrderRef, Purchase, each, item, not_acted_on, text};
use serde_json::Value;

pub fn interpret(body: &Value) -> Option<Interpreted> {
    let event_id = text(body, "/event_id")?;
    let event_type = text(body, "/event_type")?;
    let data = body.get("data")?;
    let action = match event_type.as_str() {
        "transaction.completed" => transaction(data),
        "adjustment.created" | "adjustment.updated" => adjustment(data),
        "subscription.canceled" => match text(data, "/id") {
            Some(id) => Action::Cancel(OrderRef::Subscription(id)),
            None => Action::Ignore("UNREADABLE", "the subscription has no id".into()),
        },
        "customer.created" | "customer.updated" => match (text(data, "/id"), text(data, "/email")) {
            (Some(id), Some(email)) => Action::Customer { id, email, name: text(data, "/name").unwrap_or_default() },
            _ => Action::Ignore("UNREADABLE", "the customer has no id or email".into()),
        },
        other => not_acted_on(other),
    };
    Some(Interpreted { event_id, event_type, test_mode: false, action })
}

fn transaction(data: &Value) -> Action {
    let Some(id) = text(data, "/id") else {
        return Action::Ignore("UNREADABLE", "the transaction has no id".into());
    };
    let subscription = text(data, "/subscription_id");
    match (text(data, "/origin").as_deref(), subscription) {
        (Some("subscription_recurring"), Some(subscription)) => {
            Action::Renew { subscription, reference: id, payment: None }
        }
        (Some("web" | "api") | None, subscription) => Action::Order(Purchase {
            external_id: id,
            email: text(data, "/custom_data/email"),
            name: text(data, "/custom_data/name"),
            customer: text(data, "/customer_id"),
            items: each(data, "/items").map(|i| item(i, &["/price/id", "/price/product_id"], "/quantity")).collect(),
            subscription,
            no_items: Some("the transaction has no items"),
            ..Purchase::default()
        }),
        (origin, _) => Action::Ignore(
            "NOT_A_PURCHASE",
            format!("transactions of origin {} are not acted on", origin.unwrap_or("absent")),
        ),
    }
}

fn adjustment(data: &Value) -> Action {
    if text(data, "/action").as_deref() != Some("refund") {
        return Action::Ignore("NOT_A_REFUND", "only refund adjustments are acted on".into());
    }
    if text(data, "/status").as_deref() != Some("approved") {
        return Action::Ignore("NOT_APPROVED", "the refund is not approved yet".into());
    }
    match text(data, "/transaction_id") {
        Some(transaction) => {
            Action::Refund { order: OrderRef::Order(transaction), full: text(data, "/type").as_deref() == Some("full") }
        }
        None => Action::Ignore("UNREADABLE", "the adjustment names no transaction".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::integrations::reading::Item;
    use serde_json::json;

    fn event(kind: &str, data: Value) -> Value {
        json!({ "event_id": "evt_1", "event_type": kind, "occurred_at": "2026-12-04T10:00:00Z", "data": data })
    }

    #[test]
    fn a_checkout_transaction_is_an_order_and_a_recurring_one_a_renewal() {
        let data = json!({ "id": "txn_1", "origin": "web", "customer_id": "ctm_1", "subscription_id": "sub_1",
            "items": [{ "quantity": 2, "price": { "id": "pri_1", "product_id": "pro_1" } }] });
        let Action::Order(p) = interpret(&event("transaction.completed", data)).unwrap().action else { panic!() };
        assert_eq!((p.external_id.as_str(), p.customer.as_deref(), p.email), ("txn_1", Some("ctm_1"), None));
        assert_eq!(p.items, vec![Item { refs: vec!["pri_1".into(), "pro_1".into()], quantity: 2 }]);
        let data = json!({ "id": "txn_2", "origin": "subscription_recurring", "subscription_id": "sub_1" });
        assert_eq!(
            interpret(&event("transaction.completed", data)).unwrap().action,
            Action::Renew { subscription: "sub_1".into(), reference: "txn_2".into(), payment: None }
        );
    }

    #[test]
    fn only_approved_whole_refunds_refund() {
        let pending =
            json!({ "action": "refund", "status": "pending_approval", "transaction_id": "txn_1", "type": "full" });
        assert!(matches!(
            interpret(&event("adjustment.created", pending)).unwrap().action,
            Action::Ignore("NOT_APPROVED", _)
        ));
        let partial = json!({ "action": "refund", "status": "approved", "transaction_id": "txn_1", "type": "partial" });
        assert_eq!(
            interpret(&event("adjustment.updated", partial)).unwrap().action,
            Action::Refund { order: OrderRef::Order("txn_1".into()), full: false }
        );
    }
}
