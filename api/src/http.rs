//! HTTP: the routes, the GraphQL endpoint's rules (JSON only, a body-size
//! limit, credentials only from `Authorization: Bearer`), health checks, and
//! serving with graceful shutdown.

use crate::AppState;
use crate::auth::{RequestContext, Viewer};
use crate::error::AppError;
use crate::graphql::Schemas;
use crate::graphql::loaders::Loaders;
use crate::services::users;
use async_graphql::http::GraphiQLSource;
use entity::Environment;
use poem::http::{HeaderValue, StatusCode, header};
use poem::listener::TcpAcceptor;
use poem::middleware::SetHeader;
use poem::web::{Data, Html};
use poem::{
    Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route, Server, get, handler,
};
use std::future::Future;
use std::time::{Duration, Instant};

/// The header that names the environment a request acts in.
pub const ENVIRONMENT_HEADER: &str = "x-keysmith-environment";

/// How long in-flight requests get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub fn routes(state: AppState) -> impl Endpoint {
    let schemas = Schemas::new(state.clone());
    Route::new()
        .at("/graphql", get(graphiql).post(graphql))
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .nest("/portal", portal::routes())
        .data(state)
        .data(schemas)
        .with(
            SetHeader::new()
                .overriding(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
                .overriding(header::REFERRER_POLICY, "no-referrer"),
        )
        .around(|ep, req| async move {
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            let started = Instant::now();
            let resp = ep.get_response(req).await;
            tracing::info!(
                %method,
                path = %path,
                status = resp.status().as_u16(),
                ms = started.elapsed().as_millis() as u64,
                "request"
            );
            Ok(resp)
        })
}

/// Serves until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(routes(state), shutdown, Some(SHUTDOWN_GRACE))
        .await
}

#[handler]
fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .title("Keysmith GraphiQL")
            .finish(),
    )
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

#[handler]
async fn readyz(Data(state): Data<&AppState>) -> Response {
    match state.db.ping().await {
        Ok(()) => "ready".into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

#[handler]
async fn graphql(
    req: &Request,
    body: Body,
    Data(state): Data<&AppState>,
    Data(schemas): Data<&Schemas>,
) -> Response {
    match execute(req, body, state, schemas).await {
        Ok(resp) | Err(resp) => resp,
    }
}

async fn execute(
    req: &Request,
    body: Body,
    state: &AppState,
    schemas: &Schemas,
) -> Result<Response, Response> {
    let is_json = req
        .content_type()
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::invalid("Content-Type", "must be application/json"),
        ));
    }
    let environment =
        request_environment(req).map_err(|e| error_response(StatusCode::BAD_REQUEST, e))?;
    let (viewer, token_environment) = match bearer_token(req) {
        Ok(None) => (Viewer::Anonymous, None),
        Ok(Some(token)) => users::authenticate(&state.db, &state.jwt, token)
            .await
            .map_err(|e| error_response(status_of(&e), e))?,
        Err(e) => return Err(error_response(StatusCode::UNAUTHORIZED, e)),
    };
    let environment = match (environment, token_environment) {
        (Some(asked), Some(allowed)) if asked != allowed => {
            return Err(error_response(
                StatusCode::FORBIDDEN,
                AppError::Forbidden(format!("the token is limited to the {allowed} environment")),
            ));
        }
        (asked, allowed) => asked.or(allowed).unwrap_or_default(),
    };

    let bytes = body
        .into_bytes_limit(state.config.max_body_bytes)
        .await
        .map_err(|_| {
            error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                AppError::invalid(
                    "body",
                    format!("must be at most {} bytes", state.config.max_body_bytes),
                ),
            )
        })?;
    let request: async_graphql::Request = serde_json::from_slice(&bytes).map_err(|e| {
        error_response(
            StatusCode::BAD_REQUEST,
            AppError::invalid("body", format!("is not a GraphQL request in JSON: {e}")),
        )
    })?;

    let schema = if viewer.role().is_staff() {
        &schemas.staff
    } else {
        &schemas.public
    };
    let request = request
        .data(RequestContext::new(viewer, environment))
        .data(Loaders::new(&state.db));
    let response = schema.execute(request).await;
    Ok(json_response(StatusCode::OK, &response))
}

fn request_environment(req: &Request) -> Result<Option<Environment>, AppError> {
    let Some(value) = req.headers().get(ENVIRONMENT_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(Environment::parse)
        .map(Some)
        .ok_or_else(|| AppError::invalid("X-Keysmith-Environment", "must be production or staging"))
}

/// The bearer token, if the request carries credentials. Any other kind of
/// credential is refused rather than ignored. Cookies are never read here.
fn bearer_token(req: &Request) -> Result<Option<&str>, AppError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| {
        AppError::Unauthenticated("the Authorization header is not readable".into())
    })?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(AppError::Unauthenticated(
            "use Authorization: Bearer <token>".into(),
        )),
    }
}

fn status_of(err: &AppError) -> StatusCode {
    match err {
        AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// A request refused before GraphQL ran, in the GraphQL error shape.
fn error_response(status: StatusCode, err: AppError) -> Response {
    let gql: async_graphql::Error = err.into();
    let mut error = async_graphql::ServerError::new(gql.message, None);
    error.extensions = gql.extensions;
    let body = serde_json::json!({ "errors": [error] });
    let mut resp = json_response(status, &body);
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => Response::builder()
            .status(status)
            .content_type("application/json")
            .body(bytes),
        Err(err) => {
            tracing::error!(error = %err, "serialising a response");
            Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body("internal error")
        }
    }
}
