//! Subscriptions over WebSocket on `/graphql`: the `graphql-transport-ws`
//! protocol (what the npm `graphql-ws` client speaks; the older `graphql-ws`
//! subprotocol of the unmaintained `subscriptions-transport-ws` is refused,
//! as its clients never answer the server's pings).
//!
//! - `connection_init` carries `{"Authorization": "Bearer …"}` (and may carry
//!   `X-Keysmith-Environment`): without a token the socket closes with 4401,
//!   with a token that is not valid with 4403, and without `connection_init`
//!   within 10 seconds with 4408.
//! - The token is checked again every few seconds: the socket closes with
//!   4401 when it expires and 4403 when it is ended (sign-out, a disabled
//!   account, a changed role or password, a closed portal session).
//! - Bounded: [`PER_CONNECTION`] subscriptions on a connection and
//!   `PER_TOKEN` across one token's connections (more are refused with
//!   `RATE_LIMITED`); the server pings every 15 seconds and closes a
//!   connection silent for a minute (3008); a client that does not read what
//!   is sent within 10 seconds is disconnected, and one that falls thousands
//!   of events behind is closed with 1008 (see `graphql::subscription`). A
//!   message may be as large as a request body (`KEYSMITH_MAX_BODY_BYTES`).

use super::context_for;
use crate::AppState;
use crate::auth::Viewer;
use crate::graphql::Schemas;
use crate::graphql::loaders::RequestLoaders;
use crate::graphql::subscription::Slots;
use async_graphql::http::{WebSocketProtocols, WsMessage};
use async_graphql::{Data, Executor};
use entity::Environment;
use futures_util::stream::BoxStream;
use futures_util::{SinkExt, StreamExt};
use poem::web::websocket::{Message, WebSocket, WebSocketConfig};
use poem::{IntoResponse, Request, Response};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

/// Subscriptions one connection may hold at once.
pub const PER_CONNECTION: usize = 20;
/// How long a new connection has to send `connection_init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server pings.
const PING_EVERY: Duration = Duration::from_secs(15);
/// How long a connection may say nothing (not even a pong) before it is closed.
const SILENCE: Duration = Duration::from_secs(60);
/// How long one message may take to go out before the client is taken for gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the token of an open connection is checked again.
const RECHECK: Duration = Duration::from_secs(3);

/// The signed-in connection: whose token, until when, and which schema.
struct Signed {
    token: String,
    expires_at: u64,
    staff: bool,
}

/// Runs each request on the staff schema or the public one, as the
/// connection's token says (decided at `connection_init`).
#[derive(Clone)]
struct ConnectionExecutor {
    schemas: Schemas,
    signed: Arc<OnceLock<Signed>>,
}

impl ConnectionExecutor {
    fn schema(&self) -> &crate::graphql::KeysmithSchema {
        match self.signed.get() {
            Some(signed) if signed.staff => &self.schemas.staff,
            _ => &self.schemas.public,
        }
    }
}

impl Executor for ConnectionExecutor {
    async fn execute(&self, request: async_graphql::Request) -> async_graphql::Response {
        self.schema().execute(request).await
    }

    fn execute_stream(
        &self,
        request: async_graphql::Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, async_graphql::Response> {
        self.schema().execute_stream_with_session_data(request, session_data.unwrap_or_default())
    }
}

/// Whether the request asks to become a WebSocket.
pub fn is_upgrade(req: &Request) -> bool {
    req.header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Accepts the WebSocket when it speaks a GraphQL subprotocol.
pub fn upgrade(req: &Request, socket: WebSocket, state: &AppState, schemas: &Schemas) -> Response {
    let protocol = req
        .header("sec-websocket-protocol")
        .and_then(|list| list.split(',').find_map(|p| WebSocketProtocols::from_str(p.trim()).ok()))
        .filter(|p| *p == WebSocketProtocols::GraphQLWS);
    let Some(protocol) = protocol else {
        return (poem::http::StatusCode::BAD_REQUEST, "subscriptions need the graphql-transport-ws subprotocol")
            .into_response();
    };
    // A message is held to the request body limit; what waits to go out, to a few MiB.
    let limit = state.config.max_body_bytes;
    let config = WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
        .max_write_buffer_size(4 * 1024 * 1024);
    // Who connects, for the per-address rate limits of the client calls.
    let origin = Origin {
        host: req.header("host").map(str::to_string),
        address: super::client_address(req, state.config.client_address_header.as_deref()),
    };
    let (state, schemas) = (state.clone(), schemas.clone());
    socket
        .config(config)
        .protocols([WebSocketProtocols::GraphQLWS.sec_websocket_protocol()])
        .on_upgrade(move |stream| serve(stream, protocol, state, schemas, origin))
        .into_response()
}

/// The close code to send instead of the protocol's: a refused
/// `connection_init` (4401, 4403) or a message too large (1009).
type Refusal = Arc<Mutex<Option<u16>>>;

/// The connecting client's host header and address.
#[derive(Clone)]
struct Origin {
    host: Option<String>,
    address: Option<std::net::IpAddr>,
}

async fn serve(
    stream: poem::web::websocket::WebSocketStream,
    protocol: WebSocketProtocols,
    state: AppState,
    schemas: Schemas,
    origin: Origin,
) {
    let (mut sink, source) = stream.split();
    let signed: Arc<OnceLock<Signed>> = Arc::default();
    let refusal: Refusal = Arc::default();
    let (close, mut closing) = watch::channel(None::<(u16, String)>);
    let executor = ConnectionExecutor { schemas, signed: signed.clone() };
    let init = {
        let (state, signed, refusal, close) = (state.clone(), signed.clone(), refusal.clone(), close.clone());
        move |payload: serde_json::Value| async move {
            match sign_in(&state, &payload, origin).await {
                Ok((data, who)) => {
                    let room = state.subscription_rooms.of(&who.token);
                    let _ = signed.set(who);
                    let mut data = data;
                    data.insert(Slots { connection: Arc::new(Semaphore::new(PER_CONNECTION)), token: room, close });
                    Ok(data)
                }
                Err((code, message)) => {
                    *refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(code);
                    Err(async_graphql::Error::new(message))
                }
            }
        }
    };
    // A read error ends the connection; a message past the size limit says so (1009).
    let oversized = refusal.clone();
    let incoming = source
        .take_while(move |message| {
            if let Err(e) = message
                && e.to_string().contains("Message too long")
            {
                *oversized.lock().unwrap_or_else(|p| p.into_inner()) = Some(1009);
            }
            futures_util::future::ready(message.is_ok())
        })
        .filter_map(|message| {
            futures_util::future::ready(match message {
                Ok(Message::Text(text)) => Some(text.into_bytes()),
                Ok(Message::Binary(bytes)) => Some(bytes),
                _ => None,
            })
        });
    let mut graphql = async_graphql::http::WebSocket::new(executor, incoming, protocol)
        .on_connection_init(init)
        .keepalive_timeout(SILENCE);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
    let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
    tokio::pin!(init_deadline);
    loop {
        let step = tokio::select! {
            next = graphql.next() => match next {
                None => match refusal.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    Some(code) => Step::Close(code, "Message too big".into()),
                    None => Step::End,
                },
                Some(WsMessage::Text(text)) => Step::Send(Message::Text(text)),
                Some(WsMessage::Close(code, reason)) => {
                    let code = refusal.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or(code);
                    Step::Close(code, reason)
                }
            },
            () = &mut init_deadline, if signed.get().is_none() => {
                Step::Close(4408, "Connection initialisation timeout".into())
            }
            _ = ping.tick() => {
                if signed.get().is_some() {
                    Step::Send(Message::Text(r#"{"type":"ping"}"#.to_string()))
                } else {
                    Step::Skip
                }
            }
            _ = recheck.tick() => match signed.get() {
                Some(who) => match still_valid(&state, who).await {
                    Some((code, reason)) => Step::Close(code, reason),
                    None => Step::Skip,
                },
                None => Step::Skip,
            },
            changed = closing.changed() => match changed.ok().and_then(|()| closing.borrow_and_update().clone()) {
                Some((code, reason)) => Step::Close(code, reason),
                None => Step::Skip,
            },
        };
        let (message, last) = match step {
            Step::Skip => continue,
            Step::End => break,
            Step::Send(message) => (message, false),
            Step::Close(code, reason) => (Message::close_with(code, reason), true),
        };
        // A client that is gone, or reads too slowly to be kept, is dropped.
        let sent = matches!(tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await, Ok(Ok(())));
        if last || !sent {
            break;
        }
    }
}

/// What the connection does next.
enum Step {
    Send(Message),
    Close(u16, String),
    Skip,
    End,
}

/// The connection's data and who signed in, or the close code and reason.
async fn sign_in(
    state: &AppState,
    payload: &serde_json::Value,
    origin: Origin,
) -> Result<(Data, Signed), (u16, String)> {
    let field = |name: &str| {
        payload.as_object().and_then(|fields| {
            fields.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).and_then(|(_, value)| value.as_str())
        })
    };
    let Some(authorization) = field("authorization") else {
        return Err((4401, "Unauthorized: connection_init must carry an Authorization bearer token".into()));
    };
    let Some(token) = authorization.strip_prefix("Bearer ").map(str::trim).filter(|t| !t.is_empty()) else {
        return Err((4403, "Forbidden: Authorization must be `Bearer <token>`".into()));
    };
    let environment = match field(super::ENVIRONMENT_HEADER) {
        None => None,
        Some(name) => Some(
            Environment::parse(name)
                .ok_or((4403, "Forbidden: X-Keysmith-Environment must be production or staging".to_string()))?,
        ),
    };
    let forbidden = |e: crate::error::AppError| (4403, format!("Forbidden: {}", e.client_message()));
    let mut context = context_for(state, Some(token), environment).await.map_err(forbidden)?;
    context.host = origin.host;
    context.client_address = origin.address;
    let staff = match context.viewer {
        Viewer::Staff { .. } => true,
        Viewer::Customer { .. } => false,
        _ => return Err((4403, "Forbidden: the token does not sign anyone in".into())),
    };
    let expires_at = state.jwt.verify(token).map(|claims| claims.exp).unwrap_or(0);
    let mut data = Data::default();
    data.insert(RequestLoaders::new(&state.db));
    data.insert(context);
    Ok((data, Signed { token: token.to_string(), expires_at, staff }))
}

/// `None` while the connection's token still stands; otherwise why not.
async fn still_valid(state: &AppState, who: &Signed) -> Option<(u16, String)> {
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    if now >= who.expires_at {
        return Some((4401, "Unauthorized: the token has expired".into()));
    }
    match crate::services::users::authenticate(&state.db, &state.jwt, &who.token).await {
        Ok(_) => None,
        Err(crate::error::AppError::Unauthenticated(reason)) => Some((4403, format!("Forbidden: {reason}"))),
        // The database could not say: keep the connection, ask again later.
        Err(_) => None,
    }
}
