//! No request takes Keysmith down or costs it unbounded memory: documents
//! nested thousands deep, oversized multipart parts, floods of sign-ins, a
//! failing export, refusals from routing. Each on SQLite and PostgreSQL; the
//! memory checks drive the real `keysmith` process and read its peak RSS.

use crate::cli::{Served, create_admin, keysmith};
use entity::user::StaffRole;
use keysmith_tests::app::fresh_database;
use keysmith_tests::{Backend, TestApp, data, error_code, error_field, on_both_databases};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

on_both_databases!(
    deeply_nested_documents_are_refused_and_the_server_stays_up,
    deeply_nested_variables_are_refused_by_the_json_reader,
    multipart_json_parts_obey_the_body_limit,
    a_failed_export_ends_the_download_with_an_error,
    refusals_from_routing_carry_the_security_headers_and_echo_nothing,
);

fn nested(open: &str, close: &str, levels: usize, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(levels), close.repeat(levels))
}

async fn post_raw(app: &TestApp, token: Option<&str>, body: String) -> (u16, Value) {
    let mut req = app.http.post(app.url("/graphql")).header("Content-Type", "application/json").body(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("the server answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON body"))
}

async fn still_up(app: &TestApp) {
    let health = app.http.get(app.url("/healthz")).send().await.expect("the server is still up");
    assert_eq!(health.status(), 200);
    let me = app.graphql(None, "{ me { role } }", json!({})).await;
    assert_eq!(data(&me)["me"]["role"], "ANONYMOUS");
}

async fn deeply_nested_documents_are_refused_and_the_server_stays_up(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let customer = app.customer_token(&entity::new_id()).await;
    let deep_list = format!(
        "mutation {{ validateLicense(input: {{key: \"k\", fingerprint: {}}}) {{ code }} }}",
        nested("[", "]", 2000, "\"x\"")
    );
    let deep_object = format!(
        "mutation {{ createProduct(input: {{name: \"P\", metadata: {}}}) {{ product {{ id }} }} }}",
        nested("{a: ", "}", 2000, "1")
    );
    let deep_selection = format!("{{ me {} }}", nested("{ role ", "}", 2000, ""));
    let deep_arguments =
        format!("{{ products(filter: {}) {{ totalCount }} }}", nested("{status: ", "}", 500, "ACTIVE"));
    for (what, document) in [
        ("a list 2,000 deep", &deep_list),
        ("an object 2,000 deep", &deep_object),
        ("selection sets 2,000 deep", &deep_selection),
        ("an input object 500 deep", &deep_arguments),
    ] {
        for (who, token) in
            [("anonymous", None), ("customer", Some(customer.as_str())), ("staff", Some(admin.as_str()))]
        {
            let (status, body) = post_raw(&app, token, json!({ "query": document }).to_string()).await;
            assert_eq!(status, 400, "{what} as {who}: {body:#}");
            assert_eq!(error_code(&body), Some("INVALID_INPUT"), "{what} as {who}: {body:#}");
            assert_eq!(error_field(&body), Some("query"));
            let message = body["errors"][0]["message"].as_str().unwrap_or_default();
            assert!(message.contains("64 levels"), "the refusal names the limit: {message}");
            assert!(body.get("data").is_none());
        }
    }

    // Through a multipart request too (uploads need a token).
    let form = reqwest::multipart::Form::new()
        .text("operations", json!({ "query": deep_list, "variables": {} }).to_string())
        .text("map", "{}");
    let resp = app.http.post(app.url("/graphql")).bearer_auth(&admin).multipart(form).send().await.expect("answer");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some("query")), "{body:#}");

    // And through the schema the portals execute in-process.
    let schemas = keysmith::graphql::Schemas::new(app.state.clone());
    for schema in [&schemas.public, &schemas.staff] {
        let response = schema.execute(async_graphql::Request::new(deep_object.clone())).await;
        let body = serde_json::to_value(&response).expect("json");
        assert_eq!(error_code(&body), Some("INVALID_INPUT"), "{body:#}");
        assert_eq!(error_field(&body), Some("query"));
    }

    // A long chain of fragments no operation uses is refused by its count of spreads.
    let chain = |links: usize| {
        let mut document = String::from("{ me { role } }");
        for i in 1..=links {
            document.push_str(&format!(" fragment f{i} on Query {{ ...f{} }}", i + 1));
        }
        document.push_str(&format!(" fragment f{} on Query {{ me {{ role }} }}", links + 1));
        document
    };
    let (status, body) = post_raw(&app, None, json!({ "query": chain(1_000) }).to_string()).await;
    assert_eq!(status, 400, "{body:#}");
    assert!(body["errors"][0]["message"].as_str().is_some_and(|m| m.contains("256 fragment spreads")), "{body:#}");
    // At the limit the chain is validated (its fragments are unused) without harm.
    let (status, body) = post_raw(&app, Some(&admin), json!({ "query": chain(256) }).to_string()).await;
    assert_eq!(status, 200, "{body:#}");
    assert!(body["errors"][0]["message"].as_str().is_some_and(|m| m.contains("never used")), "{body:#}");

    // The deepest document allowed is parsed and answered (here, refused by validation).
    let at_limit = format!("{{ me(x: {}) {{ role }} }}", nested("[", "]", 62, "1"));
    let (status, body) = post_raw(&app, Some(&admin), json!({ "query": at_limit }).to_string()).await;
    assert_eq!(status, 200, "{body:#}");
    assert!(body["errors"][0]["message"].as_str().is_some_and(|m| m.contains("Unknown argument")), "{body:#}");
    still_up(&app).await;
}

async fn deeply_nested_variables_are_refused_by_the_json_reader(app: TestApp) {
    const VALIDATE: &str = "mutation($f: [String]) { validateLicense(input: {key: \"k\", fingerprint: $f}) { code } }";
    // JSON past serde_json's recursion limit (128) is refused before anything else reads it.
    let deep =
        format!(r#"{{"query": {}, "variables": {{"f": {}}}}}"#, json!(VALIDATE), nested("[", "]", 5000, "\"x\""));
    let (status, body) = post_raw(&app, None, deep).await;
    assert_eq!(status, 400, "{body:#}");
    assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some("body")), "{body:#}");
    assert!(body["errors"][0]["message"].as_str().is_some_and(|m| m.contains("recursion limit")), "{body:#}");
    // Within the limit the variables are read and coerced (a list of lists is not a list of strings).
    let within =
        format!(r#"{{"query": {}, "variables": {{"f": {}}}}}"#, json!(VALIDATE), nested("[", "]", 100, "\"x\""));
    let (status, body) = post_raw(&app, None, within).await;
    assert_eq!(status, 200, "{body:#}");
    assert!(body["errors"][0]["message"].as_str().is_some_and(|m| m.contains("fingerprint")), "{body:#}");
    still_up(&app).await;
}

async fn multipart_json_parts_obey_the_body_limit(app: TestApp) {
    let customer = app.customer_token(&entity::new_id()).await;
    let limit = app.state.config.max_body_bytes;
    let padded = |bytes: usize| json!({ "query": "{ me { role } }", "pad": "x".repeat(bytes) }).to_string();
    let send = |operations: String, map: String| {
        let form = reqwest::multipart::Form::new().text("operations", operations).text("map", map);
        app.http.post(app.url("/graphql")).bearer_auth(&customer).multipart(form).send()
    };

    // Within the limit, a multipart request works like JSON.
    let resp = send(padded(limit / 2), "{}".into()).await.expect("answer");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(data(&body)["me"]["role"], "CUSTOMER");

    // An operations part past the body limit is refused, however large the upload limit.
    let resp = send(padded(limit * 4), "{}".into()).await.expect("answer");
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.expect("json");
    assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some("operations")), "{body:#}");
    assert!(body["errors"][0]["message"].as_str().is_some_and(|m| m.contains(&limit.to_string())), "{body:#}");

    // So is a map part.
    let map = json!({ "0": vec!["variables.x"; limit / 8] }).to_string();
    let resp = send(padded(10), map).await.expect("answer");
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(error_field(&body), Some("map"), "{body:#}");

    // Parts other than operations, map and one file are refused.
    let form = reqwest::multipart::Form::new()
        .text("operations", padded(10))
        .text("map", "{}")
        .text("extra", "x".repeat(limit * 2));
    let resp = app.http.post(app.url("/graphql")).bearer_auth(&customer).multipart(form).send().await.expect("answer");
    assert_eq!(resp.status(), 400);
    still_up(&app).await;
}

async fn a_failed_export_ends_the_download_with_an_error(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    for i in 0..3 {
        keysmith_tests::app::seed::key(
            app.db(),
            entity::Environment::Production,
            &format!("EXPORT-{i}"),
            entity::LicenseStatus::Available,
            &[],
        )
        .await;
    }
    // A complete export first: the file, and an exit status of 0 from the command line.
    let whole = app.http.get(app.url("/export/license-keys.csv")).bearer_auth(&admin).send().await.expect("answer");
    assert_eq!(whole.status(), 200);
    let text = whole.text().await.expect("a complete body");
    assert_eq!(text.lines().count(), 4, "{text}");
    let (mut cmd, file) = export_command(&app);
    let out = cmd.output().expect("keys export");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&file).expect("the file").lines().count(), 4);

    // Then the export stops after its first line: reading the keys' tags fails.
    app.db().execute_unprepared("ALTER TABLE license_key_tag RENAME TO license_key_tag_away").await.expect("rename");
    // The connection is cut before the body's end: before or after the headers went out.
    let body = match app.http.get(app.url("/export/license-keys.csv")).bearer_auth(&admin).send().await {
        Ok(resp) => resp.bytes().await,
        Err(cut) => Err(cut),
    };
    assert!(body.is_err(), "a broken download must not look complete: {body:?}");
    let (mut cmd, file) = export_command(&app);
    let out = cmd.output().expect("keys export");
    assert!(!out.status.success(), "keys export exits non-zero when the export stops");
    assert!(!file.exists(), "no partial file is left to pass for the export");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the export stopped"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.db()
        .execute_unprepared("ALTER TABLE license_key_tag_away RENAME TO license_key_tag")
        .await
        .expect("rename back");

    // Both runs are recorded as failed jobs (the server's when its stream is dropped).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let jobs = app
            .graphql(
                Some(&admin),
                "{ jobs(first: 10, kind: \"EXPORT_LICENSE_KEYS\") { edges { node { status } } } }",
                json!({}),
            )
            .await;
        let statuses: Vec<String> = data(&jobs)["jobs"]["edges"]
            .as_array()
            .expect("jobs")
            .iter()
            .filter_map(|e| e["node"]["status"].as_str().map(str::to_string))
            .collect();
        let failed = statuses.iter().filter(|s| *s == "FAILED").count();
        let succeeded = statuses.iter().filter(|s| *s == "SUCCEEDED").count();
        if failed == 2 && succeeded == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "two failed and two complete exports: {statuses:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// `keysmith keys export` into a new file of the test's directory, and that file.
fn export_command(app: &TestApp) -> (std::process::Command, std::path::PathBuf) {
    let file = app.dir().join(format!("export-{}.csv", entity::new_id()));
    let mut cmd = keysmith(app.dir());
    cmd.args(["keys", "export", "--format", "csv", "--output"])
        .arg(&file)
        .env("DATABASE_URL", &app.database_url)
        .env("KEYSMITH_JWT_SECRET", keysmith_tests::app::TEST_SECRET);
    (cmd, file)
}

async fn refusals_from_routing_carry_the_security_headers_and_echo_nothing(app: TestApp) {
    const MARKER: &str = "keysmith-echo-marker";
    let portal = [
        ("an unknown portal page", app.http.get(app.url(&format!("/portal/{MARKER}")))),
        ("a wrong method", app.http.put(app.url("/portal/login"))),
        (
            "a form that is not a form",
            app.http.post(app.url("/portal/login")).header("Content-Type", format!("text/{MARKER}")).body(MARKER),
        ),
    ];
    for (what, request) in portal {
        let resp = request.send().await.expect("answer");
        let status = resp.status().as_u16();
        assert!((400..500).contains(&status), "{what}: {status}");
        let headers = resp.headers().clone();
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("x-frame-options", "DENY"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(headers.get(name).and_then(|v| v.to_str().ok()), Some(value), "{what}: {name}");
        }
        let csp = headers.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(csp.contains("default-src 'none'"), "{what}: {csp:?}");
        let body = resp.text().await.expect("body");
        assert!(!body.contains(MARKER), "{what} echoes the request: {body}");
    }
    for (what, request) in [
        ("an unknown path", app.http.get(app.url(&format!("/{MARKER}")))),
        ("a wrong method on /graphql", app.http.put(app.url("/graphql"))),
    ] {
        let resp = request.send().await.expect("answer");
        assert!(resp.status().is_client_error(), "{what}");
        assert_eq!(resp.headers().get("x-content-type-options").and_then(|v| v.to_str().ok()), Some("nosniff"));
        assert_eq!(resp.headers().get("referrer-policy").and_then(|v| v.to_str().ok()), Some("no-referrer"));
        assert!(!resp.text().await.expect("body").contains(MARKER), "{what}");
    }
}

/// The server process's peak resident memory so far, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process's status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib / 1024.0
}

/// The real process on `backend`: 200 concurrent wrong-password sign-ins from
/// 200 addresses, then a 64 MiB multipart `operations` part. Peak memory
/// grows by a bounded amount (a few password checks at a time), and every
/// attempt is answered UNAUTHENTICATED or RATE_LIMITED.
async fn memory_stays_bounded(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(database_url) = fresh_database(backend, dir.path()).await else { return };
    let env = [("DATABASE_URL", database_url.as_str()), ("KEYSMITH_JWT_SECRET", keysmith_tests::app::TEST_SECRET)];
    let created = create_admin(dir.path(), "owner@example.com", "a long enough password", &env);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let mut token = keysmith(dir.path());
    token.args(["token", "--email", "owner@example.com"]).envs(env);
    let token = String::from_utf8(token.output().expect("token").stdout).expect("utf8").trim().to_string();
    let mut cmd = keysmith(dir.path());
    cmd.envs(env).args(["--client-address-header", "X-Forwarded-For"]);
    let served = Served::start(cmd, dir.path()).await;
    let http = reqwest::Client::new();
    let login = |i: usize| {
        http.post(format!("{}/graphql", served.base))
            .header("X-Forwarded-For", format!("10.{}.{}.1", i / 250, i % 250))
            .json(&json!({
                "query": "mutation($e: String!) { login(input: {email: $e, password: \"not the password at all\"}) { token } }",
                "variables": { "e": format!("nobody-{i}@example.com") },
            }))
            .send()
    };
    // Warm up: one sign-in, so the baseline includes one password check.
    login(10_000).await.expect("answer");
    let before = peak_rss_mib(served.pid());
    let answers = futures_util::future::join_all((0..200).map(login)).await;
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for answer in answers {
        let body: Value = answer.expect("answer").json().await.expect("json");
        *codes.entry(error_code(&body).unwrap_or("none").to_string()).or_default() += 1;
    }
    let after_logins = peak_rss_mib(served.pid());
    assert!(codes.keys().all(|c| c == "UNAUTHENTICATED" || c == "RATE_LIMITED"), "{codes:?}");
    let in_flight = keysmith::auth::password::max_in_flight() as f64;
    let bound = in_flight * 20.0 + 96.0;
    eprintln!(
        "{backend:?}: peak RSS {before:.0} MiB before 200 concurrent sign-ins, {after_logins:.0} MiB after ({codes:?}; bound {bound:.0} MiB of growth)"
    );
    assert!(after_logins - before <= bound, "sign-ins grew the process by {:.0} MiB", after_logins - before);

    // A 64 MiB operations part is refused at the body limit (1 MiB by default), not read whole.
    let operations = json!({ "query": "{ me { role } }", "pad": "x".repeat(64 * 1024 * 1024) }).to_string();
    let form = reqwest::multipart::Form::new().text("operations", operations).text("map", "{}");
    let resp = http.post(format!("{}/graphql", served.base)).bearer_auth(&token).multipart(form).send().await;
    // The server may answer 413 and close before the whole body is sent.
    if let Ok(resp) = resp {
        assert_eq!(resp.status(), 413);
    }
    let after_upload = peak_rss_mib(served.pid());
    eprintln!(
        "{backend:?}: peak RSS {after_logins:.0} MiB before a 64 MiB multipart operations part, {after_upload:.0} MiB after"
    );
    assert!(
        after_upload - after_logins <= 32.0,
        "a refused part grew the process by {:.0} MiB",
        after_upload - after_logins
    );
    let health = http.get(format!("{}/healthz", served.base)).send().await.expect("still up");
    assert_eq!(health.status(), 200);
    served.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_under_sign_in_floods_and_large_parts_sqlite() {
    memory_stays_bounded(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_under_sign_in_floods_and_large_parts_postgres() {
    memory_stays_bounded(Backend::Postgres).await;
}
