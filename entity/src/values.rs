//! Validated value types: a value that exists is valid. Each `parse` names the
//! input field it was given for, so a refusal tells the client which field and why.

use std::fmt;

/// A value refused by a domain rule: the input field and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidValue {
    pub field: String,
    pub reason: String,
}

impl InvalidValue {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

/// Trims `raw` and checks it is between `min` and `max` characters without
/// control characters (line breaks allowed when `multiline`).
pub fn bounded_text(field: &str, raw: &str, min: usize, max: usize, multiline: bool) -> Result<String, InvalidValue> {
    let text = raw.trim();
    let len = text.chars().count();
    if len < min {
        return Err(InvalidValue::new(
            field,
            if min == 1 { "must not be empty".to_string() } else { format!("must be at least {min} characters") },
        ));
    }
    if len > max {
        return Err(InvalidValue::new(field, format!("must be at most {max} characters (got {len})")));
    }
    if text.chars().any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\r' || c == '\t'))) {
        return Err(InvalidValue::new(field, "must not contain control characters"));
    }
    Ok(text.to_string())
}

/// A product's display name: 1–200 characters, unique per environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    pub const MAX: usize = 200;

    pub fn parse(field: &str, raw: &str) -> Result<Self, InvalidValue> {
        bounded_text(field, raw, 1, Self::MAX, false).map(Self)
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An email address, stored lowercased so that lookups ignore case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Longest address, in characters (and in bytes: RFC 5321's 254).
    pub const MAX: usize = 254;

    pub fn parse(field: &str, raw: &str) -> Result<Self, InvalidValue> {
        let len = raw.trim().chars().count();
        if len > Self::MAX {
            return Err(InvalidValue::new(field, format!("must be at most {} characters (got {len})", Self::MAX)));
        }
        let email = raw.trim().to_lowercase();
        let invalid = || InvalidValue::new(field, "must be an email address like name@example.com");
        if email.is_empty() || email.len() > Self::MAX || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.contains('@')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A staff password: long enough to resist guessing, short enough to hash cheaply.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN: usize = 12;
    pub const MAX: usize = 256;

    pub fn parse(field: &str, raw: &str) -> Result<Self, InvalidValue> {
        let len = raw.chars().count();
        if len < Self::MIN {
            return Err(InvalidValue::new(field, format!("must be at least {} characters", Self::MIN)));
        }
        if len > Self::MAX {
            return Err(InvalidValue::new(field, format!("must be at most {} characters (got {len})", Self::MAX)));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// How many devices may activate a licence: `-1` (unlimited) or 1–10000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivationLimit(i32);

impl ActivationLimit {
    pub const UNLIMITED: ActivationLimit = ActivationLimit(-1);
    pub const MAX: i32 = 10_000;

    pub fn parse(field: &str, raw: i64) -> Result<Self, InvalidValue> {
        match raw {
            -1 => Ok(Self::UNLIMITED),
            1..=10_000 => Ok(Self(raw as i32)),
            _ => Err(InvalidValue::new(
                field,
                format!("must be -1 (unlimited) or between 1 and {} (got {raw})", Self::MAX),
            )),
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// A pool's name: lowercase letters, digits and `-`, starting with a letter,
/// at most 64 characters. Never lowered silently: `Pro` is refused, not stored as `pro`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagName(String);

impl TagName {
    pub const MAX: usize = 64;
    pub const RULE: &'static str =
        "must use only lowercase letters, digits and '-', start with a letter, and be at most 64 characters";

    pub fn parse(field: &str, raw: &str) -> Result<Self, InvalidValue> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Self(raw.to_string()))
        } else if raw.chars().count() > Self::MAX {
            // Not echoed: the refusal of a huge input stays small.
            Err(InvalidValue::new(field, format!("{} (got {} characters)", Self::RULE, raw.chars().count())))
        } else {
            Err(InvalidValue::new(field, format!("{} (got {raw:?})", Self::RULE)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_names_are_trimmed_and_bounded() {
        assert_eq!(ProductName::parse("name", "  Pro Suite ").unwrap().into_inner(), "Pro Suite");
        let empty = ProductName::parse("name", "   ").unwrap_err();
        assert_eq!(empty.field, "name");
        assert_eq!(empty.reason, "must not be empty");
        let long = ProductName::parse("name", &"x".repeat(201)).unwrap_err();
        assert!(long.reason.contains("at most 200"), "{long}");
        assert!(ProductName::parse("name", "a\u{0}b").is_err());
    }

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(Email::parse("email", " Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
        for bad in ["", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "ann@@example.com"] {
            let err = Email::parse("email", bad).unwrap_err();
            assert_eq!(err.field, "email", "{bad}");
        }
        let long = Email::parse("email", &format!("{}@example.com", "a".repeat(50_000))).unwrap_err();
        assert!(long.reason.contains("at most 254 characters"), "{long}");
    }

    #[test]
    fn passwords_have_a_minimum_length_and_do_not_print() {
        assert!(Password::parse("password", "short").is_err());
        let p = Password::parse("password", "correct horse battery").unwrap();
        assert_eq!(format!("{p:?}"), "Password(..)");
    }

    #[test]
    fn activation_limits() {
        assert_eq!(ActivationLimit::parse("limit", -1).unwrap(), ActivationLimit::UNLIMITED);
        assert_eq!(ActivationLimit::parse("limit", 1).unwrap().get(), 1);
        assert_eq!(ActivationLimit::parse("limit", 10_000).unwrap().get(), 10_000);
        for bad in [0, -2, 10_001, i64::MAX] {
            assert_eq!(ActivationLimit::parse("limit", bad).unwrap_err().field, "limit");
        }
    }

    #[test]
    fn tag_names_follow_the_rule_and_are_never_lowered() {
        for good in ["a", "pro-2024", "x1-y2", &"a".repeat(64)] {
            assert_eq!(TagName::parse("name", good).unwrap().as_str(), good);
        }
        for bad in ["", "Pro", "1abc", "-abc", "a_b", "a b", "é", &"a".repeat(65)] {
            let err = TagName::parse("name", bad).unwrap_err();
            assert!(err.reason.contains("lowercase"), "{bad}: {err}");
        }
    }
}
