//! What managers do to pools from the keys area (seed 002): create a tag;
//! on a tag's page, the selected keys' bulk actions (move to a tag, add or
//! remove a tag, delete), each through a confirmation that says how many
//! keys and how many customer orders it touches; and the tag's "More
//! actions": rename, clean up duplicates, delete the tag with its keys, and
//! export. Every action is a form POST answered by a redirect to the page
//! with what happened; the API decides, and its refusal is what is said.

use super::Admin;
use super::pages::{
    Area, Staff, answer, areas, ended, flash, forged, inside, outcome, page, session, staff_of, to_login,
};
use super::tags::tag_href;
use askama::Template;
use poem::http::StatusCode;
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Path, Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Most keys one bulk action takes: a page shows 50.
const MOST_SELECTED: usize = 100;

/// `n` and the noun, singular or plural: "1 key", "3 keys".
fn count(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

// ----- Create a tag -----

#[derive(Deserialize)]
pub(crate) struct NameForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

/// Creates a tag from the overview's form, and opens it.
#[handler]
pub(crate) async fn create_tag(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    verifier: &CsrfVerifier,
    Form(form): Form<NameForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    const CREATE: &str = "mutation($name: String!) { createTag(input: {name: $name}) { tag { id name } } }";
    let (data, code, message) = answer(admin.run(req, Some(&token), CREATE, json!({ "name": form.name })).await);
    let created = &data["createTag"]["tag"];
    let done = format!("Tag {} created", created["name"].as_str().unwrap_or_default());
    if let Some(to) = outcome(req, admin, code.as_deref(), message, &done) {
        return to;
    }
    match created["id"].as_str() {
        Some(id) => Redirect::see_other(tag_href(id)).into_response(),
        None => Redirect::see_other("/admin/keys").into_response(),
    }
}

// ----- Bulk actions on selected keys -----

/// A bulk action: its word in forms, its heading, and its button.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bulk {
    Move,
    Add,
    Remove,
    Delete,
}

impl Bulk {
    fn parse(word: &str) -> Option<Self> {
        match word {
            "move" => Some(Bulk::Move),
            "add" => Some(Bulk::Add),
            "remove" => Some(Bulk::Remove),
            "delete" => Some(Bulk::Delete),
            _ => None,
        }
    }
    fn word(self) -> &'static str {
        match self {
            Bulk::Move => "move",
            Bulk::Add => "add",
            Bulk::Remove => "remove",
            Bulk::Delete => "delete",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Bulk::Move => "Move to tag",
            Bulk::Add => "Add tag",
            Bulk::Remove => "Remove tag",
            Bulk::Delete => "Delete keys",
        }
    }
}

/// A bulk form as posted: repeated `key` fields, so read by hand.
#[derive(Default)]
struct BulkForm {
    csrf: String,
    back: Option<String>,
    action: String,
    keys: Vec<String>,
    target: String,
    force: bool,
}

impl BulkForm {
    fn parse(body: &str) -> Self {
        let mut form = BulkForm::default();
        let mut keys = BTreeSet::new();
        for (name, value) in form_urlencoded::parse(body.as_bytes()) {
            match name.as_ref() {
                "csrf" => form.csrf = value.into_owned(),
                "back" => form.back = Some(value.into_owned()),
                "action" => form.action = value.into_owned(),
                "key" if !value.is_empty() => {
                    keys.insert(value.into_owned());
                }
                "target" => form.target = value.into_owned(),
                "force" => form.force = value == "yes",
                _ => {}
            }
        }
        form.keys = keys.into_iter().collect();
        form
    }
}

const SELECTED: &str = "query($tag: ID!, $ids: [ID!]!, $first: Int!, $tags: Boolean!) { \
    me { role environment user { email } } \
    tag(id: $tag) { id name } \
    licenseKeys(first: $first, filter: {ids: $ids}) { totalCount \
      edges { node { id key orderId activatedAt tags { id name } } } } \
    tags(first: 100, orderBy: {field: NAME, direction: ASC}) @include(if: $tags) { edges { node { id name system } } } }";

pub(crate) struct Target {
    pub id: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "admin/bulk.html")]
struct BulkPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    action: &'a str,
    label: &'a str,
    danger: bool,
    tag_name: String,
    tag_href: String,
    keys: Vec<String>,
    /// The first few keys, to show what was chosen.
    shown: Vec<String>,
    summary: String,
    consequence: String,
    /// The tags to choose from, for moving, adding or removing.
    targets: Vec<Target>,
    force: bool,
}

/// The confirmation of a bulk action on the keys selected on a tag's page.
#[handler]
pub(crate) async fn bulk_confirm(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let form = BulkForm::parse(&body);
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let back = inside(form.back.as_deref(), &tag_href(&id));
    let Some(action) = Bulk::parse(&form.action) else {
        flash(req, admin, false, "Choose what to do with the selected keys.");
        return Redirect::see_other(back).into_response();
    };
    if form.keys.is_empty() {
        flash(req, admin, false, "Select at least one key first.");
        return Redirect::see_other(back).into_response();
    }
    if form.keys.len() > MOST_SELECTED {
        flash(req, admin, false, &format!("Select at most {MOST_SELECTED} keys at a time."));
        return Redirect::see_other(back).into_response();
    }
    let variables = json!({
        "tag": id, "ids": form.keys, "first": MOST_SELECTED,
        "tags": matches!(action, Bulk::Move | Bulk::Add),
    });
    let (data, code, message) = answer(admin.run(req, Some(&token), SELECTED, variables).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    if code.is_some() && data["licenseKeys"].is_null() {
        flash(req, admin, false, &message.unwrap_or_else(|| "The selected keys could not be read.".into()));
        return Redirect::see_other(back).into_response();
    }
    let nodes: Vec<&Value> =
        data["licenseKeys"]["edges"].as_array().map(|e| e.iter().map(|e| &e["node"]).collect()).unwrap_or_default();
    if nodes.is_empty() {
        flash(req, admin, false, "The selected keys are gone: someone deleted them meanwhile.");
        return Redirect::see_other(back).into_response();
    }
    let keys: Vec<String> = nodes.iter().filter_map(|n| n["id"].as_str().map(str::to_string)).collect();
    let orders: BTreeSet<&str> = nodes.iter().filter_map(|n| n["orderId"].as_str()).collect();
    let activated = nodes.iter().filter(|n| !n["activatedAt"].is_null()).count() as i64;
    let tag_name = data["tag"]["name"].as_str().unwrap_or(&id).to_string();
    let n = keys.len() as i64;
    let chosen = count(n, "key", "keys");
    let on_orders = match orders.len() {
        0 => "None of them was delivered to a customer.".to_string(),
        o => format!("They include keys delivered on {}.", count(o as i64, "customer order", "customer orders")),
    };
    let (consequence, targets) = match action {
        Bulk::Move | Bulk::Add => {
            let targets = data["tags"]["edges"]
                .as_array()
                .map(|edges| {
                    edges
                        .iter()
                        .map(|e| &e["node"])
                        .filter(|t| !t["system"].as_bool().unwrap_or_default() && t["id"].as_str() != Some(id.as_str()))
                        .map(|t| Target {
                            id: t["id"].as_str().unwrap_or_default().to_string(),
                            name: t["name"].as_str().unwrap_or_default().to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let what = if action == Bulk::Move {
                format!("The keys leave {tag_name} for the tag you choose. {on_orders} Customers keep their keys.")
            } else {
                format!("The keys keep {tag_name} and gain the tag you choose. {on_orders} Customers keep their keys.")
            };
            (what, targets)
        }
        Bulk::Remove => {
            let mut carried: Vec<Target> = Vec::new();
            for node in &nodes {
                for t in node["tags"].as_array().into_iter().flatten() {
                    let tid = t["id"].as_str().unwrap_or_default();
                    if !carried.iter().any(|c| c.id == tid) {
                        carried
                            .push(Target { id: tid.to_string(), name: t["name"].as_str().unwrap_or_default().into() });
                    }
                }
            }
            carried.sort_by(|a, b| a.name.cmp(&b.name));
            (format!("The keys lose the tag you choose and stay in their other pools. {on_orders}"), carried)
        }
        Bulk::Delete => {
            let lose = match orders.len() {
                0 => "No customer order loses a key.".to_string(),
                1 => "1 customer order loses a key.".to_string(),
                o => format!("{o} customer orders lose keys."),
            };
            let forced = if activated > 0 {
                format!(
                    " {} activated on a device: deleting {} is forced, and its history goes with it.",
                    if activated == 1 { "1 of them was".to_string() } else { format!("{activated} of them were") },
                    if activated == 1 { "it" } else { "them" }
                )
            } else {
                String::new()
            };
            (
                format!("Deleting is permanent. {lose}{forced} The audit trail keeps each key's first 8 characters."),
                Vec::new(),
            )
        }
    };
    let shown = nodes.iter().take(5).filter_map(|n| n["key"].as_str().map(str::to_string)).collect();
    let summary = format!("{} from {tag_name}", chosen);
    page(
        StatusCode::OK,
        BulkPage {
            title: action.label(),
            csrf: &csrf.0,
            staff,
            areas: areas("Keys & tags"),
            back: &back,
            action: action.word(),
            label: action.label(),
            danger: action == Bulk::Delete,
            tag_name,
            tag_href: tag_href(&id),
            keys,
            shown,
            summary,
            consequence,
            targets,
            force: action == Bulk::Delete && activated > 0,
        }
        .render(),
    )
}

const TAG_NAME: &str = "query($id: ID!) { tag(id: $id) { name } }";

/// Takes a confirmed bulk action and returns to the tag's page with the outcome.
#[handler]
pub(crate) async fn bulk_apply(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let form = BulkForm::parse(&body);
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let back = inside(form.back.as_deref(), &tag_href(&id));
    let Some(action) = Bulk::parse(&form.action) else { return StatusCode::BAD_REQUEST.into_response() };
    let target = form.target.trim();
    if action != Bulk::Delete && target.is_empty() {
        flash(req, admin, false, "Choose a tag.");
        return Redirect::see_other(back).into_response();
    }
    let (query, variables) = match action {
        Bulk::Move => (
            "mutation($from: ID!, $to: ID!, $keys: [ID!]!) { \
             moveLicenseKeys(input: {fromTagId: $from, toTagId: $to, keyIds: $keys}) { keysChanged ordersAffected } }",
            json!({ "from": id, "to": target, "keys": form.keys }),
        ),
        Bulk::Add => (
            "mutation($tag: ID!, $keys: [ID!]!) { \
             tagLicenseKeys(input: {tagId: $tag, keyIds: $keys}) { keysChanged ordersAffected } }",
            json!({ "tag": target, "keys": form.keys }),
        ),
        Bulk::Remove => (
            "mutation($tag: ID!, $keys: [ID!]!) { \
             untagLicenseKeys(input: {tagId: $tag, keyIds: $keys}) { keysChanged ordersAffected } }",
            json!({ "tag": target, "keys": form.keys }),
        ),
        Bulk::Delete => (
            "mutation($keys: [ID!]!, $force: Boolean!) { \
             deleteLicenseKeys(input: {keyIds: $keys, force: $force}) { keysChanged ordersAffected } }",
            json!({ "keys": form.keys, "force": form.force }),
        ),
    };
    let (data, code, message) = answer(admin.run(req, Some(&token), query, variables).await);
    let payload = data.as_object().and_then(|o| o.values().next()).cloned().unwrap_or_default();
    let changed = payload["keysChanged"].as_i64().unwrap_or_default();
    let affected = payload["ordersAffected"].as_i64().unwrap_or_default();
    let target_name = if code.is_none() && action != Bulk::Delete {
        let (named, _, _) = answer(admin.run(req, Some(&token), TAG_NAME, json!({ "id": target })).await);
        named["tag"]["name"].as_str().unwrap_or(target).to_string()
    } else {
        String::new()
    };
    let keys = count(changed, "key", "keys");
    let done = match action {
        Bulk::Move => format!("{keys} moved to {target_name}"),
        Bulk::Add => format!("Tag {target_name} added to {keys}"),
        Bulk::Remove => format!("Tag {target_name} removed from {keys}"),
        Bulk::Delete if affected > 0 => {
            format!("{keys} deleted; {} lost a key", count(affected, "customer order", "customer orders"))
        }
        Bulk::Delete => format!("{keys} deleted"),
    };
    if let Some(to) = outcome(req, admin, code.as_deref(), message, &done) {
        return to;
    }
    Redirect::see_other(back).into_response()
}

// ----- More actions: rename, clean up, delete, export -----

const TAG: &str = "query($id: ID!) { me { role environment user { email } } \
    tag(id: $id) { id name system total remaining assigned used } }";

#[derive(Template)]
#[template(path = "admin/rename.html")]
struct RenamePage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    current: String,
    name: &'a str,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/tag_action.html")]
struct TagActionPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    action: &'a str,
    label: &'a str,
    name: String,
    explanation: Vec<String>,
    danger: bool,
    /// Offer "force" (delete keys that were activated).
    force: bool,
}

/// Reads the tag for one of its "More actions", or answers for it.
async fn the_tag(req: &Request, admin: &Admin, token: &str, id: &str) -> Result<(Staff, Value), Response> {
    let (data, code, _) = answer(admin.run(req, Some(token), TAG, json!({ "id": id })).await);
    let Some(staff) = staff_of(&data) else { return Err(ended(req, admin)) };
    if !data["tag"].is_object() {
        let message = super::pages::MessagePage {
            title: "No such tag",
            message: "There is no such tag in this environment: it was deleted, or it belongs to the other environment.",
        };
        let status = if code.is_some() { crate::status_for(code.as_deref()) } else { StatusCode::NOT_FOUND };
        return Err(page(status, message.render()));
    }
    Ok((staff, data["tag"].clone()))
}

#[handler]
pub(crate) async fn rename_form(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let (staff, tag) = match the_tag(req, admin, &token, &id).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let current = tag["name"].as_str().unwrap_or_default().to_string();
    let back = tag_href(&id);
    page(
        StatusCode::OK,
        RenamePage {
            title: "Rename tag",
            csrf: &csrf.0,
            staff,
            areas: areas("Keys & tags"),
            back: &back,
            name: &current.clone(),
            current,
            error: None,
        }
        .render(),
    )
}

#[handler]
pub(crate) async fn rename(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    Form(form): Form<NameForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    const RENAME: &str =
        "mutation($id: ID!, $name: String!) { renameTag(input: {id: $id, name: $name}) { tag { name } } }";
    let (data, code, message) =
        answer(admin.run(req, Some(&token), RENAME, json!({ "id": id, "name": form.name })).await);
    let back = tag_href(&id);
    match code.as_deref() {
        None => {
            let name = data["renameTag"]["tag"]["name"].as_str().unwrap_or_default();
            flash(req, admin, true, &format!("Tag renamed to {name}"));
            Redirect::see_other(back).into_response()
        }
        Some("UNAUTHENTICATED") => ended(req, admin),
        Some(code) => {
            let (staff, tag) = match the_tag(req, admin, &token, &id).await {
                Ok(found) => found,
                Err(answer) => return answer,
            };
            let error = match code {
                "FORBIDDEN" => "Your role may not rename tags.".to_string(),
                _ => {
                    let text = message.unwrap_or_else(|| "That name cannot be used.".into());
                    text.split_once(": ").map_or(text.clone(), |(_, reason)| reason.to_string())
                }
            };
            page(
                crate::status_for(Some(code)),
                RenamePage {
                    title: "Rename tag",
                    csrf: &csrf.0,
                    staff,
                    areas: areas("Keys & tags"),
                    back: &back,
                    current: tag["name"].as_str().unwrap_or_default().to_string(),
                    name: &form.name,
                    error: Some(error),
                }
                .render(),
            )
        }
    }
}

/// A tag's "More actions" that open a page: the confirmations of
/// `clean-up` and `delete`, and the exports `export.csv` and `export.json`.
#[handler]
pub(crate) async fn more(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path((id, what)): Path<(String, String)>,
    Query(view): Query<ExportView>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    match what.as_str() {
        "export.csv" => export_tag(req, admin, &token, id, view, false).await,
        "export.json" => export_tag(req, admin, &token, id, view, true).await,
        _ => tag_action_confirm(req, admin, &csrf.0, &token, id, what).await,
    }
}

/// The confirmation of "clean-up" (duplicates) or "delete" (the tag with its keys).
async fn tag_action_confirm(
    req: &Request,
    admin: &Admin,
    csrf: &str,
    token: &str,
    id: String,
    action: String,
) -> Response {
    let (staff, tag) = match the_tag(req, admin, token, &id).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let name = tag["name"].as_str().unwrap_or_default().to_string();
    let figure = |field: &str| tag[field].as_i64().unwrap_or_default();
    let (label, explanation, danger, force) = match action.as_str() {
        "clean-up" => (
            "Clean up duplicates",
            vec![
                format!(
                    "Removes the waiting (available) copies of keys that appear more than once in {name}, \
                     keeping the oldest copy, and waiting keys already delivered elsewhere in this environment \
                     (they could never be delivered again)."
                ),
                "Delivered keys are never touched. The page then says how many keys were removed.".to_string(),
            ],
            false,
            false,
        ),
        "delete" => {
            let delivered = figure("assigned") + figure("used");
            (
                "Delete tag with its keys",
                vec![
                    format!("Deletes the tag {name} and its {} for good.", count(figure("total"), "key", "keys")),
                    match delivered {
                        0 => "None of them was delivered to a customer.".to_string(),
                        d => format!(
                            "{} delivered to customers: their orders lose them.",
                            if d == 1 { "1 of them was".to_string() } else { format!("{d} of them were") }
                        ),
                    },
                ],
                true,
                figure("used") > 0,
            )
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let back = tag_href(&id);
    page(
        StatusCode::OK,
        TagActionPage {
            title: label,
            csrf,
            staff,
            areas: areas("Keys & tags"),
            back: &back,
            action: &action,
            label,
            name,
            explanation,
            danger,
            force,
        }
        .render(),
    )
}

#[derive(Deserialize)]
pub(crate) struct TagActionForm {
    #[serde(default)]
    csrf: String,
    force: Option<String>,
}

/// Cleans up duplicates, or deletes the tag with its keys.
#[handler]
pub(crate) async fn tag_action(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    verifier: &CsrfVerifier,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<TagActionForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let force = form.force.as_deref() == Some("yes");
    let (query, back) = match action.as_str() {
        "clean-up" => (
            "mutation($id: ID!) { cleanUpDuplicates(input: {tagId: $id}) { keysChanged ordersAffected } }",
            tag_href(&id),
        ),
        "delete" => (
            "mutation($id: ID!, $force: Boolean!) { deleteTag(input: {id: $id, force: $force}) { keysChanged ordersAffected } }",
            "/admin/keys".to_string(),
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let (data, code, message) = answer(admin.run(req, Some(&token), query, json!({ "id": id, "force": force })).await);
    let payload = data.as_object().and_then(|o| o.values().next()).cloned().unwrap_or_default();
    let changed = payload["keysChanged"].as_i64().unwrap_or_default();
    let affected = payload["ordersAffected"].as_i64().unwrap_or_default();
    let done = match action.as_str() {
        "clean-up" if changed == 0 => "No duplicates found: nothing was removed".to_string(),
        "clean-up" => format!("{} removed", count(changed, "duplicate key", "duplicate keys")),
        _ if affected > 0 => format!(
            "Tag deleted with its {}; {} lost a key",
            count(changed, "key", "keys"),
            count(affected, "customer order", "customer orders")
        ),
        _ => format!("Tag deleted with its {}", count(changed, "key", "keys")),
    };
    if let Some(to) = outcome(req, admin, code.as_deref(), message, &done) {
        return to;
    }
    // A refused deletion stays on the tag's page, where its keys still are.
    let back = if code.is_some() { tag_href(&id) } else { back };
    Redirect::see_other(back).into_response()
}

#[derive(Default, Deserialize)]
pub(crate) struct ExportView {
    search: Option<String>,
    status: Option<String>,
}

/// A tag's keys (this view's search and status) as a CSV or JSON download.
async fn export_tag(req: &Request, admin: &Admin, token: &str, id: String, view: ExportView, json: bool) -> Response {
    let export = crate::Export {
        tag_id: Some(id),
        status: view.status.filter(|s| !s.is_empty()),
        search: view.search.filter(|s| !s.trim().is_empty()),
        json,
        ..crate::Export::default()
    };
    admin.export(req, token, export).await
}
