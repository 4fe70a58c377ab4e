//! The one error type of the API. Each variant is what a client sees as
//! `extensions.code`; internal detail (SQL, driver messages) is logged here and
//! never sent.
//!
//! `AppError` deliberately does not implement `Display`: async-graphql turns any
//! `Display` error into a client message, so without it the only way into a
//! GraphQL response is the conversion below, which decides what leaks.

use async_graphql::ErrorExtensions;
use entity::{InvalidValue, TransitionError};
use sea_orm::{DbErr, SqlErr};

#[derive(Debug)]
pub enum AppError {
    /// `UNAUTHENTICATED`: no valid credentials where they are required (reason given).
    Unauthenticated(String),
    /// `FORBIDDEN`: the viewer's role may not do this.
    Forbidden(String),
    /// `NOT_FOUND`: no such thing in this environment (or not visible to the viewer).
    /// `field` names the input that referred to it, when there is one.
    NotFound { what: &'static str, field: Option<String> },
    /// `INVALID_INPUT`: a field broke a rule; nothing was changed.
    InvalidInput { field: String, reason: String },
    /// `INVALID_TRANSITION`: the licence's status does not allow the action.
    InvalidTransition(TransitionError),
    /// `CONFLICT`: the value clashes with existing data (a unique rule).
    Conflict { field: String, reason: String },
    /// `RATE_LIMITED`: too many requests; retry after the given seconds.
    RateLimited { retry_after_secs: u64 },
    /// `CONFLICT`: the transaction lost a race with a concurrent one (a unique
    /// rule hit by a row another transaction just wrote, a deadlock, a
    /// serialization failure). Nothing was changed; running it again is safe,
    /// and the services that can race retry it themselves.
    Contended(String),
    /// `INTERNAL`: anything else. The detail is logged, the client sees a generic message.
    Internal(String),
}

impl AppError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        AppError::InvalidInput { field: field.into(), reason: reason.into() }
    }

    pub fn not_found(what: &'static str) -> Self {
        AppError::NotFound { what, field: None }
    }

    pub fn not_found_in(what: &'static str, field: impl Into<String>) -> Self {
        AppError::NotFound { what, field: Some(field.into()) }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        AppError::Internal(detail.to_string())
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated(_) => "UNAUTHENTICATED",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::NotFound { .. } => "NOT_FOUND",
            AppError::InvalidInput { .. } => "INVALID_INPUT",
            AppError::InvalidTransition(_) => "INVALID_TRANSITION",
            AppError::Conflict { .. } | AppError::Contended(_) => "CONFLICT",
            AppError::RateLimited { .. } => "RATE_LIMITED",
            AppError::Internal(_) => "INTERNAL",
        }
    }

    /// The message a client may see.
    pub fn client_message(&self) -> String {
        match self {
            AppError::Unauthenticated(reason) => format!("not authenticated: {reason}"),
            AppError::Forbidden(reason) => format!("forbidden: {reason}"),
            AppError::NotFound { what, .. } => format!("{what} not found"),
            AppError::InvalidInput { field, reason } => format!("{field}: {reason}"),
            AppError::InvalidTransition(e) => e.to_string(),
            AppError::Conflict { field, reason } => format!("{field}: {reason}"),
            AppError::RateLimited { retry_after_secs } => {
                format!("too many requests; retry in {retry_after_secs} s")
            }
            AppError::Contended(_) => "the request collided with a concurrent one; send it again".to_string(),
            AppError::Internal(_) => "internal error".to_string(),
        }
    }

    /// The whole story, internal detail included: for operators (logs, the
    /// command line), never for API clients.
    pub fn detail(&self) -> String {
        match self {
            AppError::Internal(detail) => format!("internal error: {detail}"),
            other => other.client_message(),
        }
    }

    /// The input field the error is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            AppError::InvalidInput { field, .. } | AppError::Conflict { field, .. } => Some(field),
            AppError::NotFound { field, .. } => field.as_deref(),
            _ => None,
        }
    }
}

/// Unique indexes whose violation is the client's doing: (index name, the
/// column list SQLite reports, the input field, the reason).
const UNIQUE_RULES: &[(&str, &str, &str, &str)] = &[
    (
        "ux_product_environment_name",
        "product.environment, product.name",
        "name",
        "a product with this name already exists",
    ),
    ("ux_users_email", "users.email", "email", "a user with this email already exists"),
    (
        "ux_customer_environment_email",
        "customer.environment, customer.email",
        "email",
        "a customer with this email already exists",
    ),
    ("ux_tag_environment_name", "tag.environment, tag.name", "name", "a tag with this name already exists"),
    ("ux_generator_name", "generator.name", "name", "a generator with this name already exists"),
    (
        "ux_orders_environment_external",
        "orders.environment, orders.external_id",
        "externalId",
        "an order with this external id already exists",
    ),
];

/// The `CONFLICT` a unique-rule violation means for the client, if it is one we know.
pub fn conflict_from(err: &DbErr) -> Option<AppError> {
    let Some(SqlErr::UniqueConstraintViolation(message)) = err.sql_err() else {
        return None;
    };
    UNIQUE_RULES
        .iter()
        .find(|(index, columns, _, _)| message.contains(&format!("\"{index}\"")) || message.ends_with(columns))
        .map(|(_, _, field, reason)| AppError::Conflict { field: (*field).to_string(), reason: (*reason).to_string() })
}

/// Whether `err` is a race lost to a concurrent transaction: a deadlock or a
/// serialization failure (PostgreSQL SQLSTATE 40P01, 40001).
pub fn is_contention(err: &DbErr) -> bool {
    matches!(sqlstate(err).as_deref(), Some("40001" | "40P01"))
}

/// Whether `err` is PostgreSQL refusing a NUL character in text (SQLSTATE
/// 22021) or in JSON (22P05). Every named text input is checked before it
/// reaches the database; this is for the rest (an id with a NUL in it), so
/// that a NUL is the client's error, never an `INTERNAL` one.
fn is_nul_refusal(err: &DbErr) -> bool {
    matches!(sqlstate(err).as_deref(), Some("22021" | "22P05"))
}

/// The SQLSTATE of a database's error, when it has one.
fn sqlstate(err: &DbErr) -> Option<String> {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error;
    let runtime = match err {
        DbErr::Exec(e) | DbErr::Query(e) | DbErr::Conn(e) => e,
        _ => return None,
    };
    match runtime {
        RuntimeErr::SqlxError(e) => match e.as_ref() {
            Error::Database(db) => db.code().map(|code| code.into_owned()),
            _ => None,
        },
        _ => None,
    }
}

/// A write's error where a unique-rule violation means a concurrent
/// transaction got there first: [`AppError::Contended`], to be retried.
pub fn contended(err: DbErr) -> AppError {
    if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) || is_contention(&err) {
        AppError::Contended(err.to_string())
    } else {
        err.into()
    }
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        if is_contention(&err) {
            return AppError::Contended(err.to_string());
        }
        if is_nul_refusal(&err) {
            return AppError::invalid("input", "must not contain NUL characters (U+0000)");
        }
        conflict_from(&err).unwrap_or_else(|| AppError::Internal(format!("database: {err}")))
    }
}

impl From<InvalidValue> for AppError {
    fn from(err: InvalidValue) -> Self {
        AppError::InvalidInput { field: err.field, reason: err.reason }
    }
}

impl From<TransitionError> for AppError {
    fn from(err: TransitionError) -> Self {
        AppError::InvalidTransition(err)
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        if let AppError::Internal(detail) = &err {
            tracing::error!(error = %detail, "internal error");
        }
        let mut gql = async_graphql::Error::new(err.client_message());
        gql = gql.extend_with(|_, ext| {
            ext.set("code", err.code());
            if let Some(field) = err.field() {
                ext.set("field", field);
            }
            if let AppError::InvalidTransition(t) = &err {
                ext.set("from", t.from.as_str());
                ext.set("action", t.action.as_str());
            }
            if let AppError::RateLimited { retry_after_secs } = &err {
                ext.set("retryAfter", *retry_after_secs);
            }
        });
        gql
    }
}

/// An error DataLoaders share between the fields that asked for the same batch.
#[derive(Debug, Clone)]
pub struct SharedError(pub std::sync::Arc<AppError>);

impl From<DbErr> for SharedError {
    fn from(err: DbErr) -> Self {
        SharedError(std::sync::Arc::new(err.into()))
    }
}

impl From<SharedError> for async_graphql::Error {
    fn from(err: SharedError) -> Self {
        match &*err.0 {
            AppError::Internal(detail) => AppError::Internal(detail.clone()).into(),
            other => {
                let mut gql = async_graphql::Error::new(other.client_message());
                gql = gql.extend_with(|_, ext| ext.set("code", other.code()));
                gql
            }
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_keep_their_detail_out_of_the_message() {
        let err = AppError::from(DbErr::Custom("SELECT secret FROM users".into()));
        assert_eq!(err.code(), "INTERNAL");
        assert_eq!(err.client_message(), "internal error");
        let gql: async_graphql::Error = err.into();
        assert!(!gql.message.contains("SELECT"));
    }

    #[test]
    fn invalid_input_names_the_field() {
        let err = AppError::from(InvalidValue::new("name", "must not be empty"));
        assert_eq!(err.code(), "INVALID_INPUT");
        assert_eq!(err.field(), Some("name"));
        assert_eq!(err.client_message(), "name: must not be empty");
    }
}
