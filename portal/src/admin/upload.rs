//! "Upload keys" (`/admin/keys/upload`): keys pasted or sent as a file (text
//! or CSV) into the chosen tags, with the duplicates policy and "skip
//! invalid lines", through `importLicenseKeys` (a file goes as a GraphQL
//! upload, as a frontend would send it). The import runs on the server
//! whatever the browser does: the form is answered at once with a redirect
//! to the upload's page, which shows the import job's progress (refreshing
//! itself, no script needed) until the report is there — imported,
//! duplicates in the file and in the pool, invalid lines with their numbers
//! and reasons, tags created.

use super::pages::{Area, Staff, answer, areas, ended, forged, message_page, page, session, staff_of, to_login};
use super::{Admin, Uploads};
use askama::Template;
use poem::http::StatusCode;
use poem::web::{CsrfToken, CsrfVerifier, Data, Multipart, Path, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde_json::{Value, json};
use std::io::{Seek, SeekFrom};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

const CHOICES: &str = "{ me { role environment user { email } } \
    tags(first: 100, orderBy: {field: NAME, direction: ASC}) { edges { node { id name system } } } }";

const IMPORT: &str = "mutation($input: ImportLicenseKeysInput!) { importLicenseKeys(input: $input) { \
    committed lines imported duplicatesInFile duplicatesInPool invalidCount invalidLines { line reason } \
    createdTags jobId } }";

const RUNNING: &str = "{ me { role environment user { email } } \
    jobs(first: 10, status: RUNNING, kind: \"IMPORT_LICENSE_KEYS\") { edges { node { id progress total unit } } } }";

/// How long the form waits for a small import before answering: most are
/// done by then, and the page shows the report without a refresh.
const QUICK: Duration = Duration::from_secs(3);
/// How long a report stays available on the node that took the upload.
pub(crate) const KEPT: Duration = Duration::from_secs(3600);
/// Most uploads remembered at once; the oldest reports go first.
const MOST_KEPT: usize = 500;
/// Most bytes of one small field (the token, a tag's id, a choice).
const SMALL_FIELD: u64 = 1024;

/// One upload, as its page shows it.
pub(crate) struct Ticket {
    /// The session that made it: only it may see the report.
    session: String,
    /// The file's name, or "pasted keys".
    source: String,
    started: Instant,
    /// The GraphQL answer, once the import is over.
    outcome: Option<Value>,
}

/// What the form holds, as chosen.
#[derive(Default)]
struct UploadForm {
    csrf: String,
    text: String,
    tags: Vec<String>,
    duplicates: String,
    skip_invalid: bool,
    format: String,
}

pub(crate) struct TagChoice {
    pub id: String,
    pub name: String,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "admin/upload.html")]
struct UploadPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    tags: Vec<TagChoice>,
    text: &'a str,
    keep_duplicates: bool,
    skip_invalid: bool,
    format: &'a str,
    error: Option<String>,
    max_text: String,
    max_file: String,
}

/// Bytes as read: "1 MiB", "512 MiB", "900 KiB".
fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

async fn render(
    req: &Request,
    admin: &Admin,
    token: &str,
    csrf: &str,
    form: &UploadForm,
    error: Option<String>,
) -> Response {
    let (data, _, _) = answer(admin.run(req, Some(token), CHOICES, json!({})).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    if staff.role == "support" {
        return message_page(StatusCode::FORBIDDEN, "Upload keys", "Your role may not upload keys.");
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
                    TagChoice {
                        checked: form.tags.contains(&id),
                        name: t["name"].as_str().unwrap_or_default().to_string(),
                        id,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    page(
        status,
        UploadPage {
            title: "Upload keys",
            csrf,
            staff,
            areas: areas("Upload keys"),
            back: "/admin/keys/upload",
            tags,
            text: &form.text,
            keep_duplicates: form.duplicates == "KEEP",
            skip_invalid: form.skip_invalid,
            format: &form.format,
            error,
            max_text: size(admin.options.max_form_bytes),
            max_file: size(admin.options.max_upload_bytes),
        }
        .render(),
    )
}

#[handler]
pub(crate) async fn upload_form(req: &Request, Data(admin): Data<&Arc<Admin>>, csrf: &CsrfToken) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    render(req, admin, &token, &csrf.0, &UploadForm::default(), None).await
}

/// A field's text, refused past `limit` bytes. A refused field is still read
/// to its end (and dropped), so that the answer comes after the whole form,
/// never while the browser is still sending it.
async fn bounded_text(field: poem::web::Field, limit: u64) -> Result<String, ()> {
    let mut bytes = Vec::new();
    let mut reader = field.into_async_read().take(limit + 1);
    reader.read_to_end(&mut bytes).await.map_err(|_| ())?;
    if bytes.len() as u64 > limit {
        let _ = tokio::io::copy(&mut reader.into_inner(), &mut tokio::io::sink()).await;
        return Err(());
    }
    String::from_utf8(bytes).map_err(|_| ())
}

/// The file, copied to a temporary file (never held in memory), or why not.
async fn received_file(field: poem::web::Field, limit: u64) -> Result<(std::fs::File, u64), String> {
    let file = tempfile::tempfile().map_err(|_| "could not be stored on the server".to_string())?;
    let copy = file.try_clone().map_err(|_| "could not be stored on the server".to_string())?;
    let mut writer = tokio::fs::File::from_std(copy);
    let mut reader = field.into_async_read().take(limit + 1);
    let written =
        tokio::io::copy(&mut reader, &mut writer).await.map_err(|_| "was not received completely".to_string())?;
    if written > limit {
        let _ = tokio::io::copy(&mut reader.into_inner(), &mut tokio::io::sink()).await;
        return Err(format!("is larger than {}", size(limit as usize)));
    }
    tokio::io::AsyncWriteExt::flush(&mut writer).await.map_err(|_| "could not be stored on the server".to_string())?;
    let mut file = file;
    file.seek(SeekFrom::Start(0)).map_err(|_| "could not be stored on the server".to_string())?;
    Ok((file, written))
}

#[handler]
pub(crate) async fn upload(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    mut multipart: Multipart,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let mut form = UploadForm::default();
    let mut file: Option<(std::fs::File, String, Option<String>, u64)> = None;
    let mut problem: Option<String> = None;
    let text_limit = admin.options.max_form_bytes as u64;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => {
                problem.get_or_insert_with(|| "The form was not received completely: send it again.".into());
                break;
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                let filename = field.file_name().unwrap_or_default().to_string();
                let content_type = field.content_type().map(str::to_string);
                match received_file(field, admin.options.max_upload_bytes as u64).await {
                    // A file input left empty sends a part with no name and no bytes.
                    Ok((_, 0)) if filename.is_empty() => {}
                    Ok((content, bytes)) => file = Some((content, filename, content_type, bytes)),
                    Err(why) => {
                        problem.get_or_insert(format!("The file {why}."));
                    }
                }
            }
            "text" => match bounded_text(field, text_limit).await {
                Ok(text) => form.text = text,
                Err(()) => {
                    problem.get_or_insert(format!(
                        "Pasted keys may be at most {} of UTF-8 text: choose a file for more.",
                        size(text_limit as usize)
                    ));
                }
            },
            _ => {
                let value = bounded_text(field, SMALL_FIELD).await.unwrap_or_default();
                match name.as_str() {
                    "csrf" => form.csrf = value,
                    "tag" if !value.is_empty() && form.tags.len() < 100 => form.tags.push(value),
                    "duplicates" => form.duplicates = value,
                    "skip_invalid" => form.skip_invalid = value == "yes",
                    "format" => form.format = value,
                    _ => {}
                }
            }
        }
    }
    if !verifier.is_valid(&form.csrf) {
        return forged();
    }
    if problem.is_none() {
        problem = match (&file, form.text.trim().is_empty()) {
            (None, true) => Some("Paste keys or choose a file.".into()),
            (Some(_), false) => Some("Paste keys or choose a file, not both.".into()),
            _ => None,
        };
    }
    if let Some(problem) = problem {
        return render(req, admin, &token, &csrf.0, &form, Some(problem)).await;
    }
    let mut input = json!({
        "tagIds": form.tags,
        "duplicates": if form.duplicates == "KEEP" { "KEEP" } else { "SKIP" },
        "skipInvalid": form.skip_invalid,
    });
    if matches!(form.format.as_str(), "TEXT" | "CSV") {
        input["format"] = json!(form.format);
    }
    let source = match &file {
        Some((_, filename, _, bytes)) => format!("{filename} ({})", size(*bytes as usize)),
        None => "pasted keys".to_string(),
    };
    let mut request = match file {
        Some((content, filename, content_type, _)) => {
            input["file"] = Value::Null;
            let mut request = async_graphql::Request::new(IMPORT)
                .variables(async_graphql::Variables::from_json(json!({ "input": input })));
            request.set_upload("variables.input.file", async_graphql::UploadValue { filename, content_type, content });
            request
        }
        None => {
            input["text"] = json!(form.text);
            async_graphql::Request::new(IMPORT)
                .variables(async_graphql::Variables::from_json(json!({ "input": input })))
        }
    };
    request.data = admin.request_data(req, Some(&token)).await;
    let ticket = admin.uploads.open(&token, source);
    let running = admin.start(request);
    let uploads = admin.uploads.clone();
    let id = ticket.clone();
    let task = tokio::spawn(async move {
        let response = serde_json::to_value(running.await).unwrap_or_default();
        uploads.finish(&id, response);
    });
    // A small import is over before the answer: its report opens at once.
    let _ = tokio::time::timeout(QUICK, task).await;
    Redirect::see_other(format!("/admin/keys/upload/{ticket}")).into_response()
}

impl Uploads {
    fn open(&self, session: &str, source: String) -> String {
        let id = ulid::Ulid::generate().to_string();
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, t| t.started.elapsed() < KEPT || t.outcome.is_none());
        while all.len() >= MOST_KEPT {
            let Some(oldest) =
                all.iter().filter(|(_, t)| t.outcome.is_some()).min_by_key(|(_, t)| t.started).map(|(k, _)| k.clone())
            else {
                break;
            };
            all.remove(&oldest);
        }
        all.insert(id.clone(), Ticket { session: session.to_string(), source, started: Instant::now(), outcome: None });
        id
    }

    fn finish(&self, id: &str, outcome: Value) {
        if let Some(ticket) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get_mut(id) {
            ticket.outcome = Some(outcome);
        }
    }

    /// The upload `id` if `session` made it: its source and outcome so far.
    fn read(&self, id: &str, session: &str) -> Option<(String, Option<Value>)> {
        let all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.get(id).filter(|t| t.session == session).map(|t| (t.source.clone(), t.outcome.clone()))
    }
}

pub(crate) struct InvalidLine {
    pub line: i64,
    pub reason: String,
}

pub(crate) struct Running {
    pub progress: i64,
    pub total: i64,
    pub unit: String,
    pub percent: String,
}

#[derive(Template)]
#[template(path = "admin/upload_report.html")]
struct ReportPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    source: String,
    /// Still importing: the page refreshes itself.
    running: bool,
    jobs: Vec<Running>,
    error: Option<String>,
    committed: bool,
    lines: i64,
    imported: i64,
    duplicates_in_file: i64,
    duplicates_in_pool: i64,
    invalid_count: i64,
    invalid: Vec<InvalidLine>,
    created_tags: Vec<String>,
}

#[handler]
pub(crate) async fn report(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let (data, _, _) = answer(admin.run(req, Some(&token), RUNNING, json!({})).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    let Some((source, outcome)) = admin.uploads.read(&id, &token) else {
        return message_page(
            StatusCode::NOT_FOUND,
            "No such upload",
            "This upload's report is not here: reports are kept for an hour, for the person who uploaded, \
                      on the server that took the upload. The import itself is in the background jobs.",
        );
    };
    let jobs = data["jobs"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .map(|e| {
                    let node = &e["node"];
                    let progress = node["progress"].as_i64().unwrap_or_default();
                    let total = node["total"].as_i64().unwrap_or_default();
                    let percent = if total > 0 { (progress * 100 / total).clamp(0, 100) } else { 0 };
                    Running {
                        progress,
                        total,
                        unit: node["unit"].as_str().unwrap_or_default().to_string(),
                        percent: percent.to_string(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let result = outcome.as_ref().map(|o| &o["data"]["importLicenseKeys"]).filter(|r| r.is_object());
    let error = outcome.as_ref().filter(|_| result.is_none()).map(|o| {
        let message = o["errors"][0]["message"].as_str().unwrap_or("The import did not run.");
        match o["errors"][0]["extensions"]["code"].as_str() {
            Some("FORBIDDEN") => "Your role may not upload keys.".to_string(),
            _ => message.to_string(),
        }
    });
    let figure = |name: &str| result.and_then(|r| r[name].as_i64()).unwrap_or_default();
    let invalid = result
        .and_then(|r| r["invalidLines"].as_array())
        .map(|lines| {
            lines
                .iter()
                .map(|l| InvalidLine {
                    line: l["line"].as_i64().unwrap_or_default(),
                    reason: l["reason"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let created_tags = result
        .and_then(|r| r["createdTags"].as_array())
        .map(|tags| tags.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let back = format!("/admin/keys/upload/{id}");
    page(
        StatusCode::OK,
        ReportPage {
            title: if outcome.is_none() { "Importing keys" } else { "Upload report" },
            csrf: &csrf.0,
            staff,
            areas: areas("Upload keys"),
            back: &back,
            source,
            running: outcome.is_none(),
            jobs,
            error,
            committed: result.and_then(|r| r["committed"].as_bool()).unwrap_or_default(),
            lines: figure("lines"),
            imported: figure("imported"),
            duplicates_in_file: figure("duplicatesInFile"),
            duplicates_in_pool: figure("duplicatesInPool"),
            invalid_count: figure("invalidCount"),
            invalid,
            created_tags,
        }
        .render(),
    )
}
