//! What a provider's delivery asks Keysmith to do, read from its JSON by the
//! provider's module (no database access there), and the few JSON helpers
//! those modules share.

use serde_json::Value;
use std::collections::BTreeMap;

/// The request headers an integration reads (lower-case names), at most
/// [`MAX_HEADER`] bytes each; every other header is dropped on arrival.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(BTreeMap<String, String>);

/// Longest header value kept.
pub const MAX_HEADER: usize = 1024;

/// The headers Keysmith reads from providers.
pub const READ: [&str; 13] = [
    "stripe-signature",
    "paddle-signature",
    "x-signature",
    "x-event-name",
    "x-shopify-hmac-sha256",
    "x-shopify-topic",
    "x-shopify-webhook-id",
    "x-shopify-event-id",
    "x-shopify-shop-domain",
    "x-wc-webhook-signature",
    "x-wc-webhook-topic",
    "x-wc-webhook-id",
    "x-wc-webhook-source",
];

/// Signature headers: never stored, never shown.
const SIGNATURES: [&str; 5] =
    ["stripe-signature", "paddle-signature", "x-signature", "x-shopify-hmac-sha256", "x-wc-webhook-signature"];

impl Headers {
    /// The read headers among `pairs` (names in any case; longer values are dropped).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value))
                .filter(|(name, value)| READ.contains(&name.as_str()) && value.len() <= MAX_HEADER)
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// What is kept with the event for replay: everything but signatures.
    pub fn stored(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .filter(|(name, _)| !SIGNATURES.contains(&name.as_str()))
                .map(|(name, value)| (name.clone(), Value::String(value.clone())))
                .collect(),
        )
    }

    /// Headers kept with an event, read back.
    pub fn from_stored(stored: &Value) -> Self {
        let pairs = stored.as_object().into_iter().flatten();
        Self::from_pairs(pairs.filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))))
    }
}

/// A delivery, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Interpreted {
    /// The provider's id of the event, the same on every retry: the duplicate check.
    pub event_id: String,
    pub event_type: String,
    /// Sent in the provider's test mode.
    pub test_mode: bool,
    pub action: Action,
}

/// What a delivery asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A paid order or checkout: an order of the mapped products.
    Order(Purchase),
    /// A subscription's payment: renew the licences it received. `payment`
    /// names the payment when a refund will name it (Stripe's payment intent).
    Renew { subscription: String, reference: String, payment: Option<String> },
    /// A refund of an order, whole or in part.
    Refund { order: OrderRef, full: bool },
    /// A subscription (or an order) cancelled.
    Cancel(OrderRef),
    /// A subscription started by, or a payment that paid, an order (named
    /// by its external id) placed by another event.
    Link { kind: LinkKind, provider_ref: String, external_id: String },
    /// A customer the provider names by id elsewhere (Paddle).
    Customer { id: String, email: String, name: String },
    /// Nothing to do; the reason code and what it means.
    Ignore(&'static str, String),
}

/// What a provider id linked to an order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// A subscription: its payments renew the order's licences.
    Subscription,
    /// A payment: its refund refunds the order.
    Payment,
}

/// How a delivery names an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderRef {
    /// By the provider's order id: the Keysmith order's external id.
    Order(String),
    /// By a payment recorded with the order (Stripe's payment intent).
    Payment(String),
    /// By a subscription.
    Subscription(String),
}

/// A paid order, as the provider describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Purchase {
    pub external_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// The provider's customer id, when the email comes from elsewhere.
    pub customer: Option<String>,
    pub items: Vec<Item>,
    /// The subscription this order starts.
    pub subscription: Option<String>,
    /// The payment that paid it, for refunds that name only the payment.
    pub payment: Option<String>,
    /// What to tell the admin when it carries no items at all.
    pub no_items: Option<&'static str>,
}

/// One item bought: its ids, most specific first (price or variant, then
/// product), matched against the integration's mappings in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub refs: Vec<String>,
    pub quantity: i64,
}

/// Most items one order may name (`createOrder` takes at most 100 lines).
pub const MAX_ITEMS: usize = 1000;

/// `text` cut to `max` characters, as a column of that length keeps it.
pub fn clip(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// A string or number at `pointer`, as text; `None` when absent, null or empty.
pub fn text(v: &Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A whole number at `pointer` (a JSON number or a string of digits).
pub fn number(v: &Value, pointer: &str) -> Option<i64> {
    match v.pointer(pointer)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An item from the ids found at `pointers` under `v` (absent ones and
/// zeros skipped) and the quantity at `quantity`: 1 when absent, 0 (refused
/// later, naming the item) when it is not a whole number.
pub fn item(v: &Value, pointers: &[&str], quantity: &str) -> Item {
    let refs = pointers.iter().filter_map(|p| text(v, p)).filter(|r| r != "0").collect();
    let quantity = match v.pointer(quantity) {
        None | Some(Value::Null) => 1,
        Some(_) => number(v, quantity).unwrap_or(0),
    };
    Item { refs, quantity }
}

/// A person's name from its parts at `first` and `last` (`None` when both are empty).
pub fn full_name(v: &Value, first: &str, last: &str) -> Option<String> {
    let name = format!("{} {}", text(v, first).unwrap_or_default(), text(v, last).unwrap_or_default());
    Some(name.trim().to_string()).filter(|n| !n.is_empty())
}

/// The array at `pointer` (empty when absent).
pub fn each<'a>(v: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> {
    v.pointer(pointer).and_then(Value::as_array).into_iter().flatten()
}

/// Ignored: a kind of event Keysmith does not act on.
pub fn not_acted_on(event_type: &str) -> Action {
    Action::Ignore("UNHANDLED_TYPE", format!("Keysmith does not act on {event_type} events"))
}
