//! What the pages show, in words, from the GraphQL answers.

use chrono::{DateTime, Utc};
use serde_json::Value;

pub(crate) struct OrderView {
    pub id: String,
    pub number: String,
    pub placed: String,
    pub status: &'static str,
    pub lines: Vec<LineView>,
}

pub(crate) struct LineView {
    pub product: String,
    pub quantity: i64,
    pub waiting: i64,
    pub button: String,
    pub unavailable: String,
    /// The licence ids the key button reveals, comma-separated.
    pub licence_ids: String,
    /// On a renewal, what it did, in words.
    pub renewal: Option<String>,
    pub licences: Vec<LicenceView>,
}

pub(crate) struct LicenceView {
    pub id: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub prefix: String,
    pub expiry: String,
    pub devices_used: String,
    pub devices: Vec<DeviceView>,
    /// Whether an offline licence file can be had (a licence in use or ready).
    pub offline: bool,
}

pub(crate) struct DeviceView {
    pub id: String,
    pub name: String,
    pub platform: Option<String>,
    pub last_seen: String,
}

pub(crate) struct RevealedKey {
    pub key: String,
    pub licence_id: String,
}

/// The key dialog's title: the product and order the keys belong to.
pub(crate) fn dialog_title(orders: &[OrderView], revealed: &[RevealedKey]) -> String {
    let noun = if revealed.len() == 1 { "key" } else { "keys" };
    let first = revealed.first().map(|k| k.licence_id.as_str()).unwrap_or_default();
    orders
        .iter()
        .flat_map(|o| o.lines.iter().map(move |l| (o, l)))
        .find(|(_, l)| l.licences.iter().any(|k| k.id == first))
        .map(|(o, l)| format!("Your {} {noun} · order {}", l.product, o.number))
        .unwrap_or_else(|| format!("Your {noun}"))
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc))
}

/// "3 March 2027".
pub(crate) fn day(t: DateTime<Utc>) -> String {
    t.format("%-d %B %Y").to_string()
}

/// "3 March 2027 at 14:05 UTC".
pub(crate) fn moment(t: DateTime<Utc>) -> String {
    t.format("%-d %B %Y at %H:%M UTC").to_string()
}

/// The status in a buyer's words, and how it should look.
pub(crate) fn status_words(status: &str) -> (&'static str, &'static str) {
    match status {
        "ASSIGNED" => ("Ready to use", "ok"),
        "ACTIVE" => ("In use", "ok"),
        "INACTIVE" => ("Switched off by the seller", "warn"),
        "SUSPENDED" => ("Suspended: contact the seller", "bad"),
        "EXPIRED" => ("Expired", "bad"),
        "REVOKED" => ("Revoked", "bad"),
        _ => ("Not delivered yet", "warn"),
    }
}

fn order_status(status: &str) -> &'static str {
    match status {
        "FULFILLED" => "Delivered",
        "PARTIALLY_FULFILLED" => "Partly delivered",
        "WAITING" => "Waiting for keys",
        "REFUNDED" => "Refunded",
        _ => "Received",
    }
}

/// "Never expires", "Expires on 3 March 2027 (in 98 days)", "Expired on …".
pub(crate) fn expiry_words(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match expires_at {
        None => "Never expires".into(),
        Some(t) if t <= now => format!("Expired on {}", day(t)),
        Some(t) => {
            let days = (t - now).num_days();
            let left = match days {
                0 => "today".to_string(),
                1 => "in 1 day".to_string(),
                n => format!("in {n} days"),
            };
            format!("Expires on {} ({left})", day(t))
        }
    }
}

fn devices_used(used: i64, limit: i64) -> String {
    match (used, limit) {
        (_, -1) => format!("Active on {used} device{} (no limit)", if used == 1 { "" } else { "s" }),
        (0, limit) => format!("Not activated yet · up to {limit} device{}", if limit == 1 { "" } else { "s" }),
        (used, limit) => format!("Active on {used} of {limit} device{}", if limit == 1 { "" } else { "s" }),
    }
}

pub(crate) fn orders(data: &Value, now: DateTime<Utc>) -> Vec<OrderView> {
    let empty = Vec::new();
    data["myOrders"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|o| OrderView {
            id: text(&o["id"]),
            number: text(&o["externalId"]),
            placed: time(&o["createdAt"]).map(day).unwrap_or_default(),
            status: order_status(o["status"].as_str().unwrap_or_default()),
            lines: o["lines"].as_array().unwrap_or(&empty).iter().map(|l| line(l, now)).collect(),
        })
        .collect()
}

fn line(l: &Value, now: DateTime<Utc>) -> LineView {
    let empty = Vec::new();
    let licences: Vec<LicenceView> =
        l["licenses"].as_array().unwrap_or(&empty).iter().map(|k| licence(k, now)).collect();
    let revealable: Vec<&str> = l["licenses"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter(|k| k["status"] != "REVOKED")
        .filter_map(|k| k["id"].as_str())
        .collect();
    LineView {
        product: text(&l["productName"]),
        quantity: l["quantity"].as_i64().unwrap_or(1),
        waiting: l["waiting"].as_i64().unwrap_or(0),
        button: text(&l["keyButtonText"]),
        unavailable: text(&l["unavailableMessage"]),
        licence_ids: revealable.join(","),
        licences,
        renewal: renewal_words(l),
    }
}

/// "Renews key ABCD1234… — now runs until 3 March 2027", or "Replaces the
/// expired key ABCD1234…", on a line that renews a licence.
fn renewal_words(l: &Value) -> Option<String> {
    let prefix = l["renews"]["keyPrefix"].as_str()?;
    match l["renewalOutcome"].as_str()? {
        "EXTENDED" => Some(match time(&l["renews"]["expiresAt"]) {
            Some(until) => format!("Renews key {prefix}… — now runs until {}", day(until)),
            None => format!("Renews key {prefix}…"),
        }),
        "REISSUED" => Some(format!("Replaces the expired key {prefix}…")),
        _ => None,
    }
}

fn licence(k: &Value, now: DateTime<Utc>) -> LicenceView {
    let empty = Vec::new();
    let status = k["status"].as_str().unwrap_or_default();
    let (words, class) = status_words(status);
    LicenceView {
        id: text(&k["id"]),
        status: words,
        status_class: class,
        prefix: text(&k["keyPrefix"]),
        expiry: expiry_words(time(&k["expiresAt"]), now),
        devices_used: devices_used(
            k["activationsUsed"].as_i64().unwrap_or(0),
            k["activationLimit"].as_i64().unwrap_or(1),
        ),
        devices: k["activations"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|d| DeviceView {
                id: text(&d["id"]),
                name: d["name"].as_str().filter(|n| !n.is_empty()).unwrap_or("Unnamed device").to_string(),
                platform: d["platform"].as_str().filter(|p| !p.is_empty()).map(str::to_string),
                last_seen: time(&d["lastSeenAt"]).map(moment).unwrap_or_default(),
            })
            .collect(),
        offline: matches!(status, "ASSIGNED" | "ACTIVE"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn expiry_and_devices_read_as_words() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        assert_eq!(expiry_words(None, now), "Never expires");
        let later = Utc.with_ymd_and_hms(2027, 3, 3, 12, 0, 0).unwrap();
        assert_eq!(expiry_words(Some(later), now), "Expires on 3 March 2027 (in 98 days)");
        let earlier = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        assert_eq!(expiry_words(Some(earlier), now), "Expired on 1 November 2026");
        assert_eq!(devices_used(1, 3), "Active on 1 of 3 devices");
        assert_eq!(devices_used(0, 1), "Not activated yet · up to 1 device");
        assert_eq!(devices_used(2, -1), "Active on 2 devices (no limit)");
        assert_eq!(status_words("SUSPENDED"), ("Suspended: contact the seller", "bad"));
    }

    #[test]
    fn a_renewal_line_says_what_it_renewed() {
        let extended = serde_json::json!({ "renewalOutcome": "EXTENDED",
            "renews": { "keyPrefix": "ABCD1234", "expiresAt": "2027-03-03T12:00:00Z" } });
        assert_eq!(renewal_words(&extended).as_deref(), Some("Renews key ABCD1234… — now runs until 3 March 2027"));
        let reissued = serde_json::json!({ "renewalOutcome": "REISSUED", "renews": { "keyPrefix": "ABCD1234" } });
        assert_eq!(renewal_words(&reissued).as_deref(), Some("Replaces the expired key ABCD1234…"));
        assert_eq!(renewal_words(&serde_json::json!({ "renewalOutcome": null, "renews": null })), None);
    }
}
