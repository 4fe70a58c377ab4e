//! Key formats: what a generator's keys look like, how much randomness they
//! carry, how to make one and how to recognise one.
//!
//! `PATTERN` syntax: text is copied as it is; `{C:n}` is `n` random characters
//! of class `C`; `{{` and `}}` are literal braces. Classes:
//!
//! | class | characters |
//! |---|---|
//! | `A` | uppercase letters without look-alikes (no I, O) |
//! | `a` | lowercase letters without look-alikes (no i, l, o) |
//! | `9` | digits |
//! | `X` | uppercase letters and digits without look-alikes (no I, O, 0, 1) |
//! | `h` | lowercase hexadecimal |
//!
//! Example: `PRO-{X:5}-{X:5}-{X:5}-{X:5}` (100 bits).

use crate::values::InvalidValue;
use rand::Rng;

/// Fewest bits of randomness a key format may have.
pub const MIN_BITS: f64 = 80.0;
/// Uppercase letters and digits without 0/O, 1/I: the default chunk alphabet.
pub const DEFAULT_ALPHABET: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Characters too easily read as one another to appear in a key alphabet.
pub const LOOK_ALIKES: &str = "0O1Il";

const UPPER: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &str = "abcdefghjkmnpqrstuvwxyz";
const DIGITS: &str = "0123456789";
const HEX: &str = "0123456789abcdef";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySpec {
    /// 26 Crockford base-32 characters; 80 random bits.
    Ulid,
    /// A random (v4) UUID; 122 random bits.
    Uuid,
    /// `prefix` then `chunks` groups of `length` characters from `alphabet`, joined by `separator`.
    Chunked { prefix: String, chunks: u32, length: u32, alphabet: String, separator: String },
    /// Fixed text and random groups (see the module documentation).
    Pattern(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Random { class: char, count: u32 },
}

fn class_chars(class: char) -> Option<&'static str> {
    Some(match class {
        'A' => UPPER,
        'a' => LOWER,
        '9' => DIGITS,
        'X' => DEFAULT_ALPHABET,
        'h' => HEX,
        _ => return None,
    })
}

impl KeySpec {
    /// A chunked format, checked: at least one chunk of at least one character,
    /// an alphabet of two or more distinct characters without look-alikes, and
    /// a prefix and separator that cannot be mistaken for random characters.
    pub fn chunked(
        prefix: &str,
        chunks: i64,
        length: i64,
        alphabet: Option<&str>,
        separator: &str,
    ) -> Result<Self, InvalidValue> {
        if !(1..=16).contains(&chunks) {
            return Err(InvalidValue::new("chunkCount", format!("must be between 1 and 16 (got {chunks})")));
        }
        if !(1..=32).contains(&length) {
            return Err(InvalidValue::new("chunkLength", format!("must be between 1 and 32 (got {length})")));
        }
        let alphabet = alphabet.unwrap_or(DEFAULT_ALPHABET);
        let mut distinct: Vec<char> = alphabet.chars().collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != alphabet.chars().count() || distinct.len() < 2 {
            return Err(InvalidValue::new("alphabet", "must hold at least two characters, each once"));
        }
        if let Some(c) = alphabet.chars().find(|c| LOOK_ALIKES.contains(*c)) {
            return Err(InvalidValue::new(
                "alphabet",
                format!("must not contain the look-alike character {c:?} (none of {LOOK_ALIKES})"),
            ));
        }
        if let Some(c) = alphabet.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(InvalidValue::new(
                "alphabet",
                format!("must hold visible ASCII characters only (found {c:?})"),
            ));
        }
        for (field, text) in [("prefix", prefix), ("separator", separator)] {
            if text.chars().count() > 16 || text.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(InvalidValue::new(field, "must be at most 16 visible characters"));
            }
        }
        if separator.chars().any(|c| alphabet.contains(c)) {
            return Err(InvalidValue::new("separator", "must not use characters of the alphabet"));
        }
        Ok(KeySpec::Chunked {
            prefix: prefix.to_string(),
            chunks: chunks as u32,
            length: length as u32,
            alphabet: alphabet.to_string(),
            separator: separator.to_string(),
        })
    }

    /// Parses a `PATTERN` (see the module documentation).
    pub fn pattern(source: &str) -> Result<Self, InvalidValue> {
        let invalid = |reason: String| InvalidValue::new("pattern", reason);
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let group: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    let (class, count) = group
                        .split_once(':')
                        .ok_or_else(|| invalid(format!("{{{group}}} must be written {{CLASS:COUNT}}, e.g. {{X:5}}")))?;
                    let class = match class.chars().collect::<Vec<_>>()[..] {
                        [c] if class_chars(c).is_some() => c,
                        _ => return Err(invalid(format!("unknown character class {class:?} (use A, a, 9, X or h)"))),
                    };
                    let count: u32 =
                        count.parse().ok().filter(|n| (1..=64).contains(n)).ok_or_else(|| {
                            invalid(format!("the count in {{{group}}} must be a number from 1 to 64"))
                        })?;
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Random { class, count });
                }
                '}' => return Err(invalid("a lone '}' (write '}}' for a literal brace)".into())),
                c if c.is_control() => return Err(invalid("must not contain control characters".into())),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        if source.chars().count() > 256 {
            return Err(invalid("must be at most 256 characters".into()));
        }
        Ok(KeySpec::Pattern(pieces))
    }

    /// Bits of randomness in one key.
    pub fn bits(&self) -> f64 {
        match self {
            KeySpec::Ulid => 80.0,
            KeySpec::Uuid => 122.0,
            KeySpec::Chunked { chunks, length, alphabet, .. } => {
                f64::from(chunks * length) * (alphabet.chars().count() as f64).log2()
            }
            KeySpec::Pattern(pieces) => pieces
                .iter()
                .map(|p| match p {
                    Piece::Text(_) => 0.0,
                    Piece::Random { class, count } => {
                        f64::from(*count) * (class_chars(*class).map_or(1, str::len) as f64).log2()
                    }
                })
                .sum(),
        }
    }

    /// How many characters each key of this format has (they all have the same).
    pub fn key_chars(&self) -> usize {
        match self {
            KeySpec::Ulid => 26,
            KeySpec::Uuid => 36,
            KeySpec::Chunked { prefix, chunks, length, separator, .. } => {
                let chunks = *chunks as usize;
                let separators = chunks.saturating_sub(1) * separator.chars().count();
                prefix.chars().count() + chunks * *length as usize + separators
            }
            KeySpec::Pattern(pieces) => pieces
                .iter()
                .map(|p| match p {
                    Piece::Text(text) => text.chars().count(),
                    Piece::Random { count, .. } => *count as usize,
                })
                .sum(),
        }
    }

    /// Refuses formats with less than [`MIN_BITS`] of randomness, saying how many they have.
    pub fn check_strength(&self, field: &str) -> Result<(), InvalidValue> {
        let bits = self.bits();
        if bits + 1e-9 < MIN_BITS {
            return Err(InvalidValue::new(
                field,
                format!(
                    "gives keys only {bits:.1} bits of randomness; at least {MIN_BITS:.0} are needed (add characters or chunks)"
                ),
            ));
        }
        Ok(())
    }

    /// A new random key.
    pub fn generate(&self, rng: &mut impl Rng) -> String {
        let pick = |rng: &mut dyn rand::RngCore, chars: &str, count: u32, out: &mut String| {
            let chars: Vec<char> = chars.chars().collect();
            for _ in 0..count {
                out.push(chars[rng.random_range(0..chars.len())]);
            }
        };
        match self {
            KeySpec::Ulid => ulid::Ulid::generate().to_string(),
            KeySpec::Uuid => {
                let mut bytes = [0u8; 16];
                rng.fill(&mut bytes);
                uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
            }
            KeySpec::Chunked { prefix, chunks, length, alphabet, separator } => {
                let mut key = prefix.clone();
                for i in 0..*chunks {
                    if i > 0 {
                        key.push_str(separator);
                    }
                    pick(rng, alphabet, *length, &mut key);
                }
                key
            }
            KeySpec::Pattern(pieces) => {
                let mut key = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => key.push_str(text),
                        Piece::Random { class, count } => {
                            pick(rng, class_chars(*class).unwrap_or(DIGITS), *count, &mut key)
                        }
                    }
                }
                key
            }
        }
    }

    /// Whether `key` has this format.
    pub fn matches(&self, key: &str) -> bool {
        match self {
            KeySpec::Ulid => key.len() == 26 && ulid::Ulid::from_string(key).is_ok(),
            KeySpec::Uuid => uuid::Uuid::try_parse(key).is_ok_and(|u| u.to_string() == key),
            KeySpec::Chunked { prefix, chunks, length, alphabet, separator } => {
                let Some(rest) = key.strip_prefix(prefix.as_str()) else {
                    return false;
                };
                let groups: Vec<&str> = if separator.is_empty() {
                    let chars: Vec<char> = rest.chars().collect();
                    if chars.len() != (*chunks * *length) as usize {
                        return false;
                    }
                    return chars.iter().all(|c| alphabet.contains(*c));
                } else {
                    rest.split(separator.as_str()).collect()
                };
                groups.len() == *chunks as usize
                    && groups
                        .iter()
                        .all(|g| g.chars().count() == *length as usize && g.chars().all(|c| alphabet.contains(c)))
            }
            KeySpec::Pattern(pieces) => {
                let mut rest = key;
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => match rest.strip_prefix(text.as_str()) {
                            Some(r) => rest = r,
                            None => return false,
                        },
                        Piece::Random { class, count } => {
                            let chars = class_chars(*class).unwrap_or(DIGITS);
                            let taken: String = rest.chars().take(*count as usize).collect();
                            if taken.chars().count() != *count as usize || !taken.chars().all(|c| chars.contains(c)) {
                                return false;
                            }
                            rest = &rest[taken.len()..];
                        }
                    }
                }
                rest.is_empty()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn specs() -> Vec<KeySpec> {
        vec![
            KeySpec::Ulid,
            KeySpec::Uuid,
            KeySpec::chunked("PRO-", 4, 5, None, "-").unwrap(),
            KeySpec::chunked("", 2, 16, Some("ABCDEFGHJK"), "").unwrap(),
            KeySpec::pattern("KS-{X:5}-{X:5}-{A:4}-{9:6}-{h:8}").unwrap(),
            KeySpec::pattern("{{lit}}-{h:21}").unwrap(),
        ]
    }

    #[test]
    fn every_generated_key_matches_its_format() {
        let mut rng = rand::rng();
        for spec in specs() {
            assert!(spec.bits() >= MIN_BITS, "{spec:?}: {}", spec.bits());
            for _ in 0..2000 {
                let key = spec.generate(&mut rng);
                assert!(spec.matches(&key), "{spec:?} does not recognise {key}");
                assert_eq!(key.chars().count(), spec.key_chars(), "{spec:?}: {key}");
            }
        }
    }

    #[test]
    fn keys_of_other_formats_are_not_recognised() {
        let chunked = KeySpec::chunked("PRO-", 4, 5, None, "-").unwrap();
        for bad in [
            "PRO-ABCDE-ABCDE-ABCDE",
            "PRO-ABCDE-ABCDE-ABCDE-ABCD0",
            "XX-ABCDE-ABCDE-ABCDE-ABCDE",
            "PRO-ABCDE-ABCDE-ABCDE-ABCDEF",
        ] {
            assert!(!chunked.matches(bad), "{bad}");
        }
        let pattern = KeySpec::pattern("KS-{9:3}").unwrap();
        assert!(pattern.matches("KS-123"));
        assert!(!pattern.matches("KS-12A") && !pattern.matches("KS-1234") && !pattern.matches("KX-123"));
    }

    #[test]
    fn weak_formats_are_refused_with_their_strength() {
        let weak = KeySpec::chunked("", 3, 5, None, "-").unwrap();
        let err = weak.check_strength("format").unwrap_err();
        assert!(err.reason.contains("75.0 bits"), "{err}");
        let err = KeySpec::pattern("{9:6}").unwrap().check_strength("pattern").unwrap_err();
        assert!(err.reason.contains("19.9 bits"), "{err}");
        assert!(
            KeySpec::chunked("", 4, 4, None, "-").unwrap().check_strength("format").is_ok(),
            "exactly 80 bits is enough"
        );
        assert!(KeySpec::pattern("{X:15}").unwrap().check_strength("pattern").is_err());
    }

    #[test]
    fn bad_specifications_name_their_field() {
        assert_eq!(KeySpec::chunked("", 0, 5, None, "-").unwrap_err().field, "chunkCount");
        assert_eq!(KeySpec::chunked("", 4, 0, None, "-").unwrap_err().field, "chunkLength");
        assert!(KeySpec::chunked("", 4, 5, Some("ABC0"), "-").unwrap_err().reason.contains("look-alike"));
        assert_eq!(KeySpec::chunked("", 4, 5, Some("AAB"), "-").unwrap_err().field, "alphabet");
        assert_eq!(KeySpec::chunked("", 4, 5, None, "A").unwrap_err().field, "separator");
        for bad in ["{Q:5}", "{X:0}", "{X:99}", "{X5}", "abc}"] {
            assert_eq!(KeySpec::pattern(bad).unwrap_err().field, "pattern", "{bad}");
        }
    }

    #[test]
    fn a_million_generated_keys_hold_no_duplicate() {
        let spec = KeySpec::chunked("", 5, 4, None, "-").unwrap();
        assert!(spec.bits() >= MIN_BITS);
        let mut rng = rand::rng();
        let mut seen = HashSet::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            assert!(seen.insert(spec.generate(&mut rng)), "a duplicate key");
        }
    }
}
