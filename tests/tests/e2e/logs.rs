//! No secrets in logs: a full run of the real `keysmith` process with every
//! log line on (`debug` for every crate), through sign-in, a failed sign-in,
//! imports, an order, validation, activation, previews, offline files, the
//! portal's sign-in links and session, a payment provider's signed delivery, and refused requests; then every line it and the command line wrote is
//! searched for the complete keys, tokens, passwords and server secrets.

use crate::cli::{Served, create_admin, keysmith};
use keysmith_tests::app::fresh_database;
use keysmith_tests::{Backend, data};
use serde_json::{Value, json};
use std::path::Path;

const PASSWORD: &str = "Tr0ub4dor&3-horse-battery";
const WRONG_PASSWORD: &str = "Wr0ng-guess-staple-9981";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_sqlite() {
    no_secret_reaches_the_logs(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_postgres() {
    no_secret_reaches_the_logs(Backend::Postgres).await;
}

async fn gql(base: &str, token: Option<&str>, query: &str, variables: Value) -> Value {
    let mut request =
        reqwest::Client::new().post(format!("{base}/graphql")).json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("answer").json().await.expect("json")
}

fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> (String, String) {
    let out = keysmith(dir).envs(env.iter().copied()).args(args).output().expect("run");
    (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

async fn no_secret_reaches_the_logs(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(url) = fresh_database(backend, dir.path()).await else { return };
    let jwt_secret = "log-scrub-signing-secret-0123456789abcdef";
    let mut env = vec![("DATABASE_URL", url.as_str()), ("KEYSMITH_LOG", "trace")];
    if backend == Backend::Postgres {
        env.push(("KEYSMITH_JWT_SECRET", jwt_secret));
    }
    let created = create_admin(dir.path(), "admin@example.com", PASSWORD, &env);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let mut logs = String::from_utf8_lossy(&created.stderr).to_string();

    let mut cmd = keysmith(dir.path());
    cmd.envs(env.iter().copied());
    let served = Served::start(cmd, dir.path()).await;
    let base = served.base.clone();

    // Sign-in, right and wrong.
    let login = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token } }";
    let wrong = gql(&base, None, login, json!({ "e": "admin@example.com", "p": WRONG_PASSWORD })).await;
    assert!(wrong.get("errors").is_some());
    let body = gql(&base, None, login, json!({ "e": "admin@example.com", "p": PASSWORD })).await;
    let token = data(&body)["login"]["token"].as_str().expect("a token").to_string();
    let t = Some(token.as_str());

    // A pool, a product delivering from it, an order of two keys.
    let uploaded: Vec<String> = (1..=4).map(|i| format!("UPLOADED-SECRET-KEY-{i:04}-ZZQX")).collect();
    let tag = gql(&base, t, "mutation { createTag(input: {name: \"scrub\"}) { tag { id } } }", json!({})).await;
    let tag = data(&tag)["createTag"]["tag"]["id"].clone();
    let imported = gql(
        &base,
        t,
        "mutation($k: String!, $t: [ID!]!) { importLicenseKeys(input: {text: $k, tagIds: $t}) { imported } }",
        json!({ "k": format!("{}\n{}\n", uploaded.join("\n"), uploaded[0]), "t": [tag] }),
    )
    .await;
    assert_eq!(data(&imported)["importLicenseKeys"]["imported"], 4, "{imported:#}");
    let product = gql(
        &base,
        t,
        "mutation($t: ID!) { createProduct(input: {name: \"Scrubbed\", delivery: {mode: TAG, tagId: $t}}) { product { id } } }",
        json!({ "t": tag }),
    )
    .await;
    let product = data(&product)["createProduct"]["product"]["id"].clone();
    let order = gql(
        &base,
        t,
        "mutation($p: ID!) { createOrder(input: {externalId: \"scrub-1\", customer: {email: \"buyer@example.com\"}, \
         lines: [{productId: $p, quantity: 2}]}) { order { lines { keys { id key } } } } }",
        json!({ "p": product }),
    )
    .await;
    let keys = data(&order)["createOrder"]["order"]["lines"][0]["keys"].as_array().expect("keys").clone();
    assert_eq!(keys.len(), 2, "{order:#}");
    let key = keys[0]["key"].as_str().expect("key").to_string();
    let licence = keys[0]["id"].clone();

    // Shipped software: validate, activate, deactivate, a guessed key, bad input.
    let facts = "{ code }";
    for (mutation, fingerprint) in
        [("activateLicense", "scrub-pc"), ("validateLicense", "scrub-pc"), ("deactivateLicense", "scrub-pc")]
    {
        let query =
            format!("mutation($k: String!, $f: String!) {{ {mutation}(input: {{key: $k, fingerprint: $f}}) {facts} }}");
        let body = gql(&base, None, &query, json!({ "k": key, "f": fingerprint })).await;
        assert_eq!(data(&body)[mutation]["code"], "VALID", "{body:#}");
    }
    let guessed = "GUESSED-SECRET-KEY-9999-ZZQX";
    let body = gql(
        &base,
        None,
        "mutation($k: String!) { validateLicense(input: {key: $k}) { code } }",
        json!({ "k": guessed }),
    )
    .await;
    assert_eq!(data(&body)["validateLicense"]["code"], "NOT_FOUND");
    let too_long = format!("{guessed}{}", "X".repeat(2000));
    let body = gql(
        &base,
        None,
        "mutation($k: String!) { validateLicense(input: {key: $k}) { code } }",
        json!({ "k": too_long }),
    )
    .await;
    assert!(body.get("errors").is_some());
    // A refused lifecycle action and a conflict, which log their reasons.
    let revoke = "mutation($id: ID!) { revokeLicense(input: {id: $id}) { license { status } } }";
    assert!(gql(&base, t, revoke, json!({ "id": licence })).await.get("errors").is_none());
    assert!(gql(&base, t, revoke, json!({ "id": licence })).await.get("errors").is_some());
    let preview = gql(
        &base,
        t,
        "query($id: ID!) { licensePreview(id: $id) { samples { code } offlineFile { content } } }",
        json!({ "id": keys[1]["id"] }),
    )
    .await;
    assert!(preview.get("errors").is_none(), "{preview:#}");
    // The portal: a link staff hand over, followed in a browser's way (the
    // session cookie comes back), the orders page, a key revealed with the
    // session, and a link asked for by email (held in the outbox: no SMTP).
    let customer =
        gql(&base, t, "{ customers(search: \"buyer@example.com\") { edges { node { id } } } }", json!({})).await;
    let customer = data(&customer)["customers"]["edges"][0]["node"]["id"].clone();
    let link = gql(
        &base,
        t,
        "mutation($id: ID!) { createPortalLink(input: {customerId: $id}) { url } }",
        json!({ "id": customer }),
    )
    .await;
    let link = data(&link)["createPortalLink"]["url"].as_str().expect("a link").to_string();
    let link_token = link.rsplit('/').next().expect("a token").to_string();
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let opened = browser.get(format!("{base}/portal/link/{link_token}")).send().await.expect("answer");
    let csrf_cookie = opened
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("keysmith_portal_csrf="))
        .and_then(|c| c.split(';').next())
        .expect("a CSRF cookie")
        .to_string();
    let form = opened.text().await.expect("the page");
    let csrf = form.split("name=\"csrf\" value=\"").nth(1).and_then(|v| v.split('"').next()).expect("a CSRF field");
    let followed = browser
        .post(format!("{base}/portal/link"))
        .header("cookie", csrf_cookie)
        .form(&[("csrf", csrf), ("token", link_token.as_str())])
        .send()
        .await
        .expect("answer");
    assert_eq!(followed.status(), 303);
    let session = followed
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("keysmith_portal="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    let page = browser
        .get(format!("{base}/portal/"))
        .header("cookie", format!("keysmith_portal={session}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(page.status(), 200);
    let reveal = "mutation($id: ID!) { revealLicenseKey(input: {licenseId: $id}) { key } }";
    let shown = gql(&base, Some(&session), reveal, json!({ "id": keys[1]["id"] })).await;
    assert_eq!(data(&shown)["revealLicenseKey"]["key"], keys[1]["key"]);
    let asked = "mutation { requestPortalLink(input: {email: \"buyer@example.com\"}) { message } }";
    assert!(gql(&base, None, asked, json!({})).await.get("errors").is_none());

    // A payment provider: its secret set, a signed delivery taken, a forged one refused.
    let integration_secret = "whsec_log_scrub_integration_secret_0123";
    let connect = "mutation($s: String!) { createIntegration(input: {provider: STRIPE, name: \"Shop\", secret: $s}) \
                   { integration { id } } }";
    let connected = gql(&base, t, connect, json!({ "s": integration_secret })).await;
    let integration = data(&connected)["createIntegration"]["integration"]["id"].as_str().expect("an id").to_string();
    let delivery = crate::integrations::stripe_event(
        "evt_log_scrub",
        "checkout.session.completed",
        crate::integrations::checkout("cs_log_scrub", "scrub@example.com", "price_unmapped", "pi_log_scrub"),
    );
    let (_, signature) = crate::providers::stripe(integration_secret, crate::providers::now(), &delivery);
    let hook = format!("{base}/integrations/{integration}/webhook");
    let mut answers = Vec::new();
    for signed in [signature.as_str(), "t=1,v1=00"] {
        let sent = reqwest::Client::new().post(&hook).header("Stripe-Signature", signed).body(delivery.clone()).send();
        answers.push(sent.await.expect("answer").status().as_u16());
    }
    assert_eq!(answers, [200, 401], "taken, then refused");

    // A forged token.
    let forged = format!("{}x", &token[..token.len() - 1]);
    assert!(gql(&base, Some(&forged), "{ me { role } }", json!({})).await.get("errors").is_some());

    let (printed, stderr) = run(dir.path(), &env, &["token", "--email", "admin@example.com"]);
    logs.push_str(&stderr);
    let cli_token = printed.trim().to_string();
    assert!(cli_token.len() > 20, "a token was printed: {printed}");
    let (status, served_log) = served.terminate();
    assert!(status.success());
    logs.push_str(&served_log);
    assert!(logs.contains("/graphql"), "the requests were logged:\n{logs}");
    assert!(logs.contains(" INFO "), "the log was captured:\n{logs}");

    let mut secrets: Vec<(String, String)> = vec![
        ("password".into(), PASSWORD.into()),
        ("wrong password".into(), WRONG_PASSWORD.into()),
        ("login token".into(), token.clone()),
        ("token's signature".into(), token.rsplit('.').next().unwrap_or_default().to_string()),
        ("command-line token".into(), cli_token),
        ("guessed key".into(), guessed.into()),
    ];
    secrets.extend(uploaded.iter().map(|k| ("uploaded key".to_string(), k.clone())));
    secrets
        .extend(keys.iter().map(|k| ("delivered key".to_string(), k["key"].as_str().unwrap_or_default().to_string())));
    let jwt = match backend {
        Backend::Postgres => jwt_secret.to_string(),
        Backend::Sqlite => std::fs::read_to_string(dir.path().join("keysmith.db.jwt-secret")).expect("the secret file"),
    };
    secrets.push(("JWT secret".into(), jwt.trim().to_string()));
    if backend == Backend::Postgres {
        secrets.push(("database password".into(), keysmith_tests::postgres::PASSWORD_MARK.into()));
    }
    let db = keysmith::db::connect(&url, 1).await.expect("open");
    use sea_orm::EntityTrait;
    let seed = entity::signing_key::Entity::find_by_id("offline-licence").one(&db).await.expect("read").expect("a key");
    secrets.push(("offline signing key".into(), seed.secret));
    secrets.push(("staff-made portal link".into(), link_token));
    secrets.push(("portal session token".into(), session.clone()));
    secrets.push(("portal session's signature".into(), session.rsplit('.').next().unwrap_or_default().to_string()));
    let emailed: Vec<String> = entity::email::Entity::find()
        .all(&db)
        .await
        .expect("emails")
        .iter()
        .filter_map(|m| m.body.split("/portal/link/").nth(1))
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).collect())
        .collect();
    assert_eq!(emailed.len(), 2, "the order's link and the requested one are in the outbox");
    secrets.extend(emailed.into_iter().map(|token| ("emailed portal link".to_string(), token)));
    secrets.push(("integration secret".into(), integration_secret.into()));
    secrets.push(("delivery signature".into(), signature.rsplit("v1=").next().unwrap_or_default().to_string()));
    for (what, secret) in &secrets {
        assert!(secret.len() >= 16, "{what} is long enough to search for");
        assert!(!logs.contains(secret.as_str()), "the {what} appears in the logs");
    }
}
