//! A licence's preview (`/admin/licenses/{id}`): its details, every device
//! that used it (a Deactivate button on the live ones), `validateLicense` in
//! four languages with Copy buttons, its offline file, and its audit trail.
//! One GraphQL operation; the audit trail shows for the roles that read it.

use super::Admin;
use super::pages::{
    Area, Flash, Staff, answer, areas, ended, forged, outcome, page, session, staff_of, take_flash, to_login,
};
use askama::Template;
use poem::http::{StatusCode, header};
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Path, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

const QUERY: &str = "query($id: ID!) { me { role environment user { email } } \
    licensePreview(id: $id) { \
      license { id key status type activationLimit activationsUsed expiresAt createdAt \
        product { name } customer { name email } } \
      activationHistory { id name platform fingerprint createdAt lastSeenAt deactivatedAt } \
      samples { language code } } \
    auditEvents(first: 50, filter: {targetId: $id}) { edges { node { action actorKind keyPrefix createdAt } } } }";

pub(crate) struct Device {
    pub id: String,
    pub name: String,
    pub platform: String,
    pub fingerprint: String,
    pub first_seen: String,
    pub last_seen: String,
    pub ended: Option<String>,
}

pub(crate) struct Sample {
    pub id: String,
    pub language: &'static str,
    pub code: String,
}

pub(crate) struct Event {
    pub when: String,
    pub action: String,
    pub actor: String,
}

#[derive(Template)]
#[template(path = "admin/preview.html")]
struct PreviewPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    flash: Option<Flash>,
    id: String,
    key: String,
    facts: Vec<(&'static str, String)>,
    devices: Vec<Device>,
    samples: Vec<Sample>,
    events: Option<Vec<Event>>,
}

fn time(value: &Value) -> String {
    value.as_str().map(|t| t.get(..16).unwrap_or(t).replace('T', " ")).unwrap_or_default()
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

#[handler]
pub(crate) async fn preview(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let response =
        serde_json::to_value(admin.run(req, Some(&token), QUERY, json!({ "id": id })).await).unwrap_or_default();
    let data = &response["data"];
    let Some(staff) = staff_of(data) else { return ended(req, admin) };
    // The preview's own refusal, not the audit trail's (which some roles may not read).
    let refusal = response["errors"]
        .as_array()
        .and_then(|errors| errors.iter().find(|e| e["path"][0] == "licensePreview"))
        .cloned()
        .unwrap_or_default();
    let code = refusal["extensions"]["code"].as_str().map(str::to_string);
    let message = refusal["message"].as_str().map(str::to_string);
    let preview = &data["licensePreview"];
    if preview.is_null() {
        if code.as_deref() == Some("UNAUTHENTICATED") {
            // The preview wants a recent sign-in: ask for the password again.
            let back = format!("/admin/licenses/{id}");
            return page(
                StatusCode::UNAUTHORIZED,
                ReauthPage {
                    title: "Confirm it is you",
                    csrf: &csrf.0,
                    staff,
                    areas: areas("Licences"),
                    back: &back,
                    error: None,
                }
                .render(),
            );
        }
        let status = crate::status_for(code.as_deref());
        let text = match code.as_deref() {
            Some("NOT_FOUND") => "There is no such licence here.".to_string(),
            _ => message.unwrap_or_else(|| "The preview could not be shown.".into()),
        };
        return page(status, super::pages::MessagePage { title: "Licence preview", message: &text }.render());
    }
    let licence = &preview["license"];
    let limit = licence["activationLimit"].as_i64().unwrap_or_default();
    let used = licence["activationsUsed"].as_i64().unwrap_or_default();
    let customer = match licence["customer"]["email"].as_str() {
        Some(email) => format!("{} <{email}>", text(&licence["customer"]["name"])),
        None => "—".into(),
    };
    let facts = vec![
        ("Status", text(&licence["status"]).to_lowercase()),
        ("Type", text(&licence["type"]).to_lowercase()),
        ("Product", licence["product"]["name"].as_str().unwrap_or("—").to_string()),
        ("Customer", customer),
        ("Activations", if limit < 0 { format!("{used} / Unlimited") } else { format!("{used} / {limit}") }),
        (
            "Expires",
            licence["expiresAt"].as_str().map_or_else(|| "Lifetime".to_string(), |_| time(&licence["expiresAt"])),
        ),
        ("Created", time(&licence["createdAt"])),
    ];
    let devices = preview["activationHistory"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|d| Device {
                    id: text(&d["id"]),
                    name: d["name"].as_str().unwrap_or("Unnamed device").to_string(),
                    platform: text(&d["platform"]),
                    fingerprint: text(&d["fingerprint"]).chars().take(12).collect(),
                    first_seen: time(&d["createdAt"]),
                    last_seen: time(&d["lastSeenAt"]),
                    ended: d["deactivatedAt"].as_str().map(|_| time(&d["deactivatedAt"])),
                })
                .collect()
        })
        .unwrap_or_default();
    let samples = preview["samples"]
        .as_array()
        .map(|all| {
            all.iter()
                .enumerate()
                .map(|(i, s)| Sample {
                    id: format!("sample-{i}"),
                    language: match s["language"].as_str() {
                        Some("CURL") => "cURL",
                        Some("PHP") => "PHP",
                        Some("JAVA_SCRIPT") => "JavaScript",
                        Some("PYTHON") => "Python",
                        _ => "Code",
                    },
                    code: text(&s["code"]),
                })
                .collect()
        })
        .unwrap_or_default();
    let events = data["auditEvents"]["edges"].as_array().map(|all| {
        all.iter()
            .map(|e| Event {
                when: time(&e["node"]["createdAt"]),
                action: text(&e["node"]["action"]),
                actor: text(&e["node"]["actorKind"]),
            })
            .collect()
    });
    let back = format!("/admin/licenses/{id}");
    page(
        StatusCode::OK,
        PreviewPage {
            title: "Licence preview",
            csrf: &csrf.0,
            staff,
            areas: areas("Licences"),
            back: &back,
            flash: take_flash(req, admin),
            key: text(&licence["key"]),
            id,
            facts,
            devices,
            samples,
            events,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "admin/reauth.html")]
struct ReauthPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub(crate) struct ReauthForm {
    #[serde(default)]
    csrf: String,
    password: String,
    back: Option<String>,
}

/// Signs the staff member in again with their password (a new session in
/// place of the old, which ends), then returns to the page that asked.
#[handler]
pub(crate) async fn reauth(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Form(form): Form<ReauthForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let (data, _, _) =
        answer(admin.run(req, Some(&token), "{ me { role environment user { email } } }", json!({})).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let login = "mutation($email: String!, $password: String!) { \
                 login(input: {email: $email, password: $password, session: true}) { token } }";
    let variables = json!({ "email": staff.email, "password": form.password });
    let (data, code, _) = answer(admin.run(req, None, login, variables).await);
    let back = super::pages::inside(form.back.as_deref(), "/admin/");
    let Some(fresh) = data["login"]["token"].as_str() else {
        let error = if code.as_deref() == Some("RATE_LIMITED") {
            "Too many attempts. Wait a minute and try again."
        } else {
            "That is not your password."
        };
        return page(
            StatusCode::UNAUTHORIZED,
            ReauthPage {
                title: "Confirm it is you",
                csrf: &csrf.0,
                staff,
                areas: areas("Licences"),
                back: &back,
                error: Some(error),
            }
            .render(),
        );
    };
    let _ = admin.run(req, Some(&token), "mutation { signOut { signedOut } }", json!({})).await;
    super::pages::set_session(req, admin, fresh);
    Redirect::see_other(back).into_response()
}

#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
    /// Where to return (an admin page); the licence's preview by default.
    back: Option<String>,
}

/// Ends one device's activation of the licence, back to its preview (or `back`).
#[handler]
pub(crate) async fn deactivate(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    verifier: &CsrfVerifier,
    Path((id, device)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let mutation = "mutation($id: ID!) { deactivateActivation(input: {id: $id}) { activation { id } } }";
    let (_, code, message) = answer(admin.run(req, Some(&token), mutation, json!({ "id": device })).await);
    if let Some(to) = outcome(req, admin, code.as_deref(), message, "Device deactivated; its slot is free again") {
        return to;
    }
    let licence =
        format!("/admin/licenses/{}", percent_encoding::utf8_percent_encode(&id, percent_encoding::NON_ALPHANUMERIC));
    Redirect::see_other(super::pages::inside(form.back.as_deref(), &licence)).into_response()
}

/// The licence's offline file, signed now, as a download.
#[handler]
pub(crate) async fn offline_file(req: &Request, Data(admin): Data<&Arc<Admin>>, Path(id): Path<String>) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let query = "query($id: ID!) { offlineLicenseFile(licenseId: $id) { fileName content } }";
    let (data, code, _) = answer(admin.run(req, Some(&token), query, json!({ "id": id })).await);
    let file = &data["offlineLicenseFile"];
    match (file["fileName"].as_str(), file["content"].as_str()) {
        (Some(name), Some(content)) => {
            let name: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).collect();
            Response::builder()
                .content_type("application/json")
                .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))
                .body(content.to_string())
        }
        _ if code.as_deref() == Some("UNAUTHENTICATED") => ended(req, admin),
        _ => crate::status_for(code.as_deref()).into_response(),
    }
}
