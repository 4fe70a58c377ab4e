//! What placing an order costs the database: the statements of a one-unit
//! order, the records it leaves in one statement each, and the answer to a
//! repeat once its product is gone.

use crate::fulfilment::Shop;
use entity::{audit_event, event, order};
use keysmith::services::fulfilment::{self, NewLine, NewOrder};
use keysmith_tests::{TestApp, data, error_field, on_both_databases};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::json;

on_both_databases!(an_order_is_written_in_few_statements_and_a_repeat_stands_after_its_product_goes);

/// A one-unit order for a new customer: the statements it costs, and its
/// records, one statement for the audit events and one for the outbox.
async fn an_order_is_written_in_few_statements_and_a_repeat_stands_after_its_product_goes(app: TestApp) {
    let shop = Shop::new(&app).await;
    let pool = shop.tag("few").await;
    let keys: Vec<String> = (0..5).map(|i| format!("FEW-{i}")).collect();
    assert_eq!(shop.import(&keys.iter().map(String::as_str).collect::<Vec<_>>(), &[&pool]).await, 5);
    let product = shop.product("Few", json!({ "mode": "TAG", "tagId": pool })).await;
    let place = "mutation($x: String!, $e: String!, $p: ID!) { createOrder(input: {externalId: $x, customer: \
                 {email: $e}, lines: [{productId: $p, quantity: 1}], emailCustomer: false}) { created } }";
    let body = shop.call(place, json!({ "x": "few-0", "e": "few0@example.com", "p": product })).await;
    assert_eq!(data(&body)["createOrder"]["created"], true, "{body:#}");
    // The order's own statements, counted on a connection of the test's own
    // (the node's background work is not in the count).
    let mut own = keysmith::db::connect(&app.database_url, 2).await.expect("a connection");
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = counted.clone();
    own.set_metric_callback(move |_| {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let ctx = keysmith::auth::RequestContext::system(entity::Environment::Production);
    let input = NewOrder {
        external_id: "few-1".into(),
        email: "few1@example.com".into(),
        name: None,
        lines: vec![NewLine { product_id: product.clone(), quantity: 1 }],
        email_customer: false,
        portal_base: None,
    };
    let placed = fulfilment::create_order(&own, &ctx, input).await.expect("placed");
    assert!(placed.created);
    let statements = counted.load(std::sync::atomic::Ordering::Relaxed);
    // The product, the customer (read, created), the order, its line, the key,
    // the audit events, the outbox events, and on PostgreSQL their NOTIFY.
    let expected = if app.backend == keysmith_tests::Backend::Postgres { 9 } else { 8 };
    assert_eq!(statements, expected, "a one-unit order for a new customer");
    let order = order::Entity::find().filter(order::Column::ExternalId.eq("few-0")).one(app.db()).await.expect("read");
    let order = order.expect("the order");
    // Written in one statement each: the order's audit events share one
    // instant, and so do its outbox events, in the order things happened.
    let created = audit_event::Entity::find()
        .filter(audit_event::Column::TargetId.eq(order.id.as_str()))
        .one(app.db())
        .await
        .expect("audit")
        .expect("order.created");
    let trail = audit_event::Entity::find()
        .filter(audit_event::Column::CreatedAt.eq(created.created_at))
        .all(app.db())
        .await
        .expect("audit");
    let mut actions: Vec<&str> = trail.iter().map(|a| a.action.as_str()).collect();
    actions.sort();
    assert_eq!(actions, ["customer.created", "license.assigned", "order.created"]);
    assert!(trail.iter().any(|a| a.target_id == order.customer_id), "the customer's creation: {trail:#?}");
    let announced = event::Entity::find()
        .filter(event::Column::SubjectId.eq(order.id.as_str()))
        .one(app.db())
        .await
        .expect("events")
        .expect("order.created");
    let kinds: Vec<String> = event::Entity::find()
        .filter(event::Column::CreatedAt.eq(announced.created_at))
        .order_by_asc(event::Column::Id)
        .all(app.db())
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["license.assigned", "order.created", "order.fulfilled"], "in the order they happened");

    // The same order again once the product is archived: the order placed stands.
    let archived = shop
        .call(
            "mutation($id: ID!) { archiveProduct(input: {id: $id}) { product { status } } }",
            json!({ "id": product }),
        )
        .await;
    assert_eq!(data(&archived)["archiveProduct"]["product"]["status"], "ARCHIVED", "{archived:#}");
    let again = shop.call(place, json!({ "x": "few-0", "e": "few0@example.com", "p": product })).await;
    assert_eq!(data(&again)["createOrder"]["created"], false, "{again:#}");
    let new = shop.call(place, json!({ "x": "few-new", "e": "few0@example.com", "p": product })).await;
    assert_eq!(error_field(&new), Some("lines[0].productId"), "{new:#}");
    assert_eq!(order::Entity::find().count(app.db()).await.expect("count"), 2, "nothing more was placed");
}
