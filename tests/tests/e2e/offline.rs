//! Offline licence files: issued by the preview and to a customer for their
//! own licence, signed with the server's Ed25519 key (generated once and kept
//! in the database), checked by `keysmith verify` and by OpenSSL from the
//! public key the server publishes; a tampered byte, an expired file or
//! another key's signature is refused.

use crate::cli::keysmith;
use crate::client::{activate, delivered, settings};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use entity::license_key::{self, KeySource};
use entity::user::StaffRole;
use entity::{LicenseStatus, signing_key};
use keysmith::AppState;
use keysmith::services::offline::{OfflineFacts, OfflineFile, OfflineSigner};
use keysmith_tests::app::config;
use keysmith_tests::{TestApp, data, error_code, on_both_databases, tool};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};
use std::path::Path;

const FILE_FIELDS: &str = "fileName content keyId issuedAt validUntil";

on_both_databases!(
    offline_files_are_signed_checked_and_refused_when_altered,
    a_customers_offline_file_is_the_keys_reveal
);

fn verify(dir: &Path, file: &Path, public_key: Option<&str>, database_url: &str) -> (bool, String) {
    let mut cmd = keysmith(dir);
    cmd.arg("verify").arg(file).env("DATABASE_URL", database_url);
    if let Some(key) = public_key {
        cmd.arg("--public-key").arg(key);
    }
    let out = cmd.output().expect("run keysmith verify");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

async fn offline_files_are_signed_checked_and_refused_when_altered(app: TestApp) {
    let (id, customer, _) = delivered(&app, "OFFLINE-KEY-0001", 2).await;
    assert_eq!(activate(&app, "OFFLINE-KEY-0001", "pc-1").await["code"], "VALID");
    let support = app.staff_token(StaffRole::Support).await;

    // The preview carries a file valid for the default 24 hours.
    let body = app
        .graphql(
            Some(&support),
            &format!("query($id: ID!) {{ licensePreview(id: $id) {{ offlineFile {{ {FILE_FIELDS} }} }} }}"),
            json!({ "id": id }),
        )
        .await;
    let file = data(&body)["licensePreview"]["offlineFile"].clone();
    let hours = |f: &Value| {
        let at = |name: &str| chrono::DateTime::parse_from_rfc3339(f[name].as_str().expect(name)).expect("a time");
        (at("validUntil") - at("issuedAt")).num_hours()
    };
    assert_eq!(hours(&file), 24);
    assert!(file["fileName"].as_str().is_some_and(|n| n.starts_with("OFFLINE-") && n.ends_with(".json")));

    // The public key, by URL and through GraphQL (no login), is the one that signed it.
    let published: Value =
        app.http.get(app.url("/offline-licence/public-key")).send().await.expect("get").json().await.expect("json");
    let body = app.graphql(None, "{ offlinePublicKey { algorithm keyId publicKey pem } }", json!({})).await;
    let key = data(&body)["offlinePublicKey"].clone();
    assert_eq!((&key["keyId"], &key["publicKey"]), (&published["keyId"], &published["publicKey"]));
    assert_eq!((key["algorithm"].as_str(), published["algorithm"].as_str()), (Some("Ed25519"), Some("Ed25519")));
    assert_eq!(file["keyId"], key["keyId"]);
    let pem =
        app.http.get(app.url("/offline-licence/public-key.pem")).send().await.expect("get").text().await.expect("text");
    assert_eq!(pem, key["pem"].as_str().expect("pem"));
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let public_key = key["publicKey"].as_str().expect("base64").to_string();

    // The customer gets their own licence's file, with the validity the setting gives; not another's.
    let admin = app.staff_token(StaffRole::Admin).await;
    settings(&app, &admin, json!({ "offlineFileValidityHours": 2 })).await;
    let mine = format!("query($id: ID!) {{ offlineLicenseFile(licenseId: $id) {{ {FILE_FIELDS} }} }}");
    let body = app.graphql(Some(&app.customer_token(&customer).await), &mine, json!({ "id": id })).await;
    let own = data(&body)["offlineLicenseFile"].clone();
    assert_eq!(hours(&own), 2);
    let stranger = app.graphql(Some(&app.customer_token(&entity::new_id()).await), &mine, json!({ "id": id })).await;
    assert_eq!(error_code(&stranger), Some("NOT_FOUND"));
    assert_eq!(error_code(&app.graphql(None, &mine, json!({ "id": id })).await), Some("UNAUTHENTICATED"));

    // `keysmith verify` accepts it and prints the facts: with the key given
    // as base64, as a PEM file, or read from the database.
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("licence.json");
    let content = own["content"].as_str().expect("content").to_string();
    std::fs::write(&path, &content).expect("write");
    let (ok, out) = verify(dir.path(), &path, Some(&public_key), &app.database_url);
    assert!(ok, "{out}");
    assert!(out.contains("OFFLINE-KEY-0001") && out.contains("ACTIVE") && out.contains("\"seats\":2"), "{out}");
    let pem_path = dir.path().join("key.pem");
    std::fs::write(&pem_path, &pem).expect("write");
    let (ok, out) = verify(dir.path(), &path, Some(pem_path.to_str().expect("path")), &app.database_url);
    assert!(ok, "{out}");
    let (ok, out) = verify(dir.path(), &path, None, &app.database_url);
    assert!(ok, "the database's key: {out}");

    // Any client can check it with the README's recipe: here OpenSSL, from the published PEM.
    if let Some(openssl) = tool("openssl") {
        let parsed: OfflineFile = serde_json::from_str(&content).expect("the file");
        let payload = dir.path().join("payload");
        let signature = dir.path().join("signature");
        std::fs::write(&payload, STANDARD.decode(&parsed.payload).expect("base64")).expect("write");
        std::fs::write(&signature, STANDARD.decode(&parsed.signature).expect("base64")).expect("write");
        let out = std::process::Command::new(openssl)
            .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
            .arg(&pem_path)
            .arg("-rawin")
            .arg("-in")
            .arg(&payload)
            .arg("-sigfile")
            .arg(&signature)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "OpenSSL verifies the signature: {}", String::from_utf8_lossy(&out.stderr));
    }

    // One changed character of the payload: refused.
    let mut file: OfflineFile = serde_json::from_str(&content).expect("the file");
    let at = file.payload.len() / 2;
    let changed = if &file.payload[at..=at] == "A" { "B" } else { "A" };
    file.payload.replace_range(at..=at, changed);
    std::fs::write(&path, serde_json::to_string(&file).expect("json")).expect("write");
    let (ok, out) = verify(dir.path(), &path, Some(&public_key), &app.database_url);
    assert!(!ok && out.contains("signature does not match"), "{out}");

    // An expired file, signed with the server's own key (as stored in the database): refused.
    let stored = signing_key::Entity::find_by_id("offline-licence").one(app.db()).await.expect("read").expect("a key");
    let seed: [u8; 32] = STANDARD.decode(&stored.secret).expect("base64").try_into().expect("32 bytes");
    let server = OfflineSigner::from_seed(seed);
    assert_eq!(server.key_id(), key["keyId"].as_str().expect("key id"), "the stored key is the one in use");
    let mut facts: OfflineFacts = serde_json::from_slice(
        &STANDARD.decode(&serde_json::from_str::<OfflineFile>(&content).expect("file").payload).expect("b64"),
    )
    .expect("facts");
    facts.issued_at = chrono::Utc::now() - chrono::Duration::hours(30);
    facts.valid_until = chrono::Utc::now() - chrono::Duration::hours(6);
    std::fs::write(&path, server.sign(&facts).expect("sign")).expect("write");
    let (ok, out) = verify(dir.path(), &path, Some(&public_key), &app.database_url);
    assert!(!ok && out.contains("expired"), "{out}");

    // A file signed by another key: refused, even with that key's own id in it.
    facts.valid_until = chrono::Utc::now() + chrono::Duration::hours(6);
    std::fs::write(&path, OfflineSigner::from_seed([9; 32]).sign(&facts).expect("sign")).expect("write");
    let (ok, out) = verify(dir.path(), &path, Some(&public_key), &app.database_url);
    assert!(!ok && out.contains("another key"), "{out}");

    // The key was generated once: a node opening the same database uses it too.
    let again = AppState::open(config(&app.database_url)).await.expect("open");
    assert_eq!(again.offline.key_id(), server.key_id());
    assert_eq!(again.offline.public_key_base64(), public_key);
}

/// The file holds the whole key, so a customer's download is the key's
/// reveal, as the key button is: the licence reads as revealed, and the
/// seller can no longer put it back in the pool for the next buyer (on whose
/// slot the first customer could otherwise activate it). Staff fetching a
/// file changes nothing.
async fn a_customers_offline_file_is_the_keys_reveal(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let file = "query($id: ID!) { offlineLicenseFile(licenseId: $id) { content } }";
    let facts = |body: &Value| -> Value {
        let content = data(body)["offlineLicenseFile"]["content"].as_str().expect("a file").to_string();
        let file: OfflineFile = serde_json::from_str(&content).expect("the file");
        serde_json::from_slice(&STANDARD.decode(&file.payload).expect("base64")).expect("the facts")
    };
    let own = "{ myOrders { id lines { licenses { id status revealed } } } }";
    let back = "mutation($id: ID!) { returnLicenseToPool(input: {id: $id}) { license { id } } }";
    let unassign = "mutation($id: ID!) { unassignLicense(input: {id: $id, to: POOL}) { license { id } } }";
    let refund = "mutation($id: ID!) { refundOrder(input: {id: $id, keys: RETURN_TO_POOL}) { order { id } } }";
    let revealed_events = "query($id: ID!) { auditEvents(filter: {targetId: $id, action: \"license.revealed\"}) \
                           { totalCount edges { node { actorKind } } } }";

    // An uploaded key, delivered and never shown.
    let (uploaded, customer, _) = delivered(&app, "OFFLINE-REVEAL-0001", 1).await;
    let token = app.customer_token(&customer).await;
    let before = app.graphql(Some(&token), own, json!({})).await;
    assert_eq!(
        data(&before)["myOrders"][0]["lines"][0]["licenses"][0],
        json!({ "id": uploaded, "status": "ASSIGNED", "revealed": false })
    );
    let body = app.graphql(Some(&token), file, json!({ "id": uploaded })).await;
    let got = facts(&body);
    assert_eq!((got["key"].as_str(), got["status"].as_str()), (Some("OFFLINE-REVEAL-0001"), Some("ACTIVE")));
    let after = app.graphql(Some(&token), own, json!({})).await;
    assert_eq!(
        data(&after)["myOrders"][0]["lines"][0]["licenses"][0],
        json!({ "id": uploaded, "status": "ACTIVE", "revealed": true }),
        "the download was the key's reveal"
    );
    let order = data(&after)["myOrders"][0]["id"].clone();
    let audit = app.graphql(Some(&admin), revealed_events, json!({ "id": uploaded })).await;
    assert_eq!(data(&audit)["auditEvents"]["totalCount"], 1);
    assert_eq!(data(&audit)["auditEvents"]["edges"][0]["node"]["actorKind"], "customer");
    // The seller's ways back to the pool are refused; the key stays the customer's.
    for (mutation, id) in [(back, &json!(uploaded)), (unassign, &json!(uploaded)), (refund, &order)] {
        let body = app.graphql(Some(&admin), mutation, json!({ "id": id })).await;
        assert_eq!(error_code(&body), Some("INVALID_TRANSITION"), "{mutation}: {body:#}");
    }
    let row = license_key::Entity::find_by_id(uploaded.clone()).one(app.db()).await.expect("read").expect("row");
    assert_eq!((row.status, row.customer_id.as_deref()), (LicenseStatus::Active, Some(customer.as_str())));
    // A second download is no second reveal.
    let again = app.graphql(Some(&token), file, json!({ "id": uploaded })).await;
    assert_eq!(facts(&again)["status"], "ACTIVE");
    let audit = app.graphql(Some(&admin), revealed_events, json!({ "id": uploaded })).await;
    assert_eq!(data(&audit)["auditEvents"]["totalCount"], 1);

    // A generated key waits for its software to activate it, but once its
    // customer holds the key it is theirs too.
    let (generated, customer, _) = delivered(&app, "OFFLINE-REVEAL-0002", 1).await;
    let mut row: license_key::ActiveModel =
        license_key::Entity::find_by_id(generated.clone()).one(app.db()).await.expect("read").expect("row").into();
    row.source = Set(KeySource::Generated);
    row.update(app.db()).await.expect("update");
    let token = app.customer_token(&customer).await;
    let body = app.graphql(Some(&token), file, json!({ "id": generated })).await;
    assert_eq!(facts(&body)["status"], "ASSIGNED");
    let after = app.graphql(Some(&token), own, json!({})).await;
    assert_eq!(data(&after)["myOrders"][0]["lines"][0]["licenses"][0]["revealed"], true);
    for mutation in [back, unassign] {
        let body = app.graphql(Some(&admin), mutation, json!({ "id": generated })).await;
        assert_eq!(error_code(&body), Some("INVALID_TRANSITION"), "{mutation}: {body:#}");
    }

    // A revoked licence's file still tells offline software so.
    let (revoked, customer, _) = delivered(&app, "OFFLINE-REVEAL-0004", 1).await;
    let body = app
        .graphql(
            Some(&admin),
            "mutation($id: ID!) { revokeLicense(input: {id: $id}) { license { status } } }",
            json!({ "id": revoked }),
        )
        .await;
    assert_eq!(data(&body)["revokeLicense"]["license"]["status"], "REVOKED");
    let token = app.customer_token(&customer).await;
    let body = app.graphql(Some(&token), file, json!({ "id": revoked })).await;
    assert_eq!(facts(&body)["status"], "REVOKED");

    // Staff reading a file is not the customer's reveal: the key may still go back.
    let (unseen, _, _) = delivered(&app, "OFFLINE-REVEAL-0003", 1).await;
    let body = app.graphql(Some(&admin), file, json!({ "id": unseen })).await;
    assert_eq!(facts(&body)["status"], "ASSIGNED");
    let row = license_key::Entity::find_by_id(unseen.clone()).one(app.db()).await.expect("read").expect("row");
    assert!(row.revealed_at.is_none());
    let body = app.graphql(Some(&admin), back, json!({ "id": unseen })).await;
    assert_eq!(data(&body)["returnLicenseToPool"]["license"]["id"], unseen.as_str());
}
