//! Orders (`/admin/orders`, seed 000): the list, searched by external id or
//! customer email and filtered by status; an order's page with its customer,
//! status and lines (product, quantity, missing, keys). Per key: "Assign new
//! key" — the line's pool found by itself, its available keys searched by any
//! part, the first preselected — and "Unassign key" (back to the pool, or
//! retired as used). Refund with the keys' fate; a portal sign-in link for
//! the customer.

use super::Admin;
use super::pages::{
    Area, Flash, Staff, answer, areas, ended, forged, message_page, outcome, page, session, staff_of, take_flash,
    to_login,
};
use super::tags::{COMPONENT, address, pager, search_term};
use askama::Template;
use percent_encoding::utf8_percent_encode;
use poem::http::StatusCode;
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Path, Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

const PAGE: i64 = 50;
const STATUSES: [&str; 4] = ["WAITING", "PARTIALLY_FULFILLED", "FULFILLED", "REFUNDED"];

const LIST: &str = "query($first: Int!, $after: String, $filter: OrderFilter) { \
    me { role environment user { email } } \
    orders(first: $first, after: $after, filter: $filter, orderBy: {field: CREATED_AT, direction: DESC}) { \
      totalCount pageInfo { hasNextPage endCursor } \
      edges { node { id externalId status createdAt customer { email } lines { quantity missing } } } } }";

const ONE: &str = "query($id: ID!) { me { role environment user { email } } \
    order(id: $id) { id externalId status createdAt refundedAt customer { id email name } \
      lines { id quantity missing renewalOutcome product { id name } keys { id key status } } } }";

fn order_href(id: &str) -> String {
    format!("/admin/orders/{}", utf8_percent_encode(id, COMPONENT))
}

fn day(value: &Value) -> String {
    value.as_str().map(|t| t.get(..10).unwrap_or(t).to_string()).unwrap_or_default()
}

fn status_words(status: &str) -> String {
    status.to_lowercase().replace('_', " ")
}

// ----- The list -----

#[derive(Debug, Default, Deserialize)]
pub(crate) struct OrdersView {
    q: Option<String>,
    status: Option<String>,
    after: Option<String>,
    trail: Option<String>,
}

impl OrdersView {
    fn status(&self) -> Option<&'static str> {
        self.status.as_deref().and_then(|s| STATUSES.into_iter().find(|k| *k == s))
    }
    fn href(&self, changes: &[(&str, Option<&str>)]) -> String {
        let current = [
            ("q", search_term(self.q.as_deref())),
            ("status", self.status()),
            ("after", self.after.as_deref()),
            ("trail", self.trail.as_deref()),
        ];
        address("/admin/orders", &current, changes)
    }
}

pub(crate) struct OrderRow {
    pub href: String,
    pub external_id: String,
    pub customer: String,
    pub status: String,
    pub units: i64,
    pub missing: i64,
    pub placed: String,
}

pub(crate) struct Choice {
    pub value: &'static str,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "admin/orders.html")]
struct OrdersPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    search: &'a str,
    statuses: Vec<Choice>,
    rows: Vec<OrderRow>,
    total: i64,
    error: Option<String>,
    previous: Option<String>,
    next: Option<String>,
}

#[handler]
pub(crate) async fn orders(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Query(view): Query<OrdersView>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let mut filter = Map::new();
    if let Some(q) = search_term(view.q.as_deref()) {
        filter.insert("search".into(), json!(q));
    }
    if let Some(status) = view.status() {
        filter.insert("status".into(), json!(status));
    }
    let variables = json!({ "first": PAGE, "after": view.after, "filter": filter });
    let (data, code, message) = answer(admin.run(req, Some(&token), LIST, variables).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let list = &data["orders"];
    let rows = list["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let node = &e["node"];
            let lines = node["lines"].as_array().cloned().unwrap_or_default();
            OrderRow {
                href: order_href(node["id"].as_str().unwrap_or_default()),
                external_id: node["externalId"].as_str().unwrap_or_default().to_string(),
                customer: node["customer"]["email"].as_str().unwrap_or("—").to_string(),
                status: status_words(node["status"].as_str().unwrap_or_default()),
                units: lines.iter().filter_map(|l| l["quantity"].as_i64()).sum(),
                missing: lines.iter().filter_map(|l| l["missing"].as_i64()).sum(),
                placed: day(&node["createdAt"]),
            }
        })
        .collect();
    let statuses = STATUSES
        .into_iter()
        .map(|s| Choice { value: s, label: status_words(s), selected: view.status() == Some(s) })
        .collect();
    let (previous, next) = pager(view.after.as_deref(), view.trail.as_deref(), &list["pageInfo"], |after, trail| {
        view.href(&[("after", after), ("trail", Some(trail))])
    });
    let error = code.as_ref().map(|_| message.unwrap_or_else(|| "The orders could not be read.".into()));
    let status = if error.is_some() { crate::status_for(code.as_deref()) } else { StatusCode::OK };
    let back = view.href(&[("after", None), ("trail", None)]);
    page(
        status,
        OrdersPage {
            title: "Orders",
            csrf: &csrf.0,
            staff,
            areas: areas("Orders"),
            back: &back,
            search: search_term(view.q.as_deref()).unwrap_or_default(),
            statuses,
            rows,
            total: list["totalCount"].as_i64().unwrap_or_default(),
            error,
            previous,
            next,
        }
        .render(),
    )
}

// ----- One order -----

pub(crate) struct KeyOnLine {
    pub id: String,
    pub key: String,
    pub href: String,
    pub status: String,
}

pub(crate) struct Line {
    pub id: String,
    pub product: String,
    pub quantity: i64,
    pub missing: i64,
    pub keys: Vec<KeyOnLine>,
    /// The line extended the licence it renews: it takes no key.
    pub extended: bool,
}

impl Line {
    /// Units without a key on the line now (a key unassigned leaves one).
    pub fn open(&self) -> i64 {
        if self.extended { 0 } else { self.quantity - self.keys.len() as i64 }
    }
}

#[derive(Template)]
#[template(path = "admin/order.html")]
struct OrderPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    href: String,
    external_id: String,
    status: String,
    placed: String,
    refunded: String,
    customer_id: String,
    customer: String,
    lines: Vec<Line>,
    flash: Option<Flash>,
}

/// The order `id`, or the page that answers instead.
async fn load(req: &Request, admin: &Admin, token: &str, id: &str) -> Result<(Staff, Value), Response> {
    let (data, _, _) = answer(admin.run(req, Some(token), ONE, json!({ "id": id })).await);
    let Some(staff) = staff_of(&data) else { return Err(ended(req, admin)) };
    if !data["order"].is_object() {
        return Err(message_page(StatusCode::NOT_FOUND, "No such order", "There is no such order here."));
    }
    Ok((staff, data["order"].clone()))
}

fn lines_of(order: &Value) -> Vec<Line> {
    order["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|line| Line {
            id: line["id"].as_str().unwrap_or_default().to_string(),
            product: line["product"]["name"].as_str().unwrap_or("—").to_string(),
            quantity: line["quantity"].as_i64().unwrap_or_default(),
            missing: line["missing"].as_i64().unwrap_or_default(),
            extended: line["renewalOutcome"] == "EXTENDED",
            keys: line["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|k| {
                    let id = k["id"].as_str().unwrap_or_default().to_string();
                    KeyOnLine {
                        href: format!("/admin/licenses/{}", utf8_percent_encode(&id, COMPONENT)),
                        id,
                        key: k["key"].as_str().unwrap_or_default().to_string(),
                        status: k["status"].as_str().unwrap_or_default().to_lowercase(),
                    }
                })
                .collect(),
        })
        .collect()
}

#[handler]
pub(crate) async fn order_page(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let (staff, order) = match load(req, admin, &token, &id).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let customer = match (order["customer"]["name"].as_str(), order["customer"]["email"].as_str()) {
        (Some(name), Some(email)) if !name.is_empty() => format!("{name} <{email}>"),
        (_, Some(email)) => email.to_string(),
        _ => "—".to_string(),
    };
    page(
        StatusCode::OK,
        OrderPage {
            title: order["externalId"].as_str().unwrap_or("Order"),
            csrf: &csrf.0,
            staff,
            areas: areas("Orders"),
            back: "/admin/orders",
            href: order_href(&id),
            external_id: order["externalId"].as_str().unwrap_or_default().to_string(),
            status: status_words(order["status"].as_str().unwrap_or_default()),
            placed: day(&order["createdAt"]),
            refunded: day(&order["refundedAt"]),
            customer_id: order["customer"]["id"].as_str().unwrap_or_default().to_string(),
            customer,
            lines: lines_of(&order),
            flash: take_flash(req, admin),
        }
        .render(),
    )
}

// ----- Assign new key -----

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReassignView {
    /// The key to replace; none to fill a missing unit.
    license: Option<String>,
    /// Any part of the key.
    q: Option<String>,
    after: Option<String>,
    trail: Option<String>,
}

pub(crate) struct Candidate {
    pub id: String,
    pub key: String,
    pub first: bool,
}

#[derive(Template)]
#[template(path = "admin/reassign.html")]
struct ReassignPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    href: String,
    action: String,
    external_id: String,
    product: String,
    /// The key being replaced, when one is.
    old: Option<KeyOnLine>,
    license: String,
    search: &'a str,
    candidates: Vec<Candidate>,
    total: i64,
    previous: Option<String>,
    next: Option<String>,
    error: Option<String>,
}

const CANDIDATES: &str = "query($line: ID!, $search: String, $first: Int!, $after: String) { \
    availableKeysForLine(lineId: $line, search: $search, first: $first, after: $after) { \
      totalCount pageInfo { hasNextPage endCursor } edges { node { id key } } } }";

#[handler]
pub(crate) async fn reassign_form(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path((id, line_id)): Path<(String, String)>,
    Query(view): Query<ReassignView>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let (staff, order) = match load(req, admin, &token, &id).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    if staff.role == "support" {
        return message_page(StatusCode::FORBIDDEN, "Assign new key", "Your role may not change orders.");
    }
    let lines = lines_of(&order);
    let Some(line) = lines.into_iter().find(|l| l.id == line_id) else {
        return message_page(StatusCode::NOT_FOUND, "No such line", "This order has no such line.");
    };
    let license = view.license.clone().unwrap_or_default();
    let variables = json!({
        "line": line_id, "search": search_term(view.q.as_deref()), "first": 20, "after": view.after,
    });
    let (data, code, message) = answer(admin.run(req, Some(&token), CANDIDATES, variables).await);
    let list = &data["availableKeysForLine"];
    let candidates = list["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, e)| Candidate {
            id: e["node"]["id"].as_str().unwrap_or_default().to_string(),
            key: e["node"]["key"].as_str().unwrap_or_default().to_string(),
            first: i == 0,
        })
        .collect();
    let href = order_href(&id);
    let action = format!("{href}/lines/{}/reassign", utf8_percent_encode(&line_id, COMPONENT));
    let here = |changes: &[(&str, Option<&str>)]| {
        let current = [
            ("license", view.license.as_deref()),
            ("q", search_term(view.q.as_deref())),
            ("after", view.after.as_deref()),
            ("trail", view.trail.as_deref()),
        ];
        address(&action, &current, changes)
    };
    let (previous, next) = pager(view.after.as_deref(), view.trail.as_deref(), &list["pageInfo"], |after, trail| {
        here(&[("after", after), ("trail", Some(trail))])
    });
    let old = line.keys.into_iter().find(|k| k.id == license);
    page(
        StatusCode::OK,
        ReassignPage {
            title: "Assign new key",
            csrf: &csrf.0,
            staff,
            areas: areas("Orders"),
            back: "/admin/orders",
            external_id: order["externalId"].as_str().unwrap_or_default().to_string(),
            product: line.product,
            old,
            license,
            search: search_term(view.q.as_deref()).unwrap_or_default(),
            candidates,
            total: list["totalCount"].as_i64().unwrap_or_default(),
            previous,
            next,
            error: code.map(|_| message.unwrap_or_else(|| "The pool could not be read.".into())),
            action,
            href,
        }
        .render(),
    )
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReassignForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    license: String,
    #[serde(default)]
    new_license: String,
    #[serde(default)]
    old_key: String,
    #[serde(default)]
    notify: Option<String>,
}

#[handler]
pub(crate) async fn reassign(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    verifier: &CsrfVerifier,
    Path((id, line_id)): Path<(String, String)>,
    Form(form): Form<ReassignForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let mut input = Map::new();
    input.insert("lineId".into(), json!(line_id));
    if !form.license.is_empty() {
        input.insert("licenseId".into(), json!(form.license));
    }
    if !form.new_license.is_empty() {
        input.insert("newLicenseId".into(), json!(form.new_license));
    }
    if matches!(form.old_key.as_str(), "RETURN_TO_POOL" | "REVOKE") {
        input.insert("oldKey".into(), json!(form.old_key));
    }
    input.insert("notifyCustomer".into(), json!(form.notify.is_some()));
    let mutation = "mutation($input: ReassignOrderKeyInput!) { reassignOrderKey(input: $input) { license { key } } }";
    let (_, code, message) = answer(admin.run(req, Some(&token), mutation, json!({ "input": input })).await);
    let done = if form.license.is_empty() { "Key assigned" } else { "Key reassigned" };
    if let Some(to) = outcome(req, admin, code.as_deref(), message, done) {
        return to;
    }
    Redirect::see_other(order_href(&id)).into_response()
}

// ----- Unassign key -----

#[derive(Template)]
#[template(path = "admin/unassign.html")]
struct UnassignPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    href: String,
    external_id: String,
    key: KeyOnLine,
}

#[handler]
pub(crate) async fn unassign_form(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path((id, license)): Path<(String, String)>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let (staff, order) = match load(req, admin, &token, &id).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    if staff.role == "support" {
        return message_page(StatusCode::FORBIDDEN, "Unassign key", "Your role may not change orders.");
    }
    let Some(key) = lines_of(&order).into_iter().flat_map(|l| l.keys).find(|k| k.id == license) else {
        return message_page(StatusCode::NOT_FOUND, "No such key", "This order has no such key.");
    };
    let href = order_href(&id);
    page(
        StatusCode::OK,
        UnassignPage {
            title: "Unassign key",
            csrf: &csrf.0,
            staff,
            areas: areas("Orders"),
            back: &href.clone(),
            href,
            external_id: order["externalId"].as_str().unwrap_or_default().to_string(),
            key,
        }
        .render(),
    )
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct UnassignForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    to: String,
}

#[handler]
pub(crate) async fn unassign(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    verifier: &CsrfVerifier,
    Path((id, license)): Path<(String, String)>,
    Form(form): Form<UnassignForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let to = if form.to == "USED" { "USED" } else { "POOL" };
    let mutation =
        "mutation($id: ID!, $to: UnassignTarget!) { unassignLicense(input: {id: $id, to: $to}) { license { id } } }";
    let (_, code, message) = answer(admin.run(req, Some(&token), mutation, json!({ "id": license, "to": to })).await);
    if let Some(to) = outcome(req, admin, code.as_deref(), message, "Key unassigned") {
        return to;
    }
    Redirect::see_other(order_href(&id)).into_response()
}

// ----- Refund -----

#[derive(Template)]
#[template(path = "admin/refund.html")]
struct RefundPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    href: String,
    external_id: String,
    keys: usize,
}

#[handler]
pub(crate) async fn refund_form(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let (staff, order) = match load(req, admin, &token, &id).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    if staff.role == "support" {
        return message_page(StatusCode::FORBIDDEN, "Refund", "Your role may not refund orders.");
    }
    let href = order_href(&id);
    page(
        StatusCode::OK,
        RefundPage {
            title: "Refund order",
            csrf: &csrf.0,
            staff,
            areas: areas("Orders"),
            back: &href.clone(),
            href,
            external_id: order["externalId"].as_str().unwrap_or_default().to_string(),
            keys: lines_of(&order).iter().map(|l| l.keys.len()).sum(),
        }
        .render(),
    )
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RefundForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    keys: String,
    #[serde(default)]
    notify: Option<String>,
}

#[handler]
pub(crate) async fn refund(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    Form(form): Form<RefundForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let keys = match form.keys.as_str() {
        "RETURN_TO_POOL" | "RETURN_UNREVEALED" | "REVOKE" => form.keys.as_str(),
        _ => "KEEP",
    };
    let mutation = "mutation($id: ID!, $keys: RefundKeys!, $notify: Boolean!) { \
                    refundOrder(input: {id: $id, keys: $keys, notifyCustomer: $notify}) { order { status } } }";
    let variables = json!({ "id": id, "keys": keys, "notify": form.notify.is_some() });
    let (_, code, message) = answer(admin.run(req, Some(&token), mutation, variables).await);
    let done = match keys {
        "RETURN_TO_POOL" => "Order refunded; its keys went back to the pool",
        "RETURN_UNREVEALED" => "Order refunded; keys never revealed or used went back to the pool",
        "REVOKE" => "Order refunded; its keys were revoked",
        _ => "Order refunded; the customer keeps the keys",
    };
    if let Some(to) = outcome(req, admin, code.as_deref(), message, done) {
        return to;
    }
    Redirect::see_other(order_href(&id)).into_response()
}
