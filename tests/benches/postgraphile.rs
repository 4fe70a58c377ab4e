//! Staff reads against PostGraphile 4, the GraphQL API a team gets for free
//! over the same tables: both servers on the same PostgreSQL database with
//! the same data, the same questions asked of each, every answer checked.
//!
//! - the list: the newest 100 licences with their product, customer, tags,
//!   devices and order;
//! - one licence by id with its product.
//!
//! The data: `KEYSMITH_BENCH_LICENCES` licences (20,000 by default), five a
//! customer, one order (one line) a customer, over three products; every
//! licence carries one or two of five tags, and about a third are active on
//! a device. Keysmith answers with an admin's bearer token (its
//! authorisation and environments apply); PostGraphile with no
//! authentication, as it runs out of the box.
//!
//! PostGraphile 4 (pinned below) is installed from npm into
//! `target/postgraphile` when it is not there yet; it runs as its own node
//! process. Not part of CI.
//!
//! 16 concurrent clients; the sides alternate over five rounds, taking turns
//! to go first; the median round is reported with p50/p99 over every request
//! of a side, and the CPU time per request of each server (Keysmith's is this
//! process's, clients included; PostGraphile's its own process's).
//!
//! Run: `cargo bench -p keysmith-tests --bench postgraphile`
//! (`KEYSMITH_BENCH_CALLS=1000` for a shorter run).

use entity::user::StaffRole;
use keysmith_tests::app::{config, fresh_database};
use keysmith_tests::bench::{Side, cpu_of, load};
use keysmith_tests::{Backend, TestApp};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

const CLIENTS: usize = 16;
const ROUNDS: usize = 5;
const POSTGRAPHILE: &str = "postgraphile@4.14.1";
const PAGE: usize = 100;

const KEYSMITH_LIST: &str = "query($n: Int) { licenseKeys(first: $n) { edges { node { id key status \
                             product { name } customer { email } tags { name } activations { fingerprint } \
                             order { externalId } } } } }";
const POSTGRAPHILE_LIST: &str = "query($n: Int) { allLicenseKeys(first: $n, orderBy: [CREATED_AT_DESC, ID_DESC], \
                                 condition: {environment: \"production\"}) { nodes { id key status \
                                 productByProductId { name } customerByCustomerId { email } \
                                 licenseKeyTagsByLicenseKeyId { nodes { tagByTagId { name } } } \
                                 activationsByLicenseKeyId { nodes { fingerprint } } \
                                 orderLineByOrderLineId { orderByOrderId { externalId } } } } }";
const KEYSMITH_ONE: &str = "query($id: ID!) { licenseKey(id: $id) { id key status product { name } } }";
const POSTGRAPHILE_ONE: &str =
    "query($id: String!) { licenseKeyById(id: $id) { id key status productByProductId { name } } }";

/// What both servers must answer about a licence, in a form both give.
#[derive(Debug, PartialEq, Eq)]
struct Row {
    id: String,
    key: String,
    status: String,
    product: String,
    customer: String,
    tags: Vec<String>,
    devices: Vec<String>,
    order: String,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn keysmith_rows(body: &Value) -> Vec<Row> {
    let edges = body["data"]["licenseKeys"]["edges"].as_array().unwrap_or_else(|| panic!("Keysmith: {body:#}"));
    edges
        .iter()
        .map(|e| {
            let n = &e["node"];
            let list = |field: &str, inner: &str| {
                n[field].as_array().map(|a| a.iter().map(|x| text(&x[inner])).collect()).unwrap_or_default()
            };
            Row {
                id: text(&n["id"]),
                key: text(&n["key"]),
                status: text(&n["status"]),
                product: text(&n["product"]["name"]),
                customer: text(&n["customer"]["email"]),
                tags: sorted(list("tags", "name")),
                devices: sorted(list("activations", "fingerprint")),
                order: text(&n["order"]["externalId"]),
            }
        })
        .collect()
}

fn postgraphile_rows(body: &Value) -> Vec<Row> {
    let nodes = body["data"]["allLicenseKeys"]["nodes"].as_array().unwrap_or_else(|| panic!("PostGraphile: {body:#}"));
    nodes
        .iter()
        .map(|n| {
            let list = |field: &str, path: &[&str]| {
                n[field]["nodes"]
                    .as_array()
                    .map(|a| a.iter().map(|x| text(path.iter().fold(x, |v, p| &v[*p]))).collect())
                    .unwrap_or_default()
            };
            Row {
                id: text(&n["id"]),
                key: text(&n["key"]),
                status: text(&n["status"]),
                product: text(&n["productByProductId"]["name"]),
                customer: text(&n["customerByCustomerId"]["email"]),
                tags: sorted(list("licenseKeyTagsByLicenseKeyId", &["tagByTagId", "name"])),
                devices: sorted(list("activationsByLicenseKeyId", &["fingerprint"])),
                order: text(&n["orderLineByOrderLineId"]["orderByOrderId"]["externalId"]),
            }
        })
        .collect()
}

/// The seed, in PostgreSQL's own terms: every row of every table at once.
fn seed_sql(licences: usize) -> Vec<String> {
    let customers = licences.div_ceil(5);
    let id = |prefix: char, expr: &str| format!("'{prefix}' || lpad(({expr})::text, 25, '0')");
    let at = |expr: &str| format!("timestamptz '2025-01-01 00:00:00+00' + ({expr}) * interval '1 second'");
    vec![
        format!(
            "INSERT INTO product (id, environment, name, description, status, delivery_mode, delivery_tag_id, \
             generator_id, key_button_text, unavailable_message, requires_fingerprint, created_at, updated_at) \
             SELECT {}, 'production', 'Bench product ' || i, '', 'ACTIVE', 'NO_TAG', NULL, NULL, 'Licence Key', \
             'soon', false, now(), now() FROM generate_series(0, 2) i",
            id('P', "i")
        ),
        format!(
            "INSERT INTO tag (id, environment, name, created_at) SELECT {}, 'production', 'bench-tag-' || i, now() \
             FROM generate_series(0, 4) i",
            id('T', "i")
        ),
        format!(
            "INSERT INTO customer (id, environment, email, name, created_at, updated_at) SELECT {}, 'production', \
             'buyer' || i || '@example.com', 'Buyer ' || i, now(), now() FROM generate_series(0, {}) i",
            id('C', "i"),
            customers - 1
        ),
        format!(
            "INSERT INTO orders (id, environment, external_id, customer_id, status, created_at, updated_at, \
             refunded_at) SELECT {}, 'production', 'BENCH-ORDER-' || i, {}, 'FULFILLED', {}, {}, NULL \
             FROM generate_series(0, {}) i",
            id('O', "i"),
            id('C', "i"),
            at("i * 5"),
            at("i * 5"),
            customers - 1
        ),
        format!(
            "INSERT INTO order_line (id, order_id, product_id, quantity, missing, created_at) SELECT {}, {}, {}, 5, 0, \
             {} FROM generate_series(0, {}) i",
            id('L', "i"),
            id('O', "i"),
            id('P', "i % 3"),
            at("i * 5"),
            customers - 1
        ),
        format!(
            "INSERT INTO license_key (id, environment, key, product_id, source, generator_id, status, customer_id, \
             order_line_id, activation_limit, expires_at, feature_flags, metadata, created_at, updated_at, \
             assigned_at, activated_at, revealed_at, revoked_at, devices_in_use) SELECT {}, 'production', \
             'BENCH-' || lpad(i::text, 10, '0'), {}, 'UPLOADED', NULL, CASE WHEN i % 3 = 0 THEN 'ACTIVE' ELSE \
             'ASSIGNED' END, {}, {}, 3, NULL, '{{}}', '{{}}', {}, {}, {}, CASE WHEN i % 3 = 0 THEN {} END, NULL, NULL, \
             CASE WHEN i % 3 = 0 THEN 1 ELSE 0 END FROM generate_series(0, {}) i",
            id('K', "i"),
            id('P', "(i / 5) % 3"),
            id('C', "i / 5"),
            id('L', "i / 5"),
            at("i"),
            at("i"),
            at("i"),
            at("i"),
            licences - 1
        ),
        format!(
            "INSERT INTO license_key_tag (license_key_id, tag_id) SELECT {}, {} FROM generate_series(0, {}) i \
             UNION ALL SELECT {}, {} FROM generate_series(0, {}) i WHERE i % 2 = 0",
            id('K', "i"),
            id('T', "i % 5"),
            licences - 1,
            id('K', "i"),
            id('T', "(i + 1) % 5"),
            licences - 1
        ),
        format!(
            "INSERT INTO activation (id, license_key_id, fingerprint, name, platform, client_address, created_at, \
             last_seen_at, deactivated_at) SELECT {}, {}, 'device-' || i, 'PC ' || i, 'linux', NULL, {}, {}, NULL \
             FROM generate_series(0, {}) i WHERE i % 3 = 0",
            id('A', "i"),
            id('K', "i"),
            at("i"),
            at("i"),
            licences - 1
        ),
        "ANALYZE".to_string(),
    ]
}

/// PostGraphile's command, installed into `target/postgraphile` when missing.
fn postgraphile() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/postgraphile");
    let bin = dir.join("node_modules/.bin/postgraphile");
    if !bin.exists() {
        std::fs::create_dir_all(&dir).expect("target/postgraphile");
        eprintln!("installing {POSTGRAPHILE} from npm into {}", dir.display());
        let installed = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--no-save", POSTGRAPHILE])
            .current_dir(&dir)
            .status()
            .expect("npm (Node.js) is needed for this benchmark");
        assert!(installed.success() && bin.exists(), "npm could not install {POSTGRAPHILE}");
    }
    bin
}

/// A PostGraphile process over `url`, ended when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn post(http: &reqwest::Client, url: &str, token: Option<&str>, body: &Value) -> Value {
    let mut request = http.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let resp = request.send().await.expect("an answer");
    let status = resp.status();
    let body: Value = resp.json().await.expect("JSON");
    assert!(status.is_success() && body.get("errors").is_none(), "{status}: {body:#}");
    body
}

#[tokio::main]
async fn main() {
    let licences: usize =
        std::env::var("KEYSMITH_BENCH_LICENCES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000).max(PAGE);
    let calls: usize = std::env::var("KEYSMITH_BENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let per_round = (calls / ROUNDS).max(1);
    let bin = postgraphile();
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = fresh_database(Backend::Postgres, dir.path()).await.expect("PostgreSQL (initdb and pg_ctl)");
    let mut cfg = config(&url);
    cfg.db_max_connections = 16;
    cfg.sweep_interval_seconds = 60;
    let app = TestApp::spawn_with(Backend::Postgres, cfg, dir).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    for statement in seed_sql(licences) {
        app.db().execute_unprepared(&statement).await.expect("seed");
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("port").port();
    let child = Command::new(&bin)
        .args(["-c", &url, "-s", "public", "-n", "127.0.0.1", "-p", &port.to_string()])
        .args(["--disable-query-log", "--disable-graphiql", "--dynamic-json"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start PostGraphile");
    let pid = child.id().to_string();
    let _postgraphile = Server(child);
    let theirs = format!("http://127.0.0.1:{port}/graphql");
    let ours = app.url("/graphql");
    keysmith_tests::until("PostGraphile to answer", || async {
        let sent = app.http.post(&theirs).json(&json!({ "query": "{ __typename }" })).send().await;
        sent.ok().filter(|r| r.status().is_success()).map(|_| ())
    })
    .await;

    // The same answers from both, in full, before anything is timed.
    let list = |q: &str| json!({ "query": q, "variables": { "n": PAGE } });
    let (our_list, their_list) = (list(KEYSMITH_LIST), list(POSTGRAPHILE_LIST));
    let expected = keysmith_rows(&post(&app.http, &ours, Some(&admin), &our_list).await);
    assert_eq!(expected.len(), PAGE);
    assert_eq!(postgraphile_rows(&post(&app.http, &theirs, None, &their_list).await), expected, "the same page");
    assert!(expected.iter().any(|r| !r.devices.is_empty() && r.tags.len() == 2), "every nested field is filled");
    let one = &expected[PAGE / 2];
    let (our_one, their_one) = (
        json!({ "query": KEYSMITH_ONE, "variables": { "id": one.id } }),
        json!({ "query": POSTGRAPHILE_ONE, "variables": { "id": one.id } }),
    );
    let one_of = |body: &Value, root: &str, product: &str| {
        let l = &body["data"][root];
        (text(&l["id"]), text(&l["key"]), text(&l["status"]), text(&l[product]["name"]))
    };
    let wanted = (one.id.clone(), one.key.clone(), one.status.clone(), one.product.clone());
    assert_eq!(one_of(&post(&app.http, &ours, Some(&admin), &our_one).await, "licenseKey", "product"), wanted);
    assert_eq!(
        one_of(&post(&app.http, &theirs, None, &their_one).await, "licenseKeyById", "productByProductId"),
        wanted
    );

    println!(
        "PostgreSQL, {licences} licences; {CLIENTS} concurrent clients over HTTP; {ROUNDS} alternating rounds of \
         {per_round} requests per side; median round\n"
    );
    println!(
        "| request | Keysmith | p50 | p99 | CPU/request | PostGraphile 4 | p50 | p99 | CPU/request | Keysmith / PostGraphile |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let expected = Arc::new(expected);
    let wanted = Arc::new(wanted);
    for (name, ours_body, theirs_body) in [
        ("list of 100 with every nested field", &our_list, &their_list),
        ("one licence with its product", &our_one, &their_one),
    ] {
        let (mut keysmith, mut them) = (Side::default(), Side::default());
        let mut their_cpu = Vec::new();
        let is_list = ours_body == &our_list;
        for round in 0..ROUNDS {
            for side in [round % 2, 1 - round % 2] {
                let http = app.http.clone();
                let (expected, wanted) = (expected.clone(), wanted.clone());
                if side == 0 {
                    let (url, token, body) = (ours.clone(), admin.clone(), ours_body.clone());
                    load(&mut keysmith, CLIENTS, per_round, move |_| {
                        let (http, url, token, body) = (http.clone(), url.clone(), token.clone(), body.clone());
                        let (expected, wanted) = (expected.clone(), wanted.clone());
                        async move {
                            let answer = post(&http, &url, Some(&token), &body).await;
                            if is_list {
                                assert!(keysmith_rows(&answer) == *expected, "Keysmith's page changed");
                            } else {
                                assert!(one_of(&answer, "licenseKey", "product") == *wanted, "{answer:#}");
                            }
                        }
                    })
                    .await;
                } else {
                    let (url, body) = (theirs.clone(), theirs_body.clone());
                    let before = cpu_of(&pid);
                    load(&mut them, CLIENTS, per_round, move |_| {
                        let (http, url, body) = (http.clone(), url.clone(), body.clone());
                        let (expected, wanted) = (expected.clone(), wanted.clone());
                        async move {
                            let answer = post(&http, &url, None, &body).await;
                            if is_list {
                                assert!(postgraphile_rows(&answer) == *expected, "PostGraphile's page changed");
                            } else {
                                assert!(one_of(&answer, "licenseKeyById", "productByProductId") == *wanted);
                            }
                        }
                    })
                    .await;
                    their_cpu.push(cpu_of(&pid).saturating_sub(before) / per_round as u32);
                }
            }
        }
        their_cpu.sort();
        let mut our_cpu = keysmith.cpu.clone();
        our_cpu.sort();
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        let (k50, k99, t50, t99) =
            (keysmith.percentile(0.5), keysmith.percentile(0.99), them.percentile(0.5), them.percentile(0.99));
        println!(
            "| {name} | {:.0}/s | {:.2} ms | {:.2} ms | {} µs | {:.0}/s | {:.2} ms | {:.2} ms | {} µs | {:.2} |",
            keysmith.median_rate(),
            ms(k50),
            ms(k99),
            our_cpu[ROUNDS / 2].as_micros(),
            them.median_rate(),
            ms(t50),
            ms(t99),
            their_cpu[ROUNDS / 2].as_micros(),
            keysmith.median_rate() / them.median_rate(),
        );
        let rounds = |s: &Side| s.rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
        eprintln!("{name}: rounds (per second) Keysmith [{}] PostGraphile [{}]", rounds(&keysmith), rounds(&them));
    }
    app.stop().await;
}
