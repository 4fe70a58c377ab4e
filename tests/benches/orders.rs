//! Order throughput: 64 concurrent clients each placing one-unit orders
//! through the whole API (HTTP, GraphQL, ORM) against a pool of keys, on
//! SQLite and on PostgreSQL: orders per second, p50/p99 latency, and the
//! number of keys delivered twice (counted in the responses and in the
//! database; must be 0). On PostgreSQL the baseline, in the same run and the
//! same database, is the claim statement alone — the same `UPDATE … FOR
//! UPDATE SKIP LOCKED` the server runs — driven by `pgbench` with 64 clients
//! against a second pool of the same size.
//!
//! Run: `cargo bench -p keysmith-tests --bench orders`
//! (`KEYSMITH_BENCH_ORDERS=2000` for a shorter run; needs `pgbench` for the baseline).

use entity::user::StaffRole;
use keysmith_tests::app::{config, fresh_database};
use keysmith_tests::{Backend, TestApp, data};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CLIENTS: usize = 64;
const ORDER: &str = "mutation($x: String!, $e: String!, $p: ID!) { createOrder(input: {externalId: $x, \
                     customer: {email: $e}, lines: [{productId: $p, quantity: 1}]}) \
                     { order { status lines { keys { key } } } } }";

struct Measured {
    orders: usize,
    wall: Duration,
    latencies: Vec<Duration>,
    doubles_in_responses: usize,
    doubles_in_database: i64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn pool(app: &TestApp, token: &str, name: &str, n: usize) -> String {
    let t = Some(token);
    let tag = app
        .graphql(t, "mutation($n: String!) { createTag(input: {name: $n}) { tag { id } } }", json!({ "n": name }))
        .await;
    let tag = data(&tag)["createTag"]["tag"]["id"].as_str().expect("tag").to_string();
    let keys: String = (0..n).map(|i| format!("{}-{i:08}\n", name.to_uppercase())).collect();
    let imported = app
        .graphql(
            t,
            "mutation($k: String!, $t: [ID!]!) { importLicenseKeys(input: {text: $k, tagIds: $t}) { imported } }",
            json!({ "k": keys, "t": [tag] }),
        )
        .await;
    assert_eq!(data(&imported)["importLicenseKeys"]["imported"].as_u64(), Some(n as u64));
    tag
}

async fn run(backend: Backend, orders: usize) -> Option<(Measured, Option<(f64, String, String)>)> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = fresh_database(backend, dir.path()).await?;
    let mut cfg = config(&url);
    // What `keysmith serve` uses by default.
    cfg.db_max_connections = 16;
    cfg.sweep_interval_seconds = 60;
    cfg.max_body_bytes = 64 * 1024 * 1024;
    let app = TestApp::spawn_with(backend, cfg, dir).await;
    let token = app.staff_token(StaffRole::Manager).await;
    let tag = pool(&app, &token, "bench", orders).await;
    let product = app
        .graphql(
            Some(&token),
            "mutation($t: ID!) { createProduct(input: {name: \"Bench\", delivery: {mode: TAG, tagId: $t}}) { product { id } } }",
            json!({ "t": tag }),
        )
        .await;
    let product = data(&product)["createProduct"]["product"]["id"].as_str().expect("product").to_string();

    // Warm up the connections, then race.
    for i in 0..CLIENTS {
        place(&app.http, &app.url("/graphql"), &token, &product, &format!("warm-{i}")).await;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (http, url, token, product, next) =
            (app.http.clone(), app.url("/graphql"), token.clone(), product.clone(), next.clone());
        clients.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= orders - CLIENTS {
                    return mine;
                }
                let t = Instant::now();
                let keys = place(&http, &url, &token, &product, &format!("o-{i}")).await;
                mine.push((t.elapsed(), keys));
            }
        });
    }
    let mut latencies = Vec::new();
    let mut seen = HashSet::new();
    let mut doubles_in_responses = 0;
    while let Some(done) = clients.join_next().await {
        for (latency, keys) in done.expect("a client") {
            latencies.push(latency);
            for key in keys {
                if !seen.insert(key) {
                    doubles_in_responses += 1;
                }
            }
        }
    }
    let wall = started.elapsed();
    latencies.sort();
    let doubles_in_database =
        scalar(&app, "SELECT COUNT(*) - COUNT(DISTINCT key) FROM license_key WHERE status <> 'AVAILABLE'").await;
    let measured = Measured { orders: latencies.len(), wall, latencies, doubles_in_responses, doubles_in_database };

    let baseline = if backend == Backend::Postgres { pgbench(&app, &token, orders).await } else { None };
    app.stop().await;
    Some((measured, baseline))
}

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    let db = app.db();
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_string()))
        .await
        .expect("query")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("a number")
}

/// The claim statement alone, 64 pgbench clients, against a second pool of
/// the same size: (transactions per second, statement, pgbench's summary).
async fn pgbench(app: &TestApp, token: &str, orders: usize) -> Option<(f64, String, String)> {
    let bin = std::path::Path::new("/usr/lib/postgresql/15/bin/pgbench");
    if !bin.exists() {
        eprintln!("pgbench not found at {}: no baseline", bin.display());
        return None;
    }
    let tag = pool(app, token, "baseline", orders).await;
    let product = app
        .graphql(Some(token), "mutation { createProduct(input: {name: \"Baseline\"}) { product { id } } }", json!({}))
        .await;
    let product = data(&product)["createProduct"]["product"]["id"].as_str().expect("product").to_string();
    assert_eq!(app.db().get_database_backend(), DbBackend::Postgres);
    // The statement `claim_key` in api/src/services/fulfilment/sql.rs builds, with literals for its parameters.
    let statement = format!(
        "UPDATE license_key SET status = 'ASSIGNED', product_id = '{product}', customer_id = NULL, \
         order_line_id = NULL, assigned_at = now(), updated_at = now() WHERE id = (SELECT k.id FROM license_key k \
         WHERE k.environment = 'production' AND k.status = 'AVAILABLE' AND EXISTS (SELECT 1 FROM license_key_tag lt \
         WHERE lt.license_key_id = k.id AND lt.tag_id = '{tag}') AND (k.product_id IS NULL OR k.product_id = '{product}') \
         AND (k.expires_at IS NULL OR k.expires_at > now()) AND NOT EXISTS (SELECT 1 FROM license_key d \
         WHERE d.environment = k.environment AND d.key = k.key AND d.status <> 'AVAILABLE') \
         ORDER BY k.created_at, k.id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id;"
    );
    let script = tempfile::NamedTempFile::new().expect("script");
    std::fs::write(script.path(), &statement).expect("write the script");
    let per_client = (orders - CLIENTS) / CLIENTS;
    let out = Command::new(bin)
        .args(["-n", "-M", "prepared", "-c", &CLIENTS.to_string(), "-j", "2", "-t", &per_client.to_string(), "-f"])
        .arg(script.path())
        .arg(&app.database_url)
        .output()
        .expect("run pgbench");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "pgbench failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps ="))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|t| t.parse::<f64>().ok())
        .expect("tps in pgbench's output");
    let claimed = scalar(app, &format!("SELECT COUNT(*) FROM license_key WHERE product_id = '{product}'")).await;
    assert_eq!(claimed as usize, per_client * CLIENTS, "pgbench claimed one key per transaction");
    Some((tps, statement, text))
}

async fn place(http: &reqwest::Client, url: &str, token: &str, product: &str, external: &str) -> Vec<String> {
    let body: Value = http
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": ORDER, "variables": { "x": external, "e": format!("{external}@example.com"), "p": product } }))
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("json");
    assert!(body.get("errors").is_none(), "an order failed: {body:#}");
    let placed = &body["data"]["createOrder"]["order"];
    assert_eq!(placed["status"], "FULFILLED", "the pool covers every order: {body:#}");
    placed["lines"][0]["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["key"].as_str().expect("key").to_string())
        .collect()
}

#[tokio::main]
async fn main() {
    let orders: usize = std::env::var("KEYSMITH_BENCH_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    println!("{orders} one-unit orders, {CLIENTS} concurrent clients, a pool of {orders} keys\n");
    println!("| database | orders/s (API) | p50 | p99 | doubles | claim statement alone (pgbench) | API / pgbench |");
    println!("|---|---|---|---|---|---|---|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some((m, baseline)) = run(backend, orders).await else {
            eprintln!("{backend:?} unavailable: skipped");
            continue;
        };
        let rate = m.orders as f64 / m.wall.as_secs_f64();
        let (p50, p99) = (percentile(&m.latencies, 0.5), percentile(&m.latencies, 0.99));
        let (base, ratio) = match &baseline {
            Some((tps, _, _)) => (format!("{tps:.0} claims/s"), format!("{:.2}", rate / tps)),
            None => ("—".into(), "—".into()),
        };
        println!(
            "| {backend:?} | {rate:.0} | {:.1} ms | {:.1} ms | {} in responses, {} in the database | {base} | {ratio} |",
            p50.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0,
            m.doubles_in_responses,
            m.doubles_in_database,
        );
        assert_eq!(m.doubles_in_responses + m.doubles_in_database as usize, 0, "a key was delivered twice");
        if let Some((_, statement, text)) = baseline {
            eprintln!("pgbench ran:\n{statement}\n{text}");
        }
    }
}
