//! Activations (`/admin/activations`): every device with its licence,
//! customer and product, name, platform, first and last seen; filtered by
//! live or ended, product and customer; Deactivate on the live ones. And the
//! audit log (`/admin/audit`, admins and support): filtered by action,
//! actor, target and time, each event linked to its target where that has a
//! page, before and after shown readably.

use super::Admin;
use super::pages::{
    Area, Flash, Staff, answer, areas, ended, message_page, page, session, staff_of, take_flash, to_login,
};
use super::tags::{COMPONENT, address, pager};
use askama::Template;
use percent_encoding::utf8_percent_encode;
use poem::http::StatusCode;
use poem::web::{CsrfToken, Data, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

const PAGE: i64 = 50;

fn when(value: &Value) -> String {
    value.as_str().map(|t| t.get(..16).unwrap_or(t).replace('T', " ")).unwrap_or_default()
}

fn licence_href(id: &str) -> String {
    format!("/admin/licenses/{}", utf8_percent_encode(id, COMPONENT))
}

// ----- Activations -----

const ACTIVATIONS: &str = "query($first: Int!, $after: String, $filter: ActivationFilter) { \
    me { role environment user { email } } \
    activations(first: $first, after: $after, filter: $filter) { totalCount pageInfo { hasNextPage endCursor } \
      edges { node { id licenseId fingerprint name platform createdAt lastSeenAt deactivatedAt \
        license { key product { name } customer { id email } } } } } \
    products(first: 100, orderBy: {field: NAME, direction: ASC}) { edges { node { id name } } } }";

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ActivationsView {
    /// `live`, `ended`, or both when absent.
    state: Option<String>,
    product: Option<String>,
    customer: Option<String>,
    after: Option<String>,
    trail: Option<String>,
}

impl ActivationsView {
    fn state(&self) -> Option<&'static str> {
        match self.state.as_deref() {
            Some("live") => Some("live"),
            Some("ended") => Some("ended"),
            _ => None,
        }
    }
    fn href(&self, changes: &[(&str, Option<&str>)]) -> String {
        let current = [
            ("state", self.state()),
            ("product", self.product.as_deref().filter(|p| !p.is_empty())),
            ("customer", self.customer.as_deref().filter(|c| !c.is_empty())),
            ("after", self.after.as_deref()),
            ("trail", self.trail.as_deref()),
        ];
        address("/admin/activations", &current, changes)
    }
}

pub(crate) struct DeviceRow {
    pub id: String,
    pub licence_id: String,
    pub device: String,
    pub platform: String,
    pub key: String,
    pub licence_href: String,
    pub customer: String,
    pub customer_href: Option<String>,
    pub product: String,
    pub first_seen: String,
    pub last_seen: String,
    pub live: bool,
}

pub(crate) struct ProductChoice {
    pub id: String,
    pub name: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "admin/activations.html")]
struct ActivationsPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    state: &'a str,
    customer: &'a str,
    products: Vec<ProductChoice>,
    rows: Vec<DeviceRow>,
    total: i64,
    error: Option<String>,
    previous: Option<String>,
    next: Option<String>,
    flash: Option<Flash>,
}

#[handler]
pub(crate) async fn activations(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Query(view): Query<ActivationsView>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let mut filter = Map::new();
    match view.state() {
        Some("live") => {
            filter.insert("live".into(), json!(true));
        }
        Some(_) => {
            filter.insert("live".into(), json!(false));
        }
        None => {}
    }
    if let Some(product) = view.product.as_deref().filter(|p| !p.is_empty()) {
        filter.insert("productId".into(), json!(product));
    }
    if let Some(customer) = view.customer.as_deref().filter(|c| !c.is_empty()) {
        filter.insert("customerId".into(), json!(customer));
    }
    let variables = json!({ "first": PAGE, "after": view.after, "filter": filter });
    let (data, code, message) = answer(admin.run(req, Some(&token), ACTIVATIONS, variables).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let list = &data["activations"];
    let rows = list["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let node = &e["node"];
            let licence_id = node["licenseId"].as_str().unwrap_or_default().to_string();
            let fingerprint = node["fingerprint"].as_str().unwrap_or_default();
            let short: String = fingerprint.chars().take(12).collect();
            DeviceRow {
                id: node["id"].as_str().unwrap_or_default().to_string(),
                device: node["name"].as_str().map_or(short, str::to_string),
                platform: node["platform"].as_str().unwrap_or("—").to_string(),
                key: node["license"]["key"].as_str().unwrap_or_default().to_string(),
                licence_href: licence_href(&licence_id),
                customer: node["license"]["customer"]["email"].as_str().unwrap_or("—").to_string(),
                customer_href: node["license"]["customer"]["id"]
                    .as_str()
                    .map(|c| format!("/admin/customers/{}", utf8_percent_encode(c, COMPONENT))),
                product: node["license"]["product"]["name"].as_str().unwrap_or("—").to_string(),
                first_seen: when(&node["createdAt"]),
                last_seen: when(&node["lastSeenAt"]),
                live: node["deactivatedAt"].is_null(),
                licence_id,
            }
        })
        .collect();
    let products = data["products"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let id = e["node"]["id"].as_str().unwrap_or_default().to_string();
            ProductChoice {
                selected: view.product.as_deref() == Some(id.as_str()),
                name: e["node"]["name"].as_str().unwrap_or_default().to_string(),
                id,
            }
        })
        .collect();
    let (previous, next) = pager(view.after.as_deref(), view.trail.as_deref(), &list["pageInfo"], |after, trail| {
        view.href(&[("after", after), ("trail", Some(trail))])
    });
    let error = code.as_ref().map(|_| message.unwrap_or_else(|| "The devices could not be read.".into()));
    let status = if error.is_some() { crate::status_for(code.as_deref()) } else { StatusCode::OK };
    let back = view.href(&[]);
    page(
        status,
        ActivationsPage {
            title: "Activations",
            csrf: &csrf.0,
            staff,
            areas: areas("Activations"),
            back: &back,
            state: view.state().unwrap_or_default(),
            customer: view.customer.as_deref().unwrap_or_default(),
            products,
            rows,
            total: list["totalCount"].as_i64().unwrap_or_default(),
            error,
            previous,
            next,
            flash: take_flash(req, admin),
        }
        .render(),
    )
}

// ----- The audit log -----

const AUDIT: &str = "query($first: Int!, $after: String, $filter: AuditEventFilter) { \
    me { role environment user { email } } \
    auditEvents(first: $first, after: $after, filter: $filter) { totalCount pageInfo { hasNextPage endCursor } \
      edges { node { id actorKind actorId action targetKind targetId keyPrefix before after createdAt } } } }";

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditView {
    action: Option<String>,
    actor: Option<String>,
    target: Option<String>,
    kind: Option<String>,
    /// A day (`YYYY-MM-DD`): from its start.
    since: Option<String>,
    /// A day: up to its end.
    until: Option<String>,
    after: Option<String>,
    trail: Option<String>,
}

fn kept(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl AuditView {
    fn href(&self, changes: &[(&str, Option<&str>)]) -> String {
        let current = [
            ("action", kept(&self.action)),
            ("actor", kept(&self.actor)),
            ("kind", kept(&self.kind)),
            ("target", kept(&self.target)),
            ("since", kept(&self.since)),
            ("until", kept(&self.until)),
            ("after", self.after.as_deref()),
            ("trail", self.trail.as_deref()),
        ];
        address("/admin/audit", &current, changes)
    }
}

pub(crate) struct EventRow {
    pub when: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub target_href: Option<String>,
    pub key_prefix: String,
    pub before: String,
    pub after: String,
}

/// The page of a target, where it has one.
fn target_href(kind: &str, id: &str) -> Option<String> {
    let id = utf8_percent_encode(id, COMPONENT);
    match kind {
        "license_key" => Some(format!("/admin/licenses/{id}")),
        "tag" => Some(format!("/admin/keys/tags/{id}")),
        "product" => Some(format!("/admin/products/{id}")),
        "customer" => Some(format!("/admin/customers/{id}")),
        "order" => Some(format!("/admin/orders/{id}")),
        "generator" => Some(format!("/admin/generators/{id}/edit")),
        "job" => Some(format!("/admin/jobs/{id}")),
        _ => None,
    }
}

/// The targets of a page of events that no longer exist (deleted licences,
/// tags and generators; products are archived, never deleted), found with
/// one more operation, so that only living targets are links.
async fn deleted_targets(req: &Request, admin: &Admin, token: &str, list: &Value) -> Vec<(String, String)> {
    let targets: Vec<(String, String)> = list["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let node = &e["node"];
            (
                node["targetKind"].as_str().unwrap_or_default().to_string(),
                node["targetId"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let of = |kind: &str| -> Vec<&str> {
        let mut ids: Vec<&str> = targets.iter().filter(|(k, _)| k == kind).map(|(_, id)| id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let (keys, tags, generators) = (of("license_key"), of("tag"), of("generator"));
    if keys.is_empty() && tags.is_empty() && generators.is_empty() {
        return Vec::new();
    }
    let query = "query($keys: [ID!]!, $anyKeys: Boolean!, $tags: Boolean!, $generators: Boolean!) { \
        licenseKeys(first: 100, filter: {ids: $keys}) @include(if: $anyKeys) { edges { node { id } } } \
        tags(first: 100) @include(if: $tags) { edges { node { id } } } \
        generators(first: 100) @include(if: $generators) { edges { node { id } } } }";
    let variables = json!({
        "keys": if keys.is_empty() { vec!["none"] } else { keys.clone() },
        "anyKeys": !keys.is_empty(),
        "tags": !tags.is_empty(),
        "generators": !generators.is_empty(),
    });
    let (data, code, _) = answer(admin.run(req, Some(token), query, variables).await);
    if code.is_some() {
        return Vec::new();
    }
    let living = |list: &str| -> Vec<String> {
        data[list]["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["node"]["id"].as_str().map(str::to_string))
            .collect()
    };
    let (living_keys, living_tags, living_generators) = (living("licenseKeys"), living("tags"), living("generators"));
    let mut gone = Vec::new();
    for (kind, ids, alive) in
        [("license_key", keys, living_keys), ("tag", tags, living_tags), ("generator", generators, living_generators)]
    {
        gone.extend(
            ids.into_iter().filter(|id| !alive.iter().any(|a| a == id)).map(|id| (kind.to_string(), id.to_string())),
        );
    }
    gone
}

fn readable(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    view: &'a AuditView,
    rows: Vec<EventRow>,
    total: i64,
    error: Option<String>,
    previous: Option<String>,
    next: Option<String>,
}

impl AuditPage<'_> {
    fn field(&self, name: &str) -> &str {
        let value = match name {
            "action" => &self.view.action,
            "actor" => &self.view.actor,
            "kind" => &self.view.kind,
            "target" => &self.view.target,
            "since" => &self.view.since,
            _ => &self.view.until,
        };
        value.as_deref().unwrap_or_default()
    }
}

#[handler]
pub(crate) async fn audit(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Query(view): Query<AuditView>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let mut filter = Map::new();
    let mut problem = None;
    for (field, value) in
        [("action", &view.action), ("actorId", &view.actor), ("targetKind", &view.kind), ("targetId", &view.target)]
    {
        if let Some(v) = kept(value) {
            filter.insert(field.into(), json!(v));
        }
    }
    for (field, value, time) in [("since", &view.since, "00:00:00"), ("until", &view.until, "23:59:59")] {
        if let Some(day) = kept(value) {
            match chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d") {
                Ok(date) => {
                    filter.insert(field.into(), json!(format!("{date}T{time}Z")));
                }
                Err(_) => problem = Some(format!("{field}: must be a date (YYYY-MM-DD)")),
            }
        }
    }
    let variables = json!({ "first": PAGE, "after": view.after, "filter": filter });
    let (data, code, message) = answer(admin.run(req, Some(&token), AUDIT, variables).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    if code.as_deref() == Some("FORBIDDEN") {
        return message_page(StatusCode::FORBIDDEN, "Audit log", "Your role may not read the audit log.");
    }
    let list = &data["auditEvents"];
    let gone = deleted_targets(req, admin, &token, list).await;
    let rows = list["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let node = &e["node"];
            let kind = node["targetKind"].as_str().unwrap_or_default();
            let id = node["targetId"].as_str().unwrap_or_default();
            let actor_id = node["actorId"].as_str().unwrap_or_default();
            EventRow {
                when: when(&node["createdAt"]),
                actor: format!(
                    "{} {}",
                    node["actorKind"].as_str().unwrap_or_default(),
                    actor_id.chars().take(10).collect::<String>()
                )
                .trim()
                .to_string(),
                action: node["action"].as_str().unwrap_or_default().to_string(),
                target: format!("{kind} {}", id.chars().take(26).collect::<String>()),
                target_href: if gone.contains(&(kind.to_string(), id.to_string())) {
                    None
                } else {
                    target_href(kind, id)
                },
                key_prefix: node["keyPrefix"].as_str().unwrap_or_default().to_string(),
                before: readable(&node["before"]),
                after: readable(&node["after"]),
            }
        })
        .collect();
    let (previous, next) = pager(view.after.as_deref(), view.trail.as_deref(), &list["pageInfo"], |after, trail| {
        view.href(&[("after", after), ("trail", Some(trail))])
    });
    let error = problem.or_else(|| {
        code.as_ref().map(|_| message.clone().unwrap_or_else(|| "The audit log could not be read.".into()))
    });
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let back = view.href(&[("after", None), ("trail", None)]);
    page(
        status,
        AuditPage {
            title: "Audit log",
            csrf: &csrf.0,
            staff,
            areas: areas("Audit log"),
            back: &back,
            view: &view,
            rows,
            total: list["totalCount"].as_i64().unwrap_or_default(),
            error,
            previous,
            next,
        }
        .render(),
    )
}
