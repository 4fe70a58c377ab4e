//! `POST /integrations/{id}/webhook`: where providers deliver. Answers:
//! 200 once the delivery is recorded and committed (or was a duplicate, or
//! WooCommerce's ping), 401 for a signature that does not hold, 404 for no
//! such integration, 413 for a body over the limit, 429 with `Retry-After`
//! for a signed delivery past the integration's rate, 500 when nothing could be committed (the
//! provider sends it again). Neither the body nor a signature is logged.

use super::body;
use crate::AppState;
use crate::services::integrations::reading::Headers;
use crate::services::integrations::{self, Admission, Answer};
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};
use serde_json::json;

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    Response::builder().status(status).content_type("application/json").body(body.to_string())
}

/// A refusal before the body was read: the body is taken off the wire
/// (within a bound) so the client sees the answer, or the connection closes.
async fn refused(status: StatusCode, body_left: Body, said: serde_json::Value) -> Response {
    let mut resp = answer(status, said);
    if !body::drain(body_left).await {
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

#[handler]
pub async fn webhook(req: &Request, Path(id): Path<String>, body: Body, Data(state): Data<&AppState>) -> Response {
    let integration = match integrations::admit(state, &id).await {
        Ok(found) => found,
        Err(Admission::Unknown) => {
            return refused(StatusCode::NOT_FOUND, body, json!({ "error": "no such integration" })).await;
        }
        Err(Admission::Failed(e)) => {
            tracing::error!(error = %e.detail(), "finding an integration");
            return refused(StatusCode::INTERNAL_SERVER_ERROR, body, json!({ "error": "internal error" })).await;
        }
    };
    let limit = state.config.max_body_bytes;
    let bytes = match body::read_up_to(body, limit).await {
        body::Read::Whole(bytes) => bytes,
        body::Read::TooLong(rest) => {
            let said = json!({ "error": format!("the body must be at most {limit} bytes") });
            return refused(StatusCode::PAYLOAD_TOO_LARGE, rest, said).await;
        }
        body::Read::Broken => return answer(StatusCode::BAD_REQUEST, json!({ "error": "the body was cut off" })),
    };
    let headers = Headers::from_pairs(
        req.headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))),
    );
    match integrations::receive(state, &integration, &headers, &bytes).await {
        Ok(Answer::Recorded(outcome)) => answer(StatusCode::OK, json!({ "received": true, "outcome": outcome })),
        Ok(Answer::Duplicate) => answer(StatusCode::OK, json!({ "received": true, "outcome": "DUPLICATE" })),
        Ok(Answer::Ping) => answer(StatusCode::OK, json!({ "received": true })),
        Ok(Answer::Limited(limited)) => {
            let seconds = limited.retry_after_seconds();
            let mut resp =
                answer(StatusCode::TOO_MANY_REQUESTS, json!({ "error": "rate limited", "retryAfter": seconds }));
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            resp
        }
        Ok(Answer::Refused(refusal)) => answer(
            StatusCode::UNAUTHORIZED,
            json!({ "error": "signature", "reason": refusal.describe(integration.provider) }),
        ),
        Err(e) => {
            tracing::error!(integration = %integration.id, error = %e.detail(), "recording a delivery");
            answer(StatusCode::INTERNAL_SERVER_ERROR, json!({ "error": "not recorded; send it again" }))
        }
    }
}
