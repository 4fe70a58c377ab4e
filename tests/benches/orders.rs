//! Order throughput: 64 concurrent clients each placing one-unit orders
//! through the whole API (HTTP, GraphQL, ORM) against a pool of keys, on
//! SQLite and on PostgreSQL: orders per second, p50/p99 latency, and the
//! number of keys delivered twice (counted in the responses and in the
//! database; must be 0). On PostgreSQL the baseline, in the same run and the
//! same database, is the claim statement alone — the same `UPDATE … FOR
//! UPDATE SKIP LOCKED` the server runs — driven by `pgbench` with 64 clients
//! against a second pool, in rounds alternating with the API's.
//!
//! Run: `cargo bench -p keysmith-tests --bench orders`
//! (`KEYSMITH_BENCH_ORDERS=2000` orders a round for a shorter run,
//! `KEYSMITH_BENCH_ROUNDS=5` for more rounds, `KEYSMITH_BENCH_BACKENDS=postgres`
//! for one database; needs `pgbench` for the baseline).

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
    /// Each round's orders per second, and on PostgreSQL pgbench's claims per second.
    rounds: Vec<(f64, Option<f64>)>,
    latencies: Vec<Duration>,
    /// Statements the node ran per order while they ran, background work included.
    statements: f64,
    doubles_in_responses: usize,
    doubles_in_database: i64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn tag(app: &TestApp, token: &str, name: &str) -> String {
    let tag = app
        .graphql(
            Some(token),
            "mutation($n: String!) { createTag(input: {name: $n}) { tag { id } } }",
            json!({ "n": name }),
        )
        .await;
    data(&tag)["createTag"]["tag"]["id"].as_str().expect("tag").to_string()
}

/// Adds `n` new keys named `prefix-…` to the pool `tag`. Each round's keys
/// are imported just before it, so that neither side's claims walk past the
/// other's keys still waiting (the claim takes the oldest available key).
async fn import(app: &TestApp, token: &str, tag: &str, prefix: &str, n: usize) {
    let keys: String = (0..n).map(|i| format!("{prefix}-{i:08}\n")).collect();
    let imported = app
        .graphql(
            Some(token),
            "mutation($k: String!, $t: [ID!]!) { importLicenseKeys(input: {text: $k, tagIds: $t}) { imported } }",
            json!({ "k": keys, "t": [tag] }),
        )
        .await;
    assert_eq!(data(&imported)["importLicenseKeys"]["imported"].as_u64(), Some(n as u64), "{imported:#}");
}

async fn run(backend: Backend, orders: usize, rounds: usize) -> Option<(Measured, Option<String>)> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = fresh_database(backend, dir.path()).await?;
    let mut cfg = config(&url);
    // What `keysmith serve` uses by default.
    cfg.db_max_connections = 16;
    cfg.sweep_interval_seconds = 60;
    cfg.max_body_bytes = 64 * 1024 * 1024;
    let app = TestApp::spawn_with(backend, cfg, dir).await;
    let token = app.staff_token(StaffRole::Manager).await;
    let tag = tag(&app, &token, "bench").await;
    import(&app, &token, &tag, "WARM", CLIENTS).await;
    let product = app
        .graphql(
            Some(&token),
            "mutation($t: ID!) { createProduct(input: {name: \"Bench\", delivery: {mode: TAG, tagId: $t}}) { product { id } } }",
            json!({ "t": tag }),
        )
        .await;
    let product = data(&product)["createProduct"]["product"]["id"].as_str().expect("product").to_string();
    let mut baseline = if backend == Backend::Postgres { Baseline::new(&app, &token).await } else { None };

    // Warm up the connections, then race, alternating with the baseline.
    for i in 0..CLIENTS {
        place(&app.http, &app.url("/graphql"), &token, &product, &format!("warm-{i}")).await;
    }
    let mut measured = Measured {
        rounds: Vec::new(),
        latencies: Vec::new(),
        statements: 0.0,
        doubles_in_responses: 0,
        doubles_in_database: 0,
    };
    let mut seen = HashSet::new();
    let mut statements = 0;
    for round in 0..rounds {
        import(&app, &token, &tag, &format!("BENCH-{round}"), orders).await;
        let next = Arc::new(AtomicUsize::new(0));
        let statements_before = app.state.statements.load(Ordering::Relaxed);
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
                    let keys = place(&http, &url, &token, &product, &format!("r{round}-o-{i}")).await;
                    mine.push((t.elapsed(), keys));
                }
            });
        }
        let mut placed = 0;
        while let Some(done) = clients.join_next().await {
            for (latency, keys) in done.expect("a client") {
                placed += 1;
                measured.latencies.push(latency);
                for key in keys {
                    if !seen.insert(key) {
                        measured.doubles_in_responses += 1;
                    }
                }
            }
        }
        let rate = placed as f64 / started.elapsed().as_secs_f64();
        statements += app.state.statements.load(Ordering::Relaxed) - statements_before;
        let claims = match &mut baseline {
            Some(b) => Some(b.round(&app, &token, round, orders).await),
            None => None,
        };
        measured.rounds.push((rate, claims));
    }
    measured.latencies.sort();
    measured.statements = statements as f64 / measured.latencies.len() as f64;
    measured.doubles_in_database =
        scalar(&app, "SELECT COUNT(*) - COUNT(DISTINCT key) FROM license_key WHERE status <> 'AVAILABLE'").await;
    if let Some(b) = &baseline {
        let claimed =
            scalar(&app, &format!("SELECT COUNT(*) FROM license_key WHERE product_id = '{}'", b.product)).await;
        assert_eq!(claimed as usize, b.claimed, "pgbench claimed one key per transaction");
    }
    app.stop().await;
    Some((measured, baseline.map(|b| b.statement)))
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

/// The claim statement alone, 64 pgbench clients, against a second pool:
/// the same statement the server runs, with literals for its parameters.
struct Baseline {
    bin: std::path::PathBuf,
    tag: String,
    product: String,
    statement: String,
    /// Keys pgbench has claimed so far.
    claimed: usize,
}

impl Baseline {
    async fn new(app: &TestApp, token: &str) -> Option<Self> {
        let bin = std::path::PathBuf::from("/usr/lib/postgresql/15/bin/pgbench");
        if !bin.exists() {
            eprintln!("pgbench not found at {}: no baseline", bin.display());
            return None;
        }
        let tag = tag(app, token, "baseline").await;
        let product = app
            .graphql(
                Some(token),
                "mutation { createProduct(input: {name: \"Baseline\"}) { product { id } } }",
                json!({}),
            )
            .await;
        let product = data(&product)["createProduct"]["product"]["id"].as_str().expect("product").to_string();
        assert_eq!(app.db().get_database_backend(), DbBackend::Postgres);
        // The statement `claim_key` in api/src/services/fulfilment/sql.rs builds.
        let statement = format!(
            "UPDATE license_key SET status = 'ASSIGNED', product_id = '{product}', customer_id = NULL, \
             order_line_id = NULL, assigned_at = now(), updated_at = now() WHERE id = (SELECT k.id FROM license_key k \
             WHERE k.environment = 'production' AND k.status = 'AVAILABLE' AND EXISTS (SELECT 1 FROM license_key_tag lt \
             WHERE lt.license_key_id = k.id AND lt.tag_id = '{tag}') AND (k.product_id IS NULL OR k.product_id = '{product}') \
             AND (k.expires_at IS NULL OR k.expires_at > now()) AND NOT EXISTS (SELECT 1 FROM license_key d \
             WHERE d.environment = k.environment AND d.key = k.key AND d.status <> 'AVAILABLE') \
             ORDER BY k.created_at, k.id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id;"
        );
        Some(Self { bin, tag, product, statement, claimed: 0 })
    }

    /// One round of about `claims` claims from keys imported for it:
    /// pgbench's transactions per second.
    async fn round(&mut self, app: &TestApp, token: &str, round: usize, claims: usize) -> f64 {
        import(app, token, &self.tag, &format!("BASELINE-{round}"), claims).await;
        let script = tempfile::NamedTempFile::new().expect("script");
        std::fs::write(script.path(), &self.statement).expect("write the script");
        let per_client = (claims - CLIENTS) / CLIENTS;
        let out = Command::new(&self.bin)
            .args(["-n", "-M", "prepared", "-c", &CLIENTS.to_string(), "-j", "2", "-t", &per_client.to_string(), "-f"])
            .arg(script.path())
            .arg(&app.database_url)
            .output()
            .expect("run pgbench");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "pgbench failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
        self.claimed += per_client * CLIENTS;
        text.lines()
            .find(|l| l.starts_with("tps ="))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|t| t.parse::<f64>().ok())
            .expect("tps in pgbench's output")
    }
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
    let orders: usize = std::env::var("KEYSMITH_BENCH_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000);
    let rounds: usize = std::env::var("KEYSMITH_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    println!(
        "{rounds} rounds of {orders} one-unit orders, {CLIENTS} concurrent clients, each round alternating with the baseline's\n"
    );
    println!(
        "| database | orders/s (API, median round) | p50 | p99 | statements per order | doubles | claim statement alone (pgbench, median round) | API / pgbench (median of rounds) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let wanted = std::env::var("KEYSMITH_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    for (name, backend) in [("sqlite", Backend::Sqlite), ("postgres", Backend::Postgres)] {
        if !wanted.split(',').any(|w| w.trim() == name) {
            continue;
        }
        let Some((m, statement)) = run(backend, orders, rounds).await else {
            eprintln!("{backend:?} unavailable: skipped");
            continue;
        };
        let rate = median(m.rounds.iter().map(|r| r.0).collect());
        let (p50, p99) = (percentile(&m.latencies, 0.5), percentile(&m.latencies, 0.99));
        let claims: Vec<(f64, f64)> = m.rounds.iter().filter_map(|&(r, c)| c.map(|c| (r, c))).collect();
        let (base, ratio) = if claims.is_empty() {
            ("—".into(), "—".into())
        } else {
            let tps = median(claims.iter().map(|c| c.1).collect());
            let ratio = median(claims.iter().map(|(r, c)| r / c).collect());
            (format!("{tps:.0} claims/s"), format!("{ratio:.2}"))
        };
        println!(
            "| {backend:?} | {rate:.0} | {:.1} ms | {:.1} ms | {:.1} | {} in responses, {} in the database | {base} | {ratio} |",
            p50.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0,
            m.statements,
            m.doubles_in_responses,
            m.doubles_in_database,
        );
        let each: Vec<String> = m
            .rounds
            .iter()
            .map(|(r, c)| match c {
                Some(c) => format!("{r:.0} vs {c:.0}"),
                None => format!("{r:.0}"),
            })
            .collect();
        eprintln!("{backend:?} rounds: {}", each.join(", "));
        assert_eq!(m.doubles_in_responses + m.doubles_in_database as usize, 0, "a key was delivered twice");
        if let Some(statement) = statement {
            eprintln!("pgbench ran:\n{statement}");
        }
    }
}
