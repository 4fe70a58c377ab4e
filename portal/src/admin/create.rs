//! "Create licence" (`/admin/licenses/new`): a licence made by hand from a
//! product and a key format, for a customer or for the pool. Every refusal
//! of the API is shown next to the field it names, with what was typed kept.

use super::Admin;
use super::pages::{
    Area, Staff, answer, areas, ended, flash, forged, form_errors, message_page, page, session, staff_of, to_login,
};
use askama::Template;
use poem::http::StatusCode;
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

const CHOICES: &str = "{ me { role environment user { email } } \
    products(first: 100, filter: {status: ACTIVE}, orderBy: {field: NAME, direction: ASC}) { edges { node { id name } } } \
    generators(first: 100) { edges { node { id name } } } }";

const CREATE: &str = "mutation($input: CreateLicenseInput!) { createLicense(input: $input) { license { id } } }";

const FIND_CUSTOMER: &str =
    "query($email: String!) { customers(first: 5, search: $email) { edges { node { id email } } } }";

/// What the form holds, as typed.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LicenceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pub product: String,
    #[serde(default)]
    pub generator: String,
    #[serde(default)]
    pub customer: String,
    #[serde(default)]
    pub limit: String,
    #[serde(default)]
    pub expires: String,
    #[serde(default)]
    pub lifetime: Option<String>,
    #[serde(default)]
    pub flags: String,
    #[serde(default)]
    pub metadata: String,
}

pub(crate) struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// An error and the field it belongs to (`None`: the whole form).
pub(crate) struct Problem {
    pub field: Option<&'static str>,
    pub text: String,
}

#[derive(Template)]
#[template(path = "admin/create.html")]
struct CreatePage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    products: Vec<Choice>,
    generators: Vec<Choice>,
    form: &'a LicenceForm,
    problems: Vec<Problem>,
}

impl CreatePage<'_> {
    /// The error shown at `field`, if any.
    fn problem(&self, field: &str) -> Option<&str> {
        self.problems.iter().find(|p| p.field == Some(field)).map(|p| p.text.as_str())
    }
    fn general(&self) -> Vec<&str> {
        self.problems.iter().filter(|p| p.field.is_none()).map(|p| p.text.as_str()).collect()
    }
}

fn choices(data: &Value, list: &str, selected: &str) -> Vec<Choice> {
    data[list]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .map(|e| {
                    let value = e["node"]["id"].as_str().unwrap_or_default().to_string();
                    Choice {
                        selected: value == selected,
                        label: e["node"]["name"].as_str().unwrap_or_default().to_string(),
                        value,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The form, with `problems` at their fields.
async fn render(
    req: &Request,
    admin: &Admin,
    token: &str,
    csrf: &str,
    form: &LicenceForm,
    problems: Vec<Problem>,
) -> Response {
    let (data, _, _) = answer(admin.run(req, Some(token), CHOICES, json!({})).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    if staff.role == "support" {
        return message_page(StatusCode::FORBIDDEN, "Create licence", "Your role may not create licences.");
    }
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    page(
        status,
        CreatePage {
            title: "Create licence",
            csrf,
            products: choices(&data, "products", &form.product),
            generators: choices(&data, "generators", &form.generator),
            staff,
            areas: areas("Licences"),
            back: "/admin/licenses",
            form,
            problems,
        }
        .render(),
    )
}

#[handler]
pub(crate) async fn new_form(req: &Request, Data(admin): Data<&Arc<Admin>>, csrf: &CsrfToken) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let mut blank = LicenceForm { limit: "1".into(), ..LicenceForm::default() };
    blank.flags = "{}".into();
    blank.metadata = "{}".into();
    render(req, admin, &token, &csrf.0, &blank, Vec::new()).await
}

/// The id of the customer with `email` in this environment, or what to say.
pub(crate) async fn find_customer(req: &Request, admin: &Admin, token: &str, email: &str) -> Result<String, String> {
    let (data, _, message) = answer(admin.run(req, Some(token), FIND_CUSTOMER, json!({ "email": email })).await);
    data["customers"]["edges"]
        .as_array()
        .and_then(|edges| {
            edges.iter().find(|e| e["node"]["email"].as_str().is_some_and(|m| m.eq_ignore_ascii_case(email)))
        })
        .and_then(|edge| edge["node"]["id"].as_str().map(str::to_string))
        .ok_or_else(|| message.unwrap_or_else(|| "no customer has this email in this environment".into()))
}

/// The form's fields that map to the API's input fields.
pub(crate) fn field_of(api_field: &str) -> Option<&'static str> {
    match api_field {
        "productId" => Some("product"),
        "generatorId" => Some("generator"),
        "customerId" => Some("customer"),
        "activationLimit" => Some("limit"),
        "expiresAt" => Some("expires"),
        "featureFlags" => Some("flags"),
        "metadata" => Some("metadata"),
        _ => None,
    }
}

pub(crate) fn json_object(text: &str, field: &'static str, problems: &mut Vec<Problem>) -> Option<Value> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value) if value.is_object() => Some(value),
        _ => {
            problems.push(Problem {
                field: Some(field),
                text: "must be a JSON object, such as {\"tier\": \"pro\"}".into(),
            });
            None
        }
    }
}

#[handler]
pub(crate) async fn create(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Form(form): Form<LicenceForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let mut problems = Vec::new();
    let mut input = serde_json::Map::new();
    input.insert("productId".into(), json!(form.product));
    input.insert("generatorId".into(), json!(form.generator));
    let email = form.customer.trim();
    if !email.is_empty() {
        match find_customer(req, admin, &token, email).await {
            Ok(id) => {
                input.insert("customerId".into(), json!(id));
            }
            Err(text) => problems.push(Problem { field: Some("customer"), text }),
        }
    }
    match form.limit.trim() {
        "" => {}
        limit => match limit.parse::<i64>() {
            Ok(limit) => {
                input.insert("activationLimit".into(), json!(limit));
            }
            Err(_) => problems
                .push(Problem { field: Some("limit"), text: "must be a whole number (-1 for unlimited)".into() }),
        },
    }
    if form.lifetime.is_some() {
        input.insert("expiresAt".into(), Value::Null);
    } else if !form.expires.trim().is_empty() {
        match end_of_day(&form.expires) {
            Some(at) => {
                input.insert("expiresAt".into(), json!(at));
            }
            None => problems.push(Problem { field: Some("expires"), text: "must be a date (YYYY-MM-DD)".into() }),
        }
    }
    if let Some(flags) = json_object(&form.flags, "flags", &mut problems) {
        input.insert("featureFlags".into(), flags);
    }
    if let Some(metadata) = json_object(&form.metadata, "metadata", &mut problems) {
        input.insert("metadata".into(), metadata);
    }
    if !problems.is_empty() {
        return render(req, admin, &token, &csrf.0, &form, problems).await;
    }
    let response =
        serde_json::to_value(admin.run(req, Some(&token), CREATE, json!({ "input": input })).await).unwrap_or_default();
    if let Some(id) = response["data"]["createLicense"]["license"]["id"].as_str() {
        flash(req, admin, true, "Licence created");
        return Redirect::see_other(format!("/admin/licenses/{id}")).into_response();
    }
    let errors = match form_errors(req, admin, &response) {
        Ok(errors) => errors,
        Err(ended) => return *ended,
    };
    let problems = problems_of(&errors);
    render(req, admin, &token, &csrf.0, &form, problems).await
}

/// The API's errors, each at the form field it names (the field's name cut
/// from the message there: "expiresAt: must be in the future" reads at its
/// field as "must be in the future").
pub(crate) fn problems_of(errors: &[Value]) -> Vec<Problem> {
    problems_with(errors, field_of)
}

/// The API's errors, each at the form field `field` maps the API's field to
/// (none: the whole form), the field's name cut from the message there.
pub(crate) fn problems_with(errors: &[Value], field: impl Fn(&str) -> Option<&'static str>) -> Vec<Problem> {
    errors
        .iter()
        .map(|e| {
            let field = e["extensions"]["field"].as_str().and_then(&field);
            let text = e["message"].as_str().unwrap_or("That did not work.").to_string();
            let text = match (field, text.split_once(": ")) {
                (Some(_), Some((_, reason))) => reason.to_string(),
                _ => text,
            };
            Problem { field, text }
        })
        .collect()
}

/// A day typed in a date field as the API's time: the end of that day, UTC.
pub(crate) fn end_of_day(day: &str) -> Option<String> {
    chrono::NaiveDate::parse_from_str(day.trim(), "%Y-%m-%d").ok().map(|date| format!("{date}T23:59:59Z"))
}
