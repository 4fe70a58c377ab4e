//! The client API under load, over HTTP on SQLite and then on PostgreSQL
//! (`KEYSMITH_BENCH_BACKENDS=sqlite` for one), each figure next to a
//! baseline served by the same process through the same connection pool in
//! the same run:
//!
//! - `validateLicense` (a device checking its licence: the licence and its
//!   activations looked up) against a minimal poem handler that does the same
//!   indexed lookup of the key and answers its status;
//! - `activateLicense` (a new device on a licence: lookup, limit check,
//!   activation, status change, audit and outbox events, in one write
//!   transaction) against a minimal handler that makes the same writes in
//!   one write transaction: looks the key up, inserts the activation,
//!   updates the licence's status and device count, inserts the audit event
//!   and the outbox event.
//!
//! A third activation side measures group commit: the same writes, each
//! request's in a savepoint of a transaction that a writer task commits for
//! every request waiting at once.
//!
//! `validateLicense` is measured three ways: the same text every time (the
//! parsed document and the validation result are reused), every text new
//! (a numbered comment: parsed and validated each time), and as a persisted
//! query sent by its hash alone.
//!
//! 64 concurrent clients; sides alternate over three rounds and the median
//! round is reported, with p50/p99 latency over every request of a side.
//! Every response body is checked (a 200 carrying errors is a failure), and
//! so is "database is locked": never.
//!
//! Run: `cargo bench -p keysmith-tests --bench client`
//! (`KEYSMITH_BENCH_CALLS=6000` for a shorter run).

use entity::user::StaffRole;
use keysmith_tests::app::{config, fresh_database};
use keysmith_tests::bench::{Side, load};
use keysmith_tests::{Backend, TestApp, data};
use poem::web::{Data, Json};
use poem::{EndpointExt, Route, handler, post};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};
use std::sync::Arc;

const CLIENTS: usize = 64;
const ROUNDS: usize = 3;
const VALIDATE: &str = "mutation($k: String!) { validateLicense(input: {key: $k, fingerprint: \"device-a\"}) \
                        { valid code license { status activationsUsed } } }";
const ACTIVATE: &str = "mutation($k: String!) { activateLicense(input: {key: $k, fingerprint: \"device-a\", \
                        name: \"Bench PC\", platform: \"linux\"}) { valid code license { status activationsUsed } } }";

async fn post_json(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    let resp = http.post(url).json(body).send().await.expect("an answer");
    let status = resp.status();
    let body: Value = resp.json().await.expect("json");
    assert!(status.is_success(), "{status}: {body:#}");
    let text = body.to_string();
    assert!(!text.contains("database is locked"), "{text}");
    body
}

/// `sql` with `?` placeholders, numbered for PostgreSQL.
fn statement(backend: sea_orm::DbBackend, sql: &str, values: Vec<sea_orm::Value>) -> Statement {
    keysmith::services::sql::Sql::new(sql).push("", values).statement(backend)
}

// The baseline: the least a handler can do for the same answer.

#[derive(serde::Deserialize)]
struct KeyOnly {
    key: String,
}

#[handler]
async fn lookup(Json(input): Json<KeyOnly>, Data(db): Data<&DatabaseConnection>) -> Json<Value> {
    let found = db
        .query_one_raw(statement(
            db.get_database_backend(),
            "SELECT id, status FROM license_key WHERE environment = ? AND key = ?",
            vec!["production".into(), input.key.into()],
        ))
        .await
        .expect("lookup")
        .expect("the key");
    Json(json!({ "status": found.try_get_by_index::<String>(1).expect("status") }))
}

/// The same writes as a new device's activation, in one write transaction:
/// the licence looked up, the activation, the licence's status and device
/// count, the audit event and the outbox event.
#[handler]
async fn insert_activation(Json(input): Json<KeyOnly>, Data(db): Data<&DatabaseConnection>) -> Json<Value> {
    let txn = keysmith::db::begin_write(db).await.expect("begin");
    same_writes(&*txn, input.key).await;
    txn.commit().await.expect("commit");
    Json(json!({ "activated": true }))
}

/// A new device's writes, in `txn`.
async fn same_writes(txn: &impl ConnectionTrait, key: String) {
    let backend = txn.get_database_backend();
    let found = txn
        .query_one_raw(statement(
            backend,
            "SELECT id FROM license_key WHERE environment = ? AND key = ?",
            vec!["production".into(), key.into()],
        ))
        .await
        .expect("lookup")
        .expect("the key");
    let id: String = found.try_get_by_index(0).expect("id");
    let now = entity::now();
    let write = |sql: &str, values: Vec<sea_orm::Value>| statement(backend, sql, values);
    let activation = entity::new_id();
    txn.execute_raw(write(
        "INSERT INTO activation (id, license_key_id, fingerprint, name, platform, client_address, created_at, \
         last_seen_at, deactivated_at) VALUES (?, ?, 'device-a', 'Bench PC', 'linux', NULL, ?, ?, NULL)",
        vec![activation.clone().into(), id.clone().into(), now.into(), now.into()],
    ))
    .await
    .expect("insert");
    txn.execute_raw(write(
        "UPDATE license_key SET status = 'ACTIVE', devices_in_use = devices_in_use + 1, \
         activated_at = COALESCE(activated_at, ?), updated_at = ? WHERE id = ?",
        vec![now.into(), now.into(), id.clone().into()],
    ))
    .await
    .expect("status");
    let facts = json!({ "status": "ACTIVE", "activationId": activation, "fingerprint": "device-a" });
    txn.execute_raw(write(
        "INSERT INTO audit_event (id, environment, actor_kind, actor_id, action, target_kind, target_id, key_prefix, \
         before, after, created_at) VALUES (?, 'production', 'client', NULL, 'license.activated', 'license_key', ?, \
         NULL, NULL, ?, ?)",
        vec![entity::new_id().into(), id.clone().into(), facts.clone().into(), now.into()],
    ))
    .await
    .expect("audit");
    txn.execute_raw(write(
        "INSERT INTO event (id, environment, kind, subject_kind, subject_id, payload, created_at, dispatched_at) \
         VALUES (?, 'production', 'license.activated', 'license_key', ?, ?, ?, NULL)",
        vec![entity::new_id().into(), id.into(), facts.into(), now.into()],
    ))
    .await
    .expect("event");
}

/// Requests waiting for the group writer: a key, and where to say it is written.
type Waiting = tokio::sync::mpsc::UnboundedSender<(String, tokio::sync::oneshot::Sender<()>)>;

/// The same writes with group commit: each request's writes wait for the
/// writer, which runs every request waiting (at most 64) in one write
/// transaction, each in a savepoint of its own (one failing would roll back
/// only its own), commits once, and only then answers them all.
#[handler]
async fn grouped_activation(Json(input): Json<KeyOnly>, Data(waiting): Data<&Waiting>) -> Json<Value> {
    let (done, written) = tokio::sync::oneshot::channel();
    waiting.send((input.key, done)).expect("the group writer");
    written.await.expect("written");
    Json(json!({ "activated": true }))
}

async fn group_writer(
    db: DatabaseConnection,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<(String, tokio::sync::oneshot::Sender<()>)>,
) {
    use sea_orm::TransactionTrait;
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < 64 {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let txn = keysmith::db::begin_write(&db).await.expect("begin");
        let mut answers = Vec::with_capacity(batch.len());
        for (key, done) in batch {
            let savepoint = txn.begin().await.expect("savepoint");
            same_writes(&savepoint, key).await;
            savepoint.commit().await.expect("release");
            answers.push(done);
        }
        txn.commit().await.expect("commit");
        for done in answers {
            let _ = done.send(());
        }
    }
}

/// `n` keys delivered through one order per 1000: ASSIGNED, one activation each.
async fn delivered_keys(app: &TestApp, token: &str, prefix: &str, n: usize) -> Vec<String> {
    let keys: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:07}")).collect();
    let t = Some(token);
    let tag = app
        .graphql(
            t,
            "mutation($n: String!) { createTag(input: {name: $n}) { tag { id } } }",
            json!({ "n": prefix.to_lowercase() }),
        )
        .await;
    let tag = data(&tag)["createTag"]["tag"]["id"].as_str().expect("tag").to_string();
    let imported = app
        .graphql(
            t,
            "mutation($k: String!, $t: [ID!]!) { importLicenseKeys(input: {text: $k, tagIds: $t}) { imported } }",
            json!({ "k": keys.join("\n"), "t": [tag] }),
        )
        .await;
    assert_eq!(data(&imported)["importLicenseKeys"]["imported"].as_u64(), Some(n as u64), "{imported:#}");
    let product = app
        .graphql(
            t,
            "mutation($n: String!, $t: ID!) { createProduct(input: {name: $n, delivery: {mode: TAG, tagId: $t}}) { product { id } } }",
            json!({ "n": prefix, "t": tag }),
        )
        .await;
    let product = data(&product)["createProduct"]["product"]["id"].as_str().expect("product").to_string();
    for (o, chunk) in keys.chunks(1000).enumerate() {
        let order = app
            .graphql(
                t,
                "mutation($x: String!, $p: ID!, $q: Int!) { createOrder(input: {externalId: $x, customer: \
                 {email: \"bench@example.com\"}, lines: [{productId: $p, quantity: $q}]}) { order { status } } }",
                json!({ "x": format!("{prefix}-{o}"), "p": product, "q": chunk.len() }),
            )
            .await;
        assert_eq!(data(&order)["createOrder"]["order"]["status"], "FULFILLED", "{order:#}");
    }
    keys
}

#[tokio::main]
async fn main() {
    let calls: usize = std::env::var("KEYSMITH_BENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(30_000);
    let wanted = std::env::var("KEYSMITH_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    for (name, backend) in [("sqlite", Backend::Sqlite), ("postgres", Backend::Postgres)] {
        if wanted.split(',').any(|w| w.trim() == name) {
            run(backend, calls).await;
        }
    }
}

async fn run(backend: Backend, calls: usize) {
    let per_round = calls / ROUNDS;
    let dir = tempfile::tempdir().expect("temporary directory");
    let Some(url) = fresh_database(backend, dir.path()).await else {
        println!("{backend:?}: not available here; skipped\n");
        return;
    };
    let mut cfg = config(&url);
    // What `keysmith serve` uses by default.
    cfg.db_max_connections = 16;
    cfg.sweep_interval_seconds = 60;
    cfg.max_body_bytes = 64 * 1024 * 1024;
    let app = TestApp::spawn_with(backend, cfg, dir).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    // Measure the work, not the limits: no rate limits, no abuse rule.
    let off = app
        .graphql(
            Some(&admin),
            "mutation { updateSettings(input: {rateLimitPerKey: 0, rateLimitPerAddress: 0, abuseMaxFingerprints: 0}) \
             { settings { rateLimitPerKey } } }",
            json!({}),
        )
        .await;
    assert!(off.get("errors").is_none(), "{off:#}");

    // The baseline server: the same process, the same pool.
    let (waiting, queue) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(group_writer(app.db().clone(), queue));
    let baseline = Route::new()
        .at("/validate", post(lookup))
        .at("/activate", post(insert_activation))
        .at("/activate-grouped", post(grouped_activation.data(waiting)))
        .data(app.db().clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).expect("acceptor");
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(baseline));

    let activations = per_round.min(4000);
    println!(
        "{backend:?}, {CLIENTS} concurrent clients over HTTP; {ROUNDS} alternating rounds of {per_round} validations \
         and {activations} activations per side; median round\n"
    );
    // Keys for activation: one set per round and side, every key activated once.
    let mut api_act = Side::default();
    let mut base_act = Side::default();
    let mut grouped_act = Side::default();
    let mut activated = Vec::new();
    for round in 0..ROUNDS {
        let theirs = Arc::new(delivered_keys(&app, &admin, &format!("BASE{round}"), activations).await);
        let grouped = Arc::new(delivered_keys(&app, &admin, &format!("GROUP{round}"), activations).await);
        let (http, url) = (app.http.clone(), format!("{base}/activate-grouped"));
        load(&mut grouped_act, CLIENTS, activations, move |i| {
            let (http, url, keys) = (http.clone(), url.clone(), grouped.clone());
            async move {
                let body = post_json(&http, &url, &json!({ "key": keys[i] })).await;
                assert_eq!(body["activated"], true, "{body:#}");
            }
        })
        .await;
        let ours = Arc::new(delivered_keys(&app, &admin, &format!("API{round}"), activations).await);
        let (http, url) = (app.http.clone(), format!("{base}/activate"));
        load(&mut base_act, CLIENTS, activations, move |i| {
            let (http, url, keys) = (http.clone(), url.clone(), theirs.clone());
            async move {
                let body = post_json(&http, &url, &json!({ "key": keys[i] })).await;
                assert_eq!(body["activated"], true, "{body:#}");
            }
        })
        .await;
        let (http, url) = (app.http.clone(), app.url("/graphql"));
        let keys = ours.clone();
        load(&mut api_act, CLIENTS, activations, move |i| {
            let (http, url, keys) = (http.clone(), url.clone(), keys.clone());
            async move {
                let body = post_json(&http, &url, &json!({ "query": ACTIVATE, "variables": { "k": keys[i] } })).await;
                let answer = &data(&body)["activateLicense"];
                assert_eq!(
                    (answer["code"].as_str(), answer["license"]["status"].as_str()),
                    (Some("VALID"), Some("ACTIVE")),
                    "{body:#}"
                );
            }
        })
        .await;
        activated.extend(ours.iter().cloned());
    }

    // The activations' outbox events are dispatched off the request path:
    // validations are measured once that is done, on a checkpointed file.
    keysmith_tests::until("the activations' events dispatched", || async {
        let waiting = app
            .db()
            .query_one_raw(Statement::from_string(
                app.db().get_database_backend(),
                "SELECT COUNT(*) FROM event WHERE dispatched_at IS NULL",
            ))
            .await
            .expect("count")
            .and_then(|row| row.try_get_by_index::<i64>(0).ok())
            .unwrap_or(-1);
        (waiting == 0).then_some(())
    })
    .await;
    if backend == Backend::Sqlite {
        app.db().execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)").await.expect("checkpoint");
    }

    eprintln!("activations measured; measuring validations");
    // Validations of activated devices, keys chosen round-robin.
    let keys = Arc::new(activated);
    let mut api_val = Side::default();
    let mut fresh_val = Side::default();
    let mut hashed_val = Side::default();
    let mut base_val = Side::default();
    // The floor: a GraphQL request that reads nothing, through the same endpoint.
    let mut floor = Side::default();
    // The persisted query: registered once, then sent by its hash alone.
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(VALIDATE.as_bytes()));
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let registered = post_json(
        &app.http,
        &app.url("/graphql"),
        &json!({ "query": VALIDATE, "variables": { "k": keys[0] }, "extensions": persisted }),
    )
    .await;
    assert_eq!(data(&registered)["validateLicense"]["code"], "VALID", "{registered:#}");
    let validated = |body: &Value| {
        let answer = &data(body)["validateLicense"];
        assert_eq!((answer["code"].as_str(), answer["valid"].as_bool()), (Some("VALID"), Some(true)), "{body:#}");
    };
    for _ in 0..ROUNDS {
        let (http, url, k) = (app.http.clone(), format!("{base}/validate"), keys.clone());
        load(&mut base_val, CLIENTS, per_round, move |i| {
            let (http, url, k) = (http.clone(), url.clone(), k.clone());
            async move {
                let body = post_json(&http, &url, &json!({ "key": k[i % k.len()] })).await;
                assert_eq!(body["status"], "ACTIVE", "{body:#}");
            }
        })
        .await;
        let (http, url, k) = (app.http.clone(), app.url("/graphql"), keys.clone());
        load(&mut api_val, CLIENTS, per_round, move |i| {
            let (http, url, k) = (http.clone(), url.clone(), k.clone());
            async move {
                let body =
                    post_json(&http, &url, &json!({ "query": VALIDATE, "variables": { "k": k[i % k.len()] } })).await;
                validated(&body);
            }
        })
        .await;
        // Every text new (a numbered comment): parsed and validated each time.
        let (http, url, k) = (app.http.clone(), app.url("/graphql"), keys.clone());
        load(&mut fresh_val, CLIENTS, per_round, move |i| {
            let (http, url, k) = (http.clone(), url.clone(), k.clone());
            async move {
                let text = format!("{VALIDATE}\n# {i}");
                let body =
                    post_json(&http, &url, &json!({ "query": text, "variables": { "k": k[i % k.len()] } })).await;
                validated(&body);
            }
        })
        .await;
        let (http, url, k, persisted) = (app.http.clone(), app.url("/graphql"), keys.clone(), persisted.clone());
        load(&mut hashed_val, CLIENTS, per_round, move |i| {
            let (http, url, k, persisted) = (http.clone(), url.clone(), k.clone(), persisted.clone());
            async move {
                let mut request = json!({ "variables": { "k": k[i % k.len()] }, "extensions": persisted });
                let mut body = post_json(&http, &url, &request).await;
                // As a client does when the node has let the document go: send the text once.
                if body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND" {
                    request["query"] = json!(VALIDATE);
                    body = post_json(&http, &url, &request).await;
                }
                validated(&body);
            }
        })
        .await;
        let (http, url) = (app.http.clone(), app.url("/graphql"));
        load(&mut floor, CLIENTS, per_round, move |_| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let body = post_json(&http, &url, &json!({ "query": "{ __typename }" })).await;
                assert_eq!(data(&body)["__typename"], "Query", "{body:#}");
            }
        })
        .await;
    }

    println!(
        "| operation | Keysmith (GraphQL) | p50 | p99 | minimal handler (baseline) | p50 | p99 | throughput ratio | p99 ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let copy = |s: &Side| Side {
        rates: s.rates.clone(),
        latencies: s.latencies.clone(),
        cpu: s.cpu.clone(),
        switches: s.switches.clone(),
    };
    let (mut base_val2, mut base_val3, mut base_val4) = (copy(&base_val), copy(&base_val), copy(&base_val));
    let mut base_act2 = copy(&base_act);
    for (name, api, base) in [
        ("validateLicense", &mut api_val, &mut base_val),
        ("validateLicense, every text new (nothing cached)", &mut fresh_val, &mut base_val2),
        ("validateLicense, persisted query (hash only)", &mut hashed_val, &mut base_val3),
        ("`{ __typename }`: GraphQL reading nothing (the floor)", &mut floor, &mut base_val4),
        ("activateLicense", &mut api_act, &mut base_act),
        ("the same writes with group commit, against one transaction each", &mut grouped_act, &mut base_act2),
    ] {
        let (a50, a99, b50, b99) =
            (api.percentile(0.5), api.percentile(0.99), base.percentile(0.5), base.percentile(0.99));
        println!(
            "| {name} | {:.0}/s | {:.2} ms | {:.2} ms | {:.0}/s | {:.2} ms | {:.2} ms | {:.2} | {:.2} |",
            api.median_rate(),
            a50.as_secs_f64() * 1e3,
            a99.as_secs_f64() * 1e3,
            base.median_rate(),
            b50.as_secs_f64() * 1e3,
            b99.as_secs_f64() * 1e3,
            api.median_rate() / base.median_rate(),
            a99.as_secs_f64() / b99.as_secs_f64(),
        );
    }
    let rounds = |s: &Side| s.rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
    let cpu = |s: &Side| s.cpu.iter().map(|c| format!("{}", c.as_micros())).collect::<Vec<_>>().join(", ");
    eprintln!(
        "CPU per request (µs, clients and server): validate API [{}] uncached [{}] persisted [{}] floor [{}] baseline [{}]; activate API [{}] baseline [{}] grouped [{}]",
        cpu(&api_val),
        cpu(&fresh_val),
        cpu(&hashed_val),
        cpu(&floor),
        cpu(&base_val),
        cpu(&api_act),
        cpu(&base_act),
        cpu(&grouped_act)
    );
    let switches = |s: &Side| s.switches.iter().map(|c| format!("{c:.1}")).collect::<Vec<_>>().join(", ");
    eprintln!(
        "context switches per request: validate API [{}] uncached [{}] persisted [{}] floor [{}] baseline [{}]; activate API [{}] baseline [{}] grouped [{}]",
        switches(&api_val),
        switches(&fresh_val),
        switches(&hashed_val),
        switches(&floor),
        switches(&base_val),
        switches(&api_act),
        switches(&base_act),
        switches(&grouped_act)
    );
    eprintln!(
        "rounds (per second): validate API [{}] uncached [{}] persisted [{}] floor [{}] baseline [{}]; activate API [{}] baseline [{}] grouped [{}]",
        rounds(&api_val),
        rounds(&fresh_val),
        rounds(&hashed_val),
        rounds(&floor),
        rounds(&base_val),
        rounds(&api_act),
        rounds(&base_act),
        rounds(&grouped_act)
    );
    app.stop().await;
}
