//! Generators (`/admin/generators`): every key format with its bits and an
//! example; create and edit with a preview of the keys it makes and its bits
//! count (`keyFormatPreview`, the 80-bit rule explained before any error);
//! delete, refused while a product uses it (saying which); and "Generate
//! licences" for a product, answered by the job's page.

use super::Admin;
use super::create::{Problem, problems_with};
use super::pages::{
    Area, Flash, Staff, answer, areas, ended, flash, forged, form_errors, message_page, outcome, page, session,
    staff_of, take_flash, to_login,
};
use super::tags::COMPONENT;
use askama::Template;
use percent_encoding::utf8_percent_encode;
use poem::http::StatusCode;
use poem::web::{CsrfToken, CsrfVerifier, Data, Form, Path, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

const FIELDS: &str = "id name format prefix chunkCount chunkLength alphabet separator pattern bits example \
    defaultActivationLimit validityDays defaultFeatureFlags";

const FORMATS: [(&str, &str); 4] = [
    ("ULID", "ULID — 26 characters, sortable by creation time (80 bits)"),
    ("UUID", "UUID — a random UUID (122 bits)"),
    ("CHUNKED", "Chunked — a prefix and groups from an alphabet without look-alikes"),
    ("PATTERN", "Pattern — fixed text and random groups, e.g. PRO-{X:5}-{X:5}-{X:5}-{X:5}"),
];

fn generator_href(id: &str) -> String {
    format!("/admin/generators/{}", utf8_percent_encode(id, COMPONENT))
}

// ----- The list -----

pub(crate) struct GeneratorRow {
    pub href: String,
    pub name: String,
    pub format: String,
    pub bits: String,
    pub example: String,
    pub limit: String,
    pub validity: String,
}

fn generator_row(node: &Value) -> GeneratorRow {
    let limit = node["defaultActivationLimit"].as_i64().unwrap_or(1);
    GeneratorRow {
        href: generator_href(node["id"].as_str().unwrap_or_default()),
        name: node["name"].as_str().unwrap_or_default().to_string(),
        format: node["format"].as_str().unwrap_or_default().to_lowercase(),
        bits: format!("{}", node["bits"].as_f64().unwrap_or_default()),
        example: node["example"].as_str().unwrap_or_default().to_string(),
        limit: if limit < 0 { "Unlimited".into() } else { limit.to_string() },
        validity: node["validityDays"].as_i64().map_or_else(|| "Lifetime".into(), |d| format!("{d} days")),
    }
}

#[derive(Template)]
#[template(path = "admin/generators.html")]
struct GeneratorsPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    rows: Vec<GeneratorRow>,
    total: i64,
    flash: Option<Flash>,
    error: Option<String>,
}

#[handler]
pub(crate) async fn generators(req: &Request, Data(admin): Data<&Arc<Admin>>, csrf: &CsrfToken) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let query = format!(
        "{{ me {{ role environment user {{ email }} }} generators(first: 100) {{ totalCount edges {{ node {{ {FIELDS} }} }} }} }}"
    );
    let (data, code, message) = answer(admin.run(req, Some(&token), &query, json!({})).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let rows = data["generators"]["edges"]
        .as_array()
        .map(|e| e.iter().map(|e| generator_row(&e["node"])).collect())
        .unwrap_or_default();
    let error = code.as_ref().map(|_| message.unwrap_or_else(|| "The generators could not be read.".into()));
    page(
        if error.is_some() { crate::status_for(code.as_deref()) } else { StatusCode::OK },
        GeneratorsPage {
            title: "Generators",
            csrf: &csrf.0,
            staff,
            areas: areas("Generators"),
            back: "/admin/generators",
            rows,
            total: data["generators"]["totalCount"].as_i64().unwrap_or_default(),
            flash: take_flash(req, admin),
            error,
        }
        .render(),
    )
}

// ----- Create and edit -----

/// The form as typed; its names are the API's input fields.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GeneratorForm {
    #[serde(default)]
    csrf: String,
    /// `preview` shows the keys without saving.
    #[serde(default)]
    intent: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub chunk_count: String,
    #[serde(default)]
    pub chunk_length: String,
    #[serde(default)]
    pub alphabet: String,
    #[serde(default)]
    pub separator: String,
    #[serde(default)]
    pub pattern: String,
    #[serde(default)]
    pub default_activation_limit: String,
    #[serde(default)]
    pub validity_days: String,
    #[serde(default)]
    pub default_feature_flags: String,
}

impl GeneratorForm {
    fn of(node: &Value) -> Self {
        let text = |field: &str| match &node[field] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        GeneratorForm {
            name: text("name"),
            format: text("format"),
            prefix: text("prefix"),
            chunk_count: text("chunkCount"),
            chunk_length: text("chunkLength"),
            alphabet: text("alphabet"),
            separator: text("separator"),
            pattern: text("pattern"),
            default_activation_limit: text("defaultActivationLimit"),
            validity_days: text("validityDays"),
            default_feature_flags: serde_json::to_string(&node["defaultFeatureFlags"]).unwrap_or_else(|_| "{}".into()),
            ..GeneratorForm::default()
        }
    }

    /// The API's input, or the problems found before asking it.
    fn input(&self, problems: &mut Vec<Problem>) -> Map<String, Value> {
        let mut input = Map::new();
        input.insert("name".into(), json!(self.name.trim()));
        if !self.format.is_empty() {
            input.insert("format".into(), json!(self.format));
        }
        for (field, value) in [
            ("prefix", &self.prefix),
            ("alphabet", &self.alphabet),
            ("separator", &self.separator),
            ("pattern", &self.pattern),
        ] {
            if !value.is_empty() || field == "prefix" {
                input.insert(field.into(), json!(value));
            }
        }
        for (field, value) in [
            ("chunkCount", &self.chunk_count),
            ("chunkLength", &self.chunk_length),
            ("defaultActivationLimit", &self.default_activation_limit),
            ("validityDays", &self.validity_days),
        ] {
            match value.trim() {
                "" if field == "validityDays" => {
                    input.insert(field.into(), Value::Null);
                }
                "" => {}
                number => match number.parse::<i64>() {
                    Ok(n) => {
                        input.insert(field.into(), json!(n));
                    }
                    Err(_) => problems.push(Problem { field: Some(field), text: "must be a whole number".into() }),
                },
            }
        }
        match self.default_feature_flags.trim() {
            "" => {}
            text => match serde_json::from_str::<Value>(text) {
                Ok(flags) if flags.is_object() => {
                    input.insert("defaultFeatureFlags".into(), flags);
                }
                _ => problems.push(Problem {
                    field: Some("defaultFeatureFlags"),
                    text: "must be a JSON object, such as {\"tier\": \"pro\"}".into(),
                }),
            },
        }
        input
    }
}

pub(crate) struct FormatChoice {
    pub value: &'static str,
    pub label: &'static str,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "admin/generator.html")]
struct GeneratorPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    /// The form's address: new, or this generator's edit.
    action: String,
    form: &'a GeneratorForm,
    formats: Vec<FormatChoice>,
    problems: Vec<Problem>,
    bits: Option<String>,
    examples: Vec<String>,
}

impl GeneratorPage<'_> {
    fn problem(&self, field: &str) -> Option<&str> {
        self.problems.iter().find(|p| p.field == Some(field)).map(|p| p.text.as_str())
    }
    fn general(&self) -> Vec<&str> {
        self.problems.iter().filter(|p| p.field.is_none()).map(|p| p.text.as_str()).collect()
    }
}

/// The form page, with the preview or the problems.
#[allow(clippy::too_many_arguments)]
fn render(
    status: StatusCode,
    csrf: &str,
    staff: Staff,
    action: String,
    form: &GeneratorForm,
    problems: Vec<Problem>,
    bits: Option<String>,
    examples: Vec<String>,
) -> Response {
    if staff.role == "support" {
        return message_page(StatusCode::FORBIDDEN, "Generators", "Your role may not change generators.");
    }
    let format = if form.format.is_empty() { "ULID" } else { form.format.as_str() };
    let formats =
        FORMATS.into_iter().map(|(value, label)| FormatChoice { value, label, checked: value == format }).collect();
    let title = if action.ends_with("/new") { "New generator" } else { "Edit generator" };
    page(
        status,
        GeneratorPage {
            title,
            csrf,
            staff,
            areas: areas("Generators"),
            back: "/admin/generators",
            action,
            form,
            formats,
            problems,
            bits,
            examples,
        }
        .render(),
    )
}

const ME: &str = "{ me { role environment user { email } } }";

#[handler]
pub(crate) async fn new_form(req: &Request, Data(admin): Data<&Arc<Admin>>, csrf: &CsrfToken) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let (data, _, _) = answer(admin.run(req, Some(&token), ME, json!({})).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let form = GeneratorForm {
        format: "CHUNKED".into(),
        chunk_count: "4".into(),
        chunk_length: "5".into(),
        separator: "-".into(),
        default_activation_limit: "1".into(),
        default_feature_flags: "{}".into(),
        ..GeneratorForm::default()
    };
    render(StatusCode::OK, &csrf.0, staff, "/admin/generators/new".into(), &form, Vec::new(), None, Vec::new())
}

#[handler]
pub(crate) async fn edit_form(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let query =
        format!("query($id: ID!) {{ me {{ role environment user {{ email }} }} generator(id: $id) {{ {FIELDS} }} }}");
    let (data, _, _) = answer(admin.run(req, Some(&token), &query, json!({ "id": id })).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let node = &data["generator"];
    if !node.is_object() {
        return message_page(StatusCode::NOT_FOUND, "No such generator", "There is no such generator here.");
    }
    let form = GeneratorForm::of(node);
    let bits = node["bits"].as_f64().map(|b| b.to_string());
    let examples = node["example"].as_str().map(|e| vec![e.to_string()]).unwrap_or_default();
    render(StatusCode::OK, &csrf.0, staff, format!("{}/edit", generator_href(&id)), &form, Vec::new(), bits, examples)
}

/// Previews or saves the form: `id` is `None` for a new generator.
async fn submit(req: &Request, admin: &Admin, csrf: &str, id: Option<String>, form: GeneratorForm) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let action = match &id {
        Some(id) => format!("{}/edit", generator_href(id)),
        None => "/admin/generators/new".to_string(),
    };
    let mut problems = Vec::new();
    let mut input = form.input(&mut problems);
    let preview = form.intent == "preview";
    let (query, variables) = match (&id, preview) {
        (_, true) => (
            "query($input: CreateGeneratorInput!) { me { role environment user { email } } \
             keyFormatPreview(input: $input) { bits examples } }",
            json!({ "input": input }),
        ),
        (None, false) => (
            "mutation($input: CreateGeneratorInput!) { createGenerator(input: $input) { generator { id name example bits } } }",
            json!({ "input": input }),
        ),
        (Some(id), false) => {
            input.insert("id".into(), json!(id));
            (
                "mutation($input: UpdateGeneratorInput!) { updateGenerator(input: $input) { generator { id name example bits } } }",
                json!({ "input": input }),
            )
        }
    };
    let mut bits = None;
    let mut examples = Vec::new();
    if problems.is_empty() {
        let response = serde_json::to_value(admin.run(req, Some(&token), query, variables).await).unwrap_or_default();
        let errors = match form_errors(req, admin, &response) {
            Ok(errors) => errors,
            Err(ended) => return *ended,
        };
        let data = &response["data"];
        let saved =
            data["createGenerator"]["generator"].as_object().or(data["updateGenerator"]["generator"].as_object());
        if let Some(saved) = saved {
            let name = saved.get("name").and_then(Value::as_str).unwrap_or_default();
            let example = saved.get("example").and_then(Value::as_str).unwrap_or_default();
            flash(req, admin, true, &format!("Generator {name} saved — its keys look like {example}"));
            return Redirect::see_other("/admin/generators").into_response();
        }
        if let Some(shown) = data["keyFormatPreview"].as_object() {
            bits = shown.get("bits").and_then(Value::as_f64).map(|b| b.to_string());
            examples = shown
                .get("examples")
                .and_then(Value::as_array)
                .map(|e| e.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
        }
        problems.extend(problems_with(&errors, |f| FIELD_NAMES.iter().copied().find(|n| *n == f)));
    }
    let (data, _, _) = answer(admin.run(req, Some(&token), ME, json!({})).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    render(status, csrf, staff, action, &form, problems, bits, examples)
}

/// The input fields a refusal may name, as the form names them.
const FIELD_NAMES: [&str; 11] = [
    "name",
    "format",
    "prefix",
    "chunkCount",
    "chunkLength",
    "alphabet",
    "separator",
    "pattern",
    "defaultActivationLimit",
    "validityDays",
    "defaultFeatureFlags",
];

#[handler]
pub(crate) async fn create(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Form(form): Form<GeneratorForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    submit(req, admin, &csrf.0, None, form).await
}

#[handler]
pub(crate) async fn update(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    Form(form): Form<GeneratorForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    submit(req, admin, &csrf.0, Some(id), form).await
}

// ----- Delete -----

#[derive(Template)]
#[template(path = "admin/generator_delete.html")]
struct DeletePage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    href: String,
    name: String,
    /// The products delivering with it: deleting is refused while there are any.
    users: Vec<String>,
}

#[handler]
pub(crate) async fn delete_confirm(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let query = "query($id: ID!) { me { role environment user { email } } generator(id: $id) { id name } \
        products(first: 100) { edges { node { name delivery { generatorId } } } } }";
    let (data, _, _) = answer(admin.run(req, Some(&token), query, json!({ "id": id })).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let Some(name) = data["generator"]["name"].as_str() else {
        return message_page(StatusCode::NOT_FOUND, "No such generator", "There is no such generator here.");
    };
    let users = data["products"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .filter(|e| e["node"]["delivery"]["generatorId"].as_str() == Some(id.as_str()))
                .filter_map(|e| e["node"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    page(
        StatusCode::OK,
        DeletePage {
            title: "Delete generator",
            csrf: &csrf.0,
            staff,
            areas: areas("Generators"),
            back: "/admin/generators",
            href: generator_href(&id),
            name: name.to_string(),
            users,
        }
        .render(),
    )
}

#[handler]
pub(crate) async fn delete(
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
    let mutation = "mutation($id: ID!) { deleteGenerator(input: {id: $id}) { deletedId } }";
    let (_, code, message) = answer(admin.run(req, Some(&token), mutation, json!({ "id": id })).await);
    if let Some(to) = outcome(req, admin, code.as_deref(), message, "Generator deleted") {
        return to;
    }
    Redirect::see_other("/admin/generators").into_response()
}

// ----- Generate licences -----

#[derive(Template)]
#[template(path = "admin/generate.html")]
struct GeneratePage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    href: String,
    name: String,
    example: String,
    products: Vec<(String, String, bool)>,
    count: &'a str,
    problems: Vec<Problem>,
}

impl GeneratePage<'_> {
    fn problem(&self, field: &str) -> Option<&str> {
        self.problems.iter().find(|p| p.field == Some(field)).map(|p| p.text.as_str())
    }
    fn general(&self) -> Vec<&str> {
        self.problems.iter().filter(|p| p.field.is_none()).map(|p| p.text.as_str()).collect()
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct GenerateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    product: String,
    #[serde(default)]
    count: String,
}

async fn generate_page(
    req: &Request,
    admin: &Admin,
    token: &str,
    csrf: &str,
    id: &str,
    form: &GenerateForm,
    problems: Vec<Problem>,
) -> Response {
    let query = "query($id: ID!) { me { role environment user { email } } generator(id: $id) { id name example } \
        products(first: 100, filter: {status: ACTIVE}, orderBy: {field: NAME, direction: ASC}) { edges { node { id name } } } }";
    let (data, _, _) = answer(admin.run(req, Some(token), query, json!({ "id": id })).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    if staff.role == "support" {
        return message_page(StatusCode::FORBIDDEN, "Generate licences", "Your role may not generate licences.");
    }
    let Some(name) = data["generator"]["name"].as_str() else {
        return message_page(StatusCode::NOT_FOUND, "No such generator", "There is no such generator here.");
    };
    let products = data["products"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .map(|e| {
                    let pid = e["node"]["id"].as_str().unwrap_or_default().to_string();
                    let chosen = pid == form.product;
                    (pid, e["node"]["name"].as_str().unwrap_or_default().to_string(), chosen)
                })
                .collect()
        })
        .unwrap_or_default();
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    page(
        status,
        GeneratePage {
            title: "Generate licences",
            csrf,
            staff,
            areas: areas("Generators"),
            back: "/admin/generators",
            href: generator_href(id),
            name: name.to_string(),
            example: data["generator"]["example"].as_str().unwrap_or_default().to_string(),
            products,
            count: &form.count,
            problems,
        }
        .render(),
    )
}

#[handler]
pub(crate) async fn generate_form(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let form = GenerateForm { count: "100".into(), ..GenerateForm::default() };
    generate_page(req, admin, &token, &csrf.0, &id, &form, Vec::new()).await
}

#[handler]
pub(crate) async fn generate(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    Form(form): Form<GenerateForm>,
) -> Response {
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let Ok(count) = form.count.trim().parse::<i64>() else {
        let problems = vec![Problem { field: Some("count"), text: "must be a whole number from 1 to 100000".into() }];
        return generate_page(req, admin, &token, &csrf.0, &id, &form, problems).await;
    };
    let mutation = "mutation($g: ID!, $p: ID!, $n: Int!) { generateLicenses(input: {generatorId: $g, productId: $p, count: $n}) { job { id } } }";
    let response = serde_json::to_value(
        admin.run(req, Some(&token), mutation, json!({ "g": id, "p": form.product, "n": count })).await,
    )
    .unwrap_or_default();
    if let Some(job) = response["data"]["generateLicenses"]["job"]["id"].as_str() {
        return Redirect::see_other(format!("/admin/jobs/{}", utf8_percent_encode(job, COMPONENT))).into_response();
    }
    let errors = match form_errors(req, admin, &response) {
        Ok(errors) => errors,
        Err(ended) => return *ended,
    };
    let problems = problems_with(&errors, |f| match f {
        "productId" => Some("product"),
        "count" => Some("count"),
        _ => None,
    });
    generate_page(req, admin, &token, &csrf.0, &id, &form, problems).await
}
