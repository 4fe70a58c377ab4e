//! The admin portal's pages and form handlers. Every POST checks its CSRF
//! token; every page is a template, so everything shown is escaped.

use super::{Admin, ENVIRONMENT_COOKIE, SESSION_COOKIE};
use crate::status_for;
use askama::Template;
use poem::http::StatusCode;
use poem::web::cookie::{Cookie, SameSite};
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Html, Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Who is asking, in which environment: what every page runs first.
const ME_QUERY: &str = "{ me { role environment user { email } } }";
const LOGIN: &str = "mutation($email: String!, $password: String!) { \
                     login(input: {email: $email, password: $password, session: true}) { token } }";
const SIGN_OUT: &str = "mutation { signOut { signedOut } }";

/// An area of the admin portal in the navigation; `href` is `None` until its
/// pages exist (shown as coming, never as a dead link).
pub(crate) struct Area {
    pub name: &'static str,
    pub href: Option<&'static str>,
    pub current: bool,
    /// Only for those who manage licences (managers and admins).
    pub manages: bool,
    /// Only for those who read the audit log (admins and support).
    pub audits: bool,
    /// Only for admins.
    pub administers: bool,
}

/// Every area, in the navigation's order.
pub(crate) fn areas(current: &str) -> Vec<Area> {
    [
        ("Home", Some("/admin/")),
        ("Licences", Some("/admin/licenses")),
        ("Keys & tags", Some("/admin/keys")),
        ("Upload keys", Some("/admin/keys/upload")),
        ("Orders", Some("/admin/orders")),
        ("Products", Some("/admin/products")),
        ("Customers", Some("/admin/customers")),
        ("Generators", Some("/admin/generators")),
        ("Activations", Some("/admin/activations")),
        ("Background jobs", Some("/admin/jobs")),
        ("Webhooks", Some("/admin/webhooks")),
        ("Integrations", Some("/admin/integrations")),
        ("Audit log", Some("/admin/audit")),
        ("Settings", Some("/admin/settings")),
        ("Staff", Some("/admin/users")),
    ]
    .into_iter()
    .map(|(name, href)| Area {
        name,
        href,
        current: name == current,
        manages: name == "Upload keys",
        audits: name == "Audit log",
        administers: matches!(name, "Webhooks" | "Integrations" | "Settings" | "Staff"),
    })
    .collect()
}

/// The signed-in staff member, as every page's frame shows them.
pub(crate) struct Staff {
    pub email: String,
    pub role: String,
    pub staging: bool,
}

#[derive(Template)]
#[template(path = "admin/login.html")]
struct LoginPage<'a> {
    title: &'a str,
    csrf: &'a str,
    email: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "admin/message.html")]
pub(crate) struct MessagePage<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

pub(crate) fn page(status: StatusCode, rendered: Result<String, askama::Error>) -> Response {
    match rendered {
        Ok(html) => Html(html).with_status(status).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

pub(crate) fn forged() -> Response {
    page(
        StatusCode::FORBIDDEN,
        MessagePage {
            title: "The form expired",
            message: "This form is no longer valid. Go back, reload the page and try again.",
        }
        .render(),
    )
}

pub(crate) fn session(req: &Request) -> Option<String> {
    req.cookie().get(SESSION_COOKIE).map(|c| c.value_str().to_string()).filter(|v| !v.is_empty())
}

/// A cookie of the admin portal: HttpOnly, `SameSite=Strict`, `Path=/admin`,
/// `Secure` over HTTPS; `None` for one that lasts the browser session.
fn cookie(name: &str, value: &str, max_age_seconds: Option<u64>, secure: bool) -> Cookie {
    let mut cookie = Cookie::new_with_str(name, value);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_path("/admin");
    cookie.set_secure(secure);
    if let Some(seconds) = max_age_seconds {
        cookie.set_max_age(std::time::Duration::from_secs(seconds));
    }
    cookie
}

/// Puts a session's token in the browser's admin cookie.
pub(crate) fn set_session(req: &Request, admin: &Admin, token: &str) {
    req.cookie().add(cookie(SESSION_COOKIE, token, None, admin.options.secure_cookies));
}

pub(crate) fn to_login(notice: Option<&str>) -> Response {
    let to = match notice {
        Some(notice) => format!("/admin/login?notice={notice}"),
        None => "/admin/login".to_string(),
    };
    Redirect::see_other(to).into_response()
}

/// A GraphQL answer as JSON, with its first error's code and message.
pub(crate) fn answer(response: async_graphql::Response) -> (Value, Option<String>, Option<String>) {
    let json = serde_json::to_value(&response).unwrap_or(Value::Null);
    let code = json["errors"][0]["extensions"]["code"].as_str().map(str::to_string);
    let message = json["errors"][0]["message"].as_str().map(str::to_string);
    (json["data"].clone(), code, message)
}

/// The signed-in staff member, or the answer that sends the browser to sign
/// in (the cookie cleared when it no longer works).
pub(crate) async fn signed_in(req: &Request, admin: &Admin) -> Result<(String, Staff), Response> {
    let Some(token) = session(req) else { return Err(to_login(None)) };
    let (data, _, _) = answer(admin.run(req, Some(&token), ME_QUERY, json!({})).await);
    match staff_of(&data) {
        Some(staff) => Ok((token, staff)),
        None => Err(ended(req, admin)),
    }
}

/// The staff member an answer's `me` names; `None` when the session no longer works.
pub(crate) fn staff_of(data: &Value) -> Option<Staff> {
    let me = &data["me"];
    match (me["role"].as_str(), me["user"]["email"].as_str()) {
        (Some(role @ ("ADMIN" | "MANAGER" | "SUPPORT")), Some(email)) => Some(Staff {
            email: email.to_string(),
            role: role.to_lowercase(),
            staging: me["environment"].as_str() == Some("STAGING"),
        }),
        _ => None,
    }
}

/// The answer for a session that no longer works: its cookie cleared, the
/// browser sent to sign in.
pub(crate) fn ended(req: &Request, admin: &Admin) -> Response {
    end_session(req, admin, "session-ended")
}

/// The errors of a form's mutation, or — when the session has ended (an
/// `UNAUTHENTICATED` that names no field; one that does, such as a wrong
/// current password, is the form's problem) — the answer that signs out.
pub(crate) fn form_errors(req: &Request, admin: &Admin, response: &Value) -> Result<Vec<Value>, Box<Response>> {
    let errors = response["errors"].as_array().cloned().unwrap_or_default();
    if errors.iter().any(|e| e["extensions"]["code"] == "UNAUTHENTICATED" && e["extensions"]["field"].is_null()) {
        return Err(Box::new(ended(req, admin)));
    }
    Ok(errors)
}

/// Clears the session cookie and sends the browser to sign in with `notice`.
pub(crate) fn end_session(req: &Request, admin: &Admin, notice: &str) -> Response {
    req.cookie().add(cookie(SESSION_COOKIE, "", Some(0), admin.options.secure_cookies));
    to_login(Some(notice))
}

/// A form posted with repeated fields (checkboxes), as name and value pairs.
pub(crate) fn form_fields(body: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(body.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// The first value of `name` in a posted form ("" when absent).
pub(crate) fn form_value<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default()
}

/// A page that only says something, answered with `status`.
pub(crate) fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    page(status, MessagePage { title, message: text }.render())
}

/// Leaves the outcome of a mutation (`code` and `message` of its first error,
/// none when it worked) for the page the action returns to; `Some` is the
/// answer to give instead when the session has ended.
pub(crate) fn outcome(
    req: &Request,
    admin: &Admin,
    code: Option<&str>,
    message: Option<String>,
    done: &str,
) -> Option<Response> {
    match code {
        None => flash(req, admin, true, done),
        Some("UNAUTHENTICATED") => return Some(ended(req, admin)),
        Some("FORBIDDEN") => flash(req, admin, false, "Your role may not do that."),
        Some(_) => flash(req, admin, false, &message.unwrap_or_else(|| "That did not work.".into())),
    }
    None
}

/// The cookie carrying the outcome of the last action to the page it
/// redirected to: shown once, then cleared.
const FLASH_COOKIE: &str = "keysmith_admin_flash";

/// What an action says on the page it returns to.
pub(crate) struct Flash {
    pub ok: bool,
    pub text: String,
}

/// Leaves `text` for the next page (`ok` false for a refusal).
pub(crate) fn flash(req: &Request, admin: &Admin, ok: bool, text: &str) {
    let value = format!(
        "{}{}",
        if ok { "ok:" } else { "no:" },
        percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC)
    );
    req.cookie().add(cookie(FLASH_COOKIE, &value, Some(60), admin.options.secure_cookies));
}

/// The message the last action left, taken (so a reload does not repeat it).
pub(crate) fn take_flash(req: &Request, admin: &Admin) -> Option<Flash> {
    let value = req.cookie().get(FLASH_COOKIE)?.value_str().to_string();
    req.cookie().add(cookie(FLASH_COOKIE, "", Some(0), admin.options.secure_cookies));
    let (ok, text) = match value.split_at_checked(3)? {
        ("ok:", text) => (true, text),
        ("no:", text) => (false, text),
        _ => return None,
    };
    let text = percent_encoding::percent_decode_str(text).decode_utf8().ok()?.chars().take(500).collect();
    Some(Flash { ok, text })
}

/// An address inside the admin portal to return to, from a form: anything
/// else (another site, a scheme, backslashes) is the portal's home.
pub(crate) fn inside(back: Option<&str>, fallback: &str) -> String {
    back.filter(|b| b.starts_with("/admin/") && !b.starts_with("//") && !b.contains('\\'))
        .map_or_else(|| fallback.to_string(), str::to_string)
}

#[derive(Deserialize)]
pub(crate) struct Notice {
    notice: Option<String>,
}

/// Fixed notices a redirect may ask for: nothing from the address is shown.
fn notice_text(key: Option<&str>) -> Option<&'static str> {
    match key {
        Some("signed-out") => Some("You are signed out."),
        Some("session-ended") => Some("Your session has ended. Sign in again."),
        Some("password-changed") => Some("Your password was changed: sign in with the new one."),
        _ => None,
    }
}

#[handler]
pub(crate) fn login_form(csrf: &CsrfToken, Query(notice): Query<Notice>) -> Response {
    let notice = notice_text(notice.notice.as_deref());
    page(StatusCode::OK, LoginPage { title: "Sign in", csrf: &csrf.0, email: "", notice, error: None }.render())
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    csrf: String,
    email: String,
    password: String,
}

#[handler]
pub(crate) async fn login(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Form(form): Form<LoginForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let variables = json!({ "email": form.email, "password": form.password });
    let (data, code, message) = answer(admin.run(req, None, LOGIN, variables).await);
    if let Some(token) = data["login"]["token"].as_str() {
        set_session(req, admin, token);
        return Redirect::see_other("/admin/").into_response();
    }
    let error = match code.as_deref() {
        Some("RATE_LIMITED") => "Too many sign-in attempts. Wait a minute and try again.".to_string(),
        Some("INVALID_INPUT") => message.unwrap_or_else(|| "Check the email and password.".into()),
        _ => "The email or password is wrong, or the account is disabled.".to_string(),
    };
    page(
        status_for(code.as_deref()),
        LoginPage { title: "Sign in", csrf: &csrf.0, email: &form.email, notice: None, error: Some(&error) }.render(),
    )
}

/// A form that carries nothing but its CSRF token (a button).
#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

#[handler]
pub(crate) async fn logout(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    verifier: &CsrfVerifier,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    if let Some(token) = session(req) {
        let _ = admin.run(req, Some(&token), SIGN_OUT, json!({})).await;
    }
    req.cookie().add(cookie(SESSION_COOKIE, "", Some(0), admin.options.secure_cookies));
    to_login(Some("signed-out"))
}

#[derive(Deserialize)]
pub(crate) struct EnvironmentForm {
    #[serde(default)]
    csrf: String,
    environment: String,
    back: Option<String>,
}

/// Switches the environment the portal works in, and returns to the page.
#[handler]
pub(crate) async fn switch_environment(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    verifier: &CsrfVerifier,
    Form(form): Form<EnvironmentForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let environment = match form.environment.as_str() {
        "staging" => "staging",
        _ => "production",
    };
    req.cookie().add(cookie(ENVIRONMENT_COOKIE, environment, Some(365 * 24 * 3600), admin.options.secure_cookies));
    // Back to an admin page only: never elsewhere, whatever the form says.
    let back = inside(form.back.as_deref(), "/admin/");
    Redirect::see_other(back).into_response()
}

#[handler]
pub(crate) fn stylesheet() -> Response {
    Response::builder().content_type("text/css; charset=utf-8").body(include_str!("../../static/admin.css"))
}

#[handler]
pub(crate) fn script() -> Response {
    Response::builder().content_type("text/javascript; charset=utf-8").body(include_str!("../../static/admin.js"))
}
