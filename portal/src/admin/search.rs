//! Global search (`/admin/search?q=…`, the header's search field, Ctrl+K or
//! Cmd+K): one box, one operation, finding licences (any part of the key),
//! customers (email, name), orders (external id, customer email) and
//! products (name), grouped, each result a link.

use super::Admin;
use super::pages::{Area, Staff, answer, areas, ended, page, session, staff_of, to_login};
use super::tags::{COMPONENT, search_term};
use askama::Template;
use percent_encoding::utf8_percent_encode;
use poem::http::StatusCode;
use poem::web::{CsrfToken, Data, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

const EACH: i64 = 8;

const SEARCH: &str = "query($q: String!, $n: Int!) { me { role environment user { email } } \
    licenseKeys(first: $n, filter: {search: $q}) { totalCount edges { node { id key status product { name } } } } \
    customers(first: $n, search: $q) { totalCount edges { node { id email name } } } \
    orders(first: $n, filter: {search: $q}) { totalCount edges { node { id externalId status customer { email } } } } \
    products(first: $n, filter: {search: $q}) { totalCount edges { node { id name status } } } }";

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchView {
    q: Option<String>,
}

pub(crate) struct Hit {
    pub href: String,
    pub text: String,
    pub detail: String,
    pub code: bool,
}

pub(crate) struct Group {
    pub title: &'static str,
    pub total: i64,
    pub all: Option<String>,
    pub hits: Vec<Hit>,
}

#[derive(Template)]
#[template(path = "admin/search.html")]
struct SearchPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    query: &'a str,
    groups: Vec<Group>,
    error: Option<String>,
}

fn hits(list: &Value, hit: impl Fn(&Value) -> Hit) -> Vec<Hit> {
    list["edges"].as_array().into_iter().flatten().map(|e| hit(&e["node"])).collect()
}

fn link(path: &str, id: &Value) -> String {
    format!("{path}/{}", utf8_percent_encode(id.as_str().unwrap_or_default(), COMPONENT))
}

#[handler]
pub(crate) async fn search(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Query(view): Query<SearchView>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let query = search_term(view.q.as_deref()).unwrap_or_default();
    let (data, code, message) = if query.is_empty() {
        answer(admin.run(req, Some(&token), "{ me { role environment user { email } } }", json!({})).await)
    } else {
        answer(admin.run(req, Some(&token), SEARCH, json!({ "q": query, "n": EACH })).await)
    };
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let encoded = utf8_percent_encode(query, COMPONENT).to_string();
    let groups = if query.is_empty() {
        Vec::new()
    } else {
        vec![
            Group {
                title: "Licences",
                total: data["licenseKeys"]["totalCount"].as_i64().unwrap_or_default(),
                all: Some(format!("/admin/licenses?q={encoded}")),
                hits: hits(&data["licenseKeys"], |n| Hit {
                    href: link("/admin/licenses", &n["id"]),
                    text: n["key"].as_str().unwrap_or_default().to_string(),
                    detail: format!(
                        "{} · {}",
                        n["product"]["name"].as_str().unwrap_or("—"),
                        n["status"].as_str().unwrap_or_default().to_lowercase()
                    ),
                    code: true,
                }),
            },
            Group {
                title: "Customers",
                total: data["customers"]["totalCount"].as_i64().unwrap_or_default(),
                all: Some(format!("/admin/customers?q={encoded}")),
                hits: hits(&data["customers"], |n| Hit {
                    href: link("/admin/customers", &n["id"]),
                    text: n["email"].as_str().unwrap_or_default().to_string(),
                    detail: n["name"].as_str().unwrap_or_default().to_string(),
                    code: false,
                }),
            },
            Group {
                title: "Orders",
                total: data["orders"]["totalCount"].as_i64().unwrap_or_default(),
                all: Some(format!("/admin/orders?q={encoded}")),
                hits: hits(&data["orders"], |n| Hit {
                    href: link("/admin/orders", &n["id"]),
                    text: n["externalId"].as_str().unwrap_or_default().to_string(),
                    detail: format!(
                        "{} · {}",
                        n["customer"]["email"].as_str().unwrap_or("—"),
                        n["status"].as_str().unwrap_or_default().to_lowercase().replace('_', " ")
                    ),
                    code: true,
                }),
            },
            Group {
                title: "Products",
                total: data["products"]["totalCount"].as_i64().unwrap_or_default(),
                all: Some(format!("/admin/products?q={encoded}")),
                hits: hits(&data["products"], |n| Hit {
                    href: link("/admin/products", &n["id"]),
                    text: n["name"].as_str().unwrap_or_default().to_string(),
                    detail: n["status"].as_str().unwrap_or_default().to_lowercase(),
                    code: false,
                }),
            },
        ]
    };
    let error = code.map(|_| message.unwrap_or_else(|| "The search could not run.".into()));
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let back = format!("/admin/search?q={encoded}");
    page(
        status,
        SearchPage { title: "Search", csrf: &csrf.0, staff, areas: areas(""), back: &back, query, groups, error }
            .render(),
    )
}
