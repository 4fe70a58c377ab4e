//! Webhooks against real receivers on loopback: signed deliveries, retries
//! with one event id, private and special-purpose targets refused unless
//! allowed, a receiver that hangs holding up no other, and a webhook that
//! survives the server being killed right after the order.

use crate::cli::{Served, create_admin, keysmith};
use entity::user::StaffRole;
use hmac::{Hmac, Mac};
use keysmith_tests::app::{config, fresh_database};
use keysmith_tests::{Backend, TestApp, data, error_code, error_field, on_both_databases};
use poem::web::Data;
use poem::{EndpointExt, Request, Route, handler, post};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a receiver got: (headers, body) per request.
type Received = Arc<Mutex<Vec<(Vec<(String, String)>, Vec<u8>)>>>;

#[derive(Clone)]
struct Receiver {
    received: Received,
    /// Requests answered 500 before the first 200.
    failures: usize,
}

#[handler]
async fn receive(req: &Request, body: poem::Body, Data(r): Data<&Receiver>) -> poem::Response {
    let headers =
        req.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string())).collect();
    let body = body.into_vec().await.unwrap_or_default();
    let count = {
        let mut got = r.received.lock().expect("lock");
        got.push((headers, body));
        got.len()
    };
    let status = if count <= r.failures { 500 } else { 200 };
    poem::Response::builder().status(poem::http::StatusCode::from_u16(status).expect("status")).body("thanks")
}

/// A receiver on `listener`, answering 500 `failures` times, then 200.
fn start_receiver(listener: tokio::net::TcpListener, failures: usize) -> Received {
    let received: Received = Arc::default();
    let app = Route::new().at("/hook", post(receive)).data(Receiver { received: received.clone(), failures });
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).expect("acceptor");
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    received
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).unwrap_or_default()
}

/// Checks `Keysmith-Signature` the way the README tells receivers to.
fn signed(secret: &str, headers: &[(String, String)], body: &[u8]) -> bool {
    let value = header(headers, "keysmith-signature");
    let (Some(t), Some(v1)) =
        (value.split(',').find_map(|p| p.strip_prefix("t=")), value.split(',').find_map(|p| p.strip_prefix("v1=")))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::decode(v1).is_ok_and(|sig| mac.verify_slice(&sig).is_ok())
}

const CREATE: &str = "mutation($u: String!, $e: [String!]!) { createWebhookEndpoint(input: {url: $u, events: $e}) \
                      { endpoint { id url events enabled } secret } }";
const ORDER: &str = "mutation($x: String!, $p: ID!) { createOrder(input: {externalId: $x, customer: {email: \
                     \"hooked@example.com\"}, lines: [{productId: $p, quantity: 1}]}) { order { id status } } }";

async fn product(base: &str, token: &str) -> Value {
    let body: Value = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": "mutation { createProduct(input: {name: \"Hooked\"}) { product { id } } }" }))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    data(&body)["createProduct"]["product"]["id"].clone()
}

async fn wait_for(received: &Received, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while received.lock().expect("lock").len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} requests arrived", received.lock().expect("lock").len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

on_both_databases!(a_failing_receiver_gets_retries_with_one_event_id_and_valid_signatures);

async fn a_failing_receiver_gets_retries_with_one_event_id_and_valid_signatures(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let received = start_receiver(listener, 3);
    let body = app.graphql(Some(&admin), CREATE, json!({ "u": url, "e": ["order.created", "license.revoked"] })).await;
    let secret = data(&body)["createWebhookEndpoint"]["secret"].as_str().expect("the secret, once").to_string();
    assert!(secret.starts_with("whsec_") && secret.len() > 40);
    let endpoint = data(&body)["createWebhookEndpoint"]["endpoint"]["id"].clone();
    let listed = app.graphql(Some(&admin), "{ webhookEndpoints { edges { node { url events } } } }", json!({})).await;
    assert!(!listed.to_string().contains(&secret), "the secret is not shown again");

    let product = product(&app.base_url, &admin).await;
    let order = app.graphql(Some(&admin), ORDER, json!({ "x": "hooked-1", "p": product })).await;
    let order_id = data(&order)["createOrder"]["order"]["id"].clone();

    // Three failures, then success: four attempts (retries 1, 2 and 4 s apart in tests).
    wait_for(&received, 4, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = received.lock().expect("lock").clone();
    assert_eq!(got.len(), 4, "no attempt after the success");
    let event_id = header(&got[0].0, "keysmith-event-id").to_string();
    assert!(!event_id.is_empty());
    for (headers, body) in &got {
        assert_eq!(header(headers, "keysmith-event-id"), event_id, "one event id across retries");
        assert_eq!(header(headers, "keysmith-event-type"), "order.created");
        assert!(signed(&secret, headers, body), "a valid signature on every attempt");
        assert!(!signed("whsec_another", headers, body));
        assert_eq!(body, &got[0].1, "the same body every time");
    }
    let sent: Value = serde_json::from_slice(&got[0].1).expect("JSON");
    assert_eq!((sent["id"].as_str(), sent["type"].as_str()), (Some(event_id.as_str()), Some("order.created")));
    assert_eq!(sent["data"]["status"], "FULFILLED");
    assert_eq!(sent["environment"], "production");
    // A changed byte fails the check a receiver makes.
    let mut tampered = got[0].1.clone();
    tampered[5] ^= 1;
    assert!(!signed(&secret, &got[0].0, &tampered));
    // The README's Python check agrees.
    if let Some(python) = keysmith_tests::tool("python3") {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README");
        let section = readme.split("## Webhooks").nth(1).expect("the webhooks section");
        let start = section.find("```python\n").expect("a Python block") + "```python\n".len();
        let code = &section[start..start + section[start..].find("```").expect("its end")];
        let dir = tempfile::tempdir().expect("dir");
        let script = dir.path().join("verify.py");
        std::fs::write(
            &script,
            format!("{code}\nimport sys\nprint(verify(sys.argv[1], sys.argv[2], open(sys.argv[3], 'rb').read()))\n"),
        )
        .expect("script");
        for (body, expected) in [(&got[0].1, "True"), (&tampered, "False")] {
            let file = dir.path().join("body");
            std::fs::write(&file, body).expect("body");
            let out = std::process::Command::new(&python)
                .arg(&script)
                .arg(&secret)
                .arg(header(&got[0].0, "keysmith-signature"))
                .arg(&file)
                .output()
                .expect("python3");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                expected,
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    let log = "query($e: ID) { webhookDeliveries(endpointId: $e) { edges { node { id eventId eventType status attempts \
               lastStatusCode lastResponse deliveredAt } } } }";
    let body = app.graphql(Some(&admin), log, json!({ "e": endpoint })).await;
    let deliveries = data(&body)["webhookDeliveries"]["edges"].as_array().expect("edges").clone();
    assert_eq!(deliveries.len(), 1, "one delivery for the subscribed event only: {body:#}");
    let d = &deliveries[0]["node"];
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64(), d["lastStatusCode"].as_i64()),
        (Some("DELIVERED"), Some(4), Some(200))
    );
    assert_eq!(d["eventId"].as_str(), Some(event_id.as_str()));
    assert_eq!(d["lastResponse"], "thanks");
    assert!(!order_id.is_null());

    // Redelivery sends the same event again.
    let again = app
        .graphql(
            Some(&admin),
            "mutation($id: ID!) { redeliverWebhook(input: {id: $id}) { delivery { status } } }",
            json!({ "id": d["id"] }),
        )
        .await;
    assert_eq!(data(&again)["redeliverWebhook"]["delivery"]["status"], "PENDING");
    wait_for(&received, 5, Duration::from_secs(15)).await;
    assert_eq!(header(&received.lock().expect("lock")[4].0, "keysmith-event-id"), event_id);

    // Refusals name the field and create nothing.
    let bad = app.graphql(Some(&admin), CREATE, json!({ "u": "ftp://example.com/x", "e": ["order.created"] })).await;
    assert_eq!((error_code(&bad), error_field(&bad)), (Some("INVALID_INPUT"), Some("url")));
    let bad = app.graphql(Some(&admin), CREATE, json!({ "u": url, "e": ["order.shipped"] })).await;
    assert_eq!((error_code(&bad), error_field(&bad)), (Some("INVALID_INPUT"), Some("events[0]")));
    let count = app.graphql(Some(&admin), "{ webhookEndpoints { totalCount } }", json!({})).await;
    assert_eq!(data(&count)["webhookEndpoints"]["totalCount"], 1);
}

/// Without the allowance, loopback and private targets are refused, by
/// address and by a name that resolves to one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_unless_configuration_allows_them() {
    let dir = tempfile::tempdir().expect("dir");
    let url = fresh_database(Backend::Sqlite, dir.path()).await.expect("SQLite");
    let mut cfg = config(&url);
    cfg.webhook_allow_private = false;
    let app = TestApp::spawn_with(Backend::Sqlite, cfg, dir).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    for target in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.0.0.7/hook",
        "http://169.254.169.254/latest",
        "http://[::1]/hook",
    ] {
        let body = app.graphql(Some(&admin), CREATE, json!({ "u": target, "e": ["order.created"] })).await;
        assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some("url")), "{target}: {body:#}");
    }
    // The admin's setting opens them for this deployment, and closes them again.
    let policy = "mutation($a: Boolean) { updateSettings(input: {webhookAllowPrivateAddresses: $a}) \
                  { settings { webhookAllowPrivateAddresses } } }";
    app.graphql(Some(&admin), policy, json!({ "a": true })).await;
    let body =
        app.graphql(Some(&admin), CREATE, json!({ "u": "http://127.0.0.1:8080/hook", "e": ["order.created"] })).await;
    assert!(body.get("errors").is_none(), "{body:#}");
    app.graphql(Some(&admin), policy, json!({ "a": false })).await;
    let body =
        app.graphql(Some(&admin), CREATE, json!({ "u": "http://127.0.0.1:8081/hook", "e": ["order.created"] })).await;
    assert_eq!(error_code(&body), Some("INVALID_INPUT"));
    app.stop().await;
}

/// Without the allowance, every address that is not globally reachable is
/// refused, whatever special-purpose range it is in and however an IPv6
/// address carries it; public addresses, written either way, are taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_purpose_targets_are_refused_sqlite() {
    special_purpose_targets_are_refused(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_purpose_targets_are_refused_postgres() {
    special_purpose_targets_are_refused(Backend::Postgres).await;
}

async fn special_purpose_targets_are_refused(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(url) = fresh_database(backend, dir.path()).await else { return };
    let mut cfg = config(&url);
    cfg.webhook_allow_private = false;
    let app = TestApp::spawn_with(backend, cfg, dir).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    for target in [
        // Benchmarking, IETF protocol assignments, reserved, broadcast.
        "http://198.18.0.1/hook",
        "http://198.19.255.254/hook",
        "http://192.0.0.8/",
        "http://192.0.0.170/hook",
        "http://240.0.0.1/",
        "http://255.255.255.255/hook",
        // NAT64 carrying loopback or the link-local metadata address; NAT64's local-use prefix.
        "http://[64:ff9b::7f00:1]/hook",
        "http://[64:ff9b::a9fe:a9fe]/latest",
        "http://[64:ff9b:1::808:808]/hook",
        // 6to4 carrying 192.168.1.1; Teredo whose client is 127.0.0.1.
        "http://[2002:c0a8:0101::1]/hook",
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",
        // IPv4-translated, IPv4-compatible and IPv4-mapped loopback.
        "http://[::ffff:0:7f00:1]/hook",
        "http://[::127.0.0.1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        // Documentation, discard-only, the old site-local range.
        "http://[2001:db8::1]/hook",
        "http://[3fff::1]/hook",
        "http://[100::1]/hook",
        "http://[fec0::1]/hook",
    ] {
        let body = app.graphql(Some(&admin), CREATE, json!({ "u": target, "e": ["order.created"] })).await;
        assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some("url")), "{target}: {body:#}");
    }
    let public = ["http://93.184.216.34/hook", "http://[2606:4700::1111]/hook", "http://[64:ff9b::5db8:d822]/hook"];
    for target in public {
        let body = app.graphql(Some(&admin), CREATE, json!({ "u": target, "e": ["order.created"] })).await;
        assert!(body.get("errors").is_none(), "{target}: {body:#}");
    }
    let listed = app.graphql(Some(&admin), "{ webhookEndpoints { edges { node { url } } } }", json!({})).await;
    let mut urls: Vec<String> = data(&listed)["webhookEndpoints"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|e| e["node"]["url"].as_str().map(String::from))
        .collect();
    urls.sort();
    let mut expected: Vec<String> = public.iter().map(|u| (*u).to_string()).collect();
    expected.sort();
    assert_eq!(urls, expected, "only the public targets were created");
    app.stop().await;
}

/// A receiver on `listener` that takes connections and never answers;
/// returns how many it has taken.
fn start_hanging_receiver(listener: tokio::net::TcpListener) -> Arc<AtomicUsize> {
    let taken = Arc::new(AtomicUsize::new(0));
    let count = taken.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    taken
}

on_both_databases!(a_receiver_that_hangs_delays_no_other_endpoint);

/// Two endpoints take the same events; one receiver takes each request and
/// never answers. The other still gets every event within seconds of it
/// happening — while sends to the first wait out their timeout, and after
/// they fill that endpoint's places.
async fn a_receiver_that_hangs_delays_no_other_endpoint(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hanging_url = format!("http://{}/hook", hanging.local_addr().expect("address"));
    let taken = start_hanging_receiver(hanging);
    let healthy = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let healthy_url = format!("http://{}/hook", healthy.local_addr().expect("address"));
    let received = start_receiver(healthy, 0);
    let body = app.graphql(Some(&admin), CREATE, json!({ "u": hanging_url, "e": ["order.created"] })).await;
    let hanging_id = data(&body)["createWebhookEndpoint"]["endpoint"]["id"].clone();
    let body = app.graphql(Some(&admin), CREATE, json!({ "u": healthy_url, "e": ["order.created"] })).await;
    assert!(body.get("errors").is_none(), "{body:#}");
    let product = product(&app.base_url, &admin).await;
    // More events than one endpoint has places for sends on a node.
    let events = 6;
    // Half the send timeout: a delivery held up behind the hanging receiver
    // would wait out that timeout.
    let promptly = Duration::from_secs(5);
    for i in 0..events {
        let caused = Instant::now();
        let order = app.graphql(Some(&admin), ORDER, json!({ "x": format!("hanging-{i}"), "p": product })).await;
        assert_eq!(data(&order)["createOrder"]["order"]["status"], "FULFILLED", "{order:#}");
        wait_for(&received, i + 1, promptly).await;
        assert!(caused.elapsed() < promptly, "event {i} took {:?}", caused.elapsed());
        if i == 0 {
            // From here on a send to the other endpoint is hanging as each event happens.
            let deadline = Instant::now() + Duration::from_secs(5);
            while taken.load(Ordering::SeqCst) == 0 {
                assert!(Instant::now() < deadline, "the hanging receiver was never sent to");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let got = received.lock().expect("lock").clone();
    let mut ids: Vec<&str> = got.iter().map(|(h, _)| header(h, "keysmith-event-id")).collect();
    assert!(got.iter().all(|(h, _)| header(h, "keysmith-event-type") == "order.created"));
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), events, "each event once");
    // None of them reached the receiver that hangs.
    let log = "query($e: ID) { webhookDeliveries(endpointId: $e) { edges { node { status deliveredAt } } } }";
    let body = app.graphql(Some(&admin), log, json!({ "e": hanging_id })).await;
    let deliveries = data(&body)["webhookDeliveries"]["edges"].as_array().expect("edges").clone();
    assert_eq!(deliveries.len(), events, "{body:#}");
    assert!(
        deliveries.iter().all(|d| d["node"]["status"] == "PENDING" && d["node"]["deliveredAt"].is_null()),
        "{body:#}"
    );
}

/// The order commits its event with it; a server killed before the webhook
/// went out sends it after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_between_an_order_and_its_webhook_delivers_it_after_restart_sqlite() {
    killed_between_an_order_and_its_webhook(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_between_an_order_and_its_webhook_delivers_it_after_restart_postgres() {
    killed_between_an_order_and_its_webhook(Backend::Postgres).await;
}

async fn killed_between_an_order_and_its_webhook(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(url) = fresh_database(backend, dir.path()).await else { return };
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("KEYSMITH_JWT_SECRET", "webhook-restart-secret-0123456789abcdef"),
        ("KEYSMITH_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("KEYSMITH_WEBHOOK_RETRY_SECONDS", "1"),
    ];
    assert!(create_admin(dir.path(), "hooks@example.com", "a long enough password", &env).status.success());
    let out = keysmith(dir.path()).envs(env).args(["token", "--email", "hooks@example.com"]).output().expect("token");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // The receiver's port, not listening yet: the first attempts are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a port").port();
    let hook = format!("http://127.0.0.1:{port}/hook");

    let mut cmd = keysmith(dir.path());
    cmd.envs(env);
    let served = Served::start(cmd, dir.path()).await;
    let gql = |query: &'static str, variables: Value| {
        let (base, token) = (served.base.clone(), token.clone());
        async move {
            let body: Value = reqwest::Client::new()
                .post(format!("{base}/graphql"))
                .bearer_auth(token)
                .json(&json!({ "query": query, "variables": variables }))
                .send()
                .await
                .expect("answer")
                .json()
                .await
                .expect("json");
            body
        }
    };
    let body = gql(CREATE, json!({ "u": hook, "e": ["order.created"] })).await;
    let secret = data(&body)["createWebhookEndpoint"]["secret"].as_str().expect("secret").to_string();
    let product = product(&served.base, &token).await;
    let order = gql(ORDER, json!({ "x": "killed-1", "p": product })).await;
    assert_eq!(data(&order)["createOrder"]["order"]["status"], "FULFILLED");
    let (status, _) = served.kill();
    assert!(!status.success(), "killed, not stopped");

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("the receiver's port");
    let received = start_receiver(listener, 0);
    let mut cmd = keysmith(dir.path());
    cmd.envs(env);
    let restarted = Served::start(cmd, dir.path()).await;
    wait_for(&received, 1, Duration::from_secs(30)).await;
    let got = received.lock().expect("lock").clone();
    assert_eq!(header(&got[0].0, "keysmith-event-type"), "order.created");
    assert!(signed(&secret, &got[0].0, &got[0].1));
    let sent: Value = serde_json::from_slice(&got[0].1).expect("JSON");
    assert_eq!(sent["data"]["externalId"], "killed-1");
    restarted.terminate();
}

on_both_databases!(expiring_licences_are_announced_once_with_the_tightest_notice);

/// `license.expiring` goes out 30, 14 and 7 days ahead, once each per expiry
/// date; a licence found with ten days left gets the 14-day notice only.
async fn expiring_licences_are_announced_once_with_the_tightest_notice(app: TestApp) {
    use entity::{event, license_key};
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
    let mut ids = Vec::new();
    for (key, days_left) in [("EXP-05", 5), ("EXP-10", 10), ("EXP-20", 20), ("EXP-40", 40)] {
        let (id, _, _) = crate::client::delivered(&app, key, 1).await;
        let mut row: license_key::ActiveModel =
            license_key::Entity::find_by_id(id.clone()).one(app.db()).await.expect("read").expect("row").into();
        row.expires_at = Set(Some(entity::now() + chrono::Duration::days(days_left)));
        row.update(app.db()).await.expect("update");
        ids.push(id);
    }
    let notices = || async {
        let mut found: Vec<(String, i64)> = event::Entity::find()
            .filter(event::Column::Kind.eq("license.expiring"))
            .all(app.db())
            .await
            .expect("events")
            .into_iter()
            .map(|e| (e.subject_id, e.payload["days"].as_i64().unwrap_or_default()))
            .collect();
        found.sort();
        found
    };
    let mut expected = vec![(ids[0].clone(), 7), (ids[1].clone(), 14), (ids[2].clone(), 30)];
    expected.sort();
    let deadline = Instant::now() + Duration::from_secs(20);
    while notices().await != expected {
        assert!(Instant::now() < deadline, "notices: {:?}", notices().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // More sweeps (every second in tests) announce nothing again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(notices().await, expected);
    // The 20-day licence's expiry moves to six days away: its 7-day notice follows.
    let mut row: license_key::ActiveModel =
        license_key::Entity::find_by_id(ids[2].clone()).one(app.db()).await.expect("read").expect("row").into();
    row.expires_at = Set(Some(entity::now() + chrono::Duration::days(6)));
    row.update(app.db()).await.expect("update");
    expected.push((ids[2].clone(), 7));
    expected.sort();
    let deadline = Instant::now() + Duration::from_secs(20);
    while notices().await != expected {
        assert!(Instant::now() < deadline, "notices: {:?}", notices().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Two nodes on one PostgreSQL both run the webhook worker: every event
/// reaches the receiver exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_never_send_the_same_delivery_twice() {
    let dir = tempfile::tempdir().expect("dir");
    let Some(url) = fresh_database(Backend::Postgres, dir.path()).await else { return };
    let first = TestApp::spawn_with(Backend::Postgres, config(&url), dir).await;
    let second = TestApp::spawn_with(Backend::Postgres, config(&url), tempfile::tempdir().expect("dir")).await;
    let admin = first.staff_token(StaffRole::Admin).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("address"));
    let received = start_receiver(listener, 0);
    let body =
        first.graphql(Some(&admin), CREATE, json!({ "u": hook, "e": ["order.created", "license.assigned"] })).await;
    assert!(body.get("errors").is_none(), "{body:#}");
    let product = product(&first.base_url, &admin).await;
    // Orders through both nodes: each writes its events, both workers race to send them.
    for i in 0..10 {
        let node = if i % 2 == 0 { &first } else { &second };
        let order = node.graphql(Some(&admin), ORDER, json!({ "x": format!("two-nodes-{i}"), "p": product })).await;
        assert_eq!(data(&order)["createOrder"]["order"]["status"], "FULFILLED", "{order:#}");
    }
    // Ten orders: ten order.created and ten license.assigned events.
    wait_for(&received, 20, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = received.lock().expect("lock").clone();
    let mut ids: Vec<String> = got.iter().map(|(h, _)| header(h, "keysmith-event-id").to_string()).collect();
    assert_eq!(ids.len(), 20, "every event once, none twice");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    second.stop().await;
    first.stop().await;
}
