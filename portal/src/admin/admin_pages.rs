//! The admin's own pages: settings (`/admin/settings`), webhooks
//! (`/admin/webhooks`, the secret shown once, deliveries with Redeliver),
//! staff (`/admin/users`: create, role, disable, reset password) and, for
//! everyone, "My account" (`/admin/account`: change one's own password).
//! The API decides who may: each page says so when the role may not.

use super::Admin;
use super::create::Problem;
use super::pages::{
    Area, Flash, Staff, answer, areas, ended, flash, forged, page, session, staff_of, take_flash, to_login,
};
use super::tags::COMPONENT;
use askama::Template;
use percent_encoding::utf8_percent_encode;
use poem::http::StatusCode;
use poem::web::{CsrfToken, CsrfVerifier, Data, Path, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

const ME: &str = "{ me { role environment user { email } } }";

fn refused(title: &'static str, message: &'static str) -> Response {
    page(StatusCode::FORBIDDEN, super::pages::MessagePage { title, message }.render())
}

/// A form posted with repeated fields (checkboxes), read by hand.
fn fields(body: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(body.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn one<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default()
}

/// The API's errors at the fields they name (the field's name cut from the message).
fn problems_at(errors: &[Value], known: &[&'static str]) -> Vec<Problem> {
    errors
        .iter()
        .map(|e| {
            let field = e["extensions"]["field"].as_str().and_then(|f| known.iter().copied().find(|k| *k == f));
            let text = e["message"].as_str().unwrap_or("That did not work.").to_string();
            let text = match (field, text.split_once(": ")) {
                (Some(_), Some((_, reason))) => reason.to_string(),
                _ => text,
            };
            Problem { field, text }
        })
        .collect()
}

// ----- Settings -----

/// A number setting: its field, label, explanation and unit.
pub(crate) struct NumberSetting {
    pub field: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub value: String,
    pub problem: Option<String>,
}

pub(crate) struct Group {
    pub title: &'static str,
    pub numbers: Vec<NumberSetting>,
}

/// A number setting as the page lists it: (field, label, explanation).
type Described = (&'static str, &'static str, &'static str);

/// The settings page's groups of number settings.
const GROUPS: &[(&str, &[Described])] = &[
    (
        "Licences",
        &[
            (
                "gracePeriodMinutes",
                "Grace period (minutes)",
                "How long after its expiry a licence still validates — room for payment processing delays.",
            ),
            (
                "offlineFileValidityHours",
                "Offline file validity (hours)",
                "How long a signed offline licence file stays valid.",
            ),
        ],
    ),
    (
        "Pool notifications",
        &[(
            "exhaustionThreshold",
            "Exhaustion threshold (%)",
            "The used share of a pool at which Keysmith warns (home page, pool.exhausting webhook, email): 1–100.",
        )],
    ),
    (
        "Abuse detection",
        &[
            (
                "abuseMaxFingerprints",
                "Distinct devices",
                "More than this many different devices trying one key within the window suspends it; 0 turns the rule off.",
            ),
            ("abuseWindowMinutes", "Window (minutes)", "The time the distinct devices are counted over."),
        ],
    ),
    (
        "Rate limits",
        &[
            (
                "rateLimitPerKey",
                "Client calls per key per minute",
                "Validate, activate and deactivate calls allowed for one key on each node; 0: no limit.",
            ),
            (
                "rateLimitPerAddress",
                "Client calls per address per minute",
                "Calls allowed from one client address on each node; 0: no limit.",
            ),
        ],
    ),
    (
        "Admin portal",
        &[("adminIdleTimeoutMinutes", "Idle timeout (minutes)", "A staff session left unused this long ends.")],
    ),
];

const SETTINGS: &str = "{ me { role environment user { email } } settings { previewRequiresRecentSignIn exhaustionThreshold \
    gracePeriodMinutes abuseMaxFingerprints abuseWindowMinutes offlineFileValidityHours rateLimitPerKey \
    rateLimitPerAddress notificationEmail webhookAllowPrivateAddresses adminIdleTimeoutMinutes } }";

#[derive(Template)]
#[template(path = "admin/settings.html")]
struct SettingsPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    groups: Vec<Group>,
    preview_recent: bool,
    exhaustion_email: bool,
    notification_email: String,
    allow_private: bool,
    problems: Vec<Problem>,
    flash: Option<Flash>,
}

impl SettingsPage<'_> {
    fn problem(&self, field: &str) -> Option<&str> {
        self.problems.iter().find(|p| p.field == Some(field)).map(|p| p.text.as_str())
    }
    fn general(&self) -> Vec<&str> {
        self.problems.iter().filter(|p| p.field.is_none()).map(|p| p.text.as_str()).collect()
    }
}

const SETTING_FIELDS: [&str; 10] = [
    "exhaustionThreshold",
    "gracePeriodMinutes",
    "abuseMaxFingerprints",
    "abuseWindowMinutes",
    "offlineFileValidityHours",
    "rateLimitPerKey",
    "rateLimitPerAddress",
    "notificationEmail",
    "adminIdleTimeoutMinutes",
    "webhookAllowPrivateAddresses",
];

fn render_settings(
    req: &Request,
    admin: &Admin,
    csrf: &str,
    staff: Staff,
    current: &Value,
    typed: Option<&[(String, String)]>,
    problems: Vec<Problem>,
) -> Response {
    let value = |field: &str| match typed {
        Some(typed) => one(typed, field).to_string(),
        None => current[field].as_i64().map(|n| n.to_string()).unwrap_or_default(),
    };
    let groups = GROUPS
        .iter()
        .map(|(title, numbers)| Group {
            title,
            numbers: numbers
                .iter()
                .map(|(field, label, help)| NumberSetting {
                    field,
                    label,
                    help,
                    value: value(field),
                    problem: problems.iter().find(|p| p.field == Some(*field)).map(|p| p.text.clone()),
                })
                .collect(),
        })
        .collect();
    let checked = |field: &str, fallback: bool| match typed {
        Some(typed) => one(typed, field) == "yes",
        None => current[field].as_bool().unwrap_or(fallback),
    };
    let email = match typed {
        Some(typed) => one(typed, "notificationEmail").to_string(),
        None => current["notificationEmail"].as_str().unwrap_or_default().to_string(),
    };
    let exhaustion_email = match typed {
        Some(typed) => one(typed, "exhaustionEmail") == "yes",
        None => !current["notificationEmail"].is_null(),
    };
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    page(
        status,
        SettingsPage {
            title: "Settings",
            csrf,
            staff,
            areas: areas("Settings"),
            back: "/admin/settings",
            groups,
            preview_recent: checked("previewRequiresRecentSignIn", false),
            exhaustion_email,
            notification_email: email,
            allow_private: checked("webhookAllowPrivateAddresses", false),
            problems,
            flash: take_flash(req, admin),
        }
        .render(),
    )
}

#[handler]
pub(crate) async fn settings(req: &Request, Data(admin): Data<&Arc<Admin>>, csrf: &CsrfToken) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let (data, code, _) = answer(admin.run(req, Some(&token), SETTINGS, json!({})).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    if code.as_deref() == Some("FORBIDDEN") || staff.role != "admin" {
        return refused("Settings", "Only admins change the settings.");
    }
    render_settings(req, admin, &csrf.0, staff, &data["settings"], None, Vec::new())
}

#[handler]
pub(crate) async fn save_settings(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    body: String,
) -> Response {
    let typed = fields(&body);
    if !verifier.is_valid(one(&typed, "csrf")) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let mut problems = Vec::new();
    let mut input = Map::new();
    for (_, numbers) in GROUPS {
        for (field, _, _) in *numbers {
            match one(&typed, field).trim().parse::<i64>() {
                Ok(n) => {
                    input.insert((*field).into(), json!(n));
                }
                Err(_) => problems.push(Problem { field: Some(field), text: "must be a whole number".into() }),
            }
        }
    }
    input.insert("previewRequiresRecentSignIn".into(), json!(one(&typed, "previewRequiresRecentSignIn") == "yes"));
    input.insert("webhookAllowPrivateAddresses".into(), json!(one(&typed, "webhookAllowPrivateAddresses") == "yes"));
    let email = one(&typed, "notificationEmail").trim();
    if one(&typed, "exhaustionEmail") == "yes" {
        if email.is_empty() {
            problems
                .push(Problem { field: Some("notificationEmail"), text: "enter the address the emails go to".into() });
        }
        input.insert("notificationEmail".into(), json!(email));
    } else {
        input.insert("notificationEmail".into(), Value::Null);
    }
    if problems.is_empty() {
        let mutation = "mutation($input: UpdateSettingsInput!) { updateSettings(input: $input) { settings { exhaustionThreshold } } }";
        let response = serde_json::to_value(admin.run(req, Some(&token), mutation, json!({ "input": input })).await)
            .unwrap_or_default();
        if response["data"]["updateSettings"].is_object() {
            flash(req, admin, true, "Settings saved");
            return Redirect::see_other("/admin/settings").into_response();
        }
        let errors = response["errors"].as_array().cloned().unwrap_or_default();
        if errors.iter().any(|e| e["extensions"]["code"] == "UNAUTHENTICATED") {
            return ended(req, admin);
        }
        if errors.iter().any(|e| e["extensions"]["code"] == "FORBIDDEN") {
            return refused("Settings", "Only admins change the settings.");
        }
        problems = problems_at(&errors, &SETTING_FIELDS);
    }
    let (data, _, _) = answer(admin.run(req, Some(&token), SETTINGS, json!({})).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    render_settings(req, admin, &csrf.0, staff, &data["settings"], Some(&typed), problems)
}

// ----- Staff -----

const USERS: &str = "{ me { role environment user { id email } } users(first: 100) { edges { node { id email role disabled createdAt } } } }";

pub(crate) struct UserRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub disabled: bool,
    pub created: String,
    pub me: bool,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    rows: Vec<UserRow>,
    email: &'a str,
    role: &'a str,
    error: Option<String>,
    flash: Option<Flash>,
}

async fn render_users(
    req: &Request,
    admin: &Admin,
    token: &str,
    csrf: &str,
    email: &str,
    role: &str,
    error: Option<String>,
) -> Response {
    let (data, code, _) = answer(admin.run(req, Some(token), USERS, json!({})).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    if code.as_deref() == Some("FORBIDDEN") || staff.role != "admin" {
        return refused("Staff", "Only admins manage staff accounts.");
    }
    let me = data["me"]["user"]["id"].as_str().unwrap_or_default().to_string();
    let rows = data["users"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let u = &e["node"];
            let id = u["id"].as_str().unwrap_or_default().to_string();
            UserRow {
                me: id == me,
                id,
                email: u["email"].as_str().unwrap_or_default().to_string(),
                role: u["role"].as_str().unwrap_or_default().to_string(),
                disabled: u["disabled"].as_bool().unwrap_or_default(),
                created: u["createdAt"].as_str().map(|t| t.get(..10).unwrap_or(t).to_string()).unwrap_or_default(),
            }
        })
        .collect();
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    page(
        status,
        UsersPage {
            title: "Staff",
            csrf,
            staff,
            areas: areas("Staff"),
            back: "/admin/users",
            rows,
            email,
            role,
            error,
            flash: take_flash(req, admin),
        }
        .render(),
    )
}

#[handler]
pub(crate) async fn users(req: &Request, Data(admin): Data<&Arc<Admin>>, csrf: &CsrfToken) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    render_users(req, admin, &token, &csrf.0, "", "SUPPORT", None).await
}

#[derive(Deserialize)]
pub(crate) struct NewUser {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
}

#[handler]
pub(crate) async fn create_user(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    poem::web::Form(form): poem::web::Form<NewUser>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let role = match form.role.as_str() {
        "ADMIN" | "MANAGER" => form.role.as_str(),
        _ => "SUPPORT",
    };
    let mutation = "mutation($email: String!, $password: String!, $role: StaffRole!) { \
                    createUser(input: {email: $email, password: $password, role: $role}) { user { email } } }";
    let variables = json!({ "email": form.email.trim(), "password": form.password, "role": role });
    let (_, code, message) = answer(admin.run(req, Some(&token), mutation, variables).await);
    match code.as_deref() {
        None => {
            flash(req, admin, true, &format!("{} can sign in with the temporary password", form.email.trim()));
            Redirect::see_other("/admin/users").into_response()
        }
        Some("UNAUTHENTICATED") => ended(req, admin),
        Some("FORBIDDEN") => refused("Staff", "Only admins manage staff accounts."),
        Some(_) => {
            let error = message.unwrap_or_else(|| "That did not work.".into());
            render_users(req, admin, &token, &csrf.0, form.email.trim(), role, Some(error)).await
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct UserChange {
    #[serde(default)]
    csrf: String,
    /// `role`, `disable`, `enable` or `password`.
    #[serde(default)]
    change: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

#[handler]
pub(crate) async fn change_user(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    poem::web::Form(form): poem::web::Form<UserChange>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let mut input = Map::new();
    input.insert("id".into(), json!(id));
    let done = match form.change.as_str() {
        "role" => {
            let role = match form.role.as_str() {
                "ADMIN" | "MANAGER" => form.role.as_str(),
                _ => "SUPPORT",
            };
            input.insert("role".into(), json!(role));
            format!("Role changed to {}", role.to_lowercase())
        }
        "disable" => {
            input.insert("disabled".into(), json!(true));
            "Account disabled; its sessions ended".to_string()
        }
        "enable" => {
            input.insert("disabled".into(), json!(false));
            "Account enabled".to_string()
        }
        "password" => {
            input.insert("password".into(), json!(form.password));
            "Password reset; its sessions ended".to_string()
        }
        _ => return StatusCode::BAD_REQUEST.into_response(),
    };
    let mutation = "mutation($input: UpdateUserInput!) { updateUser(input: $input) { user { id } } }";
    let (_, code, message) = answer(admin.run(req, Some(&token), mutation, json!({ "input": input })).await);
    match code.as_deref() {
        None => flash(req, admin, true, &done),
        Some("UNAUTHENTICATED") => return ended(req, admin),
        Some("FORBIDDEN") => flash(req, admin, false, "Your role may not do that."),
        Some(_) => flash(req, admin, false, &message.unwrap_or_else(|| "That did not work.".into())),
    }
    Redirect::see_other("/admin/users").into_response()
}

// ----- My account -----

#[derive(Template)]
#[template(path = "admin/account.html")]
struct AccountPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    problems: Vec<Problem>,
}

impl AccountPage<'_> {
    fn problem(&self, field: &str) -> Option<&str> {
        self.problems.iter().find(|p| p.field == Some(field)).map(|p| p.text.as_str())
    }
}

async fn render_account(req: &Request, admin: &Admin, token: &str, csrf: &str, problems: Vec<Problem>) -> Response {
    let (data, _, _) = answer(admin.run(req, Some(token), ME, json!({})).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    page(
        status,
        AccountPage { title: "My account", csrf, staff, areas: areas(""), back: "/admin/account", problems }.render(),
    )
}

#[handler]
pub(crate) async fn account(req: &Request, Data(admin): Data<&Arc<Admin>>, csrf: &CsrfToken) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    render_account(req, admin, &token, &csrf.0, Vec::new()).await
}

#[derive(Deserialize)]
pub(crate) struct PasswordChange {
    #[serde(default)]
    csrf: String,
    #[serde(default, rename = "currentPassword")]
    current: String,
    #[serde(default, rename = "newPassword")]
    new: String,
}

#[handler]
pub(crate) async fn change_password(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    poem::web::Form(form): poem::web::Form<PasswordChange>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let mutation = "mutation($current: String!, $new: String!) { \
                    changePassword(input: {currentPassword: $current, newPassword: $new}) { token } }";
    let response = serde_json::to_value(
        admin.run(req, Some(&token), mutation, json!({ "current": form.current, "new": form.new })).await,
    )
    .unwrap_or_default();
    if response["data"]["changePassword"].is_object() {
        // A new password ends every session, this one too: sign in with it.
        return super::pages::end_session(req, admin, "password-changed");
    }
    let errors = response["errors"].as_array().cloned().unwrap_or_default();
    if errors.iter().any(|e| e["extensions"]["code"] == "UNAUTHENTICATED" && e["extensions"]["field"].is_null()) {
        return ended(req, admin);
    }
    let mut problems = problems_at(&errors, &["currentPassword", "newPassword"]);
    for p in &mut problems {
        if p.field.is_none() {
            p.field = Some("currentPassword");
        }
    }
    render_account(req, admin, &token, &csrf.0, problems).await
}

// ----- Webhooks -----

const ENDPOINTS: &str = "{ me { role environment user { email } } webhookEventTypes \
    webhookEndpoints(first: 100) { edges { node { id url events enabled createdAt } } } }";

pub(crate) struct EndpointRow {
    pub href: String,
    pub url: String,
    pub events: String,
    pub enabled: bool,
}

#[derive(Template)]
#[template(path = "admin/webhooks.html")]
struct WebhooksPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    rows: Vec<EndpointRow>,
    events: Vec<(String, bool)>,
    url: &'a str,
    error: Option<String>,
    /// A new endpoint's secret, shown this once.
    secret: Option<String>,
    flash: Option<Flash>,
}

async fn render_webhooks(
    req: &Request,
    admin: &Admin,
    token: &str,
    csrf: &str,
    typed: Option<&[(String, String)]>,
    error: Option<String>,
    secret: Option<String>,
) -> Response {
    let (data, code, _) = answer(admin.run(req, Some(token), ENDPOINTS, json!({})).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    if code.as_deref() == Some("FORBIDDEN") || staff.role != "admin" {
        return refused("Webhooks", "Only admins manage webhooks.");
    }
    let chosen: Vec<&str> =
        typed.map(|t| t.iter().filter(|(k, _)| k == "event").map(|(_, v)| v.as_str()).collect()).unwrap_or_default();
    let events = data["webhookEventTypes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|e| (e.to_string(), chosen.contains(&e)))
        .collect();
    let rows = data["webhookEndpoints"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let n = &e["node"];
            EndpointRow {
                href: format!(
                    "/admin/webhooks/{}",
                    utf8_percent_encode(n["id"].as_str().unwrap_or_default(), COMPONENT)
                ),
                url: n["url"].as_str().unwrap_or_default().to_string(),
                events: n["events"]
                    .as_array()
                    .map(|e| e.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default(),
                enabled: n["enabled"].as_bool().unwrap_or_default(),
            }
        })
        .collect();
    let url = typed.map(|t| one(t, "url")).unwrap_or_default();
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    page(
        status,
        WebhooksPage {
            title: "Webhooks",
            csrf,
            staff,
            areas: areas("Webhooks"),
            back: "/admin/webhooks",
            rows,
            events,
            url,
            error,
            secret,
            flash: take_flash(req, admin),
        }
        .render(),
    )
}

#[handler]
pub(crate) async fn webhooks(req: &Request, Data(admin): Data<&Arc<Admin>>, csrf: &CsrfToken) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    render_webhooks(req, admin, &token, &csrf.0, None, None, None).await
}

#[handler]
pub(crate) async fn create_webhook(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    body: String,
) -> Response {
    let typed = fields(&body);
    if !verifier.is_valid(one(&typed, "csrf")) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let events: Vec<&str> = typed.iter().filter(|(k, _)| k == "event").map(|(_, v)| v.as_str()).collect();
    let mutation = "mutation($url: String!, $events: [String!]!) { \
                    createWebhookEndpoint(input: {url: $url, events: $events}) { secret } }";
    let variables = json!({ "url": one(&typed, "url").trim(), "events": events });
    let (data, code, message) = answer(admin.run(req, Some(&token), mutation, variables).await);
    match code.as_deref() {
        // The secret is shown on this answer only: never stored for a later page.
        None => {
            let secret = data["createWebhookEndpoint"]["secret"].as_str().map(str::to_string);
            render_webhooks(req, admin, &token, &csrf.0, None, None, secret).await
        }
        Some("UNAUTHENTICATED") => ended(req, admin),
        Some("FORBIDDEN") => refused("Webhooks", "Only admins manage webhooks."),
        Some(_) => {
            let error = message.unwrap_or_else(|| "That did not work.".into());
            render_webhooks(req, admin, &token, &csrf.0, Some(&typed), Some(error), None).await
        }
    }
}

pub(crate) struct DeliveryRow {
    pub id: String,
    pub event: String,
    pub status: String,
    pub attempts: i64,
    pub last: String,
    pub next: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "admin/webhook.html")]
struct WebhookPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    href: String,
    url: String,
    events: String,
    enabled: bool,
    rows: Vec<DeliveryRow>,
    flash: Option<Flash>,
}

#[handler]
pub(crate) async fn webhook(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let query = "query($id: ID!) { me { role environment user { email } } \
        webhookEndpoints(first: 100) { edges { node { id url events enabled } } } \
        webhookDeliveries(first: 50, endpointId: $id) { edges { node { id eventType status attempts \
          nextAttemptAt lastStatusCode lastResponse lastError createdAt } } } }";
    let (data, code, _) = answer(admin.run(req, Some(&token), query, json!({ "id": id })).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    if code.as_deref() == Some("FORBIDDEN") || staff.role != "admin" {
        return refused("Webhooks", "Only admins manage webhooks.");
    }
    let Some(endpoint) = data["webhookEndpoints"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["node"])
        .find(|n| n["id"] == id.as_str())
    else {
        let message =
            super::pages::MessagePage { title: "No such endpoint", message: "There is no such webhook endpoint here." };
        return page(StatusCode::NOT_FOUND, message.render());
    };
    let when = |v: &Value| v.as_str().map(|t| t.get(..16).unwrap_or(t).replace('T', " ")).unwrap_or_default();
    let rows = data["webhookDeliveries"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let d = &e["node"];
            let excerpt: String =
                d["lastResponse"].as_str().or(d["lastError"].as_str()).unwrap_or_default().chars().take(120).collect();
            DeliveryRow {
                id: d["id"].as_str().unwrap_or_default().to_string(),
                event: d["eventType"].as_str().unwrap_or_default().to_string(),
                status: d["status"].as_str().unwrap_or_default().to_lowercase(),
                attempts: d["attempts"].as_i64().unwrap_or_default(),
                last: match d["lastStatusCode"].as_i64() {
                    Some(code) => format!("{code} {excerpt}"),
                    None => excerpt,
                },
                next: if d["status"] == "PENDING" { when(&d["nextAttemptAt"]) } else { String::new() },
                created: when(&d["createdAt"]),
            }
        })
        .collect();
    let href = format!("/admin/webhooks/{}", utf8_percent_encode(&id, COMPONENT));
    page(
        StatusCode::OK,
        WebhookPage {
            title: "Webhook endpoint",
            csrf: &csrf.0,
            staff,
            areas: areas("Webhooks"),
            back: "/admin/webhooks",
            href,
            url: endpoint["url"].as_str().unwrap_or_default().to_string(),
            events: endpoint["events"]
                .as_array()
                .map(|e| e.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            enabled: endpoint["enabled"].as_bool().unwrap_or_default(),
            rows,
            flash: take_flash(req, admin),
        }
        .render(),
    )
}

#[derive(Deserialize)]
pub(crate) struct EndpointChange {
    #[serde(default)]
    csrf: String,
    /// `enable`, `disable`, `delete` or `redeliver`.
    #[serde(default)]
    change: String,
    #[serde(default)]
    delivery: String,
}

#[handler]
pub(crate) async fn change_webhook(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    poem::web::Form(form): poem::web::Form<EndpointChange>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let here = format!("/admin/webhooks/{}", utf8_percent_encode(&id, COMPONENT));
    let (mutation, variables, done, back) = match form.change.as_str() {
        "enable" | "disable" => (
            "mutation($id: ID!, $on: Boolean!) { updateWebhookEndpoint(input: {id: $id, enabled: $on}) { endpoint { id } } }",
            json!({ "id": id, "on": form.change == "enable" }),
            if form.change == "enable" { "Endpoint enabled" } else { "Endpoint disabled" },
            here,
        ),
        "delete" => (
            "mutation($id: ID!) { deleteWebhookEndpoint(input: {id: $id}) { deletedId } }",
            json!({ "id": id }),
            "Endpoint deleted",
            "/admin/webhooks".to_string(),
        ),
        "redeliver" => (
            "mutation($id: ID!) { redeliverWebhook(input: {id: $id}) { delivery { id } } }",
            json!({ "id": form.delivery }),
            "Delivery queued again",
            here,
        ),
        _ => return StatusCode::BAD_REQUEST.into_response(),
    };
    let (_, code, message) = answer(admin.run(req, Some(&token), mutation, variables).await);
    match code.as_deref() {
        None => flash(req, admin, true, done),
        Some("UNAUTHENTICATED") => return ended(req, admin),
        Some("FORBIDDEN") => flash(req, admin, false, "Your role may not do that."),
        Some(_) => flash(req, admin, false, &message.unwrap_or_else(|| "That did not work.".into())),
    }
    Redirect::see_other(back).into_response()
}
