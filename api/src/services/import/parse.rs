//! Reading an uploaded key list line by line, whatever it holds: a byte-order
//! mark, CRLF endings, blank lines, stray columns, lines of megabytes. No line
//! is held beyond [`MAX_LINE_BYTES`]; a longer one is skimmed to its end and
//! reported, so memory stays bounded however hostile the file.

use chrono::{DateTime, NaiveDate, Utc};
use entity::values::{ActivationLimit, TagName};
use std::io::{self, BufRead};

/// The longest line kept; longer lines are refused without being held.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// The longest key accepted.
pub const MAX_KEY_CHARS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// One key per line.
    Text,
    /// `key[,tags[,product[,expiry[,activation limit]]]]`, one record per line, optional header.
    Csv,
}

/// One key as a line gives it, checked for everything that needs no database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLine {
    pub key: String,
    pub tags: Vec<String>,
    /// A product's id or exact name, resolved later.
    pub product: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub activation_limit: Option<i32>,
}

/// What one line held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Blank,
    Header,
    Key(KeyLine),
    Invalid(String),
}

/// Reads the next line into `buf` (without its line ending). Returns `None` at
/// the end, else whether the line was longer than `max` (then `buf` holds only
/// its first `max` bytes) and how many bytes were consumed.
pub fn read_line_capped(reader: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<Option<(bool, u64)>> {
    buf.clear();
    let mut consumed = 0u64;
    let mut too_long = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((consumed > 0).then_some((too_long, consumed)));
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        let room = max.saturating_sub(buf.len());
        if chunk.len() > room {
            too_long = true;
        }
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = done.unwrap_or(available.len());
        reader.consume(used);
        consumed += used as u64;
        if done.is_some() {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Some((too_long, consumed)));
        }
    }
}

/// Makes sense of one line (`number` counts from 1).
pub fn parse_line(format: ImportFormat, number: u64, raw: &[u8], too_long: bool) -> Line {
    if too_long {
        return Line::Invalid(format!("the line is longer than {} KiB", MAX_LINE_BYTES / 1024));
    }
    let raw = if number == 1 { raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw) } else { raw };
    let Ok(text) = std::str::from_utf8(raw) else {
        return Line::Invalid("the line is not valid UTF-8".into());
    };
    if text.trim().is_empty() {
        return Line::Blank;
    }
    match format {
        ImportFormat::Text => match key(text) {
            Ok(key) => {
                Line::Key(KeyLine { key, tags: Vec::new(), product: None, expires_at: None, activation_limit: None })
            }
            Err(reason) => Line::Invalid(reason),
        },
        ImportFormat::Csv => csv_line(number, text),
    }
}

fn csv_line(number: u64, text: &str) -> Line {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let record = match reader.records().next() {
        Some(Ok(record)) => record,
        Some(Err(e)) => return Line::Invalid(format!("not a CSV record: {e}")),
        None => return Line::Blank,
    };
    let cells: Vec<&str> = record.iter().map(str::trim).collect();
    if number == 1 && cells.first().is_some_and(|c| c.eq_ignore_ascii_case("key")) {
        return Line::Header;
    }
    if cells.len() > 5 {
        return Line::Invalid(format!(
            "expected at most 5 columns (key, tags, product, expiry, activation limit), found {}",
            cells.len()
        ));
    }
    let cell = |i: usize| cells.get(i).copied().filter(|c| !c.is_empty());
    let result = (|| {
        let key = key(cells.first().copied().unwrap_or_default())?;
        let tags = match cell(1) {
            None => Vec::new(),
            Some(list) => list
                .split([';', '|'])
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| {
                    let name = TagName::parse("tags", t).map_err(|e| format!("tags: {}", e.reason))?;
                    if entity::tag::is_system_name(name.as_str()) {
                        return Err(format!("tags: '{t}' is a system tag"));
                    }
                    Ok(name.as_str().to_string())
                })
                .collect::<Result<Vec<_>, String>>()?,
        };
        let expires_at = cell(3).map(expiry).transpose()?;
        let activation_limit = cell(4)
            .map(|raw| {
                let n: i64 = raw.parse().map_err(|_| format!("activation limit: {raw:?} is not a whole number"))?;
                ActivationLimit::parse("activation limit", n).map(ActivationLimit::get).map_err(|e| e.to_string())
            })
            .transpose()?;
        Ok(KeyLine { key, tags, product: cell(2).map(str::to_string), expires_at, activation_limit })
    })();
    match result {
        Ok(line) => Line::Key(line),
        Err(reason) => Line::Invalid(reason),
    }
}

fn key(raw: &str) -> Result<String, String> {
    let key = raw.trim();
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    let chars = key.chars().count();
    if chars > MAX_KEY_CHARS {
        return Err(format!("the key is longer than {MAX_KEY_CHARS} characters ({chars})"));
    }
    if key.chars().any(char::is_control) {
        return Err("the key contains control characters".into());
    }
    Ok(key.to_string())
}

/// An expiry as RFC 3339, or a date (valid to the end of that day, UTC); it must lie ahead.
fn expiry(raw: &str) -> Result<DateTime<Utc>, String> {
    let at = DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d").map(|d| d.and_hms_opt(23, 59, 59).unwrap_or_default().and_utc())
        })
        .map_err(|_| format!("expiry: {raw:?} is not a date (2027-01-31) or an RFC 3339 time"))?;
    if at <= Utc::now() {
        return Err(format!("expiry: {raw} is not in the future"));
    }
    Ok(entity::stored_time(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn lines(input: &[u8], max: usize) -> Vec<(Vec<u8>, bool)> {
        let mut reader = BufReader::with_capacity(8, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some((too_long, _)) = read_line_capped(&mut reader, &mut buf, max).unwrap() {
            out.push((buf.clone(), too_long));
        }
        out
    }

    #[test]
    fn lines_end_at_lf_or_crlf_and_long_ones_are_cut_not_held() {
        let got = lines(b"AAA\r\nBBB\n\nCCCCCCCCCCCCCCCCCCCC\nDDD", 10);
        assert_eq!(
            got,
            vec![
                (b"AAA".to_vec(), false),
                (b"BBB".to_vec(), false),
                (b"".to_vec(), false),
                (b"CCCCCCCCCC".to_vec(), true),
                (b"DDD".to_vec(), false),
            ]
        );
        assert!(lines(b"", 10).is_empty());
    }

    #[test]
    fn text_lines() {
        let key = |s: &str| match parse_line(ImportFormat::Text, 2, s.as_bytes(), false) {
            Line::Key(k) => Ok(k.key),
            Line::Invalid(r) => Err(r),
            other => Err(format!("{other:?}")),
        };
        assert_eq!(key("  ABCD-1234  "), Ok("ABCD-1234".into()));
        assert_eq!(parse_line(ImportFormat::Text, 2, b"   ", false), Line::Blank);
        assert!(key(&"x".repeat(257)).unwrap_err().contains("longer than 256"));
        assert!(key("AB\u{7}CD").unwrap_err().contains("control"));
        assert!(
            matches!(parse_line(ImportFormat::Text, 1, b"\xEF\xBB\xBFKEY-1", false), Line::Key(k) if k.key == "KEY-1")
        );
        assert!(
            matches!(parse_line(ImportFormat::Text, 3, b"\xFF\xFE", false), Line::Invalid(r) if r.contains("UTF-8"))
        );
        assert!(matches!(parse_line(ImportFormat::Text, 3, b"x", true), Line::Invalid(r) if r.contains("64 KiB")));
    }

    #[test]
    fn csv_lines() {
        assert_eq!(parse_line(ImportFormat::Csv, 1, b"key,tags,product", false), Line::Header);
        match parse_line(ImportFormat::Csv, 2, b"\"K-1\", pro;beta ,Pro Suite,2999-01-31,3", false) {
            Line::Key(k) => {
                assert_eq!(k.key, "K-1");
                assert_eq!(k.tags, ["pro", "beta"]);
                assert_eq!(k.product.as_deref(), Some("Pro Suite"));
                assert_eq!(k.expires_at.map(|t| t.to_rfc3339()), Some("2999-01-31T23:59:59+00:00".into()));
                assert_eq!(k.activation_limit, Some(3));
            }
            other => panic!("{other:?}"),
        }
        let invalid = |s: &str| match parse_line(ImportFormat::Csv, 2, s.as_bytes(), false) {
            Line::Invalid(r) => r,
            other => panic!("{s}: {other:?}"),
        };
        assert!(invalid("a,b,c,d,e,f").contains("at most 5 columns"));
        assert!(invalid("K,Pro").contains("tags"));
        assert!(invalid("K,auto-generated").contains("system tag"));
        assert!(invalid("K,,,2001-01-01").contains("not in the future"));
        assert!(invalid("K,,,someday").contains("expiry"));
        assert!(invalid("K,,,,0").contains("activation limit"));
        assert!(invalid("K,,,,many").contains("whole number"));
        assert!(invalid(",pro").contains("empty"));
    }
}
