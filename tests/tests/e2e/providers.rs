//! Deliveries signed as each provider signs them, computed here from the
//! providers' documented algorithms (never by Keysmith's code), and the
//! admin calls the integration tests repeat.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use keysmith_tests::{TestApp, data};
use serde_json::{Value, json};
use sha2::Sha256;

pub fn hmac(key: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `Stripe-Signature`: `t=<unix>,v1=<hex HMAC of "t.body">`.
pub fn stripe(secret: &str, t: i64, body: &str) -> (&'static str, String) {
    let signature = hex::encode(hmac(secret, &[t.to_string().as_bytes(), b".", body.as_bytes()]));
    ("Stripe-Signature", format!("t={t},v1={signature}"))
}

/// `Paddle-Signature`: `ts=<unix>;h1=<hex HMAC of "ts:body">`.
pub fn paddle(secret: &str, ts: i64, body: &str) -> (&'static str, String) {
    let signature = hex::encode(hmac(secret, &[ts.to_string().as_bytes(), b":", body.as_bytes()]));
    ("Paddle-Signature", format!("ts={ts};h1={signature}"))
}

/// `X-Signature`: the hex HMAC of the body.
pub fn lemon_squeezy(secret: &str, body: &str) -> (&'static str, String) {
    ("X-Signature", hex::encode(hmac(secret, &[body.as_bytes()])))
}

/// `X-Shopify-Hmac-Sha256`: the base64 HMAC of the body.
pub fn shopify(secret: &str, body: &str) -> (&'static str, String) {
    ("X-Shopify-Hmac-Sha256", STANDARD.encode(hmac(secret, &[body.as_bytes()])))
}

/// `X-WC-Webhook-Signature`: the base64 HMAC of the body, keyed by the secret
/// as WordPress stores it after `wp_specialchars_decode`.
pub fn woocommerce(decoded_secret: &str, body: &str) -> (&'static str, String) {
    ("X-WC-Webhook-Signature", STANDARD.encode(hmac(decoded_secret, &[body.as_bytes()])))
}

/// Posts `body` to an integration's inbound address with `headers`: the status and the JSON answer.
pub async fn deliver(app: &TestApp, integration: &str, headers: &[(&str, String)], body: &str) -> (u16, Value) {
    let mut request = app
        .http
        .post(app.url(&format!("/integrations/{integration}/webhook")))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let answer = request.send().await.expect("an answer");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

const INTEGRATION: &str = "id provider name enabled inboundUrl onRefund onCancel refusedCount lastRefusal \
    needsAttention productMappings { providerRef product { id } }";

/// Creates an integration as an admin; `extra` adds input fields.
pub async fn connect(
    app: &TestApp,
    admin: &str,
    provider: &str,
    secret: &str,
    mappings: Value,
    extra: Value,
) -> String {
    let mut input = json!({ "provider": provider, "name": format!("{provider} shop"), "secret": secret, "productMappings": mappings });
    if let (Some(input), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
        input.extend(extra.clone());
    }
    let body = app
        .graphql(
            Some(admin),
            &format!("mutation($i: CreateIntegrationInput!) {{ createIntegration(input: $i) {{ integration {{ {INTEGRATION} }} }} }}"),
            json!({ "i": input }),
        )
        .await;
    data(&body)["createIntegration"]["integration"]["id"].as_str().expect("an integration").to_string()
}

/// Changes an integration as an admin; the whole answer.
pub async fn change(app: &TestApp, admin: &str, input: Value) -> Value {
    app.graphql(
        Some(admin),
        &format!("mutation($i: UpdateIntegrationInput!) {{ updateIntegration(input: $i) {{ integration {{ {INTEGRATION} }} }} }}"),
        json!({ "i": input }),
    )
    .await
}

pub async fn read(app: &TestApp, admin: &str, id: &str) -> Value {
    let body = app
        .graphql(
            Some(admin),
            &format!("query($id: ID!) {{ integration(id: $id) {{ {INTEGRATION} }} }}"),
            json!({ "id": id }),
        )
        .await;
    data(&body)["integration"].clone()
}

/// An integration's events, newest first.
pub async fn events(app: &TestApp, admin: &str, id: &str) -> Vec<Value> {
    let body = app
        .graphql(
            Some(admin),
            "query($id: ID!) { integrationEvents(integrationId: $id, first: 20) { nodes { id eventType \
             providerEventId outcome reason detail attempts duplicates order { id externalId status customer { email } } \
             licenses { id key status expiresAt renewedFrom { id } } } } }",
            json!({ "id": id }),
        )
        .await;
    data(&body)["integrationEvents"]["nodes"].as_array().expect("events").clone()
}

pub async fn replay(app: &TestApp, admin: &str, event: &str) -> Value {
    app.graphql(
        Some(admin),
        "mutation($id: ID!) { replayIntegrationEvent(input: {id: $id}) { event { id outcome reason attempts \
         order { id externalId } } } }",
        json!({ "id": event }),
    )
    .await
}
