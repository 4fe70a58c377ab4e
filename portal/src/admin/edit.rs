//! A licence's "Edit" (`/admin/licenses/{id}/edit`: customer, activation
//! limit, expiry, feature flags, metadata; key, product and environment shown
//! read-only; a revoked licence says why it cannot change) and "Assign to a
//! customer" (`/admin/licenses/{id}/assign`, for a key waiting in its pool).
//! Only what was changed is sent to `updateLicense`, so an untouched expiry
//! already past never blocks an edit of the limit.

use super::Admin;
use super::create::{Problem, end_of_day, find_customer, json_object, problems_of};
use super::pages::{
    Area, Staff, answer, areas, ended, flash, forged, form_errors, inside, message_page, page, session, staff_of,
    to_login,
};
use askama::Template;
use poem::http::StatusCode;
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Path, Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

const LICENCE: &str = "query($id: ID!) { me { role environment user { email } } \
    licenseKey(id: $id) { id key status activationLimit expiresAt featureFlags metadata \
      product { name } customer { email } } }";

const UPDATE: &str = "mutation($input: UpdateLicenseInput!) { updateLicense(input: $input) { license { id } } }";
const ASSIGN: &str =
    "mutation($id: ID!, $customer: ID!) { assignLicense(input: {id: $id, customerId: $customer}) { license { id } } }";

/// The form as typed, with the values it started from (to send only changes).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct EditForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    back: Option<String>,
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
    #[serde(default)]
    was_customer: String,
    #[serde(default)]
    was_limit: String,
    #[serde(default)]
    was_expires: String,
    #[serde(default)]
    was_lifetime: Option<String>,
    #[serde(default)]
    was_flags: String,
    #[serde(default)]
    was_metadata: String,
}

/// The licence as the page shows it.
pub(crate) struct Licence {
    pub id: String,
    pub key: String,
    pub product: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "admin/edit.html")]
struct EditPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    licence: Licence,
    /// Why the licence cannot be edited (revoked), when it cannot.
    locked: Option<&'a str>,
    form: &'a EditForm,
    problems: Vec<Problem>,
}

impl EditPage<'_> {
    fn problem(&self, field: &str) -> Option<&str> {
        self.problems.iter().find(|p| p.field == Some(field)).map(|p| p.text.as_str())
    }
    fn general(&self) -> Vec<&str> {
        self.problems.iter().filter(|p| p.field.is_none()).map(|p| p.text.as_str()).collect()
    }
}

#[derive(Template)]
#[template(path = "admin/assign.html")]
struct AssignPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    licence: Licence,
    email: &'a str,
    error: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Back {
    back: Option<String>,
}

/// JSON as a form shows it: pretty, `{}` when empty.
fn shown(value: &Value) -> String {
    match value {
        Value::Object(map) if !map.is_empty() => serde_json::to_string_pretty(value).unwrap_or_default(),
        _ => "{}".to_string(),
    }
}

/// The licence `id` and who is asking, or the page that answers instead.
async fn load(req: &Request, admin: &Admin, token: &str, id: &str) -> Result<(Staff, Value), Response> {
    let (data, code, _) = answer(admin.run(req, Some(token), LICENCE, json!({ "id": id })).await);
    let Some(staff) = staff_of(&data) else { return Err(ended(req, admin)) };
    if staff.role == "support" {
        return Err(message_page(StatusCode::FORBIDDEN, "Edit licence", "Your role may not change licences."));
    }
    if !data["licenseKey"].is_object() {
        let message = super::pages::MessagePage { title: "Not found", message: "There is no such licence here." };
        let status = if code.is_some() { crate::status_for(code.as_deref()) } else { StatusCode::NOT_FOUND };
        return Err(page(status, message.render()));
    }
    Ok((staff, data["licenseKey"].clone()))
}

fn licence(node: &Value) -> Licence {
    Licence {
        id: node["id"].as_str().unwrap_or_default().to_string(),
        key: node["key"].as_str().unwrap_or_default().to_string(),
        product: node["product"]["name"].as_str().unwrap_or("—").to_string(),
        status: node["status"].as_str().unwrap_or_default().to_lowercase(),
    }
}

const LOCKED: &str = "A revoked licence is final: it cannot be edited. Create a new licence instead.";

/// The form filled from the licence as it is.
fn filled(node: &Value, back: Option<String>) -> EditForm {
    let customer = node["customer"]["email"].as_str().unwrap_or_default().to_string();
    let limit = node["activationLimit"].as_i64().unwrap_or(1).to_string();
    let expires = node["expiresAt"].as_str().map(|t| t.get(..10).unwrap_or(t).to_string()).unwrap_or_default();
    let lifetime = node["expiresAt"].is_null().then(|| "yes".to_string());
    let flags = shown(&node["featureFlags"]);
    let metadata = shown(&node["metadata"]);
    EditForm {
        csrf: String::new(),
        back,
        was_customer: customer.clone(),
        was_limit: limit.clone(),
        was_expires: expires.clone(),
        was_lifetime: lifetime.clone(),
        was_flags: flags.clone(),
        was_metadata: metadata.clone(),
        customer,
        limit,
        expires,
        lifetime,
        flags,
        metadata,
    }
}

fn render_edit(
    status: StatusCode,
    csrf: &str,
    staff: Staff,
    node: &Value,
    form: &EditForm,
    problems: Vec<Problem>,
    back: &str,
) -> Response {
    let licence = licence(node);
    let locked = (licence.status == "revoked").then_some(LOCKED);
    page(
        status,
        EditPage {
            title: "Edit licence",
            csrf,
            staff,
            areas: areas("Licences"),
            back,
            licence,
            locked,
            form,
            problems,
        }
        .render(),
    )
}

#[handler]
pub(crate) async fn edit_form(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
    Query(back): Query<Back>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let (staff, node) = match load(req, admin, &token, &id).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let back = inside(back.back.as_deref(), "/admin/licenses");
    let form = filled(&node, Some(back.clone()));
    render_edit(StatusCode::OK, &csrf.0, staff, &node, &form, Vec::new(), &back)
}

/// `text` differs from `was`, ignoring the blanks around it.
fn changed(text: &str, was: &str) -> bool {
    text.trim() != was.trim()
}

#[handler]
pub(crate) async fn edit(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    Form(form): Form<EditForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let back = inside(form.back.as_deref(), "/admin/licenses");
    let mut problems = Vec::new();
    let mut input = serde_json::Map::new();
    input.insert("id".into(), json!(id));
    if changed(&form.customer, &form.was_customer) {
        let email = form.customer.trim();
        if email.is_empty() {
            problems.push(Problem {
                field: Some("customer"),
                text: "a licence keeps a customer once it has one: use Return to pool to take it back".into(),
            });
        } else {
            match find_customer(req, admin, &token, email).await {
                Ok(customer) => {
                    input.insert("customerId".into(), json!(customer));
                }
                Err(text) => problems.push(Problem { field: Some("customer"), text }),
            }
        }
    }
    if changed(&form.limit, &form.was_limit) {
        match form.limit.trim().parse::<i64>() {
            Ok(limit) => {
                input.insert("activationLimit".into(), json!(limit));
            }
            Err(_) => problems
                .push(Problem { field: Some("limit"), text: "must be a whole number (-1 for unlimited)".into() }),
        }
    }
    let lifetime = form.lifetime.is_some();
    if lifetime != form.was_lifetime.is_some() || (!lifetime && changed(&form.expires, &form.was_expires)) {
        if lifetime {
            input.insert("expiresAt".into(), Value::Null);
        } else {
            match end_of_day(&form.expires) {
                Some(at) => {
                    input.insert("expiresAt".into(), json!(at));
                }
                None => problems.push(Problem {
                    field: Some("expires"),
                    text: "must be a date (YYYY-MM-DD), or tick Lifetime".into(),
                }),
            }
        }
    }
    if changed(&form.flags, &form.was_flags) {
        let flags = if form.flags.trim().is_empty() {
            Some(json!({}))
        } else {
            json_object(&form.flags, "flags", &mut problems)
        };
        if let Some(flags) = flags {
            input.insert("featureFlags".into(), flags);
        }
    }
    if changed(&form.metadata, &form.was_metadata) {
        let metadata = if form.metadata.trim().is_empty() {
            Some(json!({}))
        } else {
            json_object(&form.metadata, "metadata", &mut problems)
        };
        if let Some(metadata) = metadata {
            input.insert("metadata".into(), metadata);
        }
    }
    let errors = if problems.is_empty() {
        if input.len() == 1 {
            flash(req, admin, true, "Nothing changed");
            return Redirect::see_other(back).into_response();
        }
        let response = serde_json::to_value(admin.run(req, Some(&token), UPDATE, json!({ "input": input })).await)
            .unwrap_or_default();
        if response["data"]["updateLicense"]["license"]["id"].is_string() {
            flash(req, admin, true, "Licence saved");
            return Redirect::see_other(back).into_response();
        }
        match form_errors(req, admin, &response) {
            Ok(errors) => errors,
            Err(ended) => return *ended,
        }
    } else {
        Vec::new()
    };
    problems.extend(problems_of(&errors));
    let (staff, node) = match load(req, admin, &token, &id).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    render_edit(StatusCode::BAD_REQUEST, &csrf.0, staff, &node, &form, problems, &back)
}

#[handler]
pub(crate) async fn assign_form(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
    Query(back): Query<Back>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let (staff, node) = match load(req, admin, &token, &id).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let back = inside(back.back.as_deref(), "/admin/licenses");
    let licence = licence(&node);
    let error = (licence.status != "available")
        .then(|| "Only a key waiting in its pool (available) can be assigned: this one already went out.".to_string());
    page(
        StatusCode::OK,
        AssignPage {
            title: "Assign to a customer",
            csrf: &csrf.0,
            staff,
            areas: areas("Licences"),
            back: &back,
            licence,
            email: "",
            error,
        }
        .render(),
    )
}

#[derive(Deserialize)]
pub(crate) struct AssignForm {
    #[serde(default)]
    csrf: String,
    back: Option<String>,
    #[serde(default)]
    customer: String,
}

#[handler]
pub(crate) async fn assign(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    Form(form): Form<AssignForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let back = inside(form.back.as_deref(), "/admin/licenses");
    let email = form.customer.trim();
    let error = if email.is_empty() {
        "enter the customer's email".to_string()
    } else {
        match find_customer(req, admin, &token, email).await {
            Err(text) => text,
            Ok(customer) => {
                let (_, code, message) =
                    answer(admin.run(req, Some(&token), ASSIGN, json!({ "id": id, "customer": customer })).await);
                match code.as_deref() {
                    None => {
                        flash(req, admin, true, &format!("Licence assigned to {email}"));
                        return Redirect::see_other(back).into_response();
                    }
                    Some("UNAUTHENTICATED") => return ended(req, admin),
                    Some("FORBIDDEN") => "Your role may not assign licences.".to_string(),
                    Some(_) => message.unwrap_or_else(|| "That did not work.".into()),
                }
            }
        }
    };
    let (staff, node) = match load(req, admin, &token, &id).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    page(
        StatusCode::BAD_REQUEST,
        AssignPage {
            title: "Assign to a customer",
            csrf: &csrf.0,
            staff,
            areas: areas("Licences"),
            back: &back,
            licence: licence(&node),
            email,
            error: Some(error),
        }
        .render(),
    )
}
