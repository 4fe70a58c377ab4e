//! Home (`/admin/`): the state of the business at a glance, from one
//! operation after `me` — pools running low (past the exhaustion threshold,
//! each with its bar), orders waiting for keys (oldest first), active
//! licences expiring in the next 30 days, failed jobs, jobs running with
//! their progress, and for admins failed webhook deliveries. Each figure
//! leads to the list behind it where that list has its page.

use super::Admin;
use super::jobs::{JobRow, job_row};
use super::pages::{Area, Staff, answer, areas, page, signed_in};
use super::tags::{COMPONENT, Figures, tag_href};
use askama::Template;
use percent_encoding::utf8_percent_encode;
use poem::http::StatusCode;
use poem::web::{CsrfToken, Data};
use poem::{Request, Response, handler};
use serde_json::{Value, json};
use std::sync::Arc;

const DASHBOARD: &str = "query($admin: Boolean!, $soon: DateTime!) { \
    poolsRunningLow { id name total remaining assigned used usedPercentage } \
    waiting: orders(first: 5, filter: {status: WAITING}, orderBy: {field: CREATED_AT, direction: ASC}) { \
      totalCount edges { node { id externalId createdAt customer { email } } } } \
    partial: orders(first: 5, filter: {status: PARTIALLY_FULFILLED}, orderBy: {field: CREATED_AT, direction: ASC}) { \
      totalCount edges { node { id externalId createdAt customer { email } } } } \
    expiring: licenseKeys(first: 5, filter: {status: ACTIVE, expiringBefore: $soon}, orderBy: {field: EXPIRES_AT, direction: ASC}) { \
      totalCount edges { node { id key expiresAt customer { email } } } } \
    failedJobs: jobs(first: 5, status: FAILED) { totalCount \
      edges { node { id kind recurring nextRunAt status progress total unit result error createdAt startedAt finishedAt } } } \
    running: jobs(first: 10, status: RUNNING) { \
      edges { node { id kind recurring nextRunAt status progress total unit result error createdAt startedAt finishedAt } } } \
    failedDeliveries: webhookDeliveries(first: 5, status: \"FAILED\") @include(if: $admin) { \
      totalCount edges { node { eventType lastStatusCode lastError createdAt } } } \
    integrations(first: 50) @include(if: $admin) { nodes { id name needsAttention } } }";

pub(crate) struct Pool {
    pub name: String,
    pub href: String,
    pub figures: Figures,
}

/// A line of a short list: its words, and a link where its page exists.
pub(crate) struct Line {
    pub text: String,
    pub detail: String,
    pub href: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/home.html")]
struct HomePage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    pools: Vec<Pool>,
    waiting: i64,
    partial: i64,
    orders: Vec<Line>,
    expiring: i64,
    expiring_lines: Vec<Line>,
    failed_jobs: i64,
    failed_job_lines: Vec<JobRow>,
    running: Vec<JobRow>,
    /// `None` for those who may not read deliveries.
    failed_deliveries: Option<i64>,
    delivery_lines: Vec<Line>,
    /// Integration events waiting for an admin; `None` for those who may not read them.
    attention: Option<i64>,
    attention_lines: Vec<Line>,
    error: Option<String>,
}

fn day(value: &Value) -> String {
    value.as_str().map(|t| t.get(..10).unwrap_or(t).to_string()).unwrap_or_default()
}

fn edges(list: &Value) -> impl Iterator<Item = &Value> {
    list["edges"].as_array().into_iter().flatten().map(|e| &e["node"])
}

#[handler]
pub(crate) async fn home(req: &Request, Data(admin): Data<&Arc<Admin>>, csrf: &CsrfToken) -> Response {
    let (token, staff) = match signed_in(req, admin).await {
        Ok(who) => who,
        Err(to) => return to,
    };
    let soon = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let variables = json!({ "admin": staff.role == "admin", "soon": soon });
    let (data, code, message) = answer(admin.run(req, Some(&token), DASHBOARD, variables).await);
    let pools = data["poolsRunningLow"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| Pool {
            name: t["name"].as_str().unwrap_or_default().to_string(),
            href: tag_href(t["id"].as_str().unwrap_or_default()),
            figures: Figures::of(t),
        })
        .collect();
    let orders = edges(&data["waiting"])
        .chain(edges(&data["partial"]))
        .take(5)
        .map(|o| Line {
            text: o["externalId"].as_str().unwrap_or_default().to_string(),
            detail: format!("{} · {}", o["customer"]["email"].as_str().unwrap_or("—"), day(&o["createdAt"])),
            href: Some(format!(
                "/admin/orders/{}",
                utf8_percent_encode(o["id"].as_str().unwrap_or_default(), COMPONENT)
            )),
        })
        .collect();
    let expiring_lines = edges(&data["expiring"])
        .map(|k| Line {
            text: k["key"].as_str().unwrap_or_default().to_string(),
            detail: format!("{} · expires {}", k["customer"]["email"].as_str().unwrap_or("—"), day(&k["expiresAt"])),
            href: Some(format!(
                "/admin/licenses/{}",
                utf8_percent_encode(k["id"].as_str().unwrap_or_default(), COMPONENT)
            )),
        })
        .collect();
    let delivery_lines = edges(&data["failedDeliveries"])
        .map(|d| Line {
            text: d["eventType"].as_str().unwrap_or_default().to_string(),
            detail: match (d["lastStatusCode"].as_i64(), d["lastError"].as_str()) {
                (Some(code), _) => format!("last answer {code} · {}", day(&d["createdAt"])),
                (None, Some(error)) => format!("{error} · {}", day(&d["createdAt"])),
                _ => day(&d["createdAt"]),
            },
            href: None,
        })
        .collect();
    let waiting_integrations: Vec<&Value> = data["integrations"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["needsAttention"].as_i64().unwrap_or_default() > 0)
        .collect();
    let attention = waiting_integrations.iter().map(|i| i["needsAttention"].as_i64().unwrap_or_default()).sum();
    let attention_lines = waiting_integrations
        .iter()
        .map(|i| Line {
            text: i["name"].as_str().unwrap_or_default().to_string(),
            detail: format!("{} waiting", i["needsAttention"].as_i64().unwrap_or_default()),
            href: Some(format!(
                "/admin/integrations/{}?outcome=NEEDS_ATTENTION",
                utf8_percent_encode(i["id"].as_str().unwrap_or_default(), COMPONENT)
            )),
        })
        .collect();
    let error = code.map(|_| message.unwrap_or_else(|| "Some figures could not be read.".into()));
    let is_admin = staff.role == "admin";
    page(
        StatusCode::OK,
        HomePage {
            title: "Home",
            csrf: &csrf.0,
            staff,
            areas: areas("Home"),
            back: "/admin/",
            pools,
            waiting: data["waiting"]["totalCount"].as_i64().unwrap_or_default(),
            partial: data["partial"]["totalCount"].as_i64().unwrap_or_default(),
            orders,
            expiring: data["expiring"]["totalCount"].as_i64().unwrap_or_default(),
            expiring_lines,
            failed_jobs: data["failedJobs"]["totalCount"].as_i64().unwrap_or_default(),
            failed_job_lines: edges(&data["failedJobs"]).map(job_row).collect(),
            running: edges(&data["running"]).map(job_row).filter(|j| !j.recurring).collect(),
            failed_deliveries: is_admin.then(|| data["failedDeliveries"]["totalCount"].as_i64().unwrap_or_default()),
            delivery_lines,
            attention: is_admin.then_some(attention),
            attention_lines,
            error,
        }
        .render(),
    )
}
