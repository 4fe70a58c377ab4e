//! The portal's pages and form handlers. Every POST checks its CSRF token;
//! every page is a template, so everything shown is escaped.

use super::view::{self, OrderView, RevealedKey};
use super::{Portal, SESSION_COOKIE};
use crate::status_for;
use askama::Template;
use poem::http::{StatusCode, header};
use poem::web::cookie::{Cookie, SameSite};
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Html, Path, Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The query the orders page runs with the customer's session.
pub const ORDERS_QUERY: &str = "{ myAccount { name email } myOrders { id externalId status createdAt lines { quantity waiting \
                      productName keyButtonText unavailableMessage licenses { id status expiresAt keyPrefix \
                      revealed activationLimit activationsUsed activations { id name platform lastSeenAt } } \
                      renewalOutcome renews { keyPrefix expiresAt } } } }";

#[derive(Template)]
#[template(path = "customer/login.html")]
struct LoginPage<'a> {
    title: &'a str,
    signed_in: Option<String>,
    csrf: &'a str,
    email: &'a str,
    notice: Option<&'a str>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "customer/message.html")]
struct MessagePage<'a> {
    title: &'a str,
    signed_in: Option<String>,
    csrf: &'a str,
    message: &'a str,
    next_href: &'a str,
    next_text: &'a str,
}

#[derive(Template)]
#[template(path = "customer/orders.html")]
struct OrdersPage<'a> {
    title: &'a str,
    signed_in: Option<String>,
    csrf: &'a str,
    notice: Option<&'a str>,
    orders: Vec<OrderView>,
    revealed: Vec<RevealedKey>,
    revealed_title: String,
}

fn page(status: StatusCode, rendered: Result<String, askama::Error>) -> Response {
    match rendered {
        Ok(html) => Html(html).with_status(status).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn message(status: StatusCode, csrf: &str, title: &str, text: &str, signed_in: Option<String>) -> Response {
    let (next_href, next_text) =
        if signed_in.is_some() { ("/portal/", "Back to your orders") } else { ("/portal/login", "Sign in") };
    page(status, MessagePage { title, signed_in, csrf, message: text, next_href, next_text }.render())
}

/// The page for a record that is not the customer's, or not there: the same either way.
fn not_found(csrf: &str, signed_in: Option<String>) -> Response {
    message(StatusCode::NOT_FOUND, csrf, "Not found", "There is nothing here, or it is not yours.", signed_in)
}

fn forged(csrf: &str) -> Response {
    message(
        StatusCode::FORBIDDEN,
        csrf,
        "The form expired",
        "This form is no longer valid. Go back, reload the page and try again.",
        None,
    )
}

fn session(req: &Request) -> Option<String> {
    req.cookie().get(SESSION_COOKIE).map(|c| c.value_str().to_string()).filter(|v| !v.is_empty())
}

fn session_cookie(value: &str, max_age_seconds: i64, secure: bool) -> Cookie {
    let mut cookie = Cookie::new_with_str(SESSION_COOKIE, value);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_path("/portal");
    cookie.set_secure(secure);
    cookie.set_max_age(std::time::Duration::from_secs(max_age_seconds.max(0) as u64));
    cookie
}

/// A GraphQL answer as JSON, with its first error's code.
fn answer(response: async_graphql::Response) -> (Value, Option<String>, Option<String>) {
    let json = serde_json::to_value(&response).unwrap_or(Value::Null);
    let code = json["errors"][0]["extensions"]["code"].as_str().map(str::to_string);
    let message = json["errors"][0]["message"].as_str().map(str::to_string);
    (json["data"].clone(), code, message)
}

fn to_login() -> Response {
    Redirect::see_other("/portal/login").into_response()
}

#[derive(Deserialize)]
pub(crate) struct Notice {
    notice: Option<String>,
}

/// Fixed notices a redirect may ask for: nothing from the address is shown.
fn notice_text(key: Option<&str>) -> Option<&'static str> {
    match key {
        Some("device-deactivated") => Some("The device was deactivated. Its slot is free again."),
        Some("signed-out") => Some("You are signed out."),
        _ => None,
    }
}

async fn render_orders(
    req: &Request,
    portal: &Portal,
    csrf: &str,
    token: &str,
    notice: Option<&str>,
    revealed: Vec<RevealedKey>,
) -> Response {
    let (data, code, _) = answer(portal.run(req, Some(token), ORDERS_QUERY, json!({})).await);
    if code.as_deref() == Some("UNAUTHENTICATED") {
        req.cookie().add(session_cookie("", 0, portal.options.secure_cookies));
        return to_login();
    }
    if code.is_some() {
        return message(status_for(code.as_deref()), csrf, "Something went wrong", "Please try again shortly.", None);
    }
    let who = data["myAccount"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .or(data["myAccount"]["email"].as_str())
        .map(str::to_string);
    let listed = view::orders(&data, chrono::Utc::now());
    let revealed_title = view::dialog_title(&listed, &revealed);
    page(
        StatusCode::OK,
        OrdersPage { title: "Your orders", signed_in: who, csrf, notice, orders: listed, revealed, revealed_title }
            .render(),
    )
}

#[handler]
pub(crate) async fn orders(
    req: &Request,
    Data(portal): Data<&Arc<Portal>>,
    csrf: &CsrfToken,
    Query(notice): Query<Notice>,
) -> Response {
    let Some(token) = session(req) else { return to_login() };
    render_orders(req, portal, &csrf.0, &token, notice_text(notice.notice.as_deref()), Vec::new()).await
}

#[handler]
pub(crate) async fn login_form(req: &Request, csrf: &CsrfToken, Query(notice): Query<Notice>) -> Response {
    if session(req).is_some() && notice.notice.is_none() {
        return Redirect::see_other("/portal/").into_response();
    }
    let notice = notice_text(notice.notice.as_deref());
    page(
        StatusCode::OK,
        LoginPage { title: "Sign in", signed_in: None, csrf: &csrf.0, email: "", notice, error: None }.render(),
    )
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    /// Missing reads as empty: refused with the page that says why.
    #[serde(default)]
    csrf: String,
    email: String,
}

#[handler]
pub(crate) async fn login(
    req: &Request,
    Data(portal): Data<&Arc<Portal>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Form(form): Form<LoginForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged(&csrf.0);
    }
    let query = "mutation($e: String!) { requestPortalLink(input: {email: $e}) { message } }";
    let (data, code, error) = answer(portal.run(req, None, query, json!({ "e": form.email })).await);
    match code {
        None => message(
            StatusCode::OK,
            &csrf.0,
            "Check your email",
            data["requestPortalLink"]["message"].as_str().unwrap_or_default(),
            None,
        ),
        Some(code) => {
            let error = match code.as_str() {
                "RATE_LIMITED" => "Too many sign-in requests. Wait a minute, then try again.".to_string(),
                _ => error.unwrap_or_else(|| "That did not work. Try again.".into()),
            };
            let status = status_for(Some(&code));
            let again = LoginPage {
                title: "Sign in",
                signed_in: None,
                csrf: &csrf.0,
                email: &form.email,
                notice: None,
                error: Some(error),
            };
            page(status, again.render())
        }
    }
}

#[derive(Template)]
#[template(path = "customer/link.html")]
struct LinkPage<'a> {
    title: &'a str,
    signed_in: Option<String>,
    csrf: &'a str,
    token: &'a str,
}

/// A sign-in link opened: a page with one button that signs in. Opening the
/// link spends nothing, so a mail scanner or a browser's prefetch fetching
/// it leaves it working, and no one is signed in by a link they did not
/// choose to use.
#[handler]
pub(crate) fn open_link(csrf: &CsrfToken, Path(token): Path<String>) -> Response {
    page(StatusCode::OK, LinkPage { title: "Sign in", signed_in: None, csrf: &csrf.0, token: &token }.render())
}

#[derive(Deserialize)]
pub(crate) struct LinkForm {
    /// Missing reads as empty: refused with the page that says why.
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

/// Spends a sign-in link's token: ends any session the browser had, sets
/// the new session's cookie and sends the browser on to its orders, the
/// token no longer in the address bar.
#[handler]
pub(crate) async fn follow_link(
    req: &Request,
    Data(portal): Data<&Arc<Portal>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Form(form): Form<LinkForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged(&csrf.0);
    }
    let query = "mutation($t: String!) { signInWithPortalLink(input: {token: $t}) { token expiresAt } }";
    let (data, code, _) = answer(portal.run(req, None, query, json!({ "t": form.token })).await);
    if code.is_some() {
        let refused = LoginPage {
            title: "Sign in",
            signed_in: None,
            csrf: &csrf.0,
            email: "",
            notice: None,
            error: Some("This link has expired or was already used. Ask for a new one below.".into()),
        };
        return page(StatusCode::BAD_REQUEST, refused.render());
    }
    if let Some(previous) = session(req) {
        let _ = portal.run(req, Some(&previous), "mutation { signOutOfPortal { signedOut } }", json!({})).await;
    }
    let session = &data["signInWithPortalLink"];
    let lifetime = session["expiresAt"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds())
        .unwrap_or(0);
    let token = session["token"].as_str().unwrap_or_default();
    req.cookie().add(session_cookie(token, lifetime, portal.options.secure_cookies));
    Redirect::see_other("/portal/").into_response()
}

#[derive(Deserialize)]
pub(crate) struct RevealForm {
    /// Missing reads as empty: refused with the page that says why.
    #[serde(default)]
    csrf: String,
    licenses: String,
}

#[handler]
pub(crate) async fn reveal(
    req: &Request,
    Data(portal): Data<&Arc<Portal>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Form(form): Form<RevealForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged(&csrf.0);
    }
    let Some(token) = session(req) else { return to_login() };
    let ids: Vec<&str> = form.licenses.split(',').map(str::trim).filter(|s| !s.is_empty()).take(100).collect();
    if ids.is_empty() {
        return not_found(&csrf.0, None);
    }
    let mut variables = serde_json::Map::new();
    let mut fields = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        variables.insert(format!("l{i}"), json!(id));
        fields.push(format!("k{i}: revealLicenseKey(input: {{licenseId: $l{i}}}) {{ key licenseId }}"));
    }
    let params: Vec<String> = (0..ids.len()).map(|i| format!("$l{i}: ID!")).collect();
    let query = format!("mutation({}) {{ {} }}", params.join(", "), fields.join(" "));
    let (data, code, _) = answer(portal.run(req, Some(&token), &query, Value::Object(variables)).await);
    match code.as_deref() {
        None => {}
        Some("UNAUTHENTICATED") => return to_login(),
        Some("NOT_FOUND") => return not_found(&csrf.0, Some(String::new())),
        Some(other) => {
            let text = "The key could not be shown. Try again, or contact the seller.";
            return message(status_for(Some(other)), &csrf.0, "Not available", text, Some(String::new()));
        }
    }
    let revealed = (0..ids.len())
        .filter_map(|i| {
            let shown = &data[format!("k{i}")];
            Some(RevealedKey {
                key: shown["key"].as_str()?.to_string(),
                licence_id: shown["licenseId"].as_str()?.to_string(),
            })
        })
        .collect();
    render_orders(req, portal, &csrf.0, &token, None, revealed).await
}

#[derive(Deserialize)]
pub(crate) struct DeactivateForm {
    /// Missing reads as empty: refused with the page that says why.
    #[serde(default)]
    csrf: String,
    activation: String,
}

#[handler]
pub(crate) async fn deactivate(
    req: &Request,
    Data(portal): Data<&Arc<Portal>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Form(form): Form<DeactivateForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged(&csrf.0);
    }
    let Some(token) = session(req) else { return to_login() };
    let query = "mutation($id: ID!) { deactivateActivation(input: {id: $id}) { activation { id } } }";
    let (_, code, _) = answer(portal.run(req, Some(&token), query, json!({ "id": form.activation })).await);
    match code.as_deref() {
        None => Redirect::see_other("/portal/?notice=device-deactivated").into_response(),
        Some("UNAUTHENTICATED") => to_login(),
        Some(_) => not_found(&csrf.0, Some(String::new())),
    }
}

#[derive(Deserialize)]
pub(crate) struct OfflineFileForm {
    /// Missing reads as empty: refused with the page that says why.
    #[serde(default)]
    csrf: String,
}

/// The offline licence file, as a download. A POST with the page's CSRF
/// token, not a link: the file holds the whole key, so downloading it is the
/// key's reveal (it goes into use), which no other site may set off.
#[handler]
pub(crate) async fn offline_file(
    req: &Request,
    Data(portal): Data<&Arc<Portal>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    Form(form): Form<OfflineFileForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged(&csrf.0);
    }
    let Some(token) = session(req) else { return to_login() };
    let query = "query($id: ID!) { offlineLicenseFile(licenseId: $id) { fileName content } }";
    let (data, code, _) = answer(portal.run(req, Some(&token), query, json!({ "id": id })).await);
    match code.as_deref() {
        None => {
            let file = &data["offlineLicenseFile"];
            let name: String = file["fileName"]
                .as_str()
                .unwrap_or("licence.json")
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                .collect();
            Response::builder()
                .content_type("application/json")
                .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))
                .body(file["content"].as_str().unwrap_or_default().to_string())
        }
        Some("UNAUTHENTICATED") => to_login(),
        Some(_) => not_found(&csrf.0, Some(String::new())),
    }
}

#[derive(Deserialize)]
pub(crate) struct LogoutForm {
    /// Missing reads as empty: refused with the page that says why.
    #[serde(default)]
    csrf: String,
}

#[handler]
pub(crate) async fn logout(
    req: &Request,
    Data(portal): Data<&Arc<Portal>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Form(form): Form<LogoutForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged(&csrf.0);
    }
    if let Some(token) = session(req) {
        let _ = portal.run(req, Some(&token), "mutation { signOutOfPortal { signedOut } }", json!({})).await;
    }
    req.cookie().add(session_cookie("", 0, portal.options.secure_cookies));
    Redirect::see_other("/portal/login?notice=signed-out").into_response()
}

#[handler]
pub(crate) fn stylesheet() -> Response {
    Response::builder().content_type("text/css; charset=utf-8").body(include_str!("../../static/portal.css"))
}

#[handler]
pub(crate) fn script() -> Response {
    Response::builder().content_type("text/javascript; charset=utf-8").body(include_str!("../../static/portal.js"))
}
