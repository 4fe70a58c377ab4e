//! The licence preview (details, activation history, ready-to-run samples
//! that really work against the server) and the recent-sign-in setting; and
//! validation's codes as the samples see them.

use entity::user::StaffRole;
use entity::{Environment, LicenseStatus, activation, license_key};
use keysmith::auth::jwt::Claims;
use keysmith_tests::app::seed;
use keysmith_tests::{TestApp, data, error_code, on_both_databases, tool};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};

const PREVIEW: &str = "query($id: ID!) { licensePreview(id: $id) { license { id key status customer { email } } \
                       activationHistory { fingerprint name deactivatedAt } samples { language code } } }";
const VALIDATE: &str = "mutation($k: String!, $f: String) { validateLicense(input: {key: $k, fingerprint: $f}) \
                        { valid code detail license { status expiresAt featureFlags activationsUsed activationLimit } } }";

async fn activate(app: &TestApp, licence: &str, fingerprint: &str, ended: bool) {
    let machine = format!("{fingerprint}'s machine");
    let seen = entity::now() - chrono::Duration::hours(1);
    seed::device(app.db(), licence, fingerprint, (&machine, "linux"), seen, ended).await;
}

/// A licence delivered to a customer and activated on `laptop-7` (an older device ended).
async fn delivered(app: &TestApp, key: &str) -> String {
    let id = seed::key(app.db(), Environment::Production, key, LicenseStatus::Available, &[]).await;
    seed::deliver(app.db(), &id, true).await;
    let mut row: license_key::ActiveModel =
        license_key::Entity::find_by_id(id.clone()).one(app.db()).await.expect("read").expect("row").into();
    row.status = Set(LicenseStatus::Active);
    row.feature_flags = Set(json!({ "tier": "pro" }));
    row.activation_limit = Set(2);
    row.update(app.db()).await.expect("update");
    activate(app, &id, "old-desktop", true).await;
    activate(app, &id, "laptop-7", false).await;
    id
}

fn sample<'a>(preview: &'a Value, language: &str) -> &'a str {
    preview["samples"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["language"] == language))
        .and_then(|s| s["code"].as_str())
        .unwrap_or_else(|| panic!("no {language} sample: {preview:#}"))
}

on_both_databases!(
    the_preview_shows_the_licence_and_samples_that_work,
    the_preview_can_require_a_recent_sign_in,
    validation_answers_with_the_first_code_that_applies
);

async fn the_preview_shows_the_licence_and_samples_that_work(app: TestApp) {
    let support = app.staff_token(StaffRole::Support).await;
    // A key with characters a shell or a string literal would trip on.
    let key = "PRO-'7$HOME\"X";
    let id = delivered(&app, key).await;
    let body = app.graphql(Some(&support), PREVIEW, json!({ "id": id })).await;
    let preview = &data(&body)["licensePreview"];
    assert_eq!(preview["license"]["key"], key);
    assert_eq!(preview["license"]["status"], "ACTIVE");
    assert!(preview["license"]["customer"]["email"].as_str().is_some_and(|e| e.contains('@')));
    let history: Vec<&str> = preview["activationHistory"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|a| a["fingerprint"].as_str())
        .collect();
    assert_eq!(history, ["laptop-7", "old-desktop"], "newest first, ended ones kept");
    assert!(preview["activationHistory"][1]["deactivatedAt"].is_string());

    let base = app.base_url.trim_end_matches('/');
    for language in ["CURL", "PHP", "JAVA_SCRIPT", "PYTHON"] {
        let code = sample(preview, language);
        assert!(code.contains(&format!("{base}/graphql")), "{language} names this server: {code}");
        assert!(code.contains("laptop-7"), "{language} uses the active device");
        assert!(code.contains("validateLicense"), "{language}");
    }

    // The cURL sample, run by a shell as pasted.
    if let Some(_curl) = tool("curl") {
        let out = std::process::Command::new("sh").arg("-c").arg(sample(preview, "CURL")).output().expect("sh");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON from the server");
        let result = &answer["data"]["validateLicense"];
        assert_eq!((result["code"].as_str(), result["valid"].as_bool()), (Some("VALID"), Some(true)), "{answer:#}");
        assert_eq!(result["license"]["featureFlags"], json!({ "tier": "pro" }));
        assert_eq!(
            (result["license"]["activationsUsed"].as_i64(), result["license"]["activationLimit"].as_i64()),
            (Some(1), Some(2))
        );
    }
    // The Python sample, run as a script.
    if let Some(python) = tool("python3") {
        let dir = tempfile::tempdir().expect("dir");
        let script = dir.path().join("validate.py");
        std::fs::write(&script, sample(preview, "PYTHON")).expect("script");
        let out = std::process::Command::new(python).arg(&script).output().expect("python3");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "VALID True");
    }

    // A licence with no device yet gets a placeholder that the server judges NOT_ACTIVATED.
    let fresh = seed::key(app.db(), Environment::Production, "FRESH-KEY-0001", LicenseStatus::Available, &[]).await;
    seed::deliver(app.db(), &fresh, false).await;
    let body = app.graphql(Some(&support), PREVIEW, json!({ "id": fresh })).await;
    let preview = &data(&body)["licensePreview"];
    assert_eq!(preview["activationHistory"], json!([]));
    assert!(sample(preview, "CURL").contains("REPLACE-WITH-DEVICE-ID"));
    if let Some(_curl) = tool("curl") {
        let out = std::process::Command::new("sh").arg("-c").arg(sample(preview, "CURL")).output().expect("sh");
        let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON from the server");
        assert_eq!(answer["data"]["validateLicense"]["code"], "NOT_ACTIVATED", "{answer:#}");
    }

    // Staging samples carry the environment header.
    let staged = seed::key(app.db(), Environment::Staging, "STAGED-KEY-0001", LicenseStatus::Assigned, &[]).await;
    let (_, body) = app.graphql_in(Some(&support), Some("staging"), PREVIEW, json!({ "id": staged })).await;
    let code = sample(&data(&body)["licensePreview"], "CURL").to_string();
    assert!(code.contains("X-Keysmith-Environment: staging"), "{code}");
    if let Some(_curl) = tool("curl") {
        let out = std::process::Command::new("sh").arg("-c").arg(&code).output().expect("sh");
        let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON from the server");
        // Found in staging (not NOT_FOUND); no device yet.
        assert_eq!(answer["data"]["validateLicense"]["code"], "NOT_ACTIVATED", "{answer:#}");
    }

    // Customers and anonymous callers get no preview.
    let customer = app.customer_token(&entity::new_id()).await;
    assert_eq!(error_code(&app.graphql(Some(&customer), PREVIEW, json!({ "id": id })).await), Some("FORBIDDEN"));
    assert_eq!(error_code(&app.graphql(None, PREVIEW, json!({ "id": id })).await), Some("UNAUTHENTICATED"));
}

async fn the_preview_can_require_a_recent_sign_in(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let id = delivered(&app, "RECENT-KEY-0001").await;
    // A token signed in ten minutes ago, otherwise the same.
    let mut claims: Claims = app.state.jwt.verify(&admin).expect("claims");
    claims.iat -= 600;
    let old = app.state.jwt.sign(&claims).expect("sign");
    assert!(app.graphql(Some(&old), PREVIEW, json!({ "id": id })).await.get("errors").is_none(), "off by default");

    let set = "mutation($on: Boolean) { updateSettings(input: {previewRequiresRecentSignIn: $on}) \
               { settings { previewRequiresRecentSignIn } } }";
    let body = app.graphql(Some(&admin), set, json!({ "on": true })).await;
    assert_eq!(data(&body)["updateSettings"]["settings"]["previewRequiresRecentSignIn"], true);
    let body = app.graphql(Some(&admin), "{ settings { previewRequiresRecentSignIn } }", json!({})).await;
    assert_eq!(data(&body)["settings"]["previewRequiresRecentSignIn"], true);

    let refused = app.graphql(Some(&old), PREVIEW, json!({ "id": id })).await;
    assert_eq!(error_code(&refused), Some("UNAUTHENTICATED"), "{refused:#}");
    let message = refused["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("recent sign-in"), "the reason is given: {message}");
    assert!(app.graphql(Some(&admin), PREVIEW, json!({ "id": id })).await.get("errors").is_none(), "a fresh token");
    // The old token still does everything else.
    assert!(app.graphql(Some(&old), "{ licenseKeys { totalCount } }", json!({})).await.get("errors").is_none());

    // Settings are the admin's, and the change is audited.
    let manager = app.staff_token(StaffRole::Manager).await;
    assert_eq!(error_code(&app.graphql(Some(&manager), set, json!({ "on": false })).await), Some("FORBIDDEN"));
    let events = entity::audit_event::Entity::find().all(app.db()).await.expect("events");
    let event = events.iter().find(|e| e.action == "settings.updated").expect("an audit event");
    assert_eq!(event.after.as_ref().map(|a| &a["previewRequiresRecentSignIn"]), Some(&json!(true)));
    assert_eq!(event.before.as_ref().map(|a| &a["previewRequiresRecentSignIn"]), Some(&json!(false)));
}

async fn validation_answers_with_the_first_code_that_applies(app: TestApp) {
    let id = delivered(&app, "CODES-KEY-0001").await;
    let ask = |key: &str, fingerprint: Option<&str>| {
        let app = &app;
        let (key, fingerprint) = (key.to_string(), fingerprint.map(str::to_string));
        async move {
            let body = app.graphql(None, VALIDATE, json!({ "k": key, "f": fingerprint })).await;
            data(&body)["validateLicense"].clone()
        }
    };
    let code = |v: &Value| v["code"].as_str().unwrap_or_default().to_string();
    assert_eq!(code(&ask("CODES-KEY-0001", Some("laptop-7")).await), "VALID");
    // The device's last sighting (an hour ago) is brought up to date, off the
    // request's path: the node writes the devices it saw about once a second.
    keysmith_tests::until("validation to record when the device was last seen", || async {
        let devices = activation::Entity::find().all(app.db()).await.expect("activations");
        let laptop = devices.iter().find(|a| a.fingerprint == "laptop-7").expect("laptop-7");
        (entity::now() - laptop.last_seen_at < chrono::Duration::minutes(1)).then_some(())
    })
    .await;
    assert_eq!(code(&ask("CODES-KEY-0001", None).await), "VALID", "without a fingerprint the licence is judged alone");
    let other = ask("CODES-KEY-0001", Some("old-desktop")).await;
    assert_eq!((code(&other), other["valid"].as_bool()), ("NOT_ACTIVATED".into(), Some(false)), "an ended device");
    let missing = ask("NO-SUCH-KEY", Some("laptop-7")).await;
    assert_eq!((code(&missing), &missing["license"]), ("NOT_FOUND".into(), &Value::Null));
    let (_, staged) = app.graphql_in(None, Some("staging"), VALIDATE, json!({ "k": "CODES-KEY-0001" })).await;
    assert_eq!(data(&staged)["validateLicense"]["code"], "NOT_FOUND", "a key from another environment");
    seed::key(app.db(), Environment::Production, "POOL-KEY-0001", LicenseStatus::Available, &[]).await;
    assert_eq!(code(&ask("POOL-KEY-0001", None).await), "NOT_ASSIGNED");

    // The status checks come first, in their order; expiry is judged at the moment of the call.
    let set = |f: Box<dyn FnOnce(&mut license_key::ActiveModel) + Send>| {
        let app = &app;
        let id = id.clone();
        async move {
            let mut row: license_key::ActiveModel =
                license_key::Entity::find_by_id(id).one(app.db()).await.expect("read").expect("row").into();
            f(&mut row);
            row.update(app.db()).await.expect("update");
        }
    };
    set(Box::new(|r| r.expires_at = Set(Some(entity::now() - chrono::Duration::seconds(1))))).await;
    let expired = ask("CODES-KEY-0001", Some("laptop-7")).await;
    assert_eq!((code(&expired), expired["license"]["status"].as_str()), ("EXPIRED".into(), Some("EXPIRED")));
    for (status, expected) in [
        (LicenseStatus::Inactive, "INACTIVE"),
        (LicenseStatus::Suspended, "SUSPENDED"),
        (LicenseStatus::Revoked, "REVOKED"),
    ] {
        set(Box::new(move |r| r.status = Set(status))).await;
        assert_eq!(code(&ask("CODES-KEY-0001", Some("laptop-7")).await), expected, "{status:?} beats EXPIRED");
    }

    // A product that binds licences to devices needs a fingerprint.
    let bound = seed::key(app.db(), Environment::Production, "BOUND-KEY-0001", LicenseStatus::Available, &[]).await;
    seed::deliver(app.db(), &bound, false).await;
    let product = license_key::Entity::find_by_id(bound).one(app.db()).await.expect("read").expect("row").product_id;
    let mut p: entity::product::ActiveModel = entity::product::Entity::find_by_id(product.expect("a product"))
        .one(app.db())
        .await
        .expect("read")
        .expect("row")
        .into();
    p.requires_fingerprint = Set(true);
    p.update(app.db()).await.expect("update");
    assert_eq!(code(&ask("BOUND-KEY-0001", None).await), "FINGERPRINT_REQUIRED");

    // Bad input is an error naming the field.
    let body = app.graphql(None, VALIDATE, json!({ "k": "", "f": null })).await;
    assert_eq!((error_code(&body), keysmith_tests::error_field(&body)), (Some("INVALID_INPUT"), Some("key")));
    let body = app.graphql(None, VALIDATE, json!({ "k": "CODES-KEY-0001", "f": "x".repeat(201) })).await;
    assert_eq!((error_code(&body), keysmith_tests::error_field(&body)), (Some("INVALID_INPUT"), Some("fingerprint")));
}
