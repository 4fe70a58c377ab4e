//! Every refusal carries a code: the errors async-graphql raises itself —
//! a document that does not parse, one that fails validation, depth and
//! complexity limits, variables and arguments that do not coerce — get the
//! documented `extensions.code` that Keysmith's own errors always had.

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Variables};
use std::sync::Arc;

/// The document is not GraphQL.
pub const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
/// The document asks for what the schema does not have, or breaks a rule.
pub const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
/// More fields than [`super::MAX_COMPLEXITY`].
pub const TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
/// Deeper than [`super::MAX_DEPTH`].
pub const TOO_DEEP: &str = "QUERY_TOO_DEEP";
/// A variable or argument value that is not of its type (a wrong scalar, a
/// missing required input field, an input field the type does not have).
pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";

/// An automatic persisted query's hash this node does not know: send the
/// document's text with it.
pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";

/// A subscription sent over HTTP: subscriptions run over WebSocket.
pub const WEBSOCKET_REQUIRED: &str = "WEBSOCKET_REQUIRED";

/// The codes of refusals before execution: a GraphQL-over-HTTP client asking
/// for `application/graphql-response+json` gets these as a 400 without `data`.
pub const BEFORE_EXECUTION: [&str; 7] = [
    PARSE_FAILED,
    VALIDATION_FAILED,
    TOO_COMPLEX,
    TOO_DEEP,
    BAD_USER_INPUT,
    PERSISTED_QUERY_NOT_FOUND,
    WEBSOCKET_REQUIRED,
];

/// A refusal with its code, in GraphQL's error shape.
pub fn refusal(message: &str, code: &str) -> ServerError {
    let mut error = ServerError::new(message, None);
    error.extensions.get_or_insert_with(Default::default).set("code", code);
    error
}

/// Adds the codes; registered on every schema.
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

/// `error` with `code`, unless it already has one.
fn coded(mut error: ServerError, code: &str) -> ServerError {
    let has = error.extensions.as_ref().is_some_and(|e| e.get("code").is_some());
    if !has {
        error.extensions.get_or_insert_with(Default::default).set("code", code);
    }
    error
}

/// The code of an error the validator raised.
fn validation_code(message: &str) -> &'static str {
    if message.starts_with("Query is too complex") {
        TOO_COMPLEX
    } else if message.starts_with("Query is nested too deep") {
        TOO_DEEP
    } else if is_bad_value(message) {
        // An argument's value (written in the document or given as a
        // variable) that is not of its type: unknown input fields included.
        BAD_USER_INPUT
    } else {
        VALIDATION_FAILED
    }
}

/// A value that is not of its type: a variable, or an argument.
fn is_bad_value(message: &str) -> bool {
    message.starts_with("Invalid value for argument")
        || message.starts_with("Failed to parse")
        || (message.starts_with("Variable \"") && (message.contains("Invalid value") || message.contains("is not")))
}

#[async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|e| coded(e, PARSE_FAILED))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    let code = validation_code(&e.message);
                    coded(e, code)
                })
                .collect()
        })
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        response.errors = std::mem::take(&mut response.errors)
            .into_iter()
            .map(|e| {
                if is_bad_value(&e.message) {
                    coded(e, BAD_USER_INPUT)
                } else if e.message.starts_with("Subscriptions are not supported") {
                    refusal(
                        "subscriptions run over WebSocket: connect to /graphql with the graphql-transport-ws protocol",
                        WEBSOCKET_REQUIRED,
                    )
                } else {
                    e
                }
            })
            .collect();
        response
    }
}
