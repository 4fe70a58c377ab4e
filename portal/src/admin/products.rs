//! Products (`/admin/products`, seed 001): the list, searched and filtered by
//! status; create and edit with the licence delivery choice — Auto-generated
//! (with a generator, ULID by default), Specific tag (which tag), No tag —
//! the key button's text, the "not available" message and whether licences
//! are bound to devices; a product's page with its pool's level; archive.

use super::Admin;
use super::create::{Problem, problems_with};
use super::pages::{
    Area, Flash, Staff, answer, areas, ended, flash, forged, form_errors, message_page, page, session, staff_of,
    take_flash, to_login,
};
use super::tags::{COMPONENT, Figures, address, pager, search_term, tag_href};
use askama::Template;
use percent_encoding::utf8_percent_encode;
use poem::http::StatusCode;
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Path, Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

const PAGE: i64 = 50;

const LIST: &str = "query($first: Int!, $after: String, $filter: ProductFilter) { \
    me { role environment user { email } } \
    products(first: $first, after: $after, filter: $filter, orderBy: {field: NAME, direction: ASC}) { \
      totalCount pageInfo { hasNextPage endCursor } \
      edges { node { id name status delivery { mode tagId generatorId } createdAt } } } \
    tags(first: 100) { edges { node { id name } } } \
    generators(first: 100) { edges { node { id name } } } }";

const FIELDS: &str = "id name description status delivery { mode tagId generatorId } keyButtonText \
    unavailableMessage requiresFingerprint renewalPeriod { unit count } createdAt updatedAt";

fn product_href(id: &str) -> String {
    format!("/admin/products/{}", utf8_percent_encode(id, COMPONENT))
}

/// `(id, name)` of a list's nodes.
fn named(data: &Value, list: &str) -> Vec<(String, String)> {
    data[list]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .map(|e| {
                    (
                        e["node"]["id"].as_str().unwrap_or_default().to_string(),
                        e["node"]["name"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn name_of(names: &[(String, String)], id: &str) -> String {
    names.iter().find(|(i, _)| i == id).map_or_else(|| id.to_string(), |(_, n)| n.clone())
}

/// How a product delivers, as read.
fn delivery_text(delivery: &Value, tags: &[(String, String)], generators: &[(String, String)]) -> String {
    match delivery["mode"].as_str() {
        Some("TAG") => format!("from tag {}", name_of(tags, delivery["tagId"].as_str().unwrap_or_default())),
        Some("NO_TAG") => "from keys without a tag".to_string(),
        _ => match delivery["generatorId"].as_str() {
            Some(id) => format!("generated ({})", name_of(generators, id)),
            None => "generated (ULID)".to_string(),
        },
    }
}

// ----- The list -----

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ProductsView {
    q: Option<String>,
    status: Option<String>,
    after: Option<String>,
    trail: Option<String>,
}

impl ProductsView {
    fn status(&self) -> Option<&'static str> {
        self.status.as_deref().and_then(|s| ["ACTIVE", "ARCHIVED"].into_iter().find(|k| *k == s))
    }
    fn href(&self, changes: &[(&str, Option<&str>)]) -> String {
        let current = [
            ("q", search_term(self.q.as_deref())),
            ("status", self.status()),
            ("after", self.after.as_deref()),
            ("trail", self.trail.as_deref()),
        ];
        address("/admin/products", &current, changes)
    }
}

pub(crate) struct ProductRow {
    pub href: String,
    pub name: String,
    pub status: String,
    pub delivery: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "admin/products.html")]
struct ProductsPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    search: &'a str,
    status: &'a str,
    rows: Vec<ProductRow>,
    total: i64,
    error: Option<String>,
    previous: Option<String>,
    next: Option<String>,
    flash: Option<Flash>,
}

#[handler]
pub(crate) async fn products(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Query(view): Query<ProductsView>,
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
    let (tags, generators) = (named(&data, "tags"), named(&data, "generators"));
    let list = &data["products"];
    let rows = list["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .map(|e| {
                    let node = &e["node"];
                    let created = node["createdAt"].as_str().unwrap_or_default();
                    ProductRow {
                        href: product_href(node["id"].as_str().unwrap_or_default()),
                        name: node["name"].as_str().unwrap_or_default().to_string(),
                        status: node["status"].as_str().unwrap_or_default().to_lowercase(),
                        delivery: delivery_text(&node["delivery"], &tags, &generators),
                        created: created.get(..10).unwrap_or(created).to_string(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let (previous, next) = pager(view.after.as_deref(), view.trail.as_deref(), &list["pageInfo"], |after, trail| {
        view.href(&[("after", after), ("trail", Some(trail))])
    });
    let error = code.as_ref().map(|_| message.unwrap_or_else(|| "The products could not be read.".into()));
    let status = if error.is_some() { crate::status_for(code.as_deref()) } else { StatusCode::OK };
    let back = view.href(&[("after", None), ("trail", None)]);
    page(
        status,
        ProductsPage {
            title: "Products",
            csrf: &csrf.0,
            staff,
            areas: areas("Products"),
            back: &back,
            search: search_term(view.q.as_deref()).unwrap_or_default(),
            status: view.status().unwrap_or_default(),
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

// ----- One product -----

#[derive(Template)]
#[template(path = "admin/product.html")]
struct ProductPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    href: String,
    name: String,
    description: String,
    status: String,
    delivery: String,
    button: String,
    unavailable: String,
    fingerprint: bool,
    /// "1 month", "30 days"; "none" when renewals must name their period.
    renewal: String,
    /// The pool the product delivers from, with its figures and page.
    pool: Option<(String, String, Figures)>,
    flash: Option<Flash>,
}

#[handler]
pub(crate) async fn product(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let query = format!(
        "query($id: ID!) {{ me {{ role environment user {{ email }} }} product(id: $id) {{ {FIELDS} }} \
         tags(first: 100) {{ edges {{ node {{ id name total remaining assigned used usedPercentage }} }} }} \
         generators(first: 100) {{ edges {{ node {{ id name }} }} }} }}"
    );
    let (data, _, _) = answer(admin.run(req, Some(&token), &query, json!({ "id": id })).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let node = &data["product"];
    if !node.is_object() {
        return message_page(StatusCode::NOT_FOUND, "No such product", "There is no such product here.");
    }
    let (tags, generators) = (named(&data, "tags"), named(&data, "generators"));
    let pool_id = match node["delivery"]["mode"].as_str() {
        Some("TAG") => node["delivery"]["tagId"].as_str().map(str::to_string),
        Some("NO_TAG") => Some("no-tag".to_string()),
        _ => None,
    };
    let pool = pool_id.and_then(|pool_id| {
        let tag = data["tags"]["edges"].as_array()?.iter().map(|e| &e["node"]).find(|t| t["id"] == pool_id.as_str())?;
        Some((tag["name"].as_str().unwrap_or_default().to_string(), tag_href(&pool_id), Figures::of(tag)))
    });
    page(
        StatusCode::OK,
        ProductPage {
            title: node["name"].as_str().unwrap_or("Product"),
            csrf: &csrf.0,
            staff,
            areas: areas("Products"),
            back: "/admin/products",
            href: product_href(&id),
            name: node["name"].as_str().unwrap_or_default().to_string(),
            description: node["description"].as_str().unwrap_or_default().to_string(),
            status: node["status"].as_str().unwrap_or_default().to_lowercase(),
            delivery: delivery_text(&node["delivery"], &tags, &generators),
            button: node["keyButtonText"].as_str().unwrap_or_default().to_string(),
            unavailable: node["unavailableMessage"].as_str().unwrap_or_default().to_string(),
            fingerprint: node["requiresFingerprint"].as_bool().unwrap_or_default(),
            renewal: renewal_words(&node["renewalPeriod"]),
            pool,
            flash: take_flash(req, admin),
        }
        .render(),
    )
}

// ----- Create and edit -----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProductForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `AUTO_GENERATED`, `TAG` or `NO_TAG`.
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub tag_id: String,
    #[serde(default)]
    pub generator_id: String,
    #[serde(default)]
    pub key_button_text: String,
    #[serde(default)]
    pub unavailable_message: String,
    #[serde(default)]
    pub requires_fingerprint: Option<String>,
    /// The renewal period's count (empty: none) and unit (`DAYS`, `MONTHS`, `YEARS`).
    #[serde(default)]
    pub renewal_count: String,
    #[serde(default)]
    pub renewal_unit: String,
}

/// A product's renewal period in words: "1 month", "30 days", "none".
fn renewal_words(period: &Value) -> String {
    let (Some(unit), Some(count)) = (period["unit"].as_str(), period["count"].as_i64()) else {
        return "none".into();
    };
    let unit = match unit {
        "DAYS" => "day",
        "MONTHS" => "month",
        _ => "year",
    };
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

impl ProductForm {
    fn of(node: &Value) -> Self {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        ProductForm {
            name: text(&node["name"]),
            description: text(&node["description"]),
            mode: text(&node["delivery"]["mode"]),
            tag_id: text(&node["delivery"]["tagId"]),
            generator_id: text(&node["delivery"]["generatorId"]),
            key_button_text: text(&node["keyButtonText"]),
            unavailable_message: text(&node["unavailableMessage"]),
            requires_fingerprint: node["requiresFingerprint"].as_bool().unwrap_or_default().then(|| "yes".into()),
            renewal_count: node["renewalPeriod"]["count"].as_i64().map(|n| n.to_string()).unwrap_or_default(),
            renewal_unit: text(&node["renewalPeriod"]["unit"]),
            ..ProductForm::default()
        }
    }

    fn input(&self) -> Map<String, Value> {
        let mut input = Map::new();
        input.insert("name".into(), json!(self.name.trim()));
        input.insert("description".into(), json!(self.description));
        let mut delivery = Map::new();
        let mode = match self.mode.as_str() {
            "TAG" | "NO_TAG" => self.mode.as_str(),
            _ => "AUTO_GENERATED",
        };
        delivery.insert("mode".into(), json!(mode));
        match mode {
            "TAG" if !self.tag_id.is_empty() => {
                delivery.insert("tagId".into(), json!(self.tag_id));
            }
            "AUTO_GENERATED" if !self.generator_id.is_empty() => {
                delivery.insert("generatorId".into(), json!(self.generator_id));
            }
            _ => {}
        }
        input.insert("delivery".into(), Value::Object(delivery));
        if !self.key_button_text.trim().is_empty() {
            input.insert("keyButtonText".into(), json!(self.key_button_text.trim()));
        }
        if !self.unavailable_message.trim().is_empty() {
            input.insert("unavailableMessage".into(), json!(self.unavailable_message.trim()));
        }
        input.insert("requiresFingerprint".into(), json!(self.requires_fingerprint.is_some()));
        // No count: no renewal period (an edit clears it).
        let count = self.renewal_count.trim();
        let period = if count.is_empty() {
            Value::Null
        } else {
            let unit = match self.renewal_unit.as_str() {
                "DAYS" => "days",
                "YEARS" => "years",
                _ => "months",
            };
            // Not a whole number: the API refuses it at the same field as an out-of-range one.
            let mut period = Map::new();
            period.insert(unit.into(), json!(count.parse::<i64>().unwrap_or(0)));
            Value::Object(period)
        };
        input.insert("renewalPeriod".into(), period);
        input
    }
}

pub(crate) struct Option3 {
    pub id: String,
    pub name: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "admin/product_form.html")]
struct ProductFormPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    action: String,
    form: &'a ProductForm,
    tags: Vec<Option3>,
    generators: Vec<Option3>,
    problems: Vec<Problem>,
}

impl ProductFormPage<'_> {
    fn problem(&self, field: &str) -> Option<&str> {
        self.problems.iter().find(|p| p.field == Some(field)).map(|p| p.text.as_str())
    }
    fn unit(&self) -> &str {
        match self.form.renewal_unit.as_str() {
            "DAYS" | "YEARS" => self.form.renewal_unit.as_str(),
            _ => "MONTHS",
        }
    }
    fn general(&self) -> Vec<&str> {
        self.problems.iter().filter(|p| p.field.is_none()).map(|p| p.text.as_str()).collect()
    }
    fn mode(&self) -> &str {
        match self.form.mode.as_str() {
            "TAG" | "NO_TAG" => self.form.mode.as_str(),
            _ => "AUTO_GENERATED",
        }
    }
}

const CHOICES: &str = "{ me { role environment user { email } } \
    tags(first: 100, orderBy: {field: NAME, direction: ASC}) { edges { node { id name system } } } \
    generators(first: 100) { edges { node { id name } } } }";

async fn render_form(
    req: &Request,
    admin: &Admin,
    token: &str,
    csrf: &str,
    action: String,
    form: &ProductForm,
    problems: Vec<Problem>,
) -> Response {
    let (data, _, _) = answer(admin.run(req, Some(token), CHOICES, json!({})).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    if staff.role == "support" {
        return message_page(StatusCode::FORBIDDEN, "Products", "Your role may not change products.");
    }
    let tags = data["tags"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .map(|e| &e["node"])
                .filter(|t| !t["system"].as_bool().unwrap_or_default())
                .map(|t| {
                    let id = t["id"].as_str().unwrap_or_default().to_string();
                    Option3 { selected: id == form.tag_id, name: t["name"].as_str().unwrap_or_default().into(), id }
                })
                .collect()
        })
        .unwrap_or_default();
    let generators = named(&data, "generators")
        .into_iter()
        .map(|(id, name)| Option3 { selected: id == form.generator_id, id, name })
        .collect();
    let title = if action.ends_with("/new") { "New product" } else { "Edit product" };
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    page(
        status,
        ProductFormPage {
            title,
            csrf,
            staff,
            areas: areas("Products"),
            back: "/admin/products",
            action,
            form,
            tags,
            generators,
            problems,
        }
        .render(),
    )
}

#[handler]
pub(crate) async fn new_form(req: &Request, Data(admin): Data<&Arc<Admin>>, csrf: &CsrfToken) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let form =
        ProductForm { mode: "AUTO_GENERATED".into(), key_button_text: "Licence Key".into(), ..ProductForm::default() };
    render_form(req, admin, &token, &csrf.0, "/admin/products/new".into(), &form, Vec::new()).await
}

#[handler]
pub(crate) async fn edit_form(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let query = format!("query($id: ID!) {{ product(id: $id) {{ {FIELDS} }} }}");
    let (data, _, _) = answer(admin.run(req, Some(&token), &query, json!({ "id": id })).await);
    if !data["product"].is_object() {
        return message_page(StatusCode::NOT_FOUND, "No such product", "There is no such product here.");
    }
    let form = ProductForm::of(&data["product"]);
    render_form(req, admin, &token, &csrf.0, format!("{}/edit", product_href(&id)), &form, Vec::new()).await
}

/// The form field an API refusal names.
fn field_of(api: &str) -> Option<&'static str> {
    match api {
        "name" => Some("name"),
        "description" => Some("description"),
        "keyButtonText" => Some("keyButtonText"),
        "unavailableMessage" => Some("unavailableMessage"),
        f if f.ends_with("tagId") => Some("tagId"),
        f if f.ends_with("generatorId") => Some("generatorId"),
        f if f.starts_with("delivery") => Some("mode"),
        f if f.starts_with("renewalPeriod") => Some("renewalPeriod"),
        _ => None,
    }
}

async fn save(req: &Request, admin: &Admin, csrf: &str, id: Option<String>, form: ProductForm) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let mut input = form.input();
    let (query, action) = match &id {
        None => (
            "mutation($input: CreateProductInput!) { createProduct(input: $input) { product { id name } } }",
            "/admin/products/new".to_string(),
        ),
        Some(id) => {
            input.insert("id".into(), json!(id));
            (
                "mutation($input: UpdateProductInput!) { updateProduct(input: $input) { product { id name } } }",
                format!("{}/edit", product_href(id)),
            )
        }
    };
    let response =
        serde_json::to_value(admin.run(req, Some(&token), query, json!({ "input": input })).await).unwrap_or_default();
    let data = &response["data"];
    if let Some(saved) = data["createProduct"]["product"].as_object().or(data["updateProduct"]["product"].as_object()) {
        let name = saved.get("name").and_then(Value::as_str).unwrap_or_default();
        flash(req, admin, true, &format!("Product {name} saved"));
        let id = saved.get("id").and_then(Value::as_str).unwrap_or_default();
        return Redirect::see_other(product_href(id)).into_response();
    }
    let errors = match form_errors(req, admin, &response) {
        Ok(errors) => errors,
        Err(ended) => return *ended,
    };
    let problems = problems_with(&errors, field_of);
    render_form(req, admin, &token, csrf, action, &form, problems).await
}

#[handler]
pub(crate) async fn create(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Form(form): Form<ProductForm>,
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
    Form(form): Form<ProductForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    save(req, admin, &csrf.0, Some(id), form).await
}

// ----- Archive -----

#[derive(Template)]
#[template(path = "admin/product_archive.html")]
struct ArchivePage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    href: String,
    name: String,
}

#[handler]
pub(crate) async fn archive_confirm(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let query = "query($id: ID!) { me { role environment user { email } } product(id: $id) { name } }";
    let (data, _, _) = answer(admin.run(req, Some(&token), query, json!({ "id": id })).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let Some(name) = data["product"]["name"].as_str() else {
        return message_page(StatusCode::NOT_FOUND, "No such product", "There is no such product here.");
    };
    let href = product_href(&id);
    page(
        StatusCode::OK,
        ArchivePage {
            title: "Archive product",
            csrf: &csrf.0,
            staff,
            areas: areas("Products"),
            back: &href.clone(),
            href,
            name: name.to_string(),
        }
        .render(),
    )
}

#[handler]
pub(crate) async fn archive(
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
    let mutation = "mutation($id: ID!) { archiveProduct(input: {id: $id}) { product { name } } }";
    let (data, code, message) = answer(admin.run(req, Some(&token), mutation, json!({ "id": id })).await);
    match code.as_deref() {
        None => {
            let name = data["archiveProduct"]["product"]["name"].as_str().unwrap_or_default();
            flash(req, admin, true, &format!("Product {name} archived"));
        }
        Some("UNAUTHENTICATED") => return ended(req, admin),
        Some("FORBIDDEN") => flash(req, admin, false, "Your role may not do that."),
        Some(_) => flash(req, admin, false, &message.unwrap_or_else(|| "That did not work.".into())),
    }
    Redirect::see_other(product_href(&id)).into_response()
}
