//! Reading orders: the list with its search and filters, one order with its
//! lines, keys and customer, a customer's orders, and a key's order.

use entity::user::StaffRole;
use entity::{Environment, LicenseStatus, order};
use keysmith_tests::app::seed;
use keysmith_tests::{TestApp, data, error_code, on_both_databases};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};

on_both_databases!(orders_are_listed_searched_and_read_with_their_lines_and_keys);

async fn orders_are_listed_searched_and_read_with_their_lines_and_keys(app: TestApp) {
    let support = app.staff_token(StaffRole::Support).await;
    let t = Some(support.as_str());
    let mut orders = Vec::new();
    for key in ["ORDER-KEY-1", "ORDER-KEY-2", "ORDER-KEY-3"] {
        let id = seed::key(app.db(), Environment::Production, key, LicenseStatus::Available, &[]).await;
        orders.push((seed::deliver(app.db(), &id, false).await, id));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The second order belongs to the first order's customer too, and waits.
    let first = order::Entity::find_by_id(orders[0].0.clone()).one(app.db()).await.expect("read").expect("order");
    let mut second: order::ActiveModel =
        order::Entity::find_by_id(orders[1].0.clone()).one(app.db()).await.expect("read").expect("order").into();
    second.customer_id = Set(first.customer_id.clone());
    second.external_id = Set("shop-2001".into());
    second.status = Set(order::OrderStatus::Waiting);
    second.update(app.db()).await.expect("update");

    let body = app
        .graphql(
            t,
            "query($id: ID!) { customer(id: $id) { email orders { totalCount edges { node { id externalId status } } } } }",
            json!({ "id": first.customer_id }),
        )
        .await;
    let customer = &data(&body)["customer"];
    assert_eq!(customer["orders"]["totalCount"], 2);
    let ids: Vec<&Value> =
        customer["orders"]["edges"].as_array().expect("edges").iter().map(|e| &e["node"]["id"]).collect();
    assert_eq!(ids, [&json!(orders[1].0), &json!(orders[0].0)], "newest first");
    let email = customer["email"].as_str().expect("email").to_string();

    let list = |filter: Value| {
        let app = &app;
        async move {
            let body = app
                .graphql(
                    t,
                    "query($f: OrderFilter) { orders(filter: $f) { totalCount edges { node { id } } } }",
                    json!({ "f": filter }),
                )
                .await;
            let page = &data(&body)["orders"];
            let mut ids: Vec<String> = page["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|e| e["node"]["id"].as_str().expect("id").to_string())
                .collect();
            assert_eq!(page["totalCount"].as_u64(), Some(ids.len() as u64));
            ids.sort();
            ids
        }
    };
    let sorted = |ids: &[&String]| {
        let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(list(json!({})).await.len(), 3);
    assert_eq!(list(json!({ "search": "SHOP-20" })).await, sorted(&[&orders[1].0]), "external id, any case");
    assert_eq!(
        list(json!({ "search": email.to_uppercase() })).await,
        sorted(&[&orders[0].0, &orders[1].0]),
        "customer email"
    );
    assert_eq!(list(json!({ "status": "WAITING" })).await, sorted(&[&orders[1].0]));
    assert_eq!(list(json!({ "status": "FULFILLED" })).await, sorted(&[&orders[0].0, &orders[2].0]));
    assert_eq!(list(json!({ "customerId": first.customer_id })).await, sorted(&[&orders[0].0, &orders[1].0]));

    let body = app
        .graphql(
            t,
            "query($id: ID!) { order(id: $id) { externalId status customer { email } lines { quantity missing \
             product { name } keys { id key status order { id } } } } }",
            json!({ "id": orders[2].0 }),
        )
        .await;
    let one = &data(&body)["order"];
    assert_eq!(one["status"], "FULFILLED");
    let line = &one["lines"][0];
    assert_eq!((line["quantity"].as_i64(), line["missing"].as_i64()), (Some(1), Some(0)));
    assert!(line["product"]["name"].as_str().is_some_and(|n| n.starts_with("Product ")));
    assert_eq!(
        line["keys"],
        json!([{ "id": orders[2].1, "key": "ORDER-KEY-3", "status": "ASSIGNED", "order": { "id": orders[2].0 } }])
    );

    // Another environment sees none of it; customers and anonymous callers get no list.
    let (_, staged) = app.graphql_in(t, Some("staging"), "{ orders { totalCount } }", json!({})).await;
    assert_eq!(data(&staged)["orders"]["totalCount"], 0);
    let (_, staged) = app
        .graphql_in(t, Some("staging"), "query($id: ID!) { order(id: $id) { id } }", json!({ "id": orders[2].0 }))
        .await;
    assert_eq!(error_code(&staged), Some("NOT_FOUND"));
    let customer_token = app.customer_token(&first.customer_id).await;
    assert_eq!(
        error_code(&app.graphql(Some(&customer_token), "{ orders { totalCount } }", json!({})).await),
        Some("FORBIDDEN")
    );
    assert_eq!(error_code(&app.graphql(None, "{ orders { totalCount } }", json!({})).await), Some("UNAUTHENTICATED"));
}
