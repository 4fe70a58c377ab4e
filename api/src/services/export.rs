//! Exporting any filtered list of keys as CSV or JSON, streamed page by page
//! (keyset on the id), so a million rows never sit in memory at once.

use super::jobs::{self, Attached, Runner};
use super::keys::{KeyFilter, selection};
use super::sql::{Sql, placeholders};
use crate::auth::{RequestContext, may};
use crate::error::{AppError, AppResult};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use sea_orm::{ConnectionTrait, DatabaseConnection, Value};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const PAGE: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

impl ExportFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Json => "application/json",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
        }
    }
}

/// One exported key.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportRow {
    pub id: String,
    pub key: String,
    #[serde(rename = "type")]
    pub source: String,
    pub status: String,
    pub tags: Vec<String>,
    pub product_id: Option<String>,
    pub order_external_id: Option<String>,
    pub customer_email: Option<String>,
    pub activation_limit: i32,
    pub expires_at: Option<DateTime<Utc>>,
    pub added_at: DateTime<Utc>,
}

const CSV_HEADER: [&str; 11] = [
    "id",
    "key",
    "type",
    "status",
    "tags",
    "product_id",
    "order_external_id",
    "customer_email",
    "activation_limit",
    "expires_at",
    "added_at",
];

/// A cell a spreadsheet will not run as a formula: cells starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return get a leading apostrophe.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{cell}").into() } else { cell.into() }
}

fn csv_bytes(rows: &[ExportRow], header: bool) -> AppResult<Vec<u8>> {
    let mut out = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 128));
    let fail = |e: csv::Error| AppError::internal(format!("writing CSV: {e}"));
    if header {
        out.write_record(CSV_HEADER).map_err(fail)?;
    }
    for r in rows {
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let cells = [
            r.id.clone(),
            r.key.clone(),
            r.source.clone(),
            r.status.clone(),
            r.tags.join(";"),
            r.product_id.clone().unwrap_or_default(),
            r.order_external_id.clone().unwrap_or_default(),
            r.customer_email.clone().unwrap_or_default(),
            r.activation_limit.to_string(),
            r.expires_at.as_ref().map(time).unwrap_or_default(),
            time(&r.added_at),
        ];
        out.write_record(cells.iter().map(|c| neutralise(c).into_owned())).map_err(fail)?;
    }
    out.into_inner().map_err(|e| AppError::internal(format!("writing CSV: {e}")))
}

fn json_bytes(rows: &[ExportRow], first: bool) -> AppResult<Vec<u8>> {
    let mut out = Vec::with_capacity(rows.len() * 256);
    for (i, row) in rows.iter().enumerate() {
        if !(first && i == 0) {
            out.extend_from_slice(b",\n");
        }
        serde_json::to_writer(&mut out, row).map_err(AppError::internal)?;
    }
    Ok(out)
}

async fn page(db: &DatabaseConnection, sel: &Sql, after: Option<&str>) -> AppResult<Vec<ExportRow>> {
    let mut sql = Sql::new(
        "SELECT k.id, k.key, k.source, k.status, k.product_id, k.activation_limit, k.expires_at, k.created_at, \
         o.external_id, c.email FROM license_key k \
         LEFT JOIN order_line ol ON ol.id = k.order_line_id LEFT JOIN orders o ON o.id = ol.order_id \
         LEFT JOIN customer c ON c.id = k.customer_id WHERE ",
    );
    sql.append(sel);
    if let Some(after) = after {
        sql.push(" AND k.id > ?", [Value::from(after)]);
    }
    sql.push(&format!(" ORDER BY k.id LIMIT {PAGE}"), []);
    let backend = db.get_database_backend();
    let rows = db.query_all_raw(sql.statement(backend)).await?;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(ExportRow {
                id: r.try_get_by_index(0)?,
                key: r.try_get_by_index(1)?,
                source: r.try_get_by_index(2)?,
                status: r.try_get_by_index(3)?,
                tags: Vec::new(),
                product_id: r.try_get_by_index(4)?,
                activation_limit: r.try_get_by_index(5)?,
                expires_at: r.try_get_by_index(6)?,
                added_at: r.try_get_by_index(7)?,
                order_external_id: r.try_get_by_index(8)?,
                customer_email: r.try_get_by_index(9)?,
            })
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    if out.is_empty() {
        return Ok(out);
    }
    let mut tags = Sql::new("");
    tags.push(
        &format!(
            "SELECT lt.license_key_id, t.name FROM license_key_tag lt JOIN tag t ON t.id = lt.tag_id \
             WHERE lt.license_key_id IN ({}) ORDER BY t.name",
            placeholders(out.len())
        ),
        out.iter().map(|r| Value::from(r.id.clone())),
    );
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for row in db.query_all_raw(tags.statement(backend)).await? {
        by_key.entry(row.try_get_by_index(0)?).or_default().push(row.try_get_by_index(1)?);
    }
    for row in &mut out {
        row.tags = by_key.remove(&row.id).unwrap_or_default();
    }
    Ok(out)
}

enum Phase {
    Start,
    Rows { after: Option<String>, first: bool },
    End,
    Done,
}

/// The export as a stream of byte chunks. Permission is checked before the
/// first byte; a failure later ends the stream with an error.
pub fn stream(
    db: DatabaseConnection,
    ctx: &RequestContext,
    filter: &KeyFilter,
    format: ExportFormat,
    exported: Arc<AtomicU64>,
) -> AppResult<impl Stream<Item = AppResult<Bytes>> + Send + 'static> {
    ctx.viewer.require(may::MANAGE)?;
    let sel = selection(db.get_database_backend(), ctx.environment, filter, "k")?;
    Ok(futures_util::stream::unfold(Phase::Start, move |phase| {
        let db = db.clone();
        let sel = sel.clone();
        let exported = exported.clone();
        async move {
            match phase {
                Phase::Start => {
                    let opening = match format {
                        ExportFormat::Csv => csv_bytes(&[], true),
                        ExportFormat::Json => Ok(b"[\n".to_vec()),
                    };
                    Some((opening.map(Bytes::from), Phase::Rows { after: None, first: true }))
                }
                Phase::Rows { after, first } => match page(&db, &sel, after.as_deref()).await {
                    Err(e) => Some((Err(e), Phase::Done)),
                    Ok(rows) if rows.is_empty() => Some((Ok(Bytes::new()), Phase::End)),
                    Ok(rows) => {
                        exported.fetch_add(rows.len() as u64, Ordering::Relaxed);
                        let next = Phase::Rows { after: rows.last().map(|r| r.id.clone()), first: false };
                        let chunk = match format {
                            ExportFormat::Csv => csv_bytes(&rows, false),
                            ExportFormat::Json => json_bytes(&rows, first),
                        };
                        Some((chunk.map(Bytes::from), next))
                    }
                },
                Phase::End => {
                    let closing = match format {
                        ExportFormat::Csv => Bytes::new(),
                        ExportFormat::Json => Bytes::from_static(b"\n]\n"),
                    };
                    Some((Ok(closing), Phase::Done))
                }
                Phase::Done => None,
            }
        }
    }))
}

/// [`stream`] recorded as an `EXPORT_LICENSE_KEYS` job: it succeeds when
/// the last byte is produced, and fails if the stream stops early (an error,
/// or the download dropped).
pub async fn stream_as_job(
    db: DatabaseConnection,
    runner: &Arc<Runner>,
    ctx: &RequestContext,
    filter: &KeyFilter,
    format: ExportFormat,
) -> AppResult<impl Stream<Item = AppResult<Bytes>> + Send + 'static> {
    let exported = Arc::new(AtomicU64::new(0));
    let rows = stream(db.clone(), ctx, filter, format, exported.clone())?;
    let payload = serde_json::json!({
        "format": format.extension().to_uppercase(),
        "filter": {
            "tagId": filter.tag.as_ref().map(|t| t.id().to_string()),
            "status": filter.status.map(|s| s.as_str()),
            "search": filter.search.is_some(),
        },
    });
    let job = Attached::start(&db, runner, ctx, jobs::EXPORT_LICENSE_KEYS, (exported.clone(), 0), payload).await?;
    let failure = job.failure();
    let failed = failure.clone();
    let rows = rows.inspect(move |chunk| {
        if let (Err(e), Ok(mut slot)) = (chunk, failure.lock()) {
            *slot = Some(format!("the export stopped: {}", e.client_message()));
        }
    });
    // The job ends with the stream: the closing item records it, as failed
    // when a chunk failed (a reader may read on past the failure).
    let end = futures_util::stream::once(async move {
        let count = exported.load(Ordering::Relaxed);
        let stopped = failed.lock().ok().and_then(|mut f| f.take());
        let outcome = match stopped {
            Some(reason) => Err(reason),
            None => Ok(serde_json::json!({ "exported": count })),
        };
        job.finish(outcome).await.map(|()| Bytes::new())
    });
    Ok(rows.chain(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised() {
        for risky in ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx"] {
            assert!(neutralise(risky).starts_with('\''), "{risky}");
        }
        assert_eq!(neutralise("ABCD-1234"), "ABCD-1234");
    }
}
