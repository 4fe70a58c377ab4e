//! The longest text each kind of input may be, and the checks that keep
//! hostile input (a 50,000-character search, a NUL byte, wildcards) from ever
//! reaching a query as anything but literal text. A value over its limit is
//! `INVALID_INPUT` naming the field, before the database is touched.
//!
//! The limits of named values live with their rules (`ProductName::MAX`,
//! `TagName::MAX`, `Password::MAX`, `products::MAX_DESCRIPTION`,
//! `import::MAX_KEY_CHARS`, …); the ones here are for inputs that have no
//! value type of their own. The README's "Input limits" table lists them all.

use crate::error::{AppError, AppResult};
use serde_json::Value;

/// Longest search term, in characters (after trimming). Longer terms are
/// refused rather than cut: SQLite refuses LIKE patterns beyond 50,000 bytes,
/// and no name, email or key Keysmith stores is longer than this anyway
/// (keys: 256 characters; a longer term could not match one).
pub const SEARCH: usize = 256;
/// Longest exact-match filter word (audit kinds and actions, job kinds,
/// delivery statuses), in characters.
pub const FILTER_WORD: usize = 100;
/// Longest URL (webhook endpoints), in characters.
pub const URL: usize = 2048;
/// Longest list cursor (`after`), in characters.
pub const CURSOR: usize = 8192;
/// Largest JSON object (licence metadata, feature flags, a generator's
/// default flags), serialised, in bytes.
pub const JSON_BYTES: usize = 10 * 1024;

fn too_long(field: &str, max: usize, len: usize) -> AppError {
    AppError::invalid(field, format!("must be at most {max} characters (got {len})"))
}

fn nul(field: &str) -> AppError {
    AppError::invalid(field, "must not contain NUL characters (U+0000)")
}

/// A search as a client typed it, trimmed; `None` when blank. Every character
/// searches literally — `%`, `_`, `\`, quotes, full-text operators, any
/// Unicode — except NUL, which no stored text can hold (PostgreSQL refuses it
/// in text outright), so a term with one is refused instead of silently
/// changed into another search.
pub fn search<'a>(field: &str, raw: Option<&'a str>) -> AppResult<Option<&'a str>> {
    let Some(term) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let len = term.chars().count();
    if len > SEARCH {
        return Err(too_long(field, SEARCH, len));
    }
    if term.contains('\0') {
        return Err(nul(field));
    }
    Ok(Some(term))
}

/// An exact-match filter value (a kind, an action, a status): at most
/// [`FILTER_WORD`] characters without control characters. Kept as given: a
/// value that names nothing simply matches nothing.
pub fn filter_word<'a>(field: &str, raw: Option<&'a str>) -> AppResult<Option<&'a str>> {
    let Some(word) = raw else { return Ok(None) };
    at_most(field, word, FILTER_WORD)?;
    if word.chars().any(char::is_control) {
        return Err(AppError::invalid(field, "must not contain control characters"));
    }
    Ok(Some(word))
}

/// Refuses `raw` when it is longer than `max` characters. (What else it may
/// hold is the rule of its field.)
pub fn at_most(field: &str, raw: &str, max: usize) -> AppResult<()> {
    // Counting stops just past the limit: a huge input costs no more than a small one.
    if raw.chars().take(max + 1).count() > max {
        return Err(too_long(field, max, raw.chars().count()));
    }
    Ok(())
}

/// A JSON object of at most [`JSON_BYTES`] serialised, with no NUL in any key
/// or string (PostgreSQL's `jsonb` cannot hold one).
pub fn json_object(field: &str, value: Value) -> AppResult<Value> {
    if !value.is_object() {
        return Err(AppError::invalid(field, "must be a JSON object"));
    }
    let size = value.to_string().len();
    if size > JSON_BYTES {
        return Err(AppError::invalid(field, format!("must be at most 10 KB as JSON (got {size} bytes)")));
    }
    if holds_nul(&value) {
        return Err(nul(field));
    }
    Ok(value)
}

fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn searches_are_trimmed_bounded_and_refuse_nul_only() {
        assert_eq!(search("search", Some("  ")).unwrap(), None);
        assert_eq!(search("search", None).unwrap(), None);
        for literal in [r#""a" OR b*"#, r"%_\", "NEAR(a b) ^c:d -e", "Zoë Ünal", "tab\there"] {
            assert_eq!(search("search", Some(literal)).unwrap(), Some(literal));
        }
        let long = search("search", Some(&"x".repeat(50_000))).unwrap_err();
        assert_eq!((long.code(), long.field()), ("INVALID_INPUT", Some("search")));
        assert!(long.client_message().contains("at most 256"), "{}", long.client_message());
        assert!(search("search", Some(&"x".repeat(SEARCH))).is_ok());
        let nul = search("search", Some("a\0b")).unwrap_err();
        assert_eq!(nul.field(), Some("search"));
    }

    #[test]
    fn json_objects_are_bounded_and_hold_no_nul() {
        assert!(json_object("metadata", json!({ "a": [1, "b"] })).is_ok());
        assert_eq!(json_object("metadata", json!([1])).unwrap_err().field(), Some("metadata"));
        assert!(json_object("metadata", json!({ "a": "x".repeat(JSON_BYTES) })).is_err());
        assert!(json_object("metadata", json!({ "a": ["\u{0}"] })).is_err());
        assert!(json_object("metadata", json!({ "\u{0}": 1 })).is_err());
    }

    #[test]
    fn words_and_texts_have_their_maximum() {
        assert_eq!(filter_word("action", Some("license.created")).unwrap(), Some("license.created"));
        assert!(filter_word("action", Some(&"a".repeat(FILTER_WORD + 1))).is_err());
        assert!(filter_word("action", Some("a\u{1}")).is_err());
        assert!(at_most("url", &"u".repeat(URL), URL).is_ok());
        assert_eq!(at_most("url", &"u".repeat(URL + 1), URL).unwrap_err().field(), Some("url"));
    }
}
