//! GraphQL multipart requests (the upload spec: an `operations` part, a `map`
//! part, then files). The two JSON parts obey the body limit like any JSON
//! request; only the one file part may be as large as the upload limit, and it
//! goes to a temporary file, never into memory.

use crate::error::AppError;
use async_graphql::UploadValue;
use poem::http::StatusCode;
use std::collections::HashMap;
use tokio::io::AsyncWriteExt;

/// What a multipart request may weigh.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest `operations` or `map` part: the JSON body limit.
    pub json_bytes: usize,
    /// Largest file.
    pub file_bytes: usize,
}

/// Slack for part headers and boundaries in the limit on the whole body.
const FRAMING_BYTES: u64 = 64 * 1024;

struct File {
    part: String,
    filename: String,
    content_type: Option<String>,
    content: std::fs::File,
}

type Refusal = (StatusCode, AppError);

/// Reads a multipart GraphQL request whose `Content-Type` is `content_type`.
pub async fn receive(
    content_type: &str,
    body: impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
    limits: Limits,
) -> Result<async_graphql::Request, Refusal> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| bad("Content-Type", "must carry the multipart boundary".to_string()))?;
    let json = limits.json_bytes as u64;
    let sizes = multer::SizeLimit::new()
        .whole_stream((limits.file_bytes as u64).saturating_add(2 * json).saturating_add(FRAMING_BYTES))
        .per_field(limits.file_bytes as u64)
        .for_field("operations", json)
        .for_field("map", json);
    let mut multipart =
        multer::Multipart::with_constraints(body, boundary, multer::Constraints::new().size_limit(sizes));

    let mut operations: Option<async_graphql::Request> = None;
    let mut map: Option<HashMap<String, Vec<String>>> = None;
    let mut file: Option<File> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(|e| refused(e, limits))? {
        let name = field.name().unwrap_or_default().to_string();
        match (name.as_str(), field.file_name().map(str::to_string)) {
            ("operations", _) if operations.is_none() => {
                let bytes = field.bytes().await.map_err(|e| refused(e, limits))?;
                let request = serde_json::from_slice::<async_graphql::Request>(&bytes)
                    .map_err(|e| bad("operations", format!("is not a GraphQL request in JSON: {e}")))?;
                operations = Some(request);
            }
            ("map", _) if map.is_none() => {
                let bytes = field.bytes().await.map_err(|e| refused(e, limits))?;
                let parsed = serde_json::from_slice::<HashMap<String, Vec<String>>>(&bytes)
                    .map_err(|e| bad("map", format!("must be a JSON object of part names to variable paths: {e}")))?;
                map = Some(parsed);
            }
            ("operations" | "map", _) => return Err(bad(&name, "appears twice".to_string())),
            (_, Some(filename)) if file.is_none() => {
                let content_type = field.content_type().map(ToString::to_string);
                let temporary =
                    tempfile::tempfile().map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, AppError::internal(e)))?;
                let mut writer = tokio::fs::File::from_std(temporary);
                while let Some(chunk) = field.chunk().await.map_err(|e| refused(e, limits))? {
                    writer
                        .write_all(&chunk)
                        .await
                        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, AppError::internal(e)))?;
                }
                writer.flush().await.map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, AppError::internal(e)))?;
                let mut content = writer.into_std().await;
                std::io::Seek::rewind(&mut content)
                    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, AppError::internal(e)))?;
                file = Some(File { part: name, filename, content_type, content });
            }
            (_, Some(_)) => return Err(bad("body", "may carry one file at most".to_string())),
            (_, None) => {
                return Err(bad("body", "may hold only the operations, map and file parts".to_string()));
            }
        }
    }

    let mut request = operations.ok_or_else(|| bad("operations", "is missing".to_string()))?;
    let mut map = map.ok_or_else(|| bad("map", "is missing".to_string()))?;
    if let Some(file) = file
        && let Some(paths) = map.remove(&file.part)
    {
        for path in paths {
            let content =
                file.content.try_clone().map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, AppError::internal(e)))?;
            request.set_upload(
                &path,
                UploadValue { filename: file.filename.clone(), content_type: file.content_type.clone(), content },
            );
        }
    }
    if let Some(part) = map.keys().next() {
        return Err(bad("map", format!("names a part the request does not carry: {part:?}")));
    }
    Ok(request)
}

fn bad(field: &str, reason: String) -> Refusal {
    (StatusCode::BAD_REQUEST, AppError::invalid(field, reason))
}

/// A part or the whole body over its limit is 413; anything else malformed is 400.
fn refused(error: multer::Error, limits: Limits) -> Refusal {
    match error {
        multer::Error::FieldSizeExceeded { field_name, .. } => {
            let part = field_name.unwrap_or_default();
            if part == "operations" || part == "map" {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    AppError::invalid(part, format!("must be at most {} bytes", limits.json_bytes)),
                )
            } else {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    AppError::invalid("file", format!("must be at most {} bytes", limits.file_bytes)),
                )
            }
        }
        multer::Error::StreamSizeExceeded { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            AppError::invalid(
                "body",
                format!("must be at most {} bytes of file and {} of JSON", limits.file_bytes, limits.json_bytes),
            ),
        ),
        other => bad("body", format!("is not a GraphQL multipart request: {other}")),
    }
}
