//! Keysmith's web front ends, rendered on the server: the customer portal
//! (mounted by `api` at `/portal`) and the admin portal (at `/admin`). Their
//! pages are askama templates (compile-time checked, escaping everything)
//! filled from results of the GraphQL schema, executed in-process with the
//! signed-in person's identity: this crate knows nothing of `api` and reads
//! no database, so each page has exactly that person's permissions.
//!
//! What both front ends share lives here: the seam to the schema
//! ([`PortalAuth`], the executor), CSRF, the security headers every answer
//! carries (refusals from routing included), and the mapping from GraphQL
//! error codes to HTTP statuses.

pub mod admin;
pub mod customer;

pub use customer::{ORDERS_QUERY, SESSION_COOKIE, routes};

use poem::http::{StatusCode, header};
use poem::middleware::{Csrf, SetHeader};
use poem::{Endpoint, EndpointExt, Request};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Turns a request (and its session token, when it carries one) into the
/// data a GraphQL request runs with: the signed-in person's identity, or
/// nobody's.
pub trait PortalAuth: Send + Sync + 'static {
    fn request_data<'a>(
        &'a self,
        req: &'a Request,
        session: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = async_graphql::Data> + Send + 'a>>;

    /// Streams the keys `export` chooses as a download, with the session's
    /// identity and the API's export rules (the same as
    /// `GET /export/license-keys.csv`): a file that large is streamed by the
    /// API rather than paged through GraphQL. Front ends without exports
    /// answer 404.
    fn export<'a>(
        &'a self,
        req: &'a Request,
        session: &'a str,
        export: Export,
    ) -> Pin<Box<dyn Future<Output = poem::Response> + Send + 'a>> {
        let _ = (req, session, export);
        Box::pin(async { poem::IntoResponse::into_response(StatusCode::NOT_FOUND) })
    }
}

/// Which keys an export holds, and how it is written.
#[derive(Debug, Clone, Default)]
pub struct Export {
    /// A tag's id, or `no-tag`.
    pub tag_id: Option<String>,
    pub product_id: Option<String>,
    /// A licence status as the API spells it (`ACTIVE`).
    pub status: Option<String>,
    pub search: Option<String>,
    /// JSON rather than CSV.
    pub json: bool,
}

/// How a front end is served.
#[derive(Clone)]
pub struct PortalOptions {
    /// The key CSRF tokens are sealed with; the same on every node.
    pub csrf_key: [u8; 32],
    /// Mark cookies `Secure` (the front end is reached over HTTPS).
    pub secure_cookies: bool,
    /// Largest form a POST may send, in bytes (pasted keys included).
    pub max_form_bytes: usize,
    /// Largest file a key upload may send, in bytes.
    pub max_upload_bytes: usize,
}

/// A schema, type-erased: runs one GraphQL request.
pub(crate) type Execute =
    Arc<dyn Fn(async_graphql::Request) -> Pin<Box<dyn Future<Output = async_graphql::Response> + Send>> + Send + Sync>;

pub(crate) fn executor<E: async_graphql::Executor + Clone>(schema: E) -> Execute {
    Arc::new(move |request| {
        let schema = schema.clone();
        Box::pin(async move { schema.execute(request).await })
    })
}

/// CSRF for a front end under `path`: a strict same-site cookie named `cookie`.
pub(crate) fn csrf(options: &PortalOptions, cookie: &str, path: &'static str) -> Csrf {
    Csrf::new()
        .key(options.csrf_key)
        .cookie_name(cookie)
        .secure(options.secure_cookies)
        .same_site(poem::web::cookie::SameSite::Strict)
        .path(path)
}

/// The headers every answer of a front end carries — its pages, its files and
/// its refusals from routing and form parsing alike — and those refusals
/// turned into plain pages that repeat nothing of the request.
pub(crate) fn secured(routes: impl Endpoint + 'static) -> impl Endpoint {
    routes
        .catch_all_error(error_page)
        .with(
            SetHeader::new()
                .overriding(
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; \
                     form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                )
                .overriding(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
                .overriding(header::REFERRER_POLICY, "no-referrer")
                .overriding(header::X_FRAME_OPTIONS, "DENY")
                .overriding(header::CACHE_CONTROL, "no-store"),
        )
        .map_to_response()
}

/// The answer to a request refused before any page ran (an unknown path, a
/// wrong method, a form that is not a form): the status and its standard
/// text, never anything from the request. The front end's headers are added
/// on the way out, as on every page.
pub async fn error_page(err: poem::Error) -> poem::Response {
    let status = err.status();
    poem::Response::builder().status(status).content_type("text/plain; charset=utf-8").body(format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    ))
}

/// The status a GraphQL error code maps to on a page.
pub(crate) fn status_for(code: Option<&str>) -> StatusCode {
    match code {
        Some("NOT_FOUND") => StatusCode::NOT_FOUND,
        Some("UNAUTHENTICATED") => StatusCode::UNAUTHORIZED,
        Some("FORBIDDEN") => StatusCode::FORBIDDEN,
        Some("RATE_LIMITED") => StatusCode::TOO_MANY_REQUESTS,
        Some(
            "INVALID_INPUT"
            | "BAD_USER_INPUT"
            | "GRAPHQL_PARSE_FAILED"
            | "GRAPHQL_VALIDATION_FAILED"
            | "QUERY_TOO_DEEP"
            | "QUERY_TOO_COMPLEX",
        ) => StatusCode::BAD_REQUEST,
        Some("CONFLICT" | "INVALID_TRANSITION") => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
