//! Live updates, with the npm `graphql-ws` client as the subscriber:
//!
//! - **Throughput.** 16 clients place one-unit orders (each writes three
//!   events: `order.created`, `license.assigned`, `order.fulfilled`) while
//!   one subscriber takes every event: events per second it receives, against
//!   the events per second written in the same run (the baseline).
//! - **Delay.** Orders placed one at a time; for each, the time from sending
//!   `createOrder` to its `order.created` at the subscriber, against the
//!   time to `createOrder`'s own answer (the baseline), p50 and p99.
//!
//! On SQLite the subscriber is on the node that takes the orders; on
//! PostgreSQL it is on a second node of the same database.
//!
//! Run: `cargo bench -p keysmith-tests --bench live`
//! (`KEYSMITH_BENCH_ORDERS=300` for a shorter run; needs node and npm).

use entity::user::StaffRole;
use keysmith_tests::app::{config, fresh_database};
use keysmith_tests::bench::{Side, load};
use keysmith_tests::npm::Subscriber;
use keysmith_tests::{Backend, TestApp, data};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const CLIENTS: usize = 16;
const SEQUENTIAL: usize = 200;
const ORDER: &str = "mutation($x: String!, $p: ID!) { createOrder(input: {externalId: $x, \
                     customer: {email: \"bench@example.com\"}, lines: [{productId: $p, quantity: 1}], \
                     emailCustomer: false}) { order { status } } }";
const EVENTS: &str = "subscription { events { id type data } }";

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or_default()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn place(app: &TestApp, token: &str, product: &str, external: &str) {
    let body = app.graphql(Some(token), ORDER, json!({ "x": external, "p": product })).await;
    assert_eq!(data(&body)["createOrder"]["order"]["status"], "FULFILLED", "{body}");
}

fn is_event(line: &Value) -> bool {
    line["next"]["data"]["events"]["id"].is_string()
}

async fn run(backend: Backend, orders: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(url) = fresh_database(backend, dir.path()).await else {
        println!("{backend:?}: not available");
        return;
    };
    let writer = Arc::new(TestApp::spawn_with(backend, config(&url), dir).await);
    let reader = match backend {
        Backend::Postgres => {
            Arc::new(TestApp::spawn_with(backend, config(&url), tempfile::tempdir().expect("dir")).await)
        }
        Backend::Sqlite => writer.clone(),
    };
    let admin = Arc::new(writer.staff_token(StaffRole::Admin).await);
    let made = writer
        .graphql(
            Some(&admin),
            "mutation { createProduct(input: {name: \"Bench\", delivery: {mode: AUTO_GENERATED}}) { product { id } } }",
            json!({}),
        )
        .await;
    let product = Arc::new(data(&made)["createProduct"]["product"]["id"].as_str().expect("product").to_string());
    let Some(mut sub) = Subscriber::start(&reader, Some(&admin), 1, EVENTS, json!({})).await else {
        println!("node or npm is missing");
        return;
    };
    sub.until("connected", |l| l["connected"] == true).await;
    // The subscription is live once a first order's event arrives.
    place(&writer, &admin, &product, "warm-up").await;
    sub.until("the warm-up order", |l| l["next"]["data"]["events"]["data"]["externalId"] == "warm-up").await;
    sub.until_count(3, is_event).await;
    let before = sub.seen.iter().filter(|l| is_event(l)).count();

    // Throughput.
    let mut producer = Side::default();
    let started = now_ms();
    let (w, a, p) = (writer.clone(), admin.clone(), product.clone());
    load(&mut producer, CLIENTS, orders, move |i| {
        let (w, a, p) = (w.clone(), a.clone(), p.clone());
        async move { place(&w, &a, &p, &format!("load-{i}")).await }
    })
    .await;
    let written_per_second = producer.median_rate() * 3.0;
    sub.until_count(before + 3 * orders, is_event).await;
    let arrivals: Vec<f64> =
        sub.seen.iter().filter(|l| is_event(l)).skip(before).map(|l| l["at"].as_f64().unwrap_or_default()).collect();
    let last = arrivals.iter().copied().fold(f64::MIN, f64::max);
    let received_per_second = arrivals.len() as f64 / ((last - started) / 1000.0);

    // Delay, one order at a time.
    let (mut to_subscriber, mut to_answer) = (Vec::new(), Vec::new());
    for i in 0..SEQUENTIAL {
        let external = format!("one-{i}");
        let sent = now_ms();
        place(&writer, &admin, &product, &external).await;
        to_answer.push(now_ms() - sent);
        let seen = sub
            .until("the order's event", |l| {
                l["next"]["data"]["events"]["type"] == "ORDER_CREATED"
                    && l["next"]["data"]["events"]["data"]["externalId"] == external.as_str()
            })
            .await;
        to_subscriber.push(seen["at"].as_f64().unwrap_or_default() - sent);
    }
    to_subscriber.sort_by(f64::total_cmp);
    to_answer.sort_by(f64::total_cmp);
    let where_ = if backend == Backend::Postgres { "on another node" } else { "on the same node" };
    println!("{backend:?}, {orders} orders from {CLIENTS} clients, subscriber {where_}:");
    println!(
        "  events written {written_per_second:.0}/s (baseline), received {received_per_second:.0}/s, ratio {:.2}",
        received_per_second / written_per_second
    );
    println!(
        "  createOrder → its event at the subscriber: p50 {:.1} ms, p99 {:.1} ms; createOrder's answer (baseline): p50 {:.1} ms, p99 {:.1} ms",
        percentile(&to_subscriber, 0.5),
        percentile(&to_subscriber, 0.99),
        percentile(&to_answer, 0.5),
        percentile(&to_answer, 0.99),
    );
}

fn main() {
    let orders = std::env::var("KEYSMITH_BENCH_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        run(Backend::Sqlite, orders).await;
        run(Backend::Postgres, orders).await;
    });
}
