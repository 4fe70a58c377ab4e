//! Signatures, checked exactly as each provider documents them: an
//! HMAC-SHA256 over the raw body as received (with the signed timestamp
//! where the scheme has one), compared in constant time. A delivery is
//! accepted when any signature it carries matches any secret still valid
//! (a secret being rolled keeps the old one working for a while).
//!
//! | provider | header | signed bytes | encoding |
//! |---|---|---|---|
//! | Stripe | `Stripe-Signature: t=…,v1=…` | `t` `.` body | hex |
//! | Paddle | `Paddle-Signature: ts=…;h1=…` | `ts` `:` body | hex |
//! | Lemon Squeezy | `X-Signature` | body | hex |
//! | Shopify | `X-Shopify-Hmac-Sha256` | body | base64 |
//! | WooCommerce | `X-WC-Webhook-Signature` | body | base64, key HTML-entity-decoded |

use super::reading::Headers;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use entity::integration::Provider;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a delivery was refused (kept on the integration, never the header itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The provider's signature header is absent.
    Missing,
    /// The header does not have the provider's shape.
    Malformed,
    /// No signature matches.
    Mismatch,
    /// Signed correctly, but longer ago (or further ahead) than the tolerance.
    Stale,
}

impl Refusal {
    pub fn describe(self, provider: Provider) -> String {
        let header = header_of(provider);
        match self {
            Refusal::Missing => format!("no {header} header"),
            Refusal::Malformed => format!("the {header} header is not in the provider's format"),
            Refusal::Mismatch => "the signature does not match the secret".into(),
            Refusal::Stale => "the signed timestamp is outside the tolerance".into(),
        }
    }
}

/// The header a provider signs with (lower case).
pub fn header_of(provider: Provider) -> &'static str {
    match provider {
        Provider::Stripe => "stripe-signature",
        Provider::Paddle => "paddle-signature",
        Provider::LemonSqueezy => "x-signature",
        Provider::Shopify => "x-shopify-hmac-sha256",
        Provider::WooCommerce => "x-wc-webhook-signature",
    }
}

/// Checks a delivery's signature against `secrets` at `now` (Unix seconds).
pub fn verify(
    provider: Provider,
    headers: &Headers,
    body: &[u8],
    secrets: &[&str],
    now: i64,
    tolerance: i64,
) -> Result<(), Refusal> {
    let header = headers.get(header_of(provider)).ok_or(Refusal::Missing)?.trim();
    match provider {
        Provider::Stripe => timestamped(header, ',', "t", "v1", '.', body, secrets, now, tolerance),
        Provider::Paddle => timestamped(header, ';', "ts", "h1", ':', body, secrets, now, tolerance),
        Provider::LemonSqueezy => {
            let signature = hex::decode(header).map_err(|_| Refusal::Malformed)?;
            matches_any(secrets, &[body], &[signature])
        }
        Provider::Shopify => {
            let signature = STANDARD.decode(header).map_err(|_| Refusal::Malformed)?;
            matches_any(secrets, &[body], &[signature])
        }
        Provider::WooCommerce => {
            let signature = STANDARD.decode(header).map_err(|_| Refusal::Malformed)?;
            let keys: Vec<String> = secrets.iter().map(|s| entity_decoded(s)).collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            matches_any(&keys, &[body], &[signature])
        }
    }
}

/// Stripe's and Paddle's scheme: `ts` then signatures named `scheme`,
/// items split by `separator`; signed is the timestamp, `joiner`, the body.
/// Other schemes in the header (Stripe's `v0`) are ignored.
#[allow(clippy::too_many_arguments)]
fn timestamped(
    header: &str,
    separator: char,
    stamp: &str,
    scheme: &str,
    joiner: char,
    body: &[u8],
    secrets: &[&str],
    now: i64,
    tolerance: i64,
) -> Result<(), Refusal> {
    let mut at = None;
    let mut signatures = Vec::new();
    for item in header.split(separator) {
        let Some((name, value)) = item.trim().split_once('=') else { continue };
        if name == stamp {
            at = Some(value.parse::<i64>().map_err(|_| Refusal::Malformed)?);
        } else if name == scheme
            && let Ok(signature) = hex::decode(value)
        {
            signatures.push(signature);
        }
    }
    let (Some(at), false) = (at, signatures.is_empty()) else {
        return Err(Refusal::Malformed);
    };
    let stamp = at.to_string();
    let joiner = [joiner as u8];
    matches_any(secrets, &[stamp.as_bytes(), &joiner, body], &signatures)?;
    if now.abs_diff(at) > tolerance.unsigned_abs() {
        return Err(Refusal::Stale);
    }
    Ok(())
}

fn matches_any(secrets: &[&str], signed: &[&[u8]], signatures: &[Vec<u8>]) -> Result<(), Refusal> {
    for secret in secrets {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { continue };
        for part in signed {
            mac.update(part);
        }
        // `verify_slice` compares in constant time.
        if signatures.iter().any(|signature| mac.clone().verify_slice(signature).is_ok()) {
            return Ok(());
        }
    }
    Err(Refusal::Mismatch)
}

/// The secret as WooCommerce signs with it: WordPress first decodes, in one
/// pass (`wp_specialchars_decode`), `&amp; &lt; &gt; &quot;`, the decimal
/// forms of `& < > " '` (`&#38; &#60; &#62; &#34; &#39;`, any leading zeros)
/// and the hexadecimal forms of `& ' "` (`&#x26; &#x27; &#x22;`), and leaves
/// every other `&` alone.
pub fn entity_decoded(secret: &str) -> String {
    let mut out = String::with_capacity(secret.len());
    let mut rest = secret;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match decoded_entity(rest) {
            Some((plain, len)) => {
                out.push(plain);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character an entity at the start of `text` stands for, and its length.
fn decoded_entity(text: &str) -> Option<(char, usize)> {
    for (entity, plain) in [("&amp;", '&'), ("&lt;", '<'), ("&gt;", '>'), ("&quot;", '"')] {
        if text.starts_with(entity) {
            return Some((plain, entity.len()));
        }
    }
    let number = text.strip_prefix("&#")?;
    let (digits, hex) = match number.strip_prefix(['x', 'X']) {
        Some(hex) => (hex, true),
        None => (number, false),
    };
    let end = digits.find(|c: char| !c.is_ascii_hexdigit())?;
    let (value, tail) = digits.split_at(end);
    if !tail.starts_with(';') || value.is_empty() || (!hex && !value.chars().all(|c| c.is_ascii_digit())) {
        return None;
    }
    let value = value.trim_start_matches('0');
    let plain = match (hex, value.to_ascii_lowercase().as_str()) {
        (false, "38") | (true, "26") => '&',
        (false, "60") => '<',
        (false, "62") => '>',
        (false, "34") | (true, "22") => '"',
        (false, "39") | (true, "27") => '\'',
        _ => return None,
    };
    Some((plain, text.len() - tail.len() + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac(key: &str, parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().to_vec()
    }

    fn headers(name: &str, value: &str) -> Headers {
        Headers::from_pairs([(name.to_string(), value.to_string())])
    }

    const BODY: &[u8] = br#"{"id":"evt_1","type":"checkout.session.completed"}"#;

    #[test]
    fn stripe_accepts_any_v1_and_ignores_other_schemes() {
        let good = hex::encode(hmac("whsec_a", &[b"1700000000", b".", BODY]));
        let wrong = hex::encode(hmac("whsec_other", &[b"1700000000", b".", BODY]));
        let header = format!("t=1700000000,v1={wrong},v1={good},v0={good}");
        let h = headers("stripe-signature", &header);
        assert_eq!(verify(Provider::Stripe, &h, BODY, &["whsec_a"], 1_700_000_100, 300), Ok(()));
        assert_eq!(verify(Provider::Stripe, &h, BODY, &["whsec_b", "whsec_a"], 1_700_000_100, 300), Ok(()));
        assert_eq!(verify(Provider::Stripe, &h, BODY, &["whsec_b"], 1_700_000_100, 300), Err(Refusal::Mismatch));
        assert_eq!(verify(Provider::Stripe, &h, b"{}", &["whsec_a"], 1_700_000_100, 300), Err(Refusal::Mismatch));
        assert_eq!(verify(Provider::Stripe, &h, BODY, &["whsec_a"], 1_700_000_301, 300), Err(Refusal::Stale));
        let only_v0 = headers("stripe-signature", &format!("t=1700000000,v0={good}"));
        assert_eq!(verify(Provider::Stripe, &only_v0, BODY, &["whsec_a"], 1_700_000_000, 300), Err(Refusal::Malformed));
        let empty = Headers::default();
        assert_eq!(verify(Provider::Stripe, &empty, BODY, &["whsec_a"], 0, 300), Err(Refusal::Missing));
        let signed_elsewhere = headers("stripe-signature", &format!("t=1700000001,v1={good}"));
        assert_eq!(
            verify(Provider::Stripe, &signed_elsewhere, BODY, &["whsec_a"], 1_700_000_000, 300),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn paddle_signs_the_timestamp_a_colon_and_the_body() {
        let good = hex::encode(hmac("pdl_ntfset_x", &[b"1700000000", b":", BODY]));
        let h = headers("paddle-signature", &format!("ts=1700000000;h1={good}"));
        assert_eq!(verify(Provider::Paddle, &h, BODY, &["pdl_ntfset_x"], 1_700_000_004, 5), Ok(()));
        assert_eq!(verify(Provider::Paddle, &h, BODY, &["pdl_ntfset_x"], 1_700_000_006, 5), Err(Refusal::Stale));
        let dotted = hex::encode(hmac("pdl_ntfset_x", &[b"1700000000", b".", BODY]));
        let h = headers("paddle-signature", &format!("ts=1700000000;h1={dotted}"));
        assert_eq!(verify(Provider::Paddle, &h, BODY, &["pdl_ntfset_x"], 1_700_000_000, 5), Err(Refusal::Mismatch));
    }

    #[test]
    fn body_only_schemes_use_their_encoding() {
        let ls = headers("x-signature", &hex::encode(hmac("lemon", &[BODY])));
        assert_eq!(verify(Provider::LemonSqueezy, &ls, BODY, &["lemon"], 0, 0), Ok(()));
        let ls_b64 = headers("x-signature", &STANDARD.encode(hmac("lemon", &[BODY])));
        assert_eq!(verify(Provider::LemonSqueezy, &ls_b64, BODY, &["lemon"], 0, 0), Err(Refusal::Malformed));
        let shop = headers("x-shopify-hmac-sha256", &STANDARD.encode(hmac("shpss", &[BODY])));
        assert_eq!(verify(Provider::Shopify, &shop, BODY, &["shpss"], 0, 0), Ok(()));
        assert_eq!(verify(Provider::Shopify, &shop, b"{ }", &["shpss"], 0, 0), Err(Refusal::Mismatch));
    }

    #[test]
    fn woocommerce_signs_with_the_entity_decoded_secret() {
        assert_eq!(entity_decoded("a&amp;b&lt;&gt;&quot;&#039;&amp;lt;&x"), "a&b<>\"'&lt;&x");
        // WordPress decodes hexadecimal forms of & ' " only, decimal ones with any zeros.
        assert_eq!(
            entity_decoded("&#038;&#0000000000034;&#x26;&#X27;&#x022;&#39;&#60;&#062;&#x3C;&#40;&nbsp;&;&#;&#x;&#38"),
            "&\"&'\"'<>&#x3C;&#40;&nbsp;&;&#;&#x;&#38"
        );
        let woo = headers("x-wc-webhook-signature", &STANDARD.encode(hmac("s&cret'", &[BODY])));
        assert_eq!(verify(Provider::WooCommerce, &woo, BODY, &["s&amp;cret&#039;"], 0, 0), Ok(()));
        assert_eq!(verify(Provider::WooCommerce, &woo, BODY, &["s&cret'"], 0, 0), Ok(()));
    }
}
