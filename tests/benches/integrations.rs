//! Orders straight from a shop: 64 concurrent clients delivering signed
//! Stripe `checkout.session.completed` events to an integration's inbound
//! address (verified, recorded once, an order placed, in one transaction),
//! against the baseline in the same run and database — the same one-unit
//! orders placed through `createOrder`, as a seller's own glue code would —
//! in rounds alternating between the two (each side going first in turn,
//! each round on keys imported just before it), on SQLite and on PostgreSQL.
//! Reports deliveries and orders per second (median round), p50/p99, their
//! ratio, and keys delivered twice (must be 0).
//!
//! Run: `cargo bench -p keysmith-tests --bench integrations`
//! (`KEYSMITH_BENCH_ORDERS=1000` a round for a shorter run,
//! `KEYSMITH_BENCH_ROUNDS=5` for more rounds, `KEYSMITH_BENCH_BACKENDS=postgres`
//! for one database).

use entity::user::StaffRole;
use hmac::{Hmac, Mac};
use keysmith_tests::app::{config, fresh_database};
use keysmith_tests::{Backend, TestApp, data};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CLIENTS: usize = 64;
const SECRET: &str = "whsec_bench_0123456789abcdef0123456789";
const ORDER: &str = "mutation($x: String!, $e: String!, $p: ID!) { createOrder(input: {externalId: $x, \
                     customer: {email: $e}, lines: [{productId: $p, quantity: 1}]}) { order { status } } }";

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// One request of a round: a signed delivery, or the same order through the API.
#[derive(Clone)]
struct Target {
    http: reqwest::Client,
    graphql: String,
    inbound: String,
    token: String,
    product: String,
}

impl Target {
    async fn deliver(&self, id: &str) {
        let body = json!({ "id": format!("evt_{id}"), "object": "event", "type": "checkout.session.completed",
            "livemode": true, "data": { "object": { "id": format!("cs_{id}"), "mode": "payment", "payment_status": "paid",
            "customer_details": { "email": format!("{id}@example.com") }, "metadata": { "keysmith_items": "price_bench" } } } })
        .to_string();
        let t = chrono::Utc::now().timestamp();
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("a key");
        mac.update(format!("{t}.{body}").as_bytes());
        let signature = hex::encode(mac.finalize().into_bytes());
        let answer: Value = self
            .http
            .post(&self.inbound)
            .header("Stripe-Signature", format!("t={t},v1={signature}"))
            .body(body)
            .send()
            .await
            .expect("an answer")
            .json()
            .await
            .expect("json");
        assert_eq!(answer["outcome"], "PROCESSED", "{answer}");
    }

    async fn order(&self, id: &str) {
        let body: Value = self
            .http
            .post(&self.graphql)
            .bearer_auth(&self.token)
            .json(&json!({ "query": ORDER, "variables": { "x": format!("cs_{id}"), "e": format!("{id}@example.com"), "p": self.product } }))
            .send()
            .await
            .expect("an answer")
            .json()
            .await
            .expect("json");
        assert_eq!(body["data"]["createOrder"]["order"]["status"], "FULFILLED", "{body:#}");
    }
}

/// `n` requests from 64 clients: requests per second and each latency.
async fn round(target: &Target, delivering: bool, prefix: &str, n: usize) -> (f64, Vec<Duration>) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (target, next, prefix) = (target.clone(), next.clone(), prefix.to_string());
        clients.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return latencies;
                }
                let t = Instant::now();
                let id = format!("{prefix}-{i}");
                if delivering {
                    target.deliver(&id).await
                } else {
                    target.order(&id).await
                }
                latencies.push(t.elapsed());
            }
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = clients.join_next().await {
        latencies.extend(done.expect("a client"));
    }
    (latencies.len() as f64 / started.elapsed().as_secs_f64(), latencies)
}

async fn import(app: &TestApp, token: &str, tag: &str, prefix: &str, n: usize) {
    let keys: String = (0..n).map(|i| format!("{prefix}-{i:09}\n")).collect();
    let imported = app
        .graphql(
            Some(token),
            "mutation($k: String!, $t: [ID!]!) { importLicenseKeys(input: {text: $k, tagIds: $t}) { imported } }",
            json!({ "k": keys, "t": [tag] }),
        )
        .await;
    assert_eq!(data(&imported)["importLicenseKeys"]["imported"].as_u64(), Some(n as u64), "{imported:#}");
}

struct Measured {
    /// (deliveries/s, orders/s) per round pair.
    rounds: Vec<(f64, f64)>,
    deliveries: Vec<Duration>,
    orders: Vec<Duration>,
    doubles: i64,
}

async fn run(backend: Backend, n: usize, rounds: usize) -> Option<Measured> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = fresh_database(backend, dir.path()).await?;
    let mut cfg = config(&url);
    cfg.db_max_connections = 16;
    cfg.sweep_interval_seconds = 60;
    cfg.max_body_bytes = 64 * 1024 * 1024;
    let app = TestApp::spawn_with(backend, cfg, dir).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let tag =
        app.graphql(Some(&admin), "mutation { createTag(input: {name: \"bench\"}) { tag { id } } }", json!({})).await;
    let tag = data(&tag)["createTag"]["tag"]["id"].as_str().expect("tag").to_string();
    import(&app, &admin, &tag, "WARM", 2 * CLIENTS).await;
    let product = app
        .graphql(
            Some(&admin),
            "mutation($t: ID!) { createProduct(input: {name: \"Bench\", delivery: {mode: TAG, tagId: $t}}) { product { id } } }",
            json!({ "t": tag }),
        )
        .await;
    let product = data(&product)["createProduct"]["product"]["id"].as_str().expect("product").to_string();
    let integration = app
        .graphql(
            Some(&admin),
            "mutation($s: String!, $p: ID!) { createIntegration(input: {provider: STRIPE, name: \"Bench\", secret: $s, \
             emailCustomer: false, rateLimitPerMinute: 100000, productMappings: [{providerRef: \"price_bench\", productId: $p}]}) \
             { integration { id } } }",
            json!({ "s": SECRET, "p": product }),
        )
        .await;
    let integration = data(&integration)["createIntegration"]["integration"]["id"].as_str().expect("id").to_string();
    let target = Target {
        http: app.http.clone(),
        graphql: app.url("/graphql"),
        inbound: app.url(&format!("/integrations/{integration}/webhook")),
        token: app.staff_token(StaffRole::Manager).await,
        product,
    };
    // Warm both paths' connections.
    round(&target, true, "warm-d", CLIENTS).await;
    round(&target, false, "warm-o", CLIENTS).await;
    let mut measured = Measured { rounds: Vec::new(), deliveries: Vec::new(), orders: Vec::new(), doubles: 0 };
    for r in 0..rounds {
        // Each round's keys arrive just before it (the claim takes the oldest
        // available key, and walks past what earlier claims left behind), and
        // the two sides take turns going first.
        import(&app, &admin, &tag, &format!("R{r}"), 2 * n).await;
        let ((delivered, mut d), (ordered, mut o)) = if r % 2 == 0 {
            let d = round(&target, true, &format!("d{r}"), n).await;
            (d, round(&target, false, &format!("o{r}"), n).await)
        } else {
            let o = round(&target, false, &format!("o{r}"), n).await;
            (round(&target, true, &format!("d{r}"), n).await, o)
        };
        measured.rounds.push((delivered, ordered));
        measured.deliveries.append(&mut d);
        measured.orders.append(&mut o);
    }
    measured.deliveries.sort();
    measured.orders.sort();
    let db = app.db();
    let sql = "SELECT COUNT(*) - COUNT(DISTINCT key) FROM license_key WHERE status <> 'AVAILABLE'";
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("query");
    measured.doubles = row.expect("a row").try_get_by_index::<i64>(0).expect("a number");
    app.stop().await;
    Some(measured)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("KEYSMITH_BENCH_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000);
    let rounds: usize = std::env::var("KEYSMITH_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    println!(
        "{rounds} rounds of {n} signed deliveries and {n} createOrder calls, taking turns, {CLIENTS} concurrent clients\n"
    );
    println!(
        "| database | deliveries/s | p50 | p99 | createOrder/s | p50 | p99 | deliveries / createOrder (median of rounds) | doubles |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let wanted = std::env::var("KEYSMITH_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    for (name, backend) in [("sqlite", Backend::Sqlite), ("postgres", Backend::Postgres)] {
        if !wanted.split(',').any(|w| w.trim() == name) {
            continue;
        }
        let Some(m) = run(backend, n, rounds).await else {
            eprintln!("{backend:?} unavailable: skipped");
            continue;
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {backend:?} | {:.0} | {:.1} ms | {:.1} ms | {:.0} | {:.1} ms | {:.1} ms | {:.2} | {} |",
            median(m.rounds.iter().map(|r| r.0).collect()),
            ms(percentile(&m.deliveries, 0.5)),
            ms(percentile(&m.deliveries, 0.99)),
            median(m.rounds.iter().map(|r| r.1).collect()),
            ms(percentile(&m.orders, 0.5)),
            ms(percentile(&m.orders, 0.99)),
            median(m.rounds.iter().map(|(d, o)| d / o).collect()),
            m.doubles,
        );
        let each: Vec<String> = m.rounds.iter().map(|(d, o)| format!("{d:.0} vs {o:.0}")).collect();
        eprintln!("{backend:?} rounds: {}", each.join(", "));
        assert_eq!(m.doubles, 0, "a key was delivered twice");
    }
}
