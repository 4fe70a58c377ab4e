//! Webhooks (`/admin/webhooks`, admins): endpoints with their events, a new
//! endpoint's secret shown once (never kept for a later page), and each
//! endpoint's deliveries with Redeliver; enable, disable, delete.

use super::Admin;
use super::pages::{
    Area, Flash, Staff, answer, areas, ended, forged, form_fields, form_value, message_page, outcome, page, session,
    staff_of, take_flash, to_login,
};
use super::tags::COMPONENT;
use askama::Template;
use percent_encoding::utf8_percent_encode;
use poem::http::StatusCode;
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Path, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

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
        return message_page(StatusCode::FORBIDDEN, "Webhooks", "Only admins manage webhooks.");
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
    let url = typed.map(|t| form_value(t, "url")).unwrap_or_default();
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
    let typed = form_fields(&body);
    if !verifier.is_valid(form_value(&typed, "csrf")) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let events: Vec<&str> = typed.iter().filter(|(k, _)| k == "event").map(|(_, v)| v.as_str()).collect();
    let mutation = "mutation($url: String!, $events: [String!]!) { \
                    createWebhookEndpoint(input: {url: $url, events: $events}) { secret } }";
    let variables = json!({ "url": form_value(&typed, "url").trim(), "events": events });
    let (data, code, message) = answer(admin.run(req, Some(&token), mutation, variables).await);
    match code.as_deref() {
        // The secret is shown on this answer only: never stored for a later page.
        None => {
            let secret = data["createWebhookEndpoint"]["secret"].as_str().map(str::to_string);
            render_webhooks(req, admin, &token, &csrf.0, None, None, secret).await
        }
        Some("UNAUTHENTICATED") => ended(req, admin),
        Some("FORBIDDEN") => message_page(StatusCode::FORBIDDEN, "Webhooks", "Only admins manage webhooks."),
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
        return message_page(StatusCode::FORBIDDEN, "Webhooks", "Only admins manage webhooks.");
    }
    let Some(endpoint) = data["webhookEndpoints"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["node"])
        .find(|n| n["id"] == id.as_str())
    else {
        return message_page(StatusCode::NOT_FOUND, "No such endpoint", "There is no such webhook endpoint here.");
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
    Form(form): Form<EndpointChange>,
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
    if let Some(to) = outcome(req, admin, code.as_deref(), message, done) {
        return to;
    }
    Redirect::see_other(back).into_response()
}
