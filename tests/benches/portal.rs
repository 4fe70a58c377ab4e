//! The customer portal's orders page under load, over HTTP on SQLite, next
//! to a baseline served by the same process in the same run: the very
//! GraphQL query the page runs (`portal::ORDERS_QUERY`), sent to
//! `/graphql` with the same session's token as a bearer token. What the
//! page adds is the cookie and CSRF middleware, turning the answer into
//! words and rendering the template.
//!
//! A customer with 10 orders of 2 keys each, one device on every key.
//! 16 concurrent clients; the sides alternate over three rounds and the
//! median round is reported, with p50/p99 over every request of a side.
//! Every page and every answer is checked.
//!
//! Run: `cargo bench -p keysmith-tests --bench portal`
//! (`KEYSMITH_BENCH_CALLS=1500` for a shorter run).

use entity::user::StaffRole;
use keysmith_tests::app::{config, fresh_database};
use keysmith_tests::bench::{Side, load};
use keysmith_tests::{Backend, TestApp, data};
use serde_json::{Value, json};
use std::sync::Arc;

const CLIENTS: usize = 16;
const ROUNDS: usize = 3;
const ORDERS: usize = 10;

/// A customer's ten orders of two keys each, every key active on a device.
/// Returns the customer's id and the last order's number.
async fn customer_with_orders(app: &TestApp, admin: &str) -> (String, String) {
    let t = Some(admin);
    let tag = app.graphql(t, "mutation { createTag(input: {name: \"bench\"}) { tag { id } } }", json!({})).await;
    let tag = data(&tag)["createTag"]["tag"]["id"].clone();
    let keys: Vec<String> = (0..ORDERS * 2).map(|i| format!("BENCH-PORTAL-{i:04}")).collect();
    let imported = app
        .graphql(
            t,
            "mutation($k: String!, $t: [ID!]!) { importLicenseKeys(input: {text: $k, tagIds: $t}) { imported } }",
            json!({ "k": keys.join("\n"), "t": [tag] }),
        )
        .await;
    assert_eq!(data(&imported)["importLicenseKeys"]["imported"].as_u64(), Some(keys.len() as u64));
    let product = app
        .graphql(
            t,
            "mutation($t: ID!) { createProduct(input: {name: \"Bench Studio\", delivery: {mode: TAG, tagId: $t}}) \
             { product { id } } }",
            json!({ "t": tag }),
        )
        .await;
    let product = data(&product)["createProduct"]["product"]["id"].clone();
    let mut customer = String::new();
    let mut last = String::new();
    for o in 0..ORDERS {
        last = format!("BENCH-{o:03}");
        let order = app
            .graphql(
                t,
                "mutation($x: String!, $p: ID!) { createOrder(input: {externalId: $x, customer: {email: \
                 \"buyer@bench.example\", name: \"Bench Buyer\"}, lines: [{productId: $p, quantity: 2}], \
                 emailCustomer: false}) { order { status customer { id } } } }",
                json!({ "x": last, "p": product }),
            )
            .await;
        let placed = &data(&order)["createOrder"]["order"];
        assert_eq!(placed["status"], "FULFILLED", "{order:#}");
        customer = placed["customer"]["id"].as_str().expect("a customer").to_string();
    }
    for (i, key) in keys.iter().enumerate() {
        let body = app
            .graphql(
                None,
                "mutation($k: String!, $f: String!) { activateLicense(input: {key: $k, fingerprint: $f, \
                 name: \"Bench PC\", platform: \"linux\"}) { code } }",
                json!({ "k": key, "f": format!("device-{i}") }),
            )
            .await;
        assert_eq!(data(&body)["activateLicense"]["code"], "VALID", "{body:#}");
    }
    (customer, last)
}

#[tokio::main]
async fn main() {
    let calls: usize = std::env::var("KEYSMITH_BENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(6000);
    let per_round = calls / ROUNDS;
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = fresh_database(Backend::Sqlite, dir.path()).await.expect("SQLite");
    let mut cfg = config(&url);
    // What `keysmith serve` uses by default.
    cfg.db_max_connections = 16;
    cfg.sweep_interval_seconds = 60;
    let app = TestApp::spawn_with(Backend::Sqlite, cfg, dir).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let (customer, last) = customer_with_orders(&app, &admin).await;
    let session = Arc::new(app.customer_token(&customer).await);
    let last = Arc::new(last);

    println!(
        "SQLite, {CLIENTS} concurrent clients over HTTP; {ROUNDS} alternating rounds of {per_round} requests per \
         side; a customer with {ORDERS} orders of 2 keys, one device each; median round\n"
    );
    let mut page = Side::default();
    let mut query = Side::default();
    for _ in 0..ROUNDS {
        let (http, url, token, newest) = (app.http.clone(), app.url("/graphql"), session.clone(), last.clone());
        load(&mut query, CLIENTS, per_round, move |_| {
            let (http, url, session, last) = (http.clone(), url.clone(), token.clone(), newest.clone());
            async move {
                let resp = http
                    .post(&url)
                    .bearer_auth(session.as_str())
                    .json(&json!({ "query": portal::ORDERS_QUERY }))
                    .send()
                    .await
                    .expect("an answer");
                let body: Value = resp.json().await.expect("JSON");
                let orders = data(&body)["myOrders"].as_array().expect("orders");
                assert_eq!(orders.len(), ORDERS, "{body:#}");
                assert_eq!(orders[0]["externalId"], last.as_str(), "newest first");
            }
        })
        .await;
        let (http, url, token, newest) = (app.http.clone(), app.url("/portal/"), session.clone(), last.clone());
        load(&mut page, CLIENTS, per_round, move |_| {
            let (http, url, session, last) = (http.clone(), url.clone(), token.clone(), newest.clone());
            async move {
                let resp = http
                    .get(&url)
                    .header("cookie", format!("keysmith_portal={session}"))
                    .send()
                    .await
                    .expect("an answer");
                assert_eq!(resp.status(), 200);
                let html = resp.text().await.expect("the page");
                assert!(html.contains(&format!("Order {last}")) && html.contains("Bench PC"), "{html}");
                assert_eq!(html.matches("class=\"order\"").count(), ORDERS, "every order on the page");
            }
        })
        .await;
    }

    println!("| request | per second | p50 | p99 |");
    println!("|---|---|---|---|");
    let (q50, q99, p50, p99) =
        (query.percentile(0.5), query.percentile(0.99), page.percentile(0.5), page.percentile(0.99));
    for (name, side, l50, l99) in [
        ("`myOrders` query over `/graphql` (baseline)", &query, q50, q99),
        ("`GET /portal/` (orders page)", &page, p50, p99),
    ] {
        println!(
            "| {name} | {:.0}/s | {:.2} ms | {:.2} ms |",
            side.median_rate(),
            l50.as_secs_f64() * 1e3,
            l99.as_secs_f64() * 1e3
        );
    }
    println!(
        "\nthroughput ratio (page / query): {:.2}; p50 ratio {:.2}; p99 ratio {:.2}",
        page.median_rate() / query.median_rate(),
        p50.as_secs_f64() / q50.as_secs_f64(),
        p99.as_secs_f64() / q99.as_secs_f64()
    );
    let rounds = |s: &Side| s.rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
    eprintln!("rounds (per second): query [{}] page [{}]", rounds(&query), rounds(&page));
    app.stop().await;
}
