//! Background jobs (`/admin/jobs`): every job with its kind, status, progress
//! and unit, when it started and finished, and its result or error; filtered
//! by status and kind from the address. A job's page (`/admin/jobs/{id}`)
//! refreshes itself while the job is queued or running (a meta refresh: no
//! script, no manual reload), so a generation of 100,000 licences can be
//! watched to its end.

use super::Admin;
use super::pages::{Area, Staff, answer, areas, ended, page, session, staff_of, to_login};
use super::tags::{COMPONENT, address, pager};
use crate::status_for;
use askama::Template;
use percent_encoding::utf8_percent_encode;
use poem::http::StatusCode;
use poem::web::{CsrfToken, Data, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

const PAGE: i64 = 50;

const LIST: &str = "query($first: Int!, $after: String, $status: JobStatus, $kind: String) { \
    me { role environment user { email } } \
    jobs(first: $first, after: $after, status: $status, kind: $kind) { totalCount pageInfo { hasNextPage endCursor } \
      edges { node { id kind recurring nextRunAt status progress total unit result error createdAt startedAt finishedAt } } } }";

const ONE: &str = "query($id: ID!) { me { role environment user { email } } \
    job(id: $id) { id kind recurring nextRunAt status progress total unit result error createdAt startedAt finishedAt } }";

const STATUSES: [&str; 4] = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED"];
const KINDS: [&str; 7] = [
    "GENERATE_LICENSES",
    "IMPORT_LICENSE_KEYS",
    "EXPORT_LICENSE_KEYS",
    "EXPIRE_LICENSES",
    "SEND_EXPIRY_NOTICES",
    "DELIVER_WEBHOOKS",
    "SEND_EMAILS",
];

/// A job as the pages show it.
pub(crate) struct JobRow {
    pub href: String,
    /// `generate licenses`, as read.
    pub kind: String,
    pub recurring: bool,
    pub status: String,
    pub status_class: String,
    pub progress: i64,
    pub total: i64,
    pub unit: String,
    /// 0–100, for the bar.
    pub percent: i64,
    pub created: String,
    pub started: String,
    pub finished: String,
    pub next_run: String,
    /// The result as readable JSON ("" when none).
    pub result: String,
    pub error: String,
    /// Queued or running: its page refreshes itself.
    pub live: bool,
}

/// A time as read: `2026-12-04 05:49:02`.
fn when(value: &Value) -> String {
    value.as_str().map(|t| t.get(..19).unwrap_or(t).replace('T', " ")).unwrap_or_default()
}

pub(crate) fn job_row(node: &Value) -> JobRow {
    let id = node["id"].as_str().unwrap_or_default().to_string();
    let status = node["status"].as_str().unwrap_or_default().to_lowercase();
    let progress = node["progress"].as_i64().unwrap_or_default();
    let total = node["total"].as_i64().unwrap_or_default();
    let percent = match (status.as_str(), total) {
        ("succeeded", _) => 100,
        (_, t) if t > 0 => (progress * 100 / t).clamp(0, 100),
        _ => 0,
    };
    let result = match &node["result"] {
        Value::Null => String::new(),
        value => serde_json::to_string_pretty(value).unwrap_or_default(),
    };
    JobRow {
        href: format!("/admin/jobs/{}", utf8_percent_encode(&id, COMPONENT)),
        kind: node["kind"].as_str().unwrap_or_default().to_lowercase().replace('_', " "),
        recurring: node["recurring"].as_bool().unwrap_or_default(),
        live: status == "queued" || status == "running",
        status_class: format!("status job-{status}"),
        status,
        progress,
        total,
        unit: node["unit"].as_str().unwrap_or_default().to_string(),
        percent,
        created: when(&node["createdAt"]),
        started: when(&node["startedAt"]),
        finished: when(&node["finishedAt"]),
        next_run: when(&node["nextRunAt"]),
        result,
        error: node["error"].as_str().unwrap_or_default().to_string(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct JobsView {
    status: Option<String>,
    kind: Option<String>,
    after: Option<String>,
    trail: Option<String>,
}

impl JobsView {
    fn status(&self) -> Option<&'static str> {
        self.status.as_deref().and_then(|s| STATUSES.into_iter().find(|k| *k == s))
    }
    fn kind(&self) -> Option<&'static str> {
        self.kind.as_deref().and_then(|s| KINDS.into_iter().find(|k| *k == s))
    }
    fn href(&self, changes: &[(&str, Option<&str>)]) -> String {
        let current = [
            ("status", self.status()),
            ("kind", self.kind()),
            ("after", self.after.as_deref()),
            ("trail", self.trail.as_deref()),
        ];
        address("/admin/jobs", &current, changes)
    }
}

pub(crate) struct Choice {
    pub value: &'static str,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "admin/jobs.html")]
struct JobsPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    statuses: Vec<Choice>,
    kinds: Vec<Choice>,
    rows: Vec<JobRow>,
    total: i64,
    error: Option<String>,
    previous: Option<String>,
    next: Option<String>,
    /// Some job is queued or running: the list refreshes itself.
    live: bool,
}

#[handler]
pub(crate) async fn jobs(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Query(view): Query<JobsView>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let variables = json!({ "first": PAGE, "after": view.after, "status": view.status(), "kind": view.kind() });
    let (data, code, message) = answer(admin.run(req, Some(&token), LIST, variables).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let list = &data["jobs"];
    let rows: Vec<JobRow> =
        list["edges"].as_array().map(|e| e.iter().map(|e| job_row(&e["node"])).collect()).unwrap_or_default();
    let (previous, next) = pager(view.after.as_deref(), view.trail.as_deref(), &list["pageInfo"], |after, trail| {
        view.href(&[("after", after), ("trail", Some(trail))])
    });
    let statuses = STATUSES
        .into_iter()
        .map(|s| Choice { value: s, label: s.to_lowercase(), selected: view.status() == Some(s) })
        .collect();
    let kinds = KINDS
        .into_iter()
        .map(|k| Choice { value: k, label: k.to_lowercase().replace('_', " "), selected: view.kind() == Some(k) })
        .collect();
    let error = code.as_ref().map(|_| message.unwrap_or_else(|| "The jobs could not be read.".into()));
    let status = if error.is_some() { status_for(code.as_deref()) } else { StatusCode::OK };
    let back = view.href(&[("after", None), ("trail", None)]);
    // Recurring jobs run every few seconds: only one-off work keeps the list refreshing.
    let live = rows.iter().any(|r| r.live && !r.recurring);
    page(
        status,
        JobsPage {
            title: "Background jobs",
            csrf: &csrf.0,
            staff,
            areas: areas("Background jobs"),
            back: &back,
            statuses,
            kinds,
            rows,
            total: list["totalCount"].as_i64().unwrap_or_default(),
            error,
            previous,
            next,
            live,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "admin/job.html")]
struct JobPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    job: Option<JobRow>,
}

#[handler]
pub(crate) async fn job(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let (data, code, _) = answer(admin.run(req, Some(&token), ONE, json!({ "id": id })).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let job = data["job"].is_object().then(|| job_row(&data["job"]));
    let status = match (&job, code.as_deref()) {
        (Some(_), _) => StatusCode::OK,
        (None, None | Some("NOT_FOUND")) => StatusCode::NOT_FOUND,
        (None, code) => status_for(code),
    };
    // A job belongs to its environment: switching goes back to the list.
    page(
        status,
        JobPage { title: "Job", csrf: &csrf.0, staff, areas: areas("Background jobs"), back: "/admin/jobs", job }
            .render(),
    )
}
