//! Settings (`/admin/settings`, admins): licences, pool notifications, abuse
//! detection, rate limits, the admin idle timeout and the webhook address
//! policy, each with its explanation and the API's validation at its field.

use super::Admin;
use super::create::{Problem, problems_with};
use super::pages::{
    Area, Flash, Staff, answer, areas, ended, flash, forged, form_errors, form_fields, form_value, message_page, page,
    session, staff_of, take_flash, to_login,
};
use askama::Template;
use poem::http::StatusCode;
use poem::web::{CsrfToken, CsrfVerifier, Data, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde_json::{Map, Value, json};
use std::sync::Arc;

// ----- Settings -----

/// A number setting: its field, label, explanation and unit.
pub(crate) struct NumberSetting {
    pub field: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub value: String,
    pub problem: Option<String>,
}

pub(crate) struct Group {
    pub title: &'static str,
    pub numbers: Vec<NumberSetting>,
}

/// A number setting as the page lists it: (field, label, explanation).
type Described = (&'static str, &'static str, &'static str);

/// The settings page's groups of number settings.
const GROUPS: &[(&str, &[Described])] = &[
    (
        "Licences",
        &[
            (
                "gracePeriodMinutes",
                "Grace period (minutes)",
                "How long after its expiry a licence still validates — room for payment processing delays.",
            ),
            (
                "offlineFileValidityHours",
                "Offline file validity (hours)",
                "How long a signed offline licence file stays valid.",
            ),
        ],
    ),
    (
        "Pool notifications",
        &[(
            "exhaustionThreshold",
            "Exhaustion threshold (%)",
            "The used share of a pool at which Keysmith warns (home page, pool.exhausting webhook, email): 1–100.",
        )],
    ),
    (
        "Abuse detection",
        &[
            (
                "abuseMaxFingerprints",
                "Distinct devices",
                "More than this many different devices trying one key within the window suspends it; 0 turns the rule off.",
            ),
            ("abuseWindowMinutes", "Window (minutes)", "The time the distinct devices are counted over."),
        ],
    ),
    (
        "Rate limits",
        &[
            (
                "rateLimitPerKey",
                "Client calls per key per minute",
                "Validate, activate and deactivate calls allowed for one key on each node; 0: no limit.",
            ),
            (
                "rateLimitPerAddress",
                "Client calls per address per minute",
                "Calls allowed from one client address on each node; 0: no limit.",
            ),
        ],
    ),
    (
        "Admin portal",
        &[("adminIdleTimeoutMinutes", "Idle timeout (minutes)", "A staff session left unused this long ends.")],
    ),
];

const SETTINGS: &str = "{ me { role environment user { email } } settings { previewRequiresRecentSignIn exhaustionThreshold \
    gracePeriodMinutes abuseMaxFingerprints abuseWindowMinutes offlineFileValidityHours rateLimitPerKey \
    rateLimitPerAddress notificationEmail webhookAllowPrivateAddresses adminIdleTimeoutMinutes } }";

#[derive(Template)]
#[template(path = "admin/settings.html")]
struct SettingsPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    groups: Vec<Group>,
    preview_recent: bool,
    exhaustion_email: bool,
    notification_email: String,
    allow_private: bool,
    problems: Vec<Problem>,
    flash: Option<Flash>,
}

impl SettingsPage<'_> {
    fn problem(&self, field: &str) -> Option<&str> {
        self.problems.iter().find(|p| p.field == Some(field)).map(|p| p.text.as_str())
    }
    fn general(&self) -> Vec<&str> {
        self.problems.iter().filter(|p| p.field.is_none()).map(|p| p.text.as_str()).collect()
    }
}

const SETTING_FIELDS: [&str; 10] = [
    "exhaustionThreshold",
    "gracePeriodMinutes",
    "abuseMaxFingerprints",
    "abuseWindowMinutes",
    "offlineFileValidityHours",
    "rateLimitPerKey",
    "rateLimitPerAddress",
    "notificationEmail",
    "adminIdleTimeoutMinutes",
    "webhookAllowPrivateAddresses",
];

fn render_settings(
    req: &Request,
    admin: &Admin,
    csrf: &str,
    staff: Staff,
    current: &Value,
    typed: Option<&[(String, String)]>,
    problems: Vec<Problem>,
) -> Response {
    let value = |field: &str| match typed {
        Some(typed) => form_value(typed, field).to_string(),
        None => current[field].as_i64().map(|n| n.to_string()).unwrap_or_default(),
    };
    let groups = GROUPS
        .iter()
        .map(|(title, numbers)| Group {
            title,
            numbers: numbers
                .iter()
                .map(|(field, label, help)| NumberSetting {
                    field,
                    label,
                    help,
                    value: value(field),
                    problem: problems.iter().find(|p| p.field == Some(*field)).map(|p| p.text.clone()),
                })
                .collect(),
        })
        .collect();
    let checked = |field: &str, fallback: bool| match typed {
        Some(typed) => form_value(typed, field) == "yes",
        None => current[field].as_bool().unwrap_or(fallback),
    };
    let email = match typed {
        Some(typed) => form_value(typed, "notificationEmail").to_string(),
        None => current["notificationEmail"].as_str().unwrap_or_default().to_string(),
    };
    let exhaustion_email = match typed {
        Some(typed) => form_value(typed, "exhaustionEmail") == "yes",
        None => !current["notificationEmail"].is_null(),
    };
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    page(
        status,
        SettingsPage {
            title: "Settings",
            csrf,
            staff,
            areas: areas("Settings"),
            back: "/admin/settings",
            groups,
            preview_recent: checked("previewRequiresRecentSignIn", false),
            exhaustion_email,
            notification_email: email,
            allow_private: checked("webhookAllowPrivateAddresses", false),
            problems,
            flash: take_flash(req, admin),
        }
        .render(),
    )
}

#[handler]
pub(crate) async fn settings(req: &Request, Data(admin): Data<&Arc<Admin>>, csrf: &CsrfToken) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let (data, code, _) = answer(admin.run(req, Some(&token), SETTINGS, json!({})).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    if code.as_deref() == Some("FORBIDDEN") || staff.role != "admin" {
        return message_page(StatusCode::FORBIDDEN, "Settings", "Only admins change the settings.");
    }
    render_settings(req, admin, &csrf.0, staff, &data["settings"], None, Vec::new())
}

#[handler]
pub(crate) async fn save_settings(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    body: String,
) -> Response {
    let typed = form_fields(&body);
    if !verifier.is_valid(form_value(&typed, "csrf")) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let mut problems = Vec::new();
    let mut input = Map::new();
    for (_, numbers) in GROUPS {
        for (field, _, _) in *numbers {
            match form_value(&typed, field).trim().parse::<i64>() {
                Ok(n) => {
                    input.insert((*field).into(), json!(n));
                }
                Err(_) => problems.push(Problem { field: Some(field), text: "must be a whole number".into() }),
            }
        }
    }
    input.insert(
        "previewRequiresRecentSignIn".into(),
        json!(form_value(&typed, "previewRequiresRecentSignIn") == "yes"),
    );
    input.insert(
        "webhookAllowPrivateAddresses".into(),
        json!(form_value(&typed, "webhookAllowPrivateAddresses") == "yes"),
    );
    let email = form_value(&typed, "notificationEmail").trim();
    if form_value(&typed, "exhaustionEmail") == "yes" {
        if email.is_empty() {
            problems
                .push(Problem { field: Some("notificationEmail"), text: "enter the address the emails go to".into() });
        }
        input.insert("notificationEmail".into(), json!(email));
    } else {
        input.insert("notificationEmail".into(), Value::Null);
    }
    if problems.is_empty() {
        let mutation = "mutation($input: UpdateSettingsInput!) { updateSettings(input: $input) { settings { exhaustionThreshold } } }";
        let response = serde_json::to_value(admin.run(req, Some(&token), mutation, json!({ "input": input })).await)
            .unwrap_or_default();
        if response["data"]["updateSettings"].is_object() {
            flash(req, admin, true, "Settings saved");
            return Redirect::see_other("/admin/settings").into_response();
        }
        let errors = match form_errors(req, admin, &response) {
            Ok(errors) => errors,
            Err(ended) => return *ended,
        };
        if errors.iter().any(|e| e["extensions"]["code"] == "FORBIDDEN") {
            return message_page(StatusCode::FORBIDDEN, "Settings", "Only admins change the settings.");
        }
        problems = problems_with(&errors, |f| SETTING_FIELDS.iter().copied().find(|k| *k == f));
    }
    let (data, _, _) = answer(admin.run(req, Some(&token), SETTINGS, json!({})).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    render_settings(req, admin, &csrf.0, staff, &data["settings"], Some(&typed), problems)
}
