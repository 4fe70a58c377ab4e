//! Staff (`/admin/users`, admins: add with a temporary password, change the
//! role, disable or enable, reset the password) and, for everyone, "My
//! account" (`/admin/account`: change one's own password, which ends every
//! session, this one too).

use super::Admin;
use super::create::{Problem, problems_with};
use super::pages::{
    Area, Flash, Staff, answer, areas, ended, flash, forged, form_errors, message_page, outcome, page, session,
    staff_of, take_flash, to_login,
};
use askama::Template;
use poem::http::StatusCode;
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Path, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::{Map, json};
use std::sync::Arc;

const ME: &str = "{ me { role environment user { email } } }";

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
        return message_page(StatusCode::FORBIDDEN, "Staff", "Only admins manage staff accounts.");
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
    Form(form): Form<NewUser>,
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
        Some("FORBIDDEN") => message_page(StatusCode::FORBIDDEN, "Staff", "Only admins manage staff accounts."),
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
    Form(form): Form<UserChange>,
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
    if let Some(to) = outcome(req, admin, code.as_deref(), message, &done) {
        return to;
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
    Form(form): Form<PasswordChange>,
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
    let errors = match form_errors(req, admin, &response) {
        Ok(errors) => errors,
        Err(ended) => return *ended,
    };
    let mut problems = problems_with(&errors, |f| ["currentPassword", "newPassword"].into_iter().find(|k| *k == f));
    for p in &mut problems {
        if p.field.is_none() {
            p.field = Some("currentPassword");
        }
    }
    render_account(req, admin, &token, &csrf.0, problems).await
}
