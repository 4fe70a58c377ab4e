//! The admin portal's licences page under load, over HTTP on SQLite, over a
//! pool of 1,000,000 keys, next to a baseline served by the same process in
//! the same run: the very GraphQL operation the page runs (the `QUERY` of
//! portal/src/admin/licenses.rs, copied below as `LICENSES_QUERY`), with the
//! same variables, sent to `/graphql` with the same staff session's token as a
//! bearer token. What the page adds is the cookie and CSRF middleware, turning
//! the answer into rows and choices, and rendering the template. The issue
//! asks for page throughput at least 0.8× the operation's; this reports the
//! ratio and asserts no time.
//!
//! The pool: N keys (`KEYSMITH_BENCH_KEYS`, 1,000,000 by default), written
//! straight to the database in multi-row INSERTs (the search index kept by its
//! triggers, as for any insert). One key in 5 is delivered, 5 to a customer,
//! each customer's keys to one of 3 products, every other one active; the
//! customers' emails are at 10 companies. The view: search `northwind` (a
//! company, so a customer email fragment; no key can hold it), one product,
//! status ACTIVE, newest first — 50 rows of about 4,000 at a million keys.
//!
//! 16 concurrent clients; the sides alternate over five rounds, taking turns
//! to go first, and the median round is reported, with p50/p99 over every
//! request of a side. Every page and every answer is checked, and before
//! anything is timed one of each is checked in full: the same 50 keys, in the
//! same order, all of the view.
//!
//! Run: `cargo bench -p keysmith-tests --bench admin`
//! (`KEYSMITH_BENCH_KEYS=100000 KEYSMITH_BENCH_CALLS=500` for a shorter run;
//! 20,000 keys at least, or the view holds less than a page).

use entity::user::StaffRole;
use keysmith_tests::app::{TEST_PASSWORD, config, fresh_database};
use keysmith_tests::bench::{Side, load};
use keysmith_tests::{Backend, TestApp, data};
use portal::admin::SESSION_COOKIE;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

const CLIENTS: usize = 16;
const ROUNDS: usize = 5;

/// The operation the licences page runs, the portal's own constant.
use portal::admin::LICENSES_QUERY;
/// How the sign-in form signs in (`LOGIN` in portal/src/admin/pages.rs): a staff session.
const LOGIN: &str = "mutation($email: String!, $password: String!) { \
                     login(input: {email: $email, password: $password, session: true}) { token } }";

/// Rows a page shows (`PAGE_SIZE` in portal/src/admin/licenses.rs).
const PAGE: usize = 50;
/// Each page row's key cell, in portal/templates/admin/licenses.html.
const KEY_CELL: &str = "<td class=\"key\">";

const PRODUCTS: [&str; 3] = ["Bench Studio", "Bench Cloud", "Bench Mobile"];
/// Where the customers' emails are (`user000042@northwind.example`).
const COMPANIES: [&str; 10] = [
    "northwind",
    "contoso",
    "fabrikam",
    "tailspin",
    "litware",
    "adatum",
    "proseware",
    "wingtip",
    "woodgrove",
    "fourthcoffee",
];
/// One key in this many is delivered; the rest wait in the pool.
const DELIVERED_EVERY: usize = 5;
const KEYS_PER_CUSTOMER: usize = 5;

/// The view measured: search, product (an index into `PRODUCTS`) and status.
const SEARCH: &str = "northwind";
const PRODUCT: usize = 0;
const STATUS: &str = "ACTIVE";

/// Rows a statement and a transaction when seeding.
const BATCH: usize = 500;
const PER_TRANSACTION: usize = 50_000;
const DAY: usize = 86_400;

const KEY_INSERT: &str = "INSERT INTO license_key (id, environment, key, product_id, source, status, customer_id, \
                          activation_limit, feature_flags, metadata, created_at, updated_at, assigned_at, \
                          activated_at) VALUES";

/// Deterministic keys like `7KQ2M-XH3PA-0C9ZD-R4T1B`: the pools bench's, one at a time.
struct Keys(u64);

impl Keys {
    fn new() -> Self {
        Self(0x9E37_79B9_7F4A_7C15)
    }
}

impl Iterator for Keys {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut key = String::with_capacity(23);
        for group in 0..4 {
            if group > 0 {
                key.push('-');
            }
            for _ in 0..5 {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                key.push(ALPHABET[(self.0 % 32) as usize] as char);
            }
        }
        Some(key)
    }
}

/// `seconds` after the first key was uploaded (1 January 2025), written as
/// Keysmith writes its own times: RFC 3339 with microseconds.
fn at(seconds: usize) -> String {
    let start = chrono::DateTime::from_timestamp(1_735_689_600, 123_457_000).expect("a time");
    (start + chrono::Duration::seconds(seconds as i64)).to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

/// Key `i`, when it was delivered: (its customer, its product as an index
/// into `PRODUCTS`, its status). Keys are uploaded one a second.
fn delivered_as(i: usize) -> Option<(usize, usize, &'static str)> {
    if !i.is_multiple_of(DELIVERED_EVERY) {
        return None;
    }
    let d = i / DELIVERED_EVERY;
    let customer = d / KEYS_PER_CUSTOMER;
    let status = if d.is_multiple_of(2) { "ACTIVE" } else { "ASSIGNED" };
    Some((customer, customer % PRODUCTS.len(), status))
}

fn company(customer: usize) -> &'static str {
    COMPANIES[customer % COMPANIES.len()]
}

/// Runs `insert` (`INSERT INTO … VALUES`) over `rows`, each a parenthesised
/// tuple of SQL literals: `BATCH` rows a statement and `PER_TRANSACTION` a
/// transaction, rather than a statement and a round trip a row.
async fn insert_all(db: &DatabaseConnection, insert: &str, rows: impl Iterator<Item = String>) {
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        let txn = keysmith::db::begin_write(db).await.expect("a write transaction");
        let mut written = 0;
        while written < PER_TRANSACTION && rows.peek().is_some() {
            let batch: Vec<String> = rows.by_ref().take(BATCH).collect();
            written += batch.len();
            txn.execute_unprepared(&format!("{insert} {}", batch.join(", "))).await.expect("insert a batch of rows");
        }
        txn.commit().await.expect("commit the rows");
    }
}

/// What was seeded, and what the view should show of it.
struct Pool {
    /// Product ids, in `PRODUCTS`' order.
    products: Vec<String>,
    customers: usize,
    delivered: usize,
    /// Licences the view matches (the page's total).
    total: usize,
    /// The newest of them: the first row.
    newest: String,
}

/// The products through the API, then the customers and `n` keys straight
/// into the database.
async fn seed(app: &TestApp, admin: &str, n: usize) -> Pool {
    let mut products = Vec::new();
    for name in PRODUCTS {
        let body = app
            .graphql(
                Some(admin),
                "mutation($n: String!) { createProduct(input: {name: $n}) { product { id } } }",
                json!({ "n": name }),
            )
            .await;
        products.push(data(&body)["createProduct"]["product"]["id"].as_str().expect("a product").to_string());
    }
    let delivered = n.div_ceil(DELIVERED_EVERY);
    let customers = delivered.div_ceil(KEYS_PER_CUSTOMER);
    eprintln!("seeding {customers} customers and {n} keys …");
    let started = Instant::now();
    let created = at(0);
    insert_all(
        app.db(),
        "INSERT INTO customer (id, environment, email, name, created_at, updated_at) VALUES",
        (0..customers).map(|c| {
            format!(
                "('C{c:025}','production','user{c:06}@{}.example','Customer {c}','{created}','{created}')",
                company(c)
            )
        }),
    )
    .await;
    let (mut total, mut newest) = (0, String::new());
    let rows = Keys::new().take(n).enumerate().map(|(i, key)| {
        let created = at(i);
        let Some((customer, product, status)) = delivered_as(i) else {
            return format!(
                "('K{i:025}','production','{key}',NULL,'UPLOADED','AVAILABLE',NULL,1,'{{}}','{{}}',\
                 '{created}','{created}',NULL,NULL)"
            );
        };
        if company(customer) == SEARCH && product == PRODUCT && status == STATUS {
            total += 1;
            newest = key.clone();
        }
        let assigned = at(i + DAY);
        let activated = if status == "ACTIVE" { format!("'{assigned}'") } else { "NULL".to_string() };
        format!(
            "('K{i:025}','production','{key}','{}','UPLOADED','{status}','C{customer:025}',1,'{{}}','{{}}',\
             '{created}','{assigned}','{assigned}',{activated})",
            products[product]
        )
    });
    insert_all(app.db(), KEY_INSERT, rows).await;
    eprintln!("seeded in {:.0} s", started.elapsed().as_secs_f64());
    Pool { products, customers, delivered, total, newest }
}

/// A staff session for the account `admin` belongs to, opened as the
/// sign-in form opens one: its token, for the cookie and as a bearer token.
async fn open_session(app: &TestApp, admin: &str) -> String {
    let me = app.graphql(Some(admin), "{ me { user { email } } }", json!({})).await;
    let email = data(&me)["me"]["user"]["email"].as_str().expect("email").to_string();
    let login = app.graphql(None, LOGIN, json!({ "email": email, "password": TEST_PASSWORD })).await;
    data(&login)["login"]["token"].as_str().expect("a session token").to_string()
}

/// The keys a licences page lists, in order: the `<code>` of each row's key cell.
fn listed(html: &str) -> Vec<&str> {
    html.split(KEY_CELL)
        .skip(1)
        .filter_map(|row| row.split_once("<code>").and_then(|(_, rest)| rest.split_once("</code>")))
        .map(|(key, _)| key)
        .collect()
}

/// The operation posted to `/graphql` with the session's token: a full page of `total`.
async fn operation(http: &reqwest::Client, url: &str, session: &str, request: &Value, total: usize) -> Value {
    let resp = http.post(url).bearer_auth(session).json(request).send().await.expect("an answer");
    let answer: Value = resp.json().await.expect("JSON");
    let list = &data(&answer)["licenseKeys"];
    assert_eq!(list["edges"].as_array().map(Vec::len), Some(PAGE), "a full page: {answer:#}");
    assert_eq!(list["totalCount"].as_u64(), Some(total as u64), "{answer:#}");
    answer
}

/// The licences page with the session's cookie: a full page of `total`.
async fn page(http: &reqwest::Client, url: &str, session: &str, total: usize) -> String {
    let resp = http.get(url).header("cookie", format!("{SESSION_COOKIE}={session}")).send().await.expect("an answer");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.url().path(), "/admin/licenses", "signed in, not sent to the sign-in form");
    let html = resp.text().await.expect("the page");
    assert_eq!(listed(&html).len(), PAGE, "a full page: {html}");
    assert!(html.contains(&format!("<strong>{total}</strong>")), "the total: {html}");
    html
}

async fn operation_round(
    side: &mut Side,
    app: &TestApp,
    session: &Arc<String>,
    request: &Arc<Value>,
    total: usize,
    calls: usize,
) {
    let (http, url, token, body) = (app.http.clone(), app.url("/graphql"), session.clone(), request.clone());
    load(side, CLIENTS, calls, move |_| {
        let (http, url, session, request) = (http.clone(), url.clone(), token.clone(), body.clone());
        async move {
            operation(&http, &url, &session, &request, total).await;
        }
    })
    .await;
}

async fn page_round(side: &mut Side, app: &TestApp, url: &str, session: &Arc<String>, total: usize, calls: usize) {
    let (http, url, token) = (app.http.clone(), url.to_string(), session.clone());
    load(side, CLIENTS, calls, move |_| {
        let (http, url, session) = (http.clone(), url.clone(), token.clone());
        async move {
            page(&http, &url, &session, total).await;
        }
    })
    .await;
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("KEYSMITH_BENCH_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let calls: usize = std::env::var("KEYSMITH_BENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let per_round = (calls / ROUNDS).max(1);
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = fresh_database(Backend::Sqlite, dir.path()).await.expect("SQLite");
    let mut cfg = config(&url);
    // What `keysmith serve` uses by default.
    cfg.db_max_connections = 16;
    cfg.sweep_interval_seconds = 60;
    let app = TestApp::spawn_with(Backend::Sqlite, cfg, dir).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let pool = seed(&app, &admin, n).await;
    assert!(
        pool.total >= PAGE,
        "{n} keys leave {} licences in the view, less than a page: use KEYSMITH_BENCH_KEYS=20000 or more",
        pool.total
    );
    // Signed in after seeding, so the session is fresh when the rounds start.
    let session = Arc::new(open_session(&app, &admin).await);
    let product = &pool.products[PRODUCT];
    let request = Arc::new(json!({
        "query": LICENSES_QUERY,
        // What the page sends for this address (no `sort`: newest first).
        "variables": {
            "first": PAGE,
            "after": null,
            "filter": { "search": SEARCH, "productId": product, "status": STATUS },
            "orderBy": { "field": "CREATED_AT", "direction": "DESC" },
        },
    }));
    let graphql_url = app.url("/graphql");
    let page_url = app.url(&format!("/admin/licenses?q={SEARCH}&product={product}&status={STATUS}"));

    // One of each, checked in full before anything is timed: every row of the
    // view, newest first, and the page listing the operation's rows in its order.
    let answer = operation(&app.http, &graphql_url, &session, &request, pool.total).await;
    assert_eq!(answer["data"]["me"]["role"], "ADMIN", "the session's token works as a bearer token");
    let edges = answer["data"]["licenseKeys"]["edges"].as_array().expect("edges");
    for edge in edges {
        let node = &edge["node"];
        assert_eq!(node["status"], STATUS, "{node}");
        assert_eq!(node["product"]["name"], PRODUCTS[PRODUCT], "{node}");
        assert!(node["customer"]["email"].as_str().is_some_and(|e| e.contains(SEARCH)), "{node}");
    }
    let keys: Vec<&str> = edges.iter().map(|e| e["node"]["key"].as_str().expect("a key")).collect();
    assert_eq!(keys[0], pool.newest, "newest first");
    let html = page(&app.http, &page_url, &session, pool.total).await;
    assert_eq!(listed(&html), keys, "the page lists the operation's rows, in its order");

    println!(
        "SQLite, {CLIENTS} concurrent clients over HTTP; {ROUNDS} alternating rounds of {per_round} requests per \
         side; {n} keys, {} delivered to {} customers over {} products; the view (search \"{SEARCH}\", one \
         product, status {STATUS}) matches {} licences, {PAGE} a page; median round\n",
        pool.delivered,
        pool.customers,
        PRODUCTS.len(),
        pool.total
    );
    let mut pages = Side::default();
    let mut operations = Side::default();
    for round in 0..ROUNDS {
        // The sides take turns going first, so neither always follows the other.
        for page_turn in [round % 2 == 1, round % 2 == 0] {
            if page_turn {
                page_round(&mut pages, &app, &page_url, &session, pool.total, per_round).await;
            } else {
                operation_round(&mut operations, &app, &session, &request, pool.total, per_round).await;
            }
        }
    }

    println!("| request | per second | p50 | p99 |");
    println!("|---|---|---|---|");
    let (o50, o99, p50, p99) =
        (operations.percentile(0.5), operations.percentile(0.99), pages.percentile(0.5), pages.percentile(0.99));
    for (name, side, l50, l99) in [
        ("licences operation over `/graphql` (baseline)", &operations, o50, o99),
        ("`GET /admin/licenses?q=…&product=…&status=…` (licences page)", &pages, p50, p99),
    ] {
        println!(
            "| {name} | {:.0}/s | {:.2} ms | {:.2} ms |",
            side.median_rate(),
            l50.as_secs_f64() * 1e3,
            l99.as_secs_f64() * 1e3
        );
    }
    let ratios: Vec<f64> = pages.rates.iter().zip(&operations.rates).map(|(p, o)| p / o).collect();
    println!(
        "\nthroughput ratio (page / operation): {:.2}, median of the rounds' ratios {:.2}; p50 ratio {:.2}; \
         p99 ratio {:.2}",
        pages.median_rate() / operations.median_rate(),
        median(ratios.clone()),
        p50.as_secs_f64() / o50.as_secs_f64(),
        p99.as_secs_f64() / o99.as_secs_f64()
    );
    let rounds = |s: &Side| s.rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
    let ratios = ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", ");
    eprintln!(
        "rounds (per second): operation [{}] page [{}]; page / operation [{ratios}]",
        rounds(&operations),
        rounds(&pages)
    );
    app.stop().await;
}
