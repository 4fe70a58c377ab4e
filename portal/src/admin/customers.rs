//! Customers (`/admin/customers`): the list, searched by email or name and
//! sorted; a customer's page with their licences, orders and devices, and
//! "Send a portal sign-in link" (support may, as the role table says);
//! create and edit for managers and admins.

use super::Admin;
use super::create::{Problem, problems_with};
use super::pages::{
    Area, Flash, Staff, answer, areas, ended, flash, forged, form_errors, message_page, outcome, page, session,
    staff_of, take_flash, to_login,
};
use super::tags::{COMPONENT, address, pager, search_term};
use askama::Template;
use percent_encoding::utf8_percent_encode;
use poem::http::StatusCode;
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Path, Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

const PAGE: i64 = 50;

const LIST: &str = "query($first: Int!, $after: String, $search: String, $orderBy: CustomerOrder) { \
    me { role environment user { email } } \
    customers(first: $first, after: $after, search: $search, orderBy: $orderBy) { \
      totalCount pageInfo { hasNextPage endCursor } edges { node { id email name createdAt } } } }";

const ONE: &str = "query($id: ID!) { me { role environment user { email } } \
    customer(id: $id) { id email name createdAt \
      licenses(first: 50) { totalCount edges { node { id key status activationLimit activationsUsed expiresAt \
        product { name } activations { fingerprint name platform lastSeenAt deactivatedAt } } } } \
      orders(first: 50) { totalCount edges { node { id externalId status createdAt lines { quantity missing } } } } } }";

const SORTS: [(&str, &str); 3] = [("email", "EMAIL"), ("name", "NAME"), ("created", "CREATED_AT")];

fn customer_href(id: &str) -> String {
    format!("/admin/customers/{}", utf8_percent_encode(id, COMPONENT))
}

fn day(value: &Value) -> String {
    value.as_str().map(|t| t.get(..10).unwrap_or(t).to_string()).unwrap_or_default()
}

// ----- The list -----

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CustomersView {
    q: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
    after: Option<String>,
    trail: Option<String>,
}

impl CustomersView {
    fn sort(&self) -> (&'static str, &'static str) {
        self.sort.as_deref().and_then(|s| SORTS.into_iter().find(|(w, _)| *w == s)).unwrap_or(SORTS[0])
    }
    fn descending(&self) -> bool {
        self.dir.as_deref() == Some("desc")
    }
    fn href(&self, changes: &[(&str, Option<&str>)]) -> String {
        let current = [
            ("q", search_term(self.q.as_deref())),
            ("sort", self.sort.as_deref().map(|_| self.sort().0)),
            ("dir", self.dir.as_deref().map(|_| if self.descending() { "desc" } else { "asc" })),
            ("after", self.after.as_deref()),
            ("trail", self.trail.as_deref()),
        ];
        address("/admin/customers", &current, changes)
    }
}

pub(crate) struct CustomerRow {
    pub href: String,
    pub email: String,
    pub name: String,
    pub created: String,
}

pub(crate) struct SortLink {
    pub heading: &'static str,
    pub href: String,
    pub sorted: &'static str,
}

#[derive(Template)]
#[template(path = "admin/customers.html")]
struct CustomersPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    search: &'a str,
    columns: Vec<SortLink>,
    rows: Vec<CustomerRow>,
    total: i64,
    error: Option<String>,
    previous: Option<String>,
    next: Option<String>,
    flash: Option<Flash>,
}

#[handler]
pub(crate) async fn customers(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Query(view): Query<CustomersView>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let variables = json!({
        "first": PAGE,
        "after": view.after,
        "search": search_term(view.q.as_deref()),
        "orderBy": { "field": view.sort().1, "direction": if view.descending() { "DESC" } else { "ASC" } },
    });
    let (data, code, message) = answer(admin.run(req, Some(&token), LIST, variables).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let list = &data["customers"];
    let rows = list["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .map(|e| {
                    let node = &e["node"];
                    CustomerRow {
                        href: customer_href(node["id"].as_str().unwrap_or_default()),
                        email: node["email"].as_str().unwrap_or_default().to_string(),
                        name: node["name"].as_str().unwrap_or_default().to_string(),
                        created: day(&node["createdAt"]),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let columns = [("email", "Email"), ("name", "Name"), ("created", "Created")]
        .into_iter()
        .map(|(word, heading)| {
            let current = view.sort().0 == word;
            let next_dir = if current && !view.descending() { "desc" } else { "asc" };
            let sorted = match (current, view.descending()) {
                (false, _) => "none",
                (true, true) => "descending",
                (true, false) => "ascending",
            };
            let href = view.href(&[("sort", Some(word)), ("dir", Some(next_dir)), ("after", None), ("trail", None)]);
            SortLink { heading, href, sorted }
        })
        .collect();
    let (previous, next) = pager(view.after.as_deref(), view.trail.as_deref(), &list["pageInfo"], |after, trail| {
        view.href(&[("after", after), ("trail", Some(trail))])
    });
    let error = code.as_ref().map(|_| message.unwrap_or_else(|| "The customers could not be read.".into()));
    let status = if error.is_some() { crate::status_for(code.as_deref()) } else { StatusCode::OK };
    let back = view.href(&[("after", None), ("trail", None)]);
    page(
        status,
        CustomersPage {
            title: "Customers",
            csrf: &csrf.0,
            staff,
            areas: areas("Customers"),
            back: &back,
            search: search_term(view.q.as_deref()).unwrap_or_default(),
            columns,
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

// ----- One customer -----

pub(crate) struct LicenceLine {
    pub href: String,
    pub key: String,
    pub product: String,
    pub status: String,
    pub activations: String,
    pub expires: String,
}

pub(crate) struct OrderLine {
    pub external_id: String,
    pub status: String,
    pub created: String,
    pub units: i64,
    pub missing: i64,
}

pub(crate) struct Device {
    pub key: String,
    pub href: String,
    pub name: String,
    pub platform: String,
    pub last_seen: String,
    pub live: bool,
}

#[derive(Template)]
#[template(path = "admin/customer.html")]
struct CustomerPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    href: String,
    customer_id: String,
    email: String,
    name: String,
    created: String,
    licences: Vec<LicenceLine>,
    licence_total: i64,
    orders: Vec<OrderLine>,
    order_total: i64,
    devices: Vec<Device>,
    flash: Option<Flash>,
}

#[handler]
pub(crate) async fn customer(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let (data, _, _) = answer(admin.run(req, Some(&token), ONE, json!({ "id": id })).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let node = &data["customer"];
    if !node.is_object() {
        return message_page(StatusCode::NOT_FOUND, "No such customer", "There is no such customer here.");
    }
    let mut licences = Vec::new();
    let mut devices = Vec::new();
    for licence in node["licenses"]["edges"].as_array().into_iter().flatten().map(|e| &e["node"]) {
        let key = licence["key"].as_str().unwrap_or_default().to_string();
        let href =
            format!("/admin/licenses/{}", utf8_percent_encode(licence["id"].as_str().unwrap_or_default(), COMPONENT));
        let limit = licence["activationLimit"].as_i64().unwrap_or_default();
        let used = licence["activationsUsed"].as_i64().unwrap_or_default();
        for device in licence["activations"].as_array().into_iter().flatten() {
            devices.push(Device {
                key: key.clone(),
                href: href.clone(),
                name: device["name"].as_str().or(device["fingerprint"].as_str()).unwrap_or_default().to_string(),
                platform: device["platform"].as_str().unwrap_or("—").to_string(),
                last_seen: day(&device["lastSeenAt"]),
                live: device["deactivatedAt"].is_null(),
            });
        }
        licences.push(LicenceLine {
            product: licence["product"]["name"].as_str().unwrap_or("—").to_string(),
            status: licence["status"].as_str().unwrap_or_default().to_lowercase(),
            activations: if limit < 0 { format!("{used} / Unlimited") } else { format!("{used} / {limit}") },
            expires: licence["expiresAt"]
                .as_str()
                .map_or_else(|| "Lifetime".to_string(), |t| t.get(..10).unwrap_or(t).to_string()),
            key,
            href,
        });
    }
    let orders = node["orders"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let order = &e["node"];
            let lines = order["lines"].as_array().cloned().unwrap_or_default();
            OrderLine {
                external_id: order["externalId"].as_str().unwrap_or_default().to_string(),
                status: order["status"].as_str().unwrap_or_default().to_lowercase().replace('_', " "),
                created: day(&order["createdAt"]),
                units: lines.iter().filter_map(|l| l["quantity"].as_i64()).sum(),
                missing: lines.iter().filter_map(|l| l["missing"].as_i64()).sum(),
            }
        })
        .collect();
    page(
        StatusCode::OK,
        CustomerPage {
            title: node["email"].as_str().unwrap_or("Customer"),
            csrf: &csrf.0,
            staff,
            areas: areas("Customers"),
            back: "/admin/customers",
            href: customer_href(&id),
            customer_id: utf8_percent_encode(&id, COMPONENT).to_string(),
            email: node["email"].as_str().unwrap_or_default().to_string(),
            name: node["name"].as_str().unwrap_or_default().to_string(),
            created: day(&node["createdAt"]),
            licences,
            licence_total: node["licenses"]["totalCount"].as_i64().unwrap_or_default(),
            orders,
            order_total: node["orders"]["totalCount"].as_i64().unwrap_or_default(),
            devices,
            flash: take_flash(req, admin),
        }
        .render(),
    )
}

/// Emails the customer a portal sign-in link.
#[handler]
pub(crate) async fn send_link(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    Form(form): Form<super::pages::CsrfForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let mutation = "mutation($id: ID!) { createPortalLink(input: {customerId: $id, sendEmail: true}) { expiresAt } }";
    let (_, code, message) = answer(admin.run(req, Some(&token), mutation, json!({ "id": id })).await);
    if let Some(to) = outcome(
        req,
        admin,
        code.as_deref(),
        message,
        "A portal sign-in link was emailed to the customer (valid 7 days)",
    ) {
        return to;
    }
    Redirect::see_other(customer_href(&id)).into_response()
}

// ----- Create and edit -----

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CustomerForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Template)]
#[template(path = "admin/customer_form.html")]
struct CustomerFormPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    action: String,
    form: &'a CustomerForm,
    problems: Vec<Problem>,
}

impl CustomerFormPage<'_> {
    fn problem(&self, field: &str) -> Option<&str> {
        self.problems.iter().find(|p| p.field == Some(field)).map(|p| p.text.as_str())
    }
    fn general(&self) -> Vec<&str> {
        self.problems.iter().filter(|p| p.field.is_none()).map(|p| p.text.as_str()).collect()
    }
}

const ME: &str = "{ me { role environment user { email } } }";

async fn render_form(
    req: &Request,
    admin: &Admin,
    token: &str,
    csrf: &str,
    action: String,
    form: &CustomerForm,
    problems: Vec<Problem>,
) -> Response {
    let (data, _, _) = answer(admin.run(req, Some(token), ME, json!({})).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    if staff.role == "support" {
        return message_page(StatusCode::FORBIDDEN, "Customers", "Your role may not change customers.");
    }
    let title = if action.ends_with("/new") { "New customer" } else { "Edit customer" };
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    page(
        status,
        CustomerFormPage {
            title,
            csrf,
            staff,
            areas: areas("Customers"),
            back: "/admin/customers",
            action,
            form,
            problems,
        }
        .render(),
    )
}

#[handler]
pub(crate) async fn new_form(req: &Request, Data(admin): Data<&Arc<Admin>>, csrf: &CsrfToken) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    render_form(req, admin, &token, &csrf.0, "/admin/customers/new".into(), &CustomerForm::default(), Vec::new()).await
}

#[handler]
pub(crate) async fn edit_form(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let (data, _, _) = answer(
        admin.run(req, Some(&token), "query($id: ID!) { customer(id: $id) { email name } }", json!({ "id": id })).await,
    );
    let Some(email) = data["customer"]["email"].as_str() else {
        return message_page(StatusCode::NOT_FOUND, "No such customer", "There is no such customer here.");
    };
    let form = CustomerForm {
        email: email.to_string(),
        name: data["customer"]["name"].as_str().unwrap_or_default().to_string(),
        ..CustomerForm::default()
    };
    render_form(req, admin, &token, &csrf.0, format!("{}/edit", customer_href(&id)), &form, Vec::new()).await
}

async fn save(req: &Request, admin: &Admin, csrf: &str, id: Option<String>, form: CustomerForm) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let (query, variables, action) = match &id {
        None => (
            "mutation($email: String!, $name: String!) { createCustomer(input: {email: $email, name: $name}) { customer { id } } }",
            json!({ "email": form.email.trim(), "name": form.name.trim() }),
            "/admin/customers/new".to_string(),
        ),
        Some(id) => (
            "mutation($id: ID!, $email: String!, $name: String!) { updateCustomer(input: {id: $id, email: $email, name: $name}) { customer { id } } }",
            json!({ "id": id, "email": form.email.trim(), "name": form.name.trim() }),
            format!("{}/edit", customer_href(id)),
        ),
    };
    let response = serde_json::to_value(admin.run(req, Some(&token), query, variables).await).unwrap_or_default();
    let data = &response["data"];
    let saved = data["createCustomer"]["customer"]["id"].as_str().or(data["updateCustomer"]["customer"]["id"].as_str());
    if let Some(saved) = saved {
        flash(req, admin, true, "Customer saved");
        return Redirect::see_other(customer_href(saved)).into_response();
    }
    let errors = match form_errors(req, admin, &response) {
        Ok(errors) => errors,
        Err(ended) => return *ended,
    };
    let problems = problems_with(&errors, |f| match f {
        "email" => Some("email"),
        "name" => Some("name"),
        _ => None,
    });
    render_form(req, admin, &token, csrf, action, &form, problems).await
}

#[handler]
pub(crate) async fn create(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Form(form): Form<CustomerForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    save(req, admin, &csrf.0, None, form).await
}

#[handler]
pub(crate) async fn update(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    Form(form): Form<CustomerForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    save(req, admin, &csrf.0, Some(id), form).await
}
