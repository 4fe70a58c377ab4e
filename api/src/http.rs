//! HTTP: the routes, the GraphQL endpoint's rules (JSON only, a body-size
//! limit, credentials only from `Authorization: Bearer`), health checks, and
//! serving with graceful shutdown.

use crate::AppState;
use crate::auth::{RequestContext, Viewer};
use crate::error::AppError;
use crate::graphql::Schemas;
use crate::graphql::loaders::RequestLoaders;
use crate::services::export::{self, ExportFormat};
use crate::services::keys::{KeyFilter, TagRef};
use crate::services::users;
use entity::Environment;
use futures_util::StreamExt;
use poem::http::{HeaderValue, StatusCode, header};
use poem::listener::TcpAcceptor;
use poem::middleware::SetHeader;
use poem::web::Data;
use poem::web::websocket::WebSocket;
use poem::{Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route, Server, get, handler};
use sea_orm::Iterable;
use std::future::Future;
use std::time::{Duration, Instant};

mod abort;
mod body;
mod graphiql;
mod integrations;
mod multipart;
mod socket;

pub use socket::PER_CONNECTION as SUBSCRIPTIONS_PER_CONNECTION;

/// The header that names the environment a request acts in.
pub const ENVIRONMENT_HEADER: &str = "x-keysmith-environment";

/// How long in-flight requests get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub fn routes(state: AppState) -> impl Endpoint {
    let schemas = Schemas::new(state.clone());
    Route::new()
        .at("/graphql", get(graphql_get).post(graphql))
        .at(format!("{}/:name", graphiql::PREFIX), get(graphiql::asset))
        .at("/export/license-keys.csv", get(export_csv))
        .at("/export/license-keys.json", get(export_json))
        .at("/offline-licence/public-key", get(offline_public_key))
        .at("/offline-licence/public-key.pem", get(offline_public_key_pem))
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/integrations/:id/webhook", poem::post(integrations::webhook))
        .nest("/portal", portal_routes(&state, &schemas))
        .nest("/admin", admin_routes(&state, &schemas))
        .data(state)
        .data(schemas)
        // Refusals from routing (unknown path, wrong method) carry the same headers as answers.
        .catch_all_error(portal::error_page)
        .with(
            SetHeader::new()
                .overriding(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
                .overriding(header::REFERRER_POLICY, "no-referrer"),
        )
        .around(|ep, req| async move {
            let method = req.method().clone();
            let path = loggable_path(req.uri().path());
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
    let acceptor = abort::Abortable(TcpAcceptor::from_tokio(listener)?);
    Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(routes(state), shutdown, Some(SHUTDOWN_GRACE)).await
}

/// The key offline licence files are signed with, as JSON (no login).
#[handler]
fn offline_public_key(Data(state): Data<&AppState>) -> Response {
    let body = serde_json::json!({
        "algorithm": crate::services::offline::ALGORITHM,
        "keyId": state.offline.key_id(),
        "publicKey": state.offline.public_key_base64(),
    });
    json_response(StatusCode::OK, &body)
}

/// The same key as PEM (SubjectPublicKeyInfo).
#[handler]
fn offline_public_key_pem(Data(state): Data<&AppState>) -> Response {
    match state.offline.public_key_pem() {
        Ok(pem) => Response::builder().content_type("application/x-pem-file").body(pem),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
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

/// A request path fit for the log: a portal link's token is cut to its
/// first 8 characters.
fn loggable_path(path: &str) -> String {
    match path.strip_prefix("/portal/link/") {
        Some(token) => format!("/portal/link/{}…", token.chars().take(8).collect::<String>()),
        None => path.to_string(),
    }
}

/// The customer portal over the public schema, with the session cookie as the caller's token.
fn portal_routes(state: &AppState, schemas: &Schemas) -> impl Endpoint + use<> {
    let options = portal::PortalOptions {
        csrf_key: state.jwt.portal_csrf_key(),
        secure_cookies: state.config.public_url.as_deref().is_some_and(|u| u.starts_with("https://")),
        max_form_bytes: state.config.max_body_bytes,
        max_upload_bytes: state.config.max_upload_bytes,
    };
    portal::routes(schemas.public.clone(), PortalSeam(state.clone()), options)
}

/// The admin portal over the staff schema, with the admin session cookie as
/// the caller's token (never accepted by `POST /graphql`).
fn admin_routes(state: &AppState, schemas: &Schemas) -> impl Endpoint + use<> {
    let options = portal::PortalOptions {
        csrf_key: state.jwt.portal_csrf_key(),
        secure_cookies: state.config.public_url.as_deref().is_some_and(|u| u.starts_with("https://")),
        max_form_bytes: state.config.max_body_bytes,
        max_upload_bytes: state.config.max_upload_bytes,
    };
    portal::admin::routes(schemas.staff.clone(), AdminSeam(state.clone()), options)
}

/// The admin portal's identity: the session cookie's token, checked exactly
/// as a bearer token is and required to belong to an open staff session (a
/// bearer token pasted into the cookie is nobody); the environment cookie
/// chooses the environment within what the token allows.
struct AdminSeam(AppState);

impl AdminSeam {
    /// The request's context: the session's staff member (nobody when the
    /// token is not an open staff session) in the chosen environment.
    async fn context(&self, req: &Request, session: Option<&str>) -> RequestContext {
        let state = &self.0;
        let who = match session {
            Some(token) => users::authenticate(&state.db, &state.jwt, token)
                .await
                .ok()
                .filter(|who| who.session_id.is_some() && who.viewer.role().is_staff()),
            None => None,
        };
        let chosen = req
            .cookie()
            .get(portal::admin::ENVIRONMENT_COOKIE)
            .and_then(|c| Environment::parse(c.value_str()))
            .unwrap_or_default();
        let mut context = match who {
            Some(who) => {
                let environment = who.environment.unwrap_or(chosen);
                let mut context = RequestContext::new(who.viewer, environment);
                context.issued_at = who.issued_at;
                context.session_id = who.session_id;
                context
            }
            None => RequestContext::new(Viewer::Anonymous, chosen),
        };
        context.host = req.header("host").map(str::to_string);
        context.client_address = client_address(req, state.config.client_address_header.as_deref());
        context
    }
}

impl portal::PortalAuth for AdminSeam {
    fn request_data<'a>(
        &'a self,
        req: &'a Request,
        session: Option<&'a str>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = async_graphql::Data> + Send + 'a>> {
        Box::pin(async move {
            let mut data = async_graphql::Data::default();
            data.insert(self.context(req, session).await);
            data.insert(RequestLoaders::new(&self.0.db));
            data
        })
    }

    fn export<'a>(
        &'a self,
        req: &'a Request,
        session: &'a str,
        export: portal::Export,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send + 'a>> {
        Box::pin(async move {
            let context = self.context(req, Some(session)).await;
            let params = ExportParams {
                tag_id: export.tag_id,
                product_id: export.product_id,
                status: export.status,
                search: export.search,
            };
            let format = if export.json { ExportFormat::Json } else { ExportFormat::Csv };
            stream_export(req, &self.0, &context, params, format).await.unwrap_or_else(|refused| refused)
        })
    }
}

/// The portal's identity: the session cookie's token, checked exactly as a
/// bearer token is; no cookie (or an ended session) is nobody.
struct PortalSeam(AppState);

impl portal::PortalAuth for PortalSeam {
    fn request_data<'a>(
        &'a self,
        req: &'a Request,
        session: Option<&'a str>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = async_graphql::Data> + Send + 'a>> {
        Box::pin(async move {
            let state = &self.0;
            let who = match session {
                Some(token) => users::authenticate(&state.db, &state.jwt, token).await.ok(),
                None => None,
            };
            let mut context = match who {
                Some(who) => {
                    let mut context = RequestContext::new(who.viewer, who.environment.unwrap_or_default());
                    context.issued_at = who.issued_at;
                    context.session_id = who.session_id;
                    context
                }
                None => RequestContext::new(Viewer::Anonymous, Environment::default()),
            };
            context.host = req.header("host").map(str::to_string);
            context.client_address = client_address(req, state.config.client_address_header.as_deref());
            let mut data = async_graphql::Data::default();
            data.insert(context);
            data.insert(RequestLoaders::new(&state.db));
            data
        })
    }
}

#[handler]
async fn graphql(req: &Request, body: Body, Data(state): Data<&AppState>, Data(schemas): Data<&Schemas>) -> Response {
    let mut body = Some(body);
    let answer = match execute(req, &mut body, state, schemas).await {
        Ok(resp) => resp,
        Err(mut resp) => {
            // A refusal must leave the connection usable, or say it will not
            // be: a body never read (refused before reading) is taken off the
            // wire when it is within the limit; otherwise, and when reading
            // stopped part way, the connection closes, announced.
            let drained = match body.take() {
                Some(unread) => body::drain(unread).await,
                None => false,
            };
            if !drained {
                resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            resp
        }
    };
    in_requested_type(req, answer)
}

async fn execute(
    req: &Request,
    body_slot: &mut Option<Body>,
    state: &AppState,
    schemas: &Schemas,
) -> Result<Response, Response> {
    let media_type = req
        .content_type()
        .and_then(|ct| ct.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let multipart = media_type == "multipart/form-data";
    if media_type != "application/json" && !multipart {
        return Err(error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::invalid("Content-Type", "must be application/json (or multipart/form-data for uploads)"),
        ));
    }
    if multipart && req.headers().get(header::AUTHORIZATION).is_none() {
        // A cross-site form can send multipart but never an Authorization header.
        return Err(error_response(
            StatusCode::UNAUTHORIZED,
            AppError::Unauthenticated("uploads need Authorization: Bearer <token>".into()),
        ));
    }
    let context = request_context(req, state).await?;

    let body = body_slot.take().ok_or_else(|| {
        error_response(StatusCode::INTERNAL_SERVER_ERROR, AppError::internal("the body was read twice"))
    })?;
    let request = if multipart {
        let limits =
            multipart::Limits { json_bytes: state.config.max_body_bytes, file_bytes: state.config.max_upload_bytes };
        let shared = body::Shared::new(body);
        match multipart::receive(req.content_type().unwrap_or_default(), shared.stream(), limits).await {
            Ok(request) => request,
            Err((status, e)) => {
                *body_slot = Some(shared.rest());
                return Err(error_response(status, e));
            }
        }
    } else {
        let bytes = match body::read_up_to(body, state.config.max_body_bytes).await {
            body::Read::Whole(bytes) => bytes,
            body::Read::TooLong(rest) => {
                *body_slot = Some(rest);
                return Err(error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    AppError::invalid("body", format!("must be at most {} bytes", state.config.max_body_bytes)),
                ));
            }
            body::Read::Broken => {
                return Err(error_response(StatusCode::BAD_REQUEST, AppError::invalid("body", "was cut off")));
            }
        };
        serde_json::from_slice::<async_graphql::Request>(&bytes).map_err(|e| {
            error_response(
                StatusCode::BAD_REQUEST,
                AppError::invalid("body", format!("is not a GraphQL request in JSON: {e}")),
            )
        })?
    };

    run(req, state, schemas, context, request, !multipart).await
}

/// Runs a GraphQL request with `context`'s identity and answers it in the
/// media type the client asked for (see [`graphql_response_wanted`]).
async fn run(
    req: &Request,
    state: &AppState,
    schemas: &Schemas,
    context: RequestContext,
    request: async_graphql::Request,
    prepare: bool,
) -> Result<Response, Response> {
    if let Some(refused) = crate::graphql::nesting::refusal(&request.query) {
        return Err(error_response(StatusCode::BAD_REQUEST, refused));
    }
    let schema = if context.viewer.role().is_staff() { &schemas.staff } else { &schemas.public };
    let mut request = request;
    if prepare && let Err(refused) = schemas.documents.prepare(&mut request) {
        return Ok(answer(req, async_graphql::Response::from_errors(vec![refused])));
    }
    let request = request.data(context).data(RequestLoaders::new(&state.db));
    Ok(answer(req, schema.execute(request).await))
}

/// A GraphQL response in the media type the client asked for.
fn answer(req: &Request, response: async_graphql::Response) -> Response {
    if !graphql_response_wanted(req) {
        return json_response(StatusCode::OK, &response);
    }
    // `application/graphql-response+json`: a request that never reached
    // execution (it did not parse, validate or coerce) is a 4xx without `data`.
    let refused_before_execution = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| {
            e.extensions.as_ref().and_then(|x| x.get("code")).is_some_and(|code| {
                matches!(
                    code,
                    async_graphql::Value::String(c) if crate::graphql::codes::BEFORE_EXECUTION.contains(&c.as_str())
                )
            })
        });
    let mut body = serde_json::to_value(&response).unwrap_or_default();
    let status = if refused_before_execution {
        if let Some(fields) = body.as_object_mut() {
            fields.remove("data");
        }
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    json_response(status, &body)
}

/// The GraphQL-over-HTTP response type: the client's `Accept` lists
/// `application/graphql-response+json` alone or before `application/json`.
/// Without it (or without `Accept`) answers stay `application/json`.
fn graphql_response_wanted(req: &Request) -> bool {
    let accept =
        req.headers().get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let refused =
            parts.any(|p| matches!(p.trim().replace(' ', "").as_str(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
        if refused {
            continue;
        }
        match media.as_str() {
            GRAPHQL_RESPONSE_JSON => return true,
            "application/json" => return false,
            _ => {}
        }
    }
    false
}

/// The media type of the GraphQL-over-HTTP specification.
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// Puts the answer in `application/graphql-response+json` when the client
/// asked for it (refusals before execution included).
fn in_requested_type(req: &Request, mut resp: Response) -> Response {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json && graphql_response_wanted(req) {
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/graphql-response+json; charset=utf-8"));
    }
    resp
}

/// `GET /graphql`: GraphiQL for a browser asking for HTML; otherwise a query
/// (never a mutation: 405 with `Allow: POST`) from the URL's `query`,
/// `variables`, `operationName` and `extensions`, for cacheable reads.
#[handler]
async fn graphql_get(
    req: &Request,
    socket: Option<WebSocket>,
    Data(state): Data<&AppState>,
    Data(schemas): Data<&Schemas>,
) -> Response {
    if let Some(socket) = socket.filter(|_| socket::is_upgrade(req)) {
        return socket::upgrade(req, socket, state, schemas);
    }
    let accept = req.header("accept").unwrap_or_default().to_ascii_lowercase();
    let params: GetParams = req.params().unwrap_or_default();
    // No query, and no GraphQL client asking (a browser, a plain fetch): the IDE.
    let graphql_client = accept.contains("application/json") || accept.contains(GRAPHQL_RESPONSE_JSON);
    if params.query.is_none() && (accept.contains("text/html") || !graphql_client) {
        return graphiql::page("/graphql");
    }
    let answer = get_request(req, state, schemas, params).await.unwrap_or_else(|refused| refused);
    in_requested_type(req, answer)
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    variables: Option<String>,
    operation_name: Option<String>,
    extensions: Option<String>,
}

async fn get_request(
    req: &Request,
    state: &AppState,
    schemas: &Schemas,
    params: GetParams,
) -> Result<Response, Response> {
    let query = params.query.unwrap_or_default();
    if query.len() > state.config.max_body_bytes {
        return Err(error_response(
            StatusCode::URI_TOO_LONG,
            AppError::invalid("query", format!("must be at most {} bytes", state.config.max_body_bytes)),
        ));
    }
    let json = |field: &str, text: Option<String>| -> Result<Option<serde_json::Value>, AppError> {
        match text.filter(|t| !t.trim().is_empty()) {
            None => Ok(None),
            Some(text) => serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .filter(serde_json::Value::is_object)
                .map(Some)
                .ok_or_else(|| AppError::invalid(field, "must be a JSON object")),
        }
    };
    let refused = |e| error_response(StatusCode::BAD_REQUEST, e);
    let variables = json("variables", params.variables).map_err(refused)?;
    let extensions = json("extensions", params.extensions).map_err(refused)?;
    // Without a text, only a persisted query's hash says what to run.
    let persisted = extensions.as_ref().is_some_and(|e| e.get("persistedQuery").is_some());
    if query.trim().is_empty() && !persisted {
        return Err(refused(AppError::invalid("query", "is required")));
    }
    if let Some(refused) = crate::graphql::nesting::refusal(&query) {
        return Err(error_response(StatusCode::BAD_REQUEST, refused));
    }
    let mut request = async_graphql::Request::new(query);
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    if let Some(variables) = variables {
        request = request.variables(async_graphql::Variables::from_json(variables));
    }
    if let Some(serde_json::Value::Object(extensions)) = extensions {
        for (key, value) in extensions {
            request.extensions.insert(key, async_graphql::Value::from_json(value).unwrap_or_default());
        }
    }
    if let Err(refused) = schemas.documents.prepare(&mut request) {
        return Ok(answer(req, async_graphql::Response::from_errors(vec![refused])));
    }
    // Only queries travel by GET, persisted ones included: a mutation would
    // let a link change state.
    let parsed = request.parsed_query().ok().cloned();
    let document = parsed.or_else(|| {
        let shallow = crate::graphql::nesting::refusal(&request.query).is_none();
        shallow.then(|| async_graphql::parser::parse_query(&request.query).ok()).flatten()
    });
    if let Some(document) = document {
        let operation = match (&request.operation_name, &document.operations) {
            (Some(name), async_graphql::parser::types::DocumentOperations::Multiple(ops)) => ops.get(name.as_str()),
            (_, async_graphql::parser::types::DocumentOperations::Single(op)) => Some(op),
            _ => None,
        };
        if operation.is_some_and(|op| op.node.ty != async_graphql::parser::types::OperationType::Query) {
            let mut resp = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                AppError::invalid("query", "mutations and subscriptions need POST"),
            );
            resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            return Err(resp);
        }
    }
    let context = request_context(req, state).await?;
    // Prepared above.
    run(req, state, schemas, context, request, false).await
}

/// Who is asking and in which environment, from the bearer token and the
/// environment header; a refusal is already the response to send.
async fn request_context(req: &Request, state: &AppState) -> Result<RequestContext, Response> {
    let environment = request_environment(req).map_err(|e| error_response(StatusCode::BAD_REQUEST, e))?;
    let token = bearer_token(req).map_err(|e| error_response(StatusCode::UNAUTHORIZED, e))?;
    let mut context = context_for(state, token, environment).await.map_err(|e| error_response(status_of(&e), e))?;
    context.host = req.header("host").map(str::to_string);
    context.client_address = client_address(req, state.config.client_address_header.as_deref());
    Ok(context)
}

/// The viewer of `token` (anonymous without one) in the environment asked
/// for, which must be the token's when the token is limited to one.
pub(crate) async fn context_for(
    state: &AppState,
    token: Option<&str>,
    asked: Option<Environment>,
) -> Result<RequestContext, AppError> {
    let who = match token {
        None => {
            users::Authenticated { viewer: Viewer::Anonymous, environment: None, issued_at: None, session_id: None }
        }
        Some(token) => users::authenticate(&state.db, &state.jwt, token).await?,
    };
    let environment = match (asked, who.environment) {
        (Some(asked), Some(allowed)) if asked != allowed => {
            return Err(AppError::Forbidden(format!("the token is limited to the {allowed} environment")));
        }
        (asked, allowed) => asked.or(allowed).unwrap_or_default(),
    };
    let mut context = RequestContext::new(who.viewer, environment);
    context.issued_at = who.issued_at;
    context.session_id = who.session_id;
    Ok(context)
}

/// The client's address: the last one in the configured proxy header when
/// there is one, else the connection's peer.
fn client_address(req: &Request, header: Option<&str>) -> Option<std::net::IpAddr> {
    let forwarded = header.and_then(|name| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
            .next_back()
    });
    forwarded.or_else(|| req.remote_addr().as_socket_addr().map(|a| a.ip()))
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExportParams {
    tag_id: Option<String>,
    product_id: Option<String>,
    status: Option<String>,
    search: Option<String>,
}

#[handler]
async fn export_csv(req: &Request, Data(state): Data<&AppState>) -> Response {
    export(req, state, ExportFormat::Csv).await.unwrap_or_else(|resp| resp)
}

#[handler]
async fn export_json(req: &Request, Data(state): Data<&AppState>) -> Response {
    export(req, state, ExportFormat::Json).await.unwrap_or_else(|resp| resp)
}

/// Streams the keys the query parameters choose (`tagId`, `productId`, `status`, `search`).
async fn export(req: &Request, state: &AppState, format: ExportFormat) -> Result<Response, Response> {
    let context = request_context(req, state).await?;
    let params: ExportParams = req.params().map_err(|e| {
        error_response(StatusCode::BAD_REQUEST, AppError::invalid("query", format!("is not understood: {e}")))
    })?;
    stream_export(req, state, &context, params, format).await
}

/// The export of `params`'s keys with `context`'s identity, as a download.
async fn stream_export(
    req: &Request,
    state: &AppState,
    context: &RequestContext,
    params: ExportParams,
    format: ExportFormat,
) -> Result<Response, Response> {
    let status = params
        .status
        .as_deref()
        .map(|s| {
            entity::LicenseStatus::iter()
                .find(|status| status.as_str().eq_ignore_ascii_case(s))
                .ok_or_else(|| AppError::invalid("status", format!("{s:?} is not a licence status")))
        })
        .transpose()
        .map_err(|e| error_response(StatusCode::BAD_REQUEST, e))?;
    let filter = KeyFilter {
        tag: params.tag_id.as_deref().map(TagRef::parse),
        status,
        search: params.search,
        product_id: params.product_id,
        ..KeyFilter::default()
    };
    let stream = export::stream_as_job(state.db.clone(), &state.jobs, context, &filter, format)
        .await
        .map_err(|e| error_response(status_of(&e), e))?;
    // A failure after the first bytes aborts the connection, so the client
    // sees a broken download rather than a short file.
    let (local, remote) = (req.local_addr().clone(), req.remote_addr().clone());
    let stream = stream.map(move |chunk| {
        chunk.map_err(|e| {
            tracing::error!(error = %e.client_message(), "export stopped");
            abort::abort(&local, &remote);
            std::io::Error::other(e.client_message())
        })
    });
    Ok(Response::builder()
        .content_type(format.content_type())
        .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"license-keys.{}\"", format.extension()))
        .body(Body::from_bytes_stream(stream)))
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
    let value =
        value.to_str().map_err(|_| AppError::Unauthenticated("the Authorization header is not readable".into()))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(AppError::Unauthenticated("use Authorization: Bearer <token>".into())),
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
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => Response::builder().status(status).content_type("application/json").body(bytes),
        Err(err) => {
            tracing::error!(error = %err, "serialising a response");
            Response::builder().status(StatusCode::INTERNAL_SERVER_ERROR).body("internal error")
        }
    }
}
