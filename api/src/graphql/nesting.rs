//! The shape limits: documents whose brackets nest deeper than
//! [`MAX_NESTING`], or that spread fragments more than [`MAX_SPREADS`] times,
//! are refused before anything recursive reads them.
//!
//! GraphQL's parser and validator recurse once per level of a list, an input
//! object, an argument list or a selection set, and the validator's fragment
//! rules recurse once per fragment along a chain of spreads, so a small
//! document nested a few thousand levels deep (or a chain of a few thousand
//! fragments) would exhaust a worker thread's stack. The check here is a
//! single pass over the text that keeps two counters; it runs before every
//! parse, wherever the document comes from (JSON, multipart, the portals'
//! executors, the parsed-document cache).

use crate::error::AppError;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest};
use async_graphql::{Request, ServerError, ServerResult};
use std::sync::Arc;

/// Deepest nesting of `{`, `[` and `(` a document may have, counted
/// together: selection sets, argument lists, list and input-object values.
pub const MAX_NESTING: usize = 64;

/// Most fragment spreads and inline fragments (`...`) a document may hold.
pub const MAX_SPREADS: usize = 256;

/// Why `document` is refused, if it is: nested too deep or too many spreads.
pub fn refusal(document: &str) -> Option<AppError> {
    let shape = measure(document, MAX_NESTING, MAX_SPREADS);
    if shape.depth > MAX_NESTING {
        return Some(AppError::invalid(
            "query",
            format!(
                "nests brackets (selection sets, arguments, lists, input objects) more than {MAX_NESTING} levels deep"
            ),
        ));
    }
    if shape.spreads > MAX_SPREADS {
        return Some(AppError::invalid("query", format!("holds more than {MAX_SPREADS} fragment spreads (`...`)")));
    }
    None
}

/// Whether the brackets of `document` nest deeper than `limit`.
pub fn exceeds(document: &str, limit: usize) -> bool {
    measure(document, limit, usize::MAX).depth > limit
}

/// The deepest nesting past a limit, and the number of spreads seen.
struct Shape {
    depth: usize,
    spreads: usize,
}

/// Whether the brackets of `document` nest deeper than `depth_limit` (the
/// depth then reported) and how many `...` it holds, ignoring those inside
/// strings, block strings and comments. Reading stops at the first level past
/// `depth_limit` or spread past `spread_limit`, so the cost is one pass at most.
fn measure(document: &str, depth_limit: usize, spread_limit: usize) -> Shape {
    let text = document.as_bytes();
    let mut depth = 0usize;
    let mut spreads = 0usize;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'#' => {
                // A comment runs to the end of its line.
                while i < text.len() && text[i] != b'\n' && text[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if text[i..].starts_with(b"\"\"\"") => {
                // A block string ends at the next `"""` that is not escaped as `\"""`.
                i += 3;
                while i < text.len() {
                    if text[i..].starts_with(b"\\\"\"\"") {
                        i += 4;
                    } else if text[i..].starts_with(b"\"\"\"") {
                        i += 3;
                        break;
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'"' => {
                // A string ends at the next unescaped quote, or (unterminated) at the line's end.
                i += 1;
                while i < text.len() {
                    match text[i] {
                        b'\\' => i += 2,
                        b'"' => break,
                        b'\n' | b'\r' => break,
                        _ => i += 1,
                    }
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > depth_limit {
                    return Shape { depth, spreads };
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            b'.' if text[i..].starts_with(b"...") => {
                spreads += 1;
                if spreads > spread_limit {
                    return Shape { depth: 0, spreads };
                }
                i += 2;
            }
            _ => {}
        }
        i += 1;
    }
    Shape { depth: 0, spreads }
}

/// The schema extension that applies the limit to every request a schema
/// executes, before the document is parsed.
pub struct NestingLimit;

impl ExtensionFactory for NestingLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(NestingLimitExtension)
    }
}

struct NestingLimitExtension;

#[async_trait::async_trait]
impl Extension for NestingLimitExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if let Some(refused) = refusal(&request.query) {
            return Err(server_error(refused));
        }
        next.run(ctx, request).await
    }
}

fn server_error(err: AppError) -> ServerError {
    let gql: async_graphql::Error = err.into();
    let mut error = ServerError::new(gql.message, None);
    error.extensions = gql.extensions;
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(open: &str, close: &str, levels: usize, inner: &str) -> String {
        format!("{}{inner}{}", open.repeat(levels), close.repeat(levels))
    }

    #[test]
    fn counts_every_kind_of_bracket_together() {
        assert!(!exceeds("{ a { b } }", 2));
        assert!(exceeds("{ a { b { c } } }", 2));
        assert!(exceeds("{ a(x: [{y: 1}]) }", 3));
        assert!(!exceeds("{ a(x: [{y: 1}]) }", 4));
        let deep = format!(
            "mutation {{ v(input: {{key: \"k\", fingerprint: {}}}) {{ code }} }}",
            nested("[", "]", 2000, "\"x\"")
        );
        assert!(exceeds(&deep, MAX_NESTING));
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let text = format!(
            "{{ a(s: \"{}\", t: \"\\\"[[\", b: \"\"\"{} \\\"\"\" [[[ \"\"\") # {}\n}}",
            "[".repeat(100),
            "{".repeat(100),
            "(".repeat(100)
        );
        assert!(!exceeds(&text, 2), "{text}");
        // Past a comment's end of line, brackets count again.
        assert!(!exceeds("{ # {{{{\n a { b { c } } }", 3));
        assert!(exceeds("{ # {{{{\n a { b { c { d } } } }", 3));
    }

    #[test]
    fn spreads_are_counted_outside_strings() {
        assert!(refusal("{ ...a ...b }").is_none());
        let many = format!("{{ {} }}", "...f ".repeat(MAX_SPREADS + 1));
        assert!(refusal(&many).is_some_and(|e| e.client_message().contains("fragment spreads")));
        let quoted = format!("{{ a(s: \"{}\") }}", "...".repeat(MAX_SPREADS + 1));
        assert!(refusal(&quoted).is_none());
    }

    #[test]
    fn at_the_limit_the_parser_is_safe_and_past_it_the_document_is_refused() {
        let at = format!("{{ a(x: {}) }}", nested("[", "]", MAX_NESTING - 2, "1"));
        assert!(!exceeds(&at, MAX_NESTING));
        // A thread with a worker's stack parses the deepest document allowed.
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || async_graphql::parser::parse_query(&at).map(|_| ()))
            .expect("a thread")
            .join()
            .expect("no overflow")
            .expect("it parses");
        let past = format!("{{ a(x: {}) }}", nested("{y: ", "}", MAX_NESTING, "1"));
        assert!(exceeds(&past, MAX_NESTING));
    }
}
