//! The customer portal, mounted by `api` at `/portal`. Its pages are rendered
//! on the server (askama: compile-time checked, escaping everything) from
//! results of the GraphQL schema, executed in-process with the customer's
//! identity: the portal knows nothing of `api` and reads no database, so it
//! has exactly the customer's permissions.
//!
//! `api` supplies the schema (any [`async_graphql::Executor`]) and a
//! [`PortalAuth`] that turns the session cookie into the request's data.

mod pages;
mod view;

pub use pages::ORDERS_QUERY;

use async_graphql::Executor;
use poem::http::{StatusCode, header};
use poem::middleware::{Csrf, SetHeader};
use poem::{Endpoint, EndpointExt, Request, Route, get, post};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The cookie holding a signed-in customer's session token.
pub const SESSION_COOKIE: &str = "keysmith_portal";

/// Turns a request (and its session token, when it carries one) into the
/// data a GraphQL request runs with: the customer's identity, or nobody's.
pub trait PortalAuth: Send + Sync + 'static {
    fn request_data<'a>(
        &'a self,
        req: &'a Request,
        session: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = async_graphql::Data> + Send + 'a>>;
}

/// How the portal is served.
#[derive(Clone)]
pub struct PortalOptions {
    /// The key CSRF tokens are sealed with; the same on every node.
    pub csrf_key: [u8; 32],
    /// Mark cookies `Secure` (the portal is reached over HTTPS).
    pub secure_cookies: bool,
}

type Execute =
    Arc<dyn Fn(async_graphql::Request) -> Pin<Box<dyn Future<Output = async_graphql::Response> + Send>> + Send + Sync>;

/// What every handler shares.
pub(crate) struct Portal {
    execute: Execute,
    auth: Box<dyn PortalAuth>,
    pub(crate) options: PortalOptions,
}

impl Portal {
    /// Runs `query` with the request's identity.
    pub(crate) async fn run(
        &self,
        req: &Request,
        session: Option<&str>,
        query: &str,
        variables: serde_json::Value,
    ) -> async_graphql::Response {
        let mut request = async_graphql::Request::new(query).variables(async_graphql::Variables::from_json(variables));
        request.data = self.auth.request_data(req, session).await;
        (self.execute)(request).await
    }
}

/// The portal's routes, to be nested under `/portal`.
pub fn routes<E, A>(schema: E, auth: A, options: PortalOptions) -> impl Endpoint
where
    E: Executor + Clone,
    A: PortalAuth,
{
    let execute: Execute = Arc::new(move |request| {
        let schema = schema.clone();
        Box::pin(async move { schema.execute(request).await })
    });
    let csrf = Csrf::new()
        .key(options.csrf_key)
        .cookie_name("keysmith_portal_csrf")
        .secure(options.secure_cookies)
        .same_site(poem::web::cookie::SameSite::Strict)
        .path("/portal");
    let portal = Arc::new(Portal { execute, auth: Box::new(auth), options });
    Route::new()
        .at("/", get(pages::orders))
        .at("/login", get(pages::login_form).post(pages::login))
        .at("/link", post(pages::follow_link))
        .at("/link/:token", get(pages::open_link))
        .at("/reveal", post(pages::reveal))
        .at("/devices/deactivate", post(pages::deactivate))
        .at("/licenses/:id/offline-licence", post(pages::offline_file))
        .at("/logout", post(pages::logout))
        .at("/static/portal.css", get(pages::stylesheet))
        .at("/static/portal.js", get(pages::script))
        .data(portal)
        .with(csrf)
        .catch_all_error(error_page)
        .with(
            SetHeader::new()
                .overriding(
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
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
/// text, never anything from the request. The portal's headers are added on
/// the way out, as on every page.
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
        Some("INVALID_INPUT") => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
