//! The keys area (seed 002): the tags overview (`/admin/keys`), every pool with
//! a bar of its used share and its figures, the system tags marked; and a
//! page per tag (`/admin/keys/tags/{id}`, `no-tag` for the keys without any
//! tag) listing its keys. Like the licences page, each view comes from the
//! address alone (search, filter, sort, page) and costs one GraphQL operation.

use super::Admin;
use super::pages::{Area, Flash, Staff, answer, areas, ended, page, session, staff_of, take_flash, to_login};
use crate::status_for;
use askama::Template;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use poem::http::StatusCode;
use poem::web::{CsrfToken, Data, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Tags per page of the overview: pools are few next to keys.
const TAGS_PAGE: i64 = 100;
/// Keys per page of a tag.
const KEYS_PAGE: i64 = 50;
/// Pages remembered for "Previous" (older ones go back to the first page).
const TRAIL: usize = 20;

/// What an address keeps as written (RFC 3986's unreserved characters), so
/// `no-tag` and cursors read as themselves; everything else is encoded.
pub(crate) const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

const OVERVIEW: &str = "query($first: Int!, $after: String, $search: String, $orderBy: TagOrder) { \
    me { role environment user { email } } \
    tags(first: $first, after: $after, search: $search, orderBy: $orderBy) { \
      totalCount pageInfo { hasNextPage endCursor } \
      edges { node { id name system total remaining assigned used usedPercentage } } } }";

const TAG: &str = "query($id: ID!, $first: Int!, $after: String, $filter: PoolKeyFilter, $orderBy: LicenseKeyOrder) { \
    me { role environment user { email } } \
    tag(id: $id) { id name system total remaining assigned used usedPercentage \
      keys(first: $first, after: $after, filter: $filter, orderBy: $orderBy) { \
        totalCount pageInfo { hasNextPage endCursor } \
        edges { node { id key type status createdAt tags { id name } order { externalId } } } } } }";

/// The overview's sorts: (the address's word, the API's field).
const TAG_SORTS: [(&str, &str); 2] = [("name", "NAME"), ("remaining", "REMAINING")];

/// The overview's columns: (the sort's word when sortable, the heading, whether it holds a number).
const TAG_COLUMNS: [(Option<&str>, &str, bool); 7] = [
    (Some("name"), "Tag", false),
    (None, "Used share", false),
    (None, "Total", true),
    (Some("remaining"), "Remaining", true),
    (None, "Assigned", true),
    (None, "Used", true),
    (None, "Used %", true),
];

/// A tag's key columns: (the API's field when sortable, the column's heading).
const KEY_COLUMNS: [(Option<&str>, &str); 6] = [
    (Some("KEY"), "Key"),
    (None, "Type"),
    (Some("STATUS"), "Status"),
    (None, "Tags"),
    (None, "Order"),
    (Some("CREATED_AT"), "Added"),
];

const STATUSES: [&str; 7] = ["AVAILABLE", "ASSIGNED", "ACTIVE", "INACTIVE", "SUSPENDED", "EXPIRED", "REVOKED"];

/// `path` with the parameters of `current` that have a value, `changes`
/// replacing some (`None` drops one), in `current`'s order.
pub(crate) fn address(
    path: &str,
    current: &[(&'static str, Option<&str>)],
    changes: &[(&str, Option<&str>)],
) -> String {
    let pairs: Vec<String> = current
        .iter()
        .filter_map(|(name, value)| {
            let value = changes.iter().find(|(n, _)| n == name).map_or(*value, |(_, v)| *v);
            value.filter(|v| !v.is_empty()).map(|v| format!("{name}={}", utf8_percent_encode(v, COMPONENT)))
        })
        .collect();
    if pairs.is_empty() { path.to_string() } else { format!("{path}?{}", pairs.join("&")) }
}

/// "Previous" and "Next" of a cursor-paged list, kept in the address as the
/// licences page keeps them: `after` starts the page, `trail` holds the
/// cursors of the pages before it. `href(after, trail)` makes an address.
pub(crate) fn pager<'a>(
    after: Option<&'a str>,
    trail: Option<&'a str>,
    info: &Value,
    href: impl Fn(Option<&str>, &str) -> String,
) -> (Option<String>, Option<String>) {
    let trail: Vec<&'a str> = trail.unwrap_or_default().split(',').filter(|c| !c.is_empty()).collect();
    let previous = after.map(|_| match trail.split_last() {
        Some((before, rest)) => href(Some(*before), &rest.join(",")),
        None => href(None, ""),
    });
    let next = match (info["hasNextPage"].as_bool(), info["endCursor"].as_str()) {
        (Some(true), Some(end)) => {
            let mut kept = trail;
            kept.extend(after);
            let skip = kept.len().saturating_sub(TRAIL);
            Some(href(Some(end), &kept[skip..].join(",")))
        }
        _ => None,
    };
    (previous, next)
}

/// A search as the API takes it: trimmed, `None` when empty.
pub(crate) fn search_term(q: Option<&str>) -> Option<&str> {
    q.map(str::trim).filter(|q| !q.is_empty())
}

/// A column's heading: a link that sorts by it, when it sorts.
pub(crate) struct Column {
    pub heading: &'static str,
    pub href: Option<String>,
    /// `ascending`, `descending` or `none`, for `aria-sort`.
    pub sorted: &'static str,
    /// Figures, set to the right.
    pub numeric: bool,
}

fn aria_sort(current: bool, descending: bool) -> &'static str {
    match (current, descending) {
        (false, _) => "none",
        (true, true) => "descending",
        (true, false) => "ascending",
    }
}

/// A pool's figures as both pages show them.
pub(crate) struct Figures {
    pub total: i64,
    pub remaining: i64,
    pub assigned: i64,
    pub used: i64,
    /// The used share as read: `40%`, `37.5%`.
    pub percent: String,
    /// The used share for the bar's `value` (of 100).
    pub share: String,
    /// Keys there were, none remain: a product delivering from here waits.
    pub exhausted: bool,
}

impl Figures {
    pub(crate) fn of(tag: &Value) -> Self {
        let share = tag["usedPercentage"].as_f64().unwrap_or_default().clamp(0.0, 100.0);
        let share = format!("{share:.1}");
        let total = tag["total"].as_i64().unwrap_or_default();
        let remaining = tag["remaining"].as_i64().unwrap_or_default();
        Self {
            total,
            remaining,
            assigned: tag["assigned"].as_i64().unwrap_or_default(),
            used: tag["used"].as_i64().unwrap_or_default(),
            percent: format!("{}%", share.strip_suffix(".0").unwrap_or(&share)),
            share,
            exhausted: total > 0 && remaining == 0,
        }
    }
}

pub(crate) fn tag_href(id: &str) -> String {
    format!("/admin/keys/tags/{}", utf8_percent_encode(id, COMPONENT))
}

// ----- The overview -----

/// The overview the address asks for.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TagsView {
    /// Any part of a tag's name.
    q: Option<String>,
    /// `name` (the default) or `remaining`.
    sort: Option<String>,
    /// `asc` (the default) or `desc`.
    dir: Option<String>,
    after: Option<String>,
    trail: Option<String>,
}

impl TagsView {
    fn sort(&self) -> (&'static str, &'static str) {
        self.sort.as_deref().and_then(|s| TAG_SORTS.into_iter().find(|(word, _)| *word == s)).unwrap_or(TAG_SORTS[0])
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
        address("/admin/keys", &current, changes)
    }
}

pub(crate) struct TagRow {
    pub name: String,
    pub href: String,
    pub system: bool,
    pub figures: Figures,
}

/// A parameter a search form keeps (the sort) as a hidden field.
pub(crate) struct Hidden {
    pub name: &'static str,
    pub value: String,
}

pub(crate) fn hidden(fields: &[(&'static str, Option<&str>)]) -> Vec<Hidden> {
    fields.iter().filter_map(|&(name, value)| value.map(|v| Hidden { name, value: v.to_string() })).collect()
}

#[derive(Template)]
#[template(path = "admin/tags.html")]
struct TagsPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    search: &'a str,
    keep: Vec<Hidden>,
    columns: Vec<Column>,
    rows: Vec<TagRow>,
    total: i64,
    error: Option<String>,
    previous: Option<String>,
    next: Option<String>,
    flash: Option<Flash>,
    /// The viewer manages keys: the "Create tag" form.
    manages: bool,
}

#[handler]
pub(crate) async fn overview(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Query(view): Query<TagsView>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let variables = json!({
        "first": TAGS_PAGE,
        "after": view.after,
        "search": search_term(view.q.as_deref()),
        "orderBy": { "field": view.sort().1, "direction": if view.descending() { "DESC" } else { "ASC" } },
    });
    let (data, code, message) = answer(admin.run(req, Some(&token), OVERVIEW, variables).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let list = &data["tags"];
    let rows = list["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .map(|e| {
                    let node = &e["node"];
                    TagRow {
                        name: node["name"].as_str().unwrap_or_default().to_string(),
                        href: tag_href(node["id"].as_str().unwrap_or_default()),
                        system: node["system"].as_bool().unwrap_or_default(),
                        figures: Figures::of(node),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let columns = TAG_COLUMNS
        .into_iter()
        .map(|(word, heading, numeric)| {
            let Some(word) = word else { return Column { heading, href: None, sorted: "none", numeric } };
            let current = view.sort().0 == word;
            let next_dir = if current && !view.descending() { "desc" } else { "asc" };
            let changes = [("sort", Some(word)), ("dir", Some(next_dir)), ("after", None), ("trail", None)];
            Column { heading, href: Some(view.href(&changes)), sorted: aria_sort(current, view.descending()), numeric }
        })
        .collect();
    let (previous, next) = pager(view.after.as_deref(), view.trail.as_deref(), &list["pageInfo"], |after, trail| {
        view.href(&[("after", after), ("trail", Some(trail))])
    });
    let dir = if view.descending() { "desc" } else { "asc" };
    let keep = hidden(&[("sort", view.sort.as_ref().map(|_| view.sort().0)), ("dir", view.dir.as_ref().map(|_| dir))]);
    let error = code.as_ref().map(|_| message.unwrap_or_else(|| "The tags could not be read.".into()));
    let status = if error.is_some() { status_for(code.as_deref()) } else { StatusCode::OK };
    // Cursors count places in this environment's list: the switch starts over.
    let back = view.href(&[("after", None), ("trail", None)]);
    let manages = staff.role != "support";
    page(
        status,
        TagsPage {
            title: "Keys & tags",
            csrf: &csrf.0,
            staff,
            areas: areas("Keys & tags"),
            back: &back,
            search: search_term(view.q.as_deref()).unwrap_or_default(),
            keep,
            columns,
            rows,
            total: list["totalCount"].as_i64().unwrap_or_default(),
            error,
            previous,
            next,
            flash: take_flash(req, admin),
            manages,
        }
        .render(),
    )
}

// ----- One tag's keys -----

/// A tag's keys as the address asks for them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct KeysView {
    /// Any part of the key.
    q: Option<String>,
    status: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
    after: Option<String>,
    trail: Option<String>,
}

impl KeysView {
    fn status(&self) -> Option<&'static str> {
        self.status.as_deref().and_then(|s| STATUSES.into_iter().find(|k| *k == s))
    }
    fn sort(&self) -> &'static str {
        self.sort
            .as_deref()
            .and_then(|s| KEY_COLUMNS.into_iter().find_map(|c| c.0.filter(|k| *k == s)))
            .unwrap_or("CREATED_AT")
    }
    /// Newest first unless the address names a sort.
    fn descending(&self) -> bool {
        match self.dir.as_deref() {
            Some("asc") => false,
            Some("desc") => true,
            _ => self.sort.is_none(),
        }
    }
    fn href(&self, path: &str, changes: &[(&str, Option<&str>)]) -> String {
        let current = [
            ("q", search_term(self.q.as_deref())),
            ("status", self.status()),
            ("sort", self.sort.as_deref().map(|_| self.sort())),
            ("dir", self.dir.as_deref()),
            ("after", self.after.as_deref()),
            ("trail", self.trail.as_deref()),
        ];
        address(path, &current, changes)
    }
}

pub(crate) struct TagLink {
    pub name: String,
    pub href: String,
}

pub(crate) struct KeyRow {
    pub id: String,
    pub key: String,
    /// The licence's preview.
    pub href: String,
    /// `uploaded`, `generated` or `manual`.
    pub kind: String,
    pub status: String,
    pub status_class: String,
    pub tags: Vec<TagLink>,
    /// The order's own (external) id; no order page to link to yet.
    pub order: Option<String>,
    pub added: String,
}

pub(crate) struct Choice {
    pub value: &'static str,
    pub label: String,
    pub selected: bool,
}

/// The tag the page is about.
pub(crate) struct TagHead {
    pub name: String,
    pub href: String,
    pub system: bool,
    pub figures: Figures,
}

#[derive(Template)]
#[template(path = "admin/tag.html")]
struct TagPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    /// `None` when there is no such tag: then `missing` says why.
    tag: Option<TagHead>,
    missing: String,
    search: &'a str,
    statuses: Vec<Choice>,
    keep: Vec<Hidden>,
    columns: Vec<Column>,
    rows: Vec<KeyRow>,
    total: i64,
    error: Option<String>,
    previous: Option<String>,
    next: Option<String>,
    flash: Option<Flash>,
    /// The viewer manages keys (managers and admins): checkboxes, bulk actions, "More actions".
    manages: bool,
    /// This view's address, to come back to after an action.
    here: String,
    /// The export's query string: this view's search and status.
    export: String,
}

fn key_row(node: &Value) -> KeyRow {
    let status = node["status"].as_str().unwrap_or_default().to_lowercase();
    let tags = node["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .map(|t| TagLink {
                    name: t["name"].as_str().unwrap_or_default().to_string(),
                    href: tag_href(t["id"].as_str().unwrap_or_default()),
                })
                .collect()
        })
        .unwrap_or_default();
    let added = node["createdAt"].as_str().unwrap_or_default();
    KeyRow {
        id: node["id"].as_str().unwrap_or_default().to_string(),
        key: node["key"].as_str().unwrap_or_default().to_string(),
        href: format!("/admin/licenses/{}", utf8_percent_encode(node["id"].as_str().unwrap_or_default(), COMPONENT)),
        kind: node["type"].as_str().unwrap_or_default().to_lowercase(),
        status_class: format!("status status-{status}"),
        status,
        tags,
        order: node["order"]["externalId"].as_str().map(str::to_string),
        added: added.get(..10).unwrap_or(added).to_string(),
    }
}

#[handler]
pub(crate) async fn tag_keys(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
    Query(view): Query<KeysView>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let mut filter = serde_json::Map::new();
    if let Some(q) = search_term(view.q.as_deref()) {
        filter.insert("search".into(), json!(q));
    }
    if let Some(status) = view.status() {
        filter.insert("status".into(), json!(status));
    }
    let variables = json!({
        "id": id,
        "first": KEYS_PAGE,
        "after": view.after,
        "filter": filter,
        "orderBy": { "field": view.sort(), "direction": if view.descending() { "DESC" } else { "ASC" } },
    });
    let (data, code, message) = answer(admin.run(req, Some(&token), TAG, variables).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let path = tag_href(&id);
    let node = &data["tag"];
    let tag = node.is_object().then(|| TagHead {
        name: node["name"].as_str().unwrap_or_default().to_string(),
        href: path.clone(),
        system: node["system"].as_bool().unwrap_or_default(),
        figures: Figures::of(node),
    });
    let missing = match code.as_deref() {
        _ if tag.is_some() => String::new(),
        Some("NOT_FOUND") | None => {
            "There is no such tag in this environment: it was deleted, or it belongs to the other environment.".into()
        }
        Some(_) => message.clone().unwrap_or_else(|| "The tag could not be read.".into()),
    };
    let list = &node["keys"];
    let rows = list["edges"].as_array().map(|e| e.iter().map(|e| key_row(&e["node"])).collect()).unwrap_or_default();
    let statuses = STATUSES
        .into_iter()
        .map(|s| Choice { value: s, label: s.to_lowercase(), selected: view.status() == Some(s) })
        .collect();
    let columns = KEY_COLUMNS
        .into_iter()
        .map(|(field, heading)| {
            let Some(field) = field else { return Column { heading, href: None, sorted: "none", numeric: false } };
            let current = view.sort() == field;
            let next_dir = if current && !view.descending() { "desc" } else { "asc" };
            let changes = [("sort", Some(field)), ("dir", Some(next_dir)), ("after", None), ("trail", None)];
            let sorted = aria_sort(current, view.descending());
            Column { heading, href: Some(view.href(&path, &changes)), sorted, numeric: false }
        })
        .collect();
    let (previous, next) = pager(view.after.as_deref(), view.trail.as_deref(), &list["pageInfo"], |after, trail| {
        view.href(&path, &[("after", after), ("trail", Some(trail))])
    });
    let keep = hidden(&[
        ("sort", view.sort.as_ref().map(|_| view.sort())),
        ("dir", view.dir.as_deref().filter(|d| *d == "asc" || *d == "desc")),
    ]);
    let error = match (&tag, &code) {
        (Some(_), Some(_)) => Some(message.unwrap_or_else(|| "The keys could not be read.".into())),
        _ => None,
    };
    let status = match (&tag, code.as_deref()) {
        (Some(_), None) => StatusCode::OK,
        (None, None) => StatusCode::NOT_FOUND,
        (_, code) => status_for(code),
    };
    // A tag belongs to one environment: switching returns to the overview,
    // except for "no tag", which every environment has.
    let back =
        if id == "no-tag" { view.href(&path, &[("after", None), ("trail", None)]) } else { "/admin/keys".into() };
    let title = match &tag {
        Some(tag) => tag.name.clone(),
        None => "No such tag".to_string(),
    };
    let manages = staff.role != "support";
    let here = view.href(&path, &[]);
    let export = address("", &[("search", search_term(view.q.as_deref())), ("status", view.status())], &[]);
    page(
        status,
        TagPage {
            title: &title,
            csrf: &csrf.0,
            staff,
            areas: areas("Keys & tags"),
            back: &back,
            tag,
            missing,
            search: search_term(view.q.as_deref()).unwrap_or_default(),
            statuses,
            keep,
            columns,
            rows,
            total: list["totalCount"].as_i64().unwrap_or_default(),
            error,
            previous,
            next,
            flash: take_flash(req, admin),
            manages,
            here,
            export,
        }
        .render(),
    )
}
