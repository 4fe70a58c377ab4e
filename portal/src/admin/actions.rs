//! A licence's lifecycle actions from the licences page: each opens a
//! confirmation page (a dialog's worth of words: what it does, what it ends)
//! whose form POSTs the action, answered by a redirect back to the list with
//! the outcome. The buttons follow the viewer's role; the API refuses
//! regardless, and its refusal is what the page then says.

use super::Admin;
use super::pages::{Area, Staff, answer, areas, ended, forged, inside, outcome, page, session, staff_of, to_login};
use askama::Template;
use poem::http::StatusCode;
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Path, Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// One action: its address, the mutation, the button's words, what the page
/// says after it, and whether support may take it (all the others are
/// licence management: managers and admins).
pub(crate) struct Action {
    pub slug: &'static str,
    mutation: &'static str,
    pub label: &'static str,
    done: &'static str,
    pub support: bool,
    pub danger: bool,
}

pub(crate) const ACTIONS: &[Action] = &[
    Action {
        slug: "inactivate",
        mutation: "inactivateLicense",
        label: "Inactivate",
        done: "Licence inactivated",
        support: true,
        danger: false,
    },
    Action {
        slug: "reactivate",
        mutation: "reactivateLicense",
        label: "Reactivate",
        done: "Licence reactivated",
        support: true,
        danger: false,
    },
    Action {
        slug: "suspend",
        mutation: "suspendLicense",
        label: "Suspend",
        done: "Licence suspended",
        support: false,
        danger: false,
    },
    Action {
        slug: "unsuspend",
        mutation: "unsuspendLicense",
        label: "Unsuspend",
        done: "Licence unsuspended",
        support: false,
        danger: false,
    },
    Action {
        slug: "return",
        mutation: "returnLicenseToPool",
        label: "Return to pool",
        done: "Licence returned to the pool",
        support: false,
        danger: false,
    },
    Action {
        slug: "revoke",
        mutation: "revokeLicense",
        label: "Revoke",
        done: "Licence revoked",
        support: false,
        danger: true,
    },
    Action {
        slug: "delete",
        mutation: "deleteLicense",
        label: "Delete",
        done: "Licence deleted",
        support: false,
        danger: true,
    },
];

/// The actions a licence in `status` offers a viewer of `role` (the
/// lifecycle decides the rest, and the API has the last word).
pub(crate) fn offered(role: &str, status: &str) -> Vec<&'static Action> {
    let manages = role == "admin" || role == "manager";
    ACTIONS
        .iter()
        .filter(|a| manages || (a.support && role == "support"))
        .filter(|a| match a.slug {
            "inactivate" => status == "ACTIVE",
            "reactivate" => status == "INACTIVE",
            "suspend" => matches!(status, "ASSIGNED" | "ACTIVE" | "INACTIVE"),
            "unsuspend" => status == "SUSPENDED",
            "return" => status == "ASSIGNED",
            "revoke" => status != "REVOKED",
            _ => true,
        })
        .collect()
}

fn action(slug: &str) -> Option<&'static Action> {
    ACTIONS.iter().find(|a| a.slug == slug)
}

const LICENCE: &str = "query($id: ID!) { me { role environment user { email } } \
    licenseKey(id: $id) { id key status activationsUsed activatedAt product { name } customer { email } } }";

#[derive(Template)]
#[template(path = "admin/confirm.html")]
struct ConfirmPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    key: String,
    id: String,
    slug: &'a str,
    label: &'a str,
    danger: bool,
    consequence: String,
    force: bool,
}

#[derive(Deserialize)]
pub(crate) struct Back {
    back: Option<String>,
}

/// The confirmation of `action` on licence `id`.
#[handler]
pub(crate) async fn confirm(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path((id, slug)): Path<(String, String)>,
    Query(back): Query<Back>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let Some(action) = action(&slug) else { return StatusCode::NOT_FOUND.into_response() };
    let (data, code, _) = answer(admin.run(req, Some(&token), LICENCE, json!({ "id": id })).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let licence = &data["licenseKey"];
    let Some(key) = licence["key"].as_str() else {
        let status = crate::status_for(code.as_deref());
        let message = super::pages::MessagePage { title: "Not found", message: "There is no such licence here." };
        return page(status, message.render());
    };
    let devices = licence["activationsUsed"].as_i64().unwrap_or_default();
    let ever_activated = !licence["activatedAt"].is_null();
    let consequence = match action.slug {
        "revoke" => format!(
            "Revoking is permanent: the key stops working for good and cannot return to the pool. It ends {devices} {}.",
            if devices == 1 { "device" } else { "devices" }
        ),
        "delete" if ever_activated => {
            "This licence was activated before: deleting it removes the key and its history for good (forced).".into()
        }
        "delete" => "Deleting removes the key for good; the audit trail keeps its first 8 characters.".into(),
        "suspend" => "The key stops validating until it is unsuspended.".into(),
        "inactivate" => "The key stops validating until it is reactivated.".into(),
        "return" => "The key goes back to its pool for another order; the customer loses it.".into(),
        _ => "The licence's status changes.".into(),
    };
    let back = inside(back.back.as_deref(), "/admin/licenses");
    page(
        StatusCode::OK,
        ConfirmPage {
            title: action.label,
            csrf: &csrf.0,
            staff,
            areas: areas("Licences"),
            back: &back,
            key: key.to_string(),
            id,
            slug: action.slug,
            label: action.label,
            danger: action.danger,
            consequence,
            force: action.slug == "delete" && ever_activated,
        }
        .render(),
    )
}

#[derive(Deserialize)]
pub(crate) struct ActForm {
    #[serde(default)]
    csrf: String,
    back: Option<String>,
    force: Option<String>,
}

/// Takes `action` on licence `id` and returns to the list with the outcome.
#[handler]
pub(crate) async fn act(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    verifier: &CsrfVerifier,
    Path((id, slug)): Path<(String, String)>,
    Form(form): Form<ActForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let Some(action) = action(&slug) else { return StatusCode::NOT_FOUND.into_response() };
    let (query, variables) = if action.slug == "delete" {
        (
            "mutation($id: ID!, $force: Boolean!) { deleteLicense(input: {id: $id, force: $force}) { keysChanged } }"
                .to_string(),
            json!({ "id": id, "force": form.force.as_deref() == Some("yes") }),
        )
    } else {
        (
            format!("mutation($id: ID!) {{ {}(input: {{id: $id}}) {{ license {{ id }} }} }}", action.mutation),
            json!({ "id": id }),
        )
    };
    let (_, code, message) = answer(admin.run(req, Some(&token), &query, variables).await);
    if let Some(to) = outcome(req, admin, code.as_deref(), message, action.done) {
        return to;
    }
    Redirect::see_other(inside(form.back.as_deref(), "/admin/licenses")).into_response()
}
