//! Staff accounts: admins create and change them; a change of role, a
//! disabled account or a new password ends the account's tokens at once; the
//! last admin stays; sign-in attempts are limited per address and per email.

use entity::user::StaffRole;
use keysmith_tests::app::TEST_PASSWORD;
use keysmith_tests::{TestApp, data, error_code, error_field, on_both_databases};
use serde_json::{Value, json};

const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token user { role } } }";
const ME: &str = "{ me { role user { email } } }";
const UPDATE: &str = "mutation($i: UpdateUserInput!) { updateUser(input: $i) { user { id role disabled } } }";

async fn login(app: &TestApp, email: &str, password: &str) -> Value {
    app.graphql(None, LOGIN, json!({ "e": email, "p": password })).await
}

fn token(body: &Value) -> String {
    data(body)["login"]["token"].as_str().unwrap_or_else(|| panic!("a token: {body:#}")).to_string()
}

async fn role_of(app: &TestApp, token: &str) -> Result<String, String> {
    let body = app.graphql(Some(token), ME, json!({})).await;
    match error_code(&body) {
        Some(code) => Err(code.to_string()),
        None => Ok(data(&body)["me"]["role"].as_str().unwrap_or_default().to_string()),
    }
}

on_both_databases!(
    staff_accounts_are_managed_and_changes_end_tokens_at_once,
    sign_in_attempts_are_limited_per_email_and_per_address
);

async fn staff_accounts_are_managed_and_changes_end_tokens_at_once(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let create = "mutation($e: String!, $p: String!, $r: StaffRole!) { createUser(input: {email: $e, password: $p, \
                  role: $r}) { user { id email role disabled } } }";
    let body =
        app.graphql(Some(&admin), create, json!({ "e": "sam@example.com", "p": TEST_PASSWORD, "r": "SUPPORT" })).await;
    let sam = data(&body)["createUser"]["user"]["id"].clone();
    assert_eq!(data(&body)["createUser"]["user"]["role"], "SUPPORT");
    // Refusals name the field and create nothing.
    let weak =
        app.graphql(Some(&admin), create, json!({ "e": "weak@example.com", "p": "short", "r": "SUPPORT" })).await;
    assert_eq!((error_code(&weak), error_field(&weak)), (Some("INVALID_INPUT"), Some("password")));
    let twice =
        app.graphql(Some(&admin), create, json!({ "e": "sam@example.com", "p": TEST_PASSWORD, "r": "ADMIN" })).await;
    assert_eq!((error_code(&twice), error_field(&twice)), (Some("CONFLICT"), Some("email")));
    let listed = app.graphql(Some(&admin), "{ users { totalCount edges { node { email } } } }", json!({})).await;
    assert_eq!(data(&listed)["users"]["totalCount"], 2, "{listed:#}");

    // Sam signs in; a change of role ends the token at once, a new sign-in carries the new role.
    let first = token(&login(&app, "sam@example.com", TEST_PASSWORD).await);
    assert_eq!(role_of(&app, &first).await.as_deref(), Ok("SUPPORT"));
    let body = app.graphql(Some(&admin), UPDATE, json!({ "i": { "id": sam, "role": "MANAGER" } })).await;
    assert_eq!(data(&body)["updateUser"]["user"]["role"], "MANAGER");
    assert_eq!(role_of(&app, &first).await, Err("UNAUTHENTICATED".into()));
    let second = token(&login(&app, "sam@example.com", TEST_PASSWORD).await);
    assert_eq!(role_of(&app, &second).await.as_deref(), Ok("MANAGER"));

    // Disabled: the token stops, and so does signing in (with the usual answer).
    app.graphql(Some(&admin), UPDATE, json!({ "i": { "id": sam, "disabled": true } })).await;
    assert_eq!(role_of(&app, &second).await, Err("UNAUTHENTICATED".into()));
    assert_eq!(error_code(&login(&app, "sam@example.com", TEST_PASSWORD).await), Some("UNAUTHENTICATED"));
    app.graphql(Some(&admin), UPDATE, json!({ "i": { "id": sam, "disabled": false } })).await;
    let third = token(&login(&app, "sam@example.com", TEST_PASSWORD).await);

    // An admin's reset: the old password and token stop working.
    let reset =
        app.graphql(Some(&admin), UPDATE, json!({ "i": { "id": sam, "password": "reset by the admin 42" } })).await;
    assert!(reset.get("errors").is_none(), "{reset:#}");
    assert_eq!(role_of(&app, &third).await, Err("UNAUTHENTICATED".into()));
    assert_eq!(error_code(&login(&app, "sam@example.com", TEST_PASSWORD).await), Some("UNAUTHENTICATED"));
    let fourth = token(&login(&app, "sam@example.com", "reset by the admin 42").await);

    // Sam changes their own password, proving the current one.
    let change = "mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) { token } }";
    let wrong =
        app.graphql(Some(&fourth), change, json!({ "c": "not the password", "n": "sam's own passphrase 7" })).await;
    assert_eq!((error_code(&wrong), error_field(&wrong)), (Some("INVALID_INPUT"), Some("currentPassword")));
    assert_eq!(role_of(&app, &fourth).await.as_deref(), Ok("MANAGER"), "a refused change changes nothing");
    let changed = app
        .graphql(Some(&fourth), change, json!({ "c": "reset by the admin 42", "n": "sam's own passphrase 7" }))
        .await;
    let fresh = data(&changed)["changePassword"]["token"].as_str().expect("a fresh token").to_string();
    assert_eq!(role_of(&app, &fresh).await.as_deref(), Ok("MANAGER"));
    assert_eq!(role_of(&app, &fourth).await, Err("UNAUTHENTICATED".into()));
    token(&login(&app, "sam@example.com", "sam's own passphrase 7").await);

    // The last enabled admin can be neither disabled nor demoted.
    let me = app.graphql(Some(&admin), "{ me { user { id } } }", json!({})).await;
    let admin_id = data(&me)["me"]["user"]["id"].clone();
    let last = app.graphql(Some(&admin), UPDATE, json!({ "i": { "id": admin_id, "disabled": true } })).await;
    assert_eq!((error_code(&last), error_field(&last)), (Some("CONFLICT"), Some("disabled")));
    let last = app.graphql(Some(&admin), UPDATE, json!({ "i": { "id": admin_id, "role": "SUPPORT" } })).await;
    assert_eq!((error_code(&last), error_field(&last)), (Some("CONFLICT"), Some("role")));
    assert_eq!(role_of(&app, &admin).await.as_deref(), Ok("ADMIN"), "refused: nothing changed");
    app.graphql(Some(&admin), UPDATE, json!({ "i": { "id": sam, "role": "ADMIN" } })).await;
    let demoted = app.graphql(Some(&admin), UPDATE, json!({ "i": { "id": admin_id, "role": "SUPPORT" } })).await;
    assert_eq!(data(&demoted)["updateUser"]["user"]["role"], "SUPPORT", "with another admin, allowed");

    // Every change is audited, without the passwords.
    let sam_admin = token(&login(&app, "sam@example.com", "sam's own passphrase 7").await);
    let trail = app
        .graphql(
            Some(&sam_admin),
            "{ auditEvents(filter: {targetKind: \"user\"}, first: 50) { edges { node { action after } } } }",
            json!({}),
        )
        .await;
    let text = trail.to_string();
    assert!(
        text.contains("user.password_changed") && text.contains("user.updated") && text.contains("user.created"),
        "{trail:#}"
    );
    assert!(!text.contains("reset by the admin") && !text.contains("own passphrase"), "{text}");
}

async fn sign_in_attempts_are_limited_per_email_and_per_address(app: TestApp) {
    app.staff_token(StaffRole::Admin).await;
    let other_address = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().expect("address")))
        .build()
        .expect("a client on another address");
    let login_from = |client: reqwest::Client, email: String, password: &'static str| {
        let url = app.url("/graphql");
        async move {
            client
                .post(url)
                .json(&json!({ "query": LOGIN, "variables": { "e": email, "p": password } }))
                .send()
                .await
                .expect("answer")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    // Ten guesses at one account; the eleventh attempt is refused even with the right password.
    let victim = "victim@example.com";
    for _ in 0..keysmith::services::ratelimit::LOGINS_PER_EMAIL {
        assert_eq!(error_code(&login(&app, victim, "a wrong guess 123").await), Some("UNAUTHENTICATED"));
    }
    let limited = login(&app, victim, TEST_PASSWORD).await;
    assert_eq!(error_code(&limited), Some("RATE_LIMITED"), "{limited:#}");
    assert!(
        limited["errors"][0]["extensions"]["retryAfter"].as_u64().is_some_and(|s| (1..=6).contains(&s)),
        "{limited:#}"
    );
    // From another address too: the budget is the account's.
    let elsewhere = login_from(other_address.clone(), victim.into(), "a wrong guess 123").await;
    assert_eq!(error_code(&elsewhere), Some("RATE_LIMITED"));

    // One address trying many accounts runs out of its own budget (30 a
    // minute, 10 spent above); another address still signs in.
    let mut refused_after = None;
    for i in 0..keysmith::services::ratelimit::LOGINS_PER_ADDRESS {
        let body = login(&app, &format!("guess-{i}@example.com"), "a wrong guess 123").await;
        if error_code(&body) == Some("RATE_LIMITED") {
            refused_after = Some(i);
            break;
        }
        assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
    }
    assert!(refused_after.is_some_and(|i| (15..=20).contains(&i)), "refused after {refused_after:?} more attempts");
    let fine = login_from(other_address, "guess-99@example.com".into(), "a wrong guess 123").await;
    assert_eq!(error_code(&fine), Some("UNAUTHENTICATED"), "another address is still heard: {fine:#}");
}
