//! Staff sessions, what the admin portal signs in with: `login` with
//! `session: true` opens one, and its token works only while it is open —
//! `signOut`, disabling the account, a role or password change or idling past
//! `adminIdleTimeoutMinutes` end it at once — while bearer tokens (no
//! session) live on as before. Time is moved in the database, never waited for.

use chrono::{DateTime, Duration, Utc};
use entity::user::StaffRole;
use entity::{Environment, LicenseStatus, audit_event, staff_session};
use keysmith::auth::jwt::Claims;
use keysmith::auth::{RequestContext, Role};
use keysmith_tests::app::{TEST_PASSWORD, seed};
use keysmith_tests::{TestApp, data, error_code, error_field, on_both_databases};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

const LOGIN: &str = "mutation($e: String!, $p: String!, $s: Boolean!) { \
                     login(input: {email: $e, password: $p, session: $s}) { token expiresAt user { id } } }";
const ME: &str = "{ me { role user { email } } }";
const SIGN_OUT: &str = "mutation { signOut { signedOut } }";
const UPDATE_USER: &str = "mutation($i: UpdateUserInput!) { updateUser(input: $i) { user { id } } }";
const IDLE_TIMEOUT: &str = "mutation($m: Int!) { updateSettings(input: {adminIdleTimeoutMinutes: $m}) \
                            { settings { adminIdleTimeoutMinutes } } }";

/// A new staff account with `role`: its email and id.
async fn account(app: &TestApp, role: StaffRole) -> (String, String) {
    let email = format!("{}@example.com", ulid::Ulid::generate().to_string().to_lowercase());
    let ctx = RequestContext::system(Environment::Production);
    let user = keysmith::services::users::create(app.db(), &ctx, &email, TEST_PASSWORD, role)
        .await
        .unwrap_or_else(|e| panic!("create a {role:?}: {}", e.client_message()));
    (email, user.id)
}

async fn login(app: &TestApp, email: &str, session: bool) -> Value {
    app.graphql(None, LOGIN, json!({ "e": email, "p": TEST_PASSWORD, "s": session })).await
}

fn token(body: &Value) -> String {
    data(body)["login"]["token"].as_str().unwrap_or_else(|| panic!("a token: {body:#}")).to_string()
}

fn claims(app: &TestApp, token: &str) -> Claims {
    app.state.jwt.verify(token).expect("a token of this server")
}

/// The session a token belongs to.
fn sid(app: &TestApp, token: &str) -> String {
    claims(app, token).sid.unwrap_or_else(|| panic!("the token carries no session"))
}

/// The role the token acts as, or the code of its refusal (asserting that a
/// refused token is answered 401).
async fn who(app: &TestApp, token: &str) -> Result<String, String> {
    let (status, body) = app.graphql_in(Some(token), None, ME, json!({})).await;
    match error_code(&body) {
        Some(code) => {
            assert_eq!(status, 401, "{body:#}");
            Err(code.to_string())
        }
        None => Ok(data(&body)["me"]["role"].as_str().unwrap_or_default().to_string()),
    }
}

fn refused() -> Result<String, String> {
    Err("UNAUTHENTICATED".into())
}

async fn session_row(app: &TestApp, id: &str) -> staff_session::Model {
    staff_session::Entity::find_by_id(id.to_string()).one(app.db()).await.expect("read").expect("the session")
}

/// Makes the session look last used `idle` ago.
async fn last_used(app: &TestApp, id: &str, idle: Duration) -> DateTime<Utc> {
    let at = entity::now() - idle;
    staff_session::Entity::update_many()
        .col_expr(staff_session::Column::LastSeenAt, Expr::value(at))
        .filter(staff_session::Column::Id.eq(id))
        .exec(app.db())
        .await
        .expect("move the session's last use back");
    at
}

on_both_databases!(
    a_session_token_stops_when_its_session_is_signed_out,
    signing_out_ends_only_that_session,
    disabling_or_changing_the_account_ends_its_sessions,
    a_session_left_idle_past_the_timeout_ends,
    a_session_is_its_own_accounts_only,
    a_password_change_keeps_only_the_callers_session,
    a_session_token_is_as_recent_as_its_sign_in,
);

async fn a_session_token_stops_when_its_session_is_signed_out(app: TestApp) {
    let (email, id) = account(&app, StaffRole::Support).await;
    let body = login(&app, &email, true).await;
    let session = token(&body);
    let opened = sid(&app, &session);
    assert_eq!(claims(&app, &session).role, Role::Support);
    assert_eq!(who(&app, &session).await.as_deref(), Ok("SUPPORT"));
    let row = session_row(&app, &opened).await;
    assert_eq!((row.user_id.as_str(), row.ended_at), (id.as_str(), None));
    let expires_at: DateTime<Utc> =
        serde_json::from_value(data(&body)["login"]["expiresAt"].clone()).expect("expiresAt");
    assert_eq!(row.expires_at.timestamp(), expires_at.timestamp(), "the session lasts as long as its token");

    let body = app.graphql(Some(&session), SIGN_OUT, json!({})).await;
    assert_eq!(data(&body)["signOut"]["signedOut"], true);
    assert_eq!(who(&app, &session).await, refused(), "ended at once");
    assert!(session_row(&app, &opened).await.ended_at.is_some());
    let again = app.graphql(Some(&session), SIGN_OUT, json!({})).await;
    assert_eq!(error_code(&again), Some("UNAUTHENTICATED"), "an ended session's token is nobody");

    // Signing in and out are in the account's audit trail, naming the session.
    let trail = audit_event::Entity::find()
        .filter(audit_event::Column::TargetId.eq(id.as_str()))
        .all(app.db())
        .await
        .expect("the trail");
    for action in ["user.signed_in", "user.signed_out"] {
        let event = trail.iter().find(|e| e.action == action).unwrap_or_else(|| panic!("{action}: {trail:#?}"));
        assert_eq!((event.actor_kind.as_str(), event.actor_id.as_deref()), ("user", Some(id.as_str())), "{action}");
        assert_eq!(event.after.as_ref().map(|a| &a["session"]), Some(&json!(opened)), "{action}");
    }

    // A new sign-in is a new session.
    let next = token(&login(&app, &email, true).await);
    assert_ne!(sid(&app, &next), opened);
    assert_eq!(who(&app, &next).await.as_deref(), Ok("SUPPORT"));
}

async fn signing_out_ends_only_that_session(app: TestApp) {
    let (email, _) = account(&app, StaffRole::Manager).await;
    let bearer = token(&login(&app, &email, false).await);
    assert_eq!(claims(&app, &bearer).sid, None, "without `session` the token is a bearer token");
    let first = token(&login(&app, &email, true).await);
    let second = token(&login(&app, &email, true).await);

    let body = app.graphql(Some(&first), SIGN_OUT, json!({})).await;
    assert_eq!(data(&body)["signOut"]["signedOut"], true);
    assert_eq!(who(&app, &first).await, refused());
    assert_eq!(who(&app, &second).await.as_deref(), Ok("MANAGER"), "another session of the account goes on");
    assert_eq!(who(&app, &bearer).await.as_deref(), Ok("MANAGER"), "a bearer token goes on");

    // A bearer token has no session to end: the answer says so and nothing stops.
    let body = app.graphql(Some(&bearer), SIGN_OUT, json!({})).await;
    assert_eq!(data(&body)["signOut"]["signedOut"], false);
    assert_eq!(who(&app, &bearer).await.as_deref(), Ok("MANAGER"));
    assert_eq!(who(&app, &second).await.as_deref(), Ok("MANAGER"));
    // Nor does the customers' sign-out touch a staff session.
    let body = app.graphql(Some(&second), "mutation { signOutOfPortal { signedOut } }", json!({})).await;
    assert_eq!(data(&body)["signOutOfPortal"]["signedOut"], false);
    assert_eq!(who(&app, &second).await.as_deref(), Ok("MANAGER"));
}

async fn disabling_or_changing_the_account_ends_its_sessions(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let (email, id) = account(&app, StaffRole::Support).await;
    let session = token(&login(&app, &email, true).await);
    assert_eq!(who(&app, &session).await.as_deref(), Ok("SUPPORT"));

    let body = app.graphql(Some(&admin), UPDATE_USER, json!({ "i": { "id": id, "disabled": true } })).await;
    data(&body);
    assert_eq!(who(&app, &session).await, refused(), "disabling ends the session at once");
    assert!(session_row(&app, &sid(&app, &session)).await.ended_at.is_some());
    let body = app.graphql(Some(&admin), UPDATE_USER, json!({ "i": { "id": id, "disabled": false } })).await;
    data(&body);
    assert_eq!(who(&app, &session).await, refused(), "enabled again, the old session stays ended");

    let again = token(&login(&app, &email, true).await);
    assert_eq!(who(&app, &again).await.as_deref(), Ok("SUPPORT"));
    let body = app.graphql(Some(&admin), UPDATE_USER, json!({ "i": { "id": id, "role": "MANAGER" } })).await;
    data(&body);
    assert_eq!(who(&app, &again).await, refused(), "a role change ends the session at once");
    assert!(session_row(&app, &sid(&app, &again)).await.ended_at.is_some());
}

async fn a_session_left_idle_past_the_timeout_ends(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let body = app.graphql(Some(&admin), "{ settings { adminIdleTimeoutMinutes } }", json!({})).await;
    assert_eq!(data(&body)["settings"]["adminIdleTimeoutMinutes"], 30, "the default");
    for minutes in [0, 1441] {
        let body = app.graphql(Some(&admin), IDLE_TIMEOUT, json!({ "m": minutes })).await;
        assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some("adminIdleTimeoutMinutes")));
    }

    let (email, _) = account(&app, StaffRole::Support).await;
    let session = token(&login(&app, &email, true).await);
    let sid = sid(&app, &session);

    // Use within the timeout keeps the session going; a use is written at
    // most once a minute, so idling is measured without a write per request.
    let at = last_used(&app, &sid, Duration::seconds(30)).await;
    assert_eq!(who(&app, &session).await.as_deref(), Ok("SUPPORT"));
    assert_eq!(session_row(&app, &sid).await.last_seen_at, at, "used 30 s ago: not written again");
    last_used(&app, &sid, Duration::minutes(20)).await;
    assert_eq!(who(&app, &session).await.as_deref(), Ok("SUPPORT"), "20 minutes idle, under 30");
    let seen = session_row(&app, &sid).await.last_seen_at;
    assert!(entity::now() - seen < Duration::seconds(30), "the use is recorded: {seen}");

    // A one-minute timeout: two minutes idle ends the session, for good.
    let body = app.graphql(Some(&admin), IDLE_TIMEOUT, json!({ "m": 1 })).await;
    assert_eq!(data(&body)["updateSettings"]["settings"]["adminIdleTimeoutMinutes"], 1);
    last_used(&app, &sid, Duration::minutes(2)).await;
    assert_eq!(who(&app, &session).await, refused(), "idle past the timeout");
    assert!(session_row(&app, &sid).await.ended_at.is_some());
    let body = app.graphql(Some(&admin), IDLE_TIMEOUT, json!({ "m": 30 })).await;
    data(&body);
    assert_eq!(who(&app, &session).await, refused(), "a longer timeout does not bring it back");

    // Signing in again opens a fresh session.
    let fresh = token(&login(&app, &email, true).await);
    assert_eq!(who(&app, &fresh).await.as_deref(), Ok("SUPPORT"));
}

async fn a_session_is_its_own_accounts_only(app: TestApp) {
    let (a_email, _) = account(&app, StaffRole::Support).await;
    let (_, b_id) = account(&app, StaffRole::Support).await;
    let a_session = token(&login(&app, &a_email, true).await);
    let a_sid = sid(&app, &a_session);
    let b = keysmith::services::users::get(app.db(), &b_id).await.ok().flatten().expect("account b");
    let jwt = &app.state.jwt;

    // Signed with the server's own secret, B's token naming A's session is still nobody.
    let (borrowed, _) =
        jwt.issue_staff_session(&b.id, Role::Support, b.token_version, &a_sid, 600).expect("sign a token");
    assert_eq!(who(&app, &borrowed).await, refused(), "another account's session");
    let (made_up, _) =
        jwt.issue_staff_session(&b.id, Role::Support, b.token_version, &entity::new_id(), 600).expect("sign");
    assert_eq!(who(&app, &made_up).await, refused(), "a session nobody opened");
    let customer = app.customer_token(&entity::new_id()).await;
    let (portal, _) =
        jwt.issue_staff_session(&b.id, Role::Support, b.token_version, &sid(&app, &customer), 600).expect("sign");
    assert_eq!(who(&app, &portal).await, refused(), "a customer's portal session is no staff session");

    assert_eq!(who(&app, &a_session).await.as_deref(), Ok("SUPPORT"), "A's session is untouched");
    assert!(session_row(&app, &a_sid).await.ended_at.is_none());
}

async fn a_password_change_keeps_only_the_callers_session(app: TestApp) {
    let (email, _) = account(&app, StaffRole::Manager).await;
    let mine = token(&login(&app, &email, true).await);
    let other = token(&login(&app, &email, true).await);
    let bearer = token(&login(&app, &email, false).await);

    let change = "mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) \
                  { token } }";
    let body = app.graphql(Some(&mine), change, json!({ "c": TEST_PASSWORD, "n": "a new passphrase for 2026" })).await;
    let fresh = data(&body)["changePassword"]["token"].as_str().expect("a fresh token").to_string();
    assert_eq!(sid(&app, &fresh), sid(&app, &mine), "the caller's session goes on with the fresh token");
    assert_eq!(who(&app, &fresh).await.as_deref(), Ok("MANAGER"));
    for (what, token) in [("the old token", &mine), ("another session", &other), ("a bearer token", &bearer)] {
        assert_eq!(who(&app, token).await, refused(), "{what}");
    }
    assert!(session_row(&app, &sid(&app, &other)).await.ended_at.is_some());
    assert!(session_row(&app, &sid(&app, &mine)).await.ended_at.is_none());

    let body = app.graphql(Some(&fresh), SIGN_OUT, json!({})).await;
    assert_eq!(data(&body)["signOut"]["signedOut"], true);
    assert_eq!(who(&app, &fresh).await, refused());
}

async fn a_session_token_is_as_recent_as_its_sign_in(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let licence = seed::key(app.db(), Environment::Production, "SESSION-KEY-0001", LicenseStatus::Available, &[]).await;
    seed::deliver(app.db(), &licence, true).await;
    let set = "mutation { updateSettings(input: {previewRequiresRecentSignIn: true}) \
               { settings { previewRequiresRecentSignIn } } }";
    data(&app.graphql(Some(&admin), set, json!({})).await);
    let preview = "query($id: ID!) { licensePreview(id: $id) { license { id } } }";

    let (email, _) = account(&app, StaffRole::Support).await;
    let session = token(&login(&app, &email, true).await);
    let body = app.graphql(Some(&session), preview, json!({ "id": licence })).await;
    assert_eq!(data(&body)["licensePreview"]["license"]["id"], json!(licence), "just signed in");

    // The same session's token as it reads ten minutes after signing in: the
    // session is in use all along, but the sign-in is no longer recent.
    let mut later = claims(&app, &session);
    later.iat -= 600;
    let later = app.state.jwt.sign(&later).expect("sign");
    assert_eq!(who(&app, &later).await.as_deref(), Ok("SUPPORT"));
    let body = app.graphql(Some(&later), preview, json!({ "id": licence })).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body:#}");
}
