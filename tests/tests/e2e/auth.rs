//! Signing in and tokens: what works, and every way a token can be wrong.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entity::user::{self, StaffRole};
use keysmith::auth::Role;
use keysmith::auth::jwt::{AUDIENCE, Claims, ISSUER, JwtKeys};
use keysmith_tests::app::{TEST_PASSWORD, TEST_SECRET};
use keysmith_tests::{TestApp, data, error_code, on_both_databases};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;

const LOGIN: &str = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token expiresAt user { email role } } }";

on_both_databases!(
    staff_log_in_with_email_and_password,
    bad_tokens_are_all_unauthenticated,
    credentials_come_only_from_the_bearer_header,
    a_token_limited_to_an_environment_stays_there,
    disabling_an_account_stops_its_tokens,
);

async fn staff_log_in_with_email_and_password(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let who = app.graphql(Some(&admin), "{ me { user { email } } }", json!({})).await;
    let email = data(&who)["me"]["user"]["email"].as_str().expect("email").to_uppercase();

    // Emails are matched whatever their case.
    let body = app.graphql(None, LOGIN, json!({ "e": email, "p": TEST_PASSWORD })).await;
    let login = &data(&body)["login"];
    assert_eq!(login["user"]["role"], "ADMIN");
    let token = login["token"].as_str().expect("token");
    let me = app.graphql(Some(token), "{ me { role environment user { role } } }", json!({})).await;
    assert_eq!(data(&me)["me"], json!({ "role": "ADMIN", "environment": "PRODUCTION", "user": { "role": "ADMIN" } }));

    let wrong = app.graphql(None, LOGIN, json!({ "e": email, "p": "not the password at all" })).await;
    let unknown = app.graphql(None, LOGIN, json!({ "e": "who@example.com", "p": TEST_PASSWORD })).await;
    assert_eq!(error_code(&wrong), Some("UNAUTHENTICATED"));
    assert_eq!(
        wrong["errors"][0]["message"], unknown["errors"][0]["message"],
        "an unknown email and a wrong password look the same"
    );

    let anonymous = app.graphql(None, "{ me { role user { id } } }", json!({})).await;
    assert_eq!(data(&anonymous)["me"], json!({ "role": "ANONYMOUS", "user": null }));
}

async fn bad_tokens_are_all_unauthenticated(app: TestApp) {
    let good = app.staff_token(StaffRole::Manager).await;
    let keys = JwtKeys::new(TEST_SECRET.as_bytes()).expect("keys");
    let claims: Claims = keys.verify(&good).expect("the good token verifies");

    let sign = |c: &Claims| keys.sign(c).expect("sign");
    let mut expired = claims.clone();
    expired.iat -= 7200;
    expired.exp = expired.iat + 60;
    let mut audience = claims.clone();
    audience.aud = "another-service".into();
    let mut issuer = claims.clone();
    issuer.iss = "someone-else".into();
    let other_secret =
        JwtKeys::new(b"another-secret-another-secret-0123456789").expect("keys").sign(&claims).expect("sign");
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .expect("sign");
    // A token that is not good before an hour from now (RFC 7519 `nbf`).
    let mut not_yet = serde_json::to_value(&claims).expect("claims");
    not_yet["nbf"] = json!(claims.iat + 3600);
    let not_yet = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &not_yet,
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .expect("sign");
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims"));
    let none = format!("{}.{body}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#));
    // Promote ourselves to admin by editing the payload: the signature no longer matches.
    let mut promoted = claims.clone();
    promoted.role = Role::Admin;
    let parts: Vec<&str> = good.split('.').collect();
    let tampered =
        format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(serde_json::to_vec(&promoted).expect("claims")), parts[2]);

    for (what, token) in [
        ("expired", sign(&expired)),
        ("wrong audience", sign(&audience)),
        ("wrong issuer", sign(&issuer)),
        ("wrong secret", other_secret),
        ("wrong algorithm", hs512),
        ("alg none", none),
        ("tampered payload", tampered),
        ("garbage", "not.a.token".to_string()),
        ("not valid before an hour from now", not_yet),
    ] {
        let (status, body) = app.graphql_in(Some(&token), None, "{ me { role } }", json!({})).await;
        assert_eq!(status, 401, "{what}: {body:#}");
        assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{what}: {body:#}");
    }
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.aud, AUDIENCE);
}

async fn credentials_come_only_from_the_bearer_header(app: TestApp) {
    let token = app.staff_token(StaffRole::Admin).await;
    let query = json!({ "query": "{ me { role } }" });

    // A cookie holding a valid token is ignored: the request is anonymous.
    let resp = app
        .http
        .post(app.url("/graphql"))
        .header("Cookie", format!("token={token}; session={token}"))
        .json(&query)
        .send()
        .await
        .expect("answer");
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(data(&body)["me"]["role"], "ANONYMOUS");

    // Another scheme is refused, not ignored.
    let resp = app
        .http
        .post(app.url("/graphql"))
        .header("Authorization", format!("Basic {token}"))
        .json(&query)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
}

async fn a_token_limited_to_an_environment_stays_there(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let who = app.graphql(Some(&admin), "{ me { user { id } } }", json!({})).await;
    let id = data(&who)["me"]["user"]["id"].as_str().expect("id").to_string();
    let account = keysmith::services::users::get(app.db(), &id).await.ok().flatten().expect("account");
    let staging =
        keysmith::services::users::issue_token(&app.state.jwt, &account, Some(entity::Environment::Staging), 600)
            .map(|t| t.token)
            .unwrap_or_else(|e| panic!("token: {}", e.client_message()));

    let (_, body) = app.graphql_in(Some(&staging), None, "{ me { environment } }", json!({})).await;
    assert_eq!(data(&body)["me"]["environment"], "STAGING", "the token's environment is the default");
    let (status, body) = app.graphql_in(Some(&staging), Some("production"), "{ me { environment } }", json!({})).await;
    assert_eq!(status, 403);
    assert_eq!(error_code(&body), Some("FORBIDDEN"));
    let (status, body) = app.graphql_in(Some(&admin), Some("moon"), "{ me { role } }", json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["extensions"]["field"], "X-Keysmith-Environment");
}

async fn disabling_an_account_stops_its_tokens(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let ok = app.graphql(Some(&manager), "{ me { role } }", json!({})).await;
    assert_eq!(data(&ok)["me"]["role"], "MANAGER");

    let account = user::Entity::find()
        .filter(user::Column::Role.eq(StaffRole::Manager))
        .one(app.db())
        .await
        .expect("query")
        .expect("the manager");
    let mut active: user::ActiveModel = account.into();
    active.disabled = Set(true);
    active.update(app.db()).await.expect("disable");

    let (status, body) = app.graphql_in(Some(&manager), None, "{ me { role } }", json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
}
