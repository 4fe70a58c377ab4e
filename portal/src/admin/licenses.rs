//! The licences page (`/admin/licenses`): every licence of the environment in
//! a table, searched, filtered, sorted and paged by the address alone, so any
//! view can be bookmarked and shared. One GraphQL operation per page.

use super::Admin;
use super::actions::{Action, offered};
use super::pages::{Area, Flash, Staff, answer, areas, ended, page, session, staff_of, take_flash, to_login};
use askama::Template;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use poem::http::StatusCode;
use poem::web::{CsrfToken, Data, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Rows per page.
pub(crate) const PAGE_SIZE: i64 = 50;
/// Pages remembered for "Previous" (older ones go back to the first page).
const TRAIL: usize = 20;

/// The one operation behind the licences page (public so the benchmark runs
/// exactly what the page runs).
pub const LICENSES_QUERY: &str = "query($first: Int!, $after: String, $filter: LicenseKeyFilter, $orderBy: LicenseKeyOrder) { \
    me { role environment user { email } } \
    products(first: 100, orderBy: {field: NAME, direction: ASC}) { edges { node { id name } } } \
    licenseKeys(first: $first, after: $after, filter: $filter, orderBy: $orderBy) { \
      totalCount pageInfo { hasNextPage endCursor } \
      edges { node { id key status activationLimit activationsUsed expiresAt createdAt \
        product { name } customer { name email } } } } }";

/// The sortable columns: (the API's field, the column's heading).
const COLUMNS: [(&str, &str); 7] = [
    ("KEY", "Key"),
    ("PRODUCT", "Product"),
    ("CUSTOMER", "Customer"),
    ("STATUS", "Status"),
    ("ACTIVATION_LIMIT", "Activations"),
    ("EXPIRES_AT", "Expires"),
    ("CREATED_AT", "Created"),
];

const STATUSES: [&str; 7] = ["AVAILABLE", "ASSIGNED", "ACTIVE", "INACTIVE", "SUSPENDED", "EXPIRED", "REVOKED"];

/// The view the address asks for.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct View {
    /// Search: any part of the key, the customer's email or name, the product's name.
    q: Option<String>,
    product: Option<String>,
    status: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
    /// The cursor the page starts after.
    after: Option<String>,
    /// The cursors of the pages before, for "Previous".
    trail: Option<String>,
}

impl View {
    fn search(&self) -> Option<&str> {
        self.q.as_deref().map(str::trim).filter(|q| !q.is_empty())
    }
    fn product(&self) -> Option<&str> {
        self.product.as_deref().filter(|p| !p.is_empty())
    }
    fn status(&self) -> Option<&'static str> {
        self.status.as_deref().and_then(|s| STATUSES.iter().copied().find(|k| *k == s))
    }
    fn sort(&self) -> &'static str {
        self.sort.as_deref().and_then(|s| COLUMNS.iter().map(|c| c.0).find(|k| *k == s)).unwrap_or("CREATED_AT")
    }
    fn descending(&self) -> bool {
        match self.dir.as_deref() {
            Some("asc") => false,
            Some("desc") => true,
            _ => self.sort.is_none(),
        }
    }
    fn trail(&self) -> Vec<String> {
        self.trail.as_deref().unwrap_or_default().split(',').filter(|c| !c.is_empty()).map(str::to_string).collect()
    }

    /// This view's address with some parameters replaced (`None` drops one).
    fn href(&self, changes: &[(&str, Option<&str>)]) -> String {
        let current = [
            ("q", self.search()),
            ("product", self.product()),
            ("status", self.status()),
            ("sort", self.sort.as_deref().map(|_| self.sort())),
            ("dir", self.dir.as_deref()),
            ("after", self.after.as_deref()),
            ("trail", self.trail.as_deref()),
        ];
        let mut pairs = Vec::new();
        for (name, value) in current {
            let value = changes.iter().find(|(n, _)| *n == name).map_or(value, |(_, v)| *v);
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                pairs.push(format!("{name}={}", utf8_percent_encode(value, NON_ALPHANUMERIC)));
            }
        }
        if pairs.is_empty() { "/admin/licenses".to_string() } else { format!("/admin/licenses?{}", pairs.join("&")) }
    }
}

pub(crate) struct Row {
    pub id: String,
    pub key: String,
    pub product: String,
    pub customer_name: String,
    pub customer_email: String,
    pub status: String,
    pub status_class: String,
    pub activations: String,
    pub expires: String,
    pub created: String,
    pub actions: Vec<&'static Action>,
}

pub(crate) struct Column {
    pub heading: &'static str,
    pub href: String,
    /// `ascending`, `descending` or `none`, for `aria-sort`.
    pub sorted: &'static str,
}

pub(crate) struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "admin/licenses.html")]
struct LicensesPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    search: &'a str,
    products: Vec<Choice>,
    statuses: Vec<Choice>,
    columns: Vec<Column>,
    rows: Vec<Row>,
    total: i64,
    error: Option<String>,
    previous: Option<String>,
    next: Option<String>,
    clear: String,
    flash: Option<Flash>,
    /// This view's address, encoded for a `back` parameter.
    back_param: String,
    /// The export's query string: this view's search and filters.
    export: String,
}

fn day(value: &Value) -> Option<String> {
    value.as_str().map(|t| t.get(..10).unwrap_or(t).to_string())
}

fn row(node: &Value, role: &str) -> Row {
    let status = node["status"].as_str().unwrap_or_default();
    let limit = node["activationLimit"].as_i64().unwrap_or_default();
    let used = node["activationsUsed"].as_i64().unwrap_or_default();
    Row {
        id: node["id"].as_str().unwrap_or_default().to_string(),
        key: node["key"].as_str().unwrap_or_default().to_string(),
        product: node["product"]["name"].as_str().unwrap_or("—").to_string(),
        customer_name: node["customer"]["name"].as_str().unwrap_or_default().to_string(),
        customer_email: node["customer"]["email"].as_str().unwrap_or_default().to_string(),
        status: status.to_lowercase(),
        status_class: format!("status status-{}", status.to_lowercase()),
        activations: if limit < 0 { format!("{used} / Unlimited") } else { format!("{used} / {limit}") },
        expires: day(&node["expiresAt"]).unwrap_or_else(|| "Lifetime".to_string()),
        created: day(&node["createdAt"]).unwrap_or_default(),
        actions: offered(role, status),
    }
}

#[handler]
pub(crate) async fn licenses(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Query(view): Query<View>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let mut filter = serde_json::Map::new();
    if let Some(q) = view.search() {
        filter.insert("search".into(), json!(q));
    }
    if let Some(product) = view.product() {
        filter.insert("productId".into(), json!(product));
    }
    if let Some(status) = view.status() {
        filter.insert("status".into(), json!(status));
    }
    let variables = json!({
        "first": PAGE_SIZE,
        "after": view.after,
        "filter": filter,
        "orderBy": { "field": view.sort(), "direction": if view.descending() { "DESC" } else { "ASC" } },
    });
    let (data, code, message) = answer(admin.run(req, Some(&token), LICENSES_QUERY, variables).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let list = &data["licenseKeys"];
    let rows: Vec<Row> =
        list["edges"].as_array().map(|e| e.iter().map(|e| row(&e["node"], &staff.role)).collect()).unwrap_or_default();
    let products = data["products"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .map(|e| {
                    let id = e["node"]["id"].as_str().unwrap_or_default().to_string();
                    Choice {
                        selected: view.product() == Some(id.as_str()),
                        label: e["node"]["name"].as_str().unwrap_or_default().to_string(),
                        value: id,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let statuses = STATUSES
        .iter()
        .map(|s| Choice { value: s.to_string(), label: s.to_lowercase(), selected: view.status() == Some(*s) })
        .collect();
    let columns = COLUMNS
        .iter()
        .map(|(field, heading)| {
            let current = view.sort() == *field;
            let next_dir = if current && !view.descending() { "desc" } else { "asc" };
            Column {
                heading,
                href: view.href(&[("sort", Some(field)), ("dir", Some(next_dir)), ("after", None), ("trail", None)]),
                sorted: match (current, view.descending()) {
                    (false, _) => "none",
                    (true, true) => "descending",
                    (true, false) => "ascending",
                },
            }
        })
        .collect();
    let mut trail = view.trail();
    let previous = view.after.as_ref().map(|_| {
        let before = trail.pop();
        let rest = trail.join(",");
        view.href(&[("after", before.as_deref()), ("trail", Some(rest.as_str()))])
    });
    let next = match (list["pageInfo"]["hasNextPage"].as_bool(), list["pageInfo"]["endCursor"].as_str()) {
        (Some(true), Some(end)) => {
            let mut trail = view.trail();
            if let Some(after) = &view.after {
                trail.push(after.clone());
            }
            let keep = trail.len().saturating_sub(TRAIL);
            let trail = trail[keep..].join(",");
            Some(view.href(&[("after", Some(end)), ("trail", Some(trail.as_str()))]))
        }
        _ => None,
    };
    let error = code.map(|_| message.unwrap_or_else(|| "The list could not be read.".into()));
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let back = view.href(&[]);
    let back_param = utf8_percent_encode(&back, NON_ALPHANUMERIC).to_string();
    let flash = take_flash(req, admin);
    page(
        status,
        LicensesPage {
            title: "Licences",
            csrf: &csrf.0,
            staff,
            areas: areas("Licences"),
            back: &back,
            search: view.search().unwrap_or_default(),
            products,
            statuses,
            columns,
            rows,
            total: list["totalCount"].as_i64().unwrap_or_default(),
            error,
            previous,
            next,
            clear: "/admin/licenses".to_string(),
            flash,
            back_param,
            export: view.href(&[("sort", None), ("dir", None), ("after", None), ("trail", None)]).replacen(
                "/admin/licenses",
                "",
                1,
            ),
        }
        .render(),
    )
}

/// The licences the view shows, as a download (every page of them).
async fn export(req: &Request, admin: &Admin, view: View, json: bool) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let export = crate::Export {
        product_id: view.product().map(str::to_string),
        status: view.status().map(str::to_string),
        search: view.search().map(str::to_string),
        json,
        ..crate::Export::default()
    };
    admin.export(req, &token, export).await
}

#[handler]
pub(crate) async fn export_csv(req: &Request, Data(admin): Data<&Arc<Admin>>, Query(view): Query<View>) -> Response {
    export(req, admin, view, false).await
}

#[handler]
pub(crate) async fn export_json(req: &Request, Data(admin): Data<&Arc<Admin>>, Query(view): Query<View>) -> Response {
    export(req, admin, view, true).await
}
