//! Integrations (`/admin/integrations`, admins): payment providers and
//! shops whose webhooks place orders. The list shows each one's inbound
//! address to paste into the provider; a page per integration holds its
//! setup steps, product mappings, policies, secret (write-only: a field to
//! replace it, never its value), and its recent events with Replay.

use super::Admin;
use super::pages::{
    Area, Flash, Staff, answer, areas, ended, forged, form_fields, form_value, message_page, outcome, page, session,
    staff_of, take_flash, to_login,
};
use super::tags::COMPONENT;
use askama::Template;
use percent_encoding::utf8_percent_encode;
use poem::http::StatusCode;
use poem::web::{CsrfToken, CsrfVerifier, Data, Path, Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

const FORBIDDEN: &str = "Only admins connect payment providers.";

/// (value, label) of each provider.
pub(crate) const PROVIDERS: [(&str, &str); 5] = [
    ("STRIPE", "Stripe"),
    ("PADDLE", "Paddle Billing"),
    ("LEMON_SQUEEZY", "Lemon Squeezy"),
    ("SHOPIFY", "Shopify"),
    ("WOOCOMMERCE", "WooCommerce"),
];
pub(crate) const REFUNDS: [(&str, &str); 3] = [
    ("KEEP", "Keep the keys with the customer"),
    ("RETURN_UNREVEALED", "Return keys never revealed or activated to the pool"),
    ("REVOKE", "Revoke every key"),
];
pub(crate) const CANCELS: [(&str, &str); 3] = [
    ("EXPIRE_AT_PERIOD_END", "Let the licences expire at the end of the paid period"),
    ("SUSPEND", "Suspend active licences"),
    ("REVOKE", "Revoke the licences"),
];

fn label(list: &[(&'static str, &'static str)], value: &str) -> String {
    list.iter().find(|(v, _)| *v == value).map_or(value, |(_, l)| l).to_string()
}

/// What to do on the provider's side, in short (the README has it in full).
fn setup(provider: &str) -> &'static str {
    match provider {
        "STRIPE" => {
            "Developers → Webhooks → Add endpoint with this address; events checkout.session.completed, \
             checkout.session.async_payment_succeeded, invoice.paid, charge.refunded, customer.subscription.deleted. \
             Paste the endpoint's signing secret (whsec_…). Name a Checkout Session's items in its metadata \
             keysmith_items (price_…:2,price_…), or map Payment Link ids."
        }
        "PADDLE" => {
            "Developer tools → Notifications → New destination with this address; events transaction.completed, \
             adjustment.created, adjustment.updated, subscription.canceled, customer.created, customer.updated. \
             Paste the destination's secret key. Map price ids (pri_…) or product ids (pro_…)."
        }
        "LEMON_SQUEEZY" => {
            "Settings → Webhooks → + with this address and a signing secret (paste the same here); events \
             order_created, order_refunded, subscription_created, subscription_payment_success, \
             subscription_cancelled. Map variant ids."
        }
        "SHOPIFY" => {
            "Your app's client secret (or the key shown under Settings → Notifications → Webhooks); topics \
             orders/paid, orders/updated, orders/cancelled, and for subscriptions subscription_contracts/create, \
             subscription_billing_attempts/success, subscription_contracts/cancel. Map variant ids."
        }
        _ => {
            "WooCommerce → Settings → Advanced → Webhooks → Add webhook: status Active, topic Order updated, this \
             address, a secret (paste the same here), API version WP REST API v3. Map product or variation ids."
        }
    }
}

pub(crate) struct IntegrationRow {
    pub href: String,
    pub name: String,
    pub provider: String,
    pub enabled: bool,
    pub inbound: String,
    pub attention: i64,
    pub refused: i64,
}

#[derive(Template)]
#[template(path = "admin/integrations.html")]
struct IntegrationsPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    rows: Vec<IntegrationRow>,
    providers: Vec<(&'static str, &'static str, bool)>,
    refunds: Vec<(&'static str, &'static str, bool)>,
    cancels: Vec<(&'static str, &'static str, bool)>,
    name: &'a str,
    error: Option<String>,
    flash: Option<Flash>,
}

fn choices(list: &[(&'static str, &'static str)], chosen: &str) -> Vec<(&'static str, &'static str, bool)> {
    list.iter().enumerate().map(|(i, (v, l))| (*v, *l, *v == chosen || (chosen.is_empty() && i == 0))).collect()
}

async fn render_list(
    req: &Request,
    admin: &Admin,
    token: &str,
    csrf: &str,
    typed: Option<&[(String, String)]>,
    error: Option<String>,
) -> Response {
    let query = "{ me { role environment user { email } } integrations(first: 100) { nodes { id name provider \
                 enabled inboundUrl needsAttention refusedCount } } }";
    let (data, code, _) = answer(admin.run(req, Some(token), query, json!({})).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    if code.as_deref() == Some("FORBIDDEN") || staff.role != "admin" {
        return message_page(StatusCode::FORBIDDEN, "Integrations", FORBIDDEN);
    }
    let rows = data["integrations"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| IntegrationRow {
            href: format!(
                "/admin/integrations/{}",
                utf8_percent_encode(n["id"].as_str().unwrap_or_default(), COMPONENT)
            ),
            name: n["name"].as_str().unwrap_or_default().to_string(),
            provider: label(&PROVIDERS, n["provider"].as_str().unwrap_or_default()),
            enabled: n["enabled"].as_bool().unwrap_or_default(),
            inbound: n["inboundUrl"].as_str().unwrap_or_default().to_string(),
            attention: n["needsAttention"].as_i64().unwrap_or_default(),
            refused: n["refusedCount"].as_i64().unwrap_or_default(),
        })
        .collect();
    let typed = typed.unwrap_or_default();
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    page(
        status,
        IntegrationsPage {
            title: "Integrations",
            csrf,
            staff,
            areas: areas("Integrations"),
            back: "/admin/integrations",
            rows,
            providers: choices(&PROVIDERS, form_value(typed, "provider")),
            refunds: choices(&REFUNDS, form_value(typed, "on_refund")),
            cancels: choices(&CANCELS, form_value(typed, "on_cancel")),
            name: form_value(typed, "name"),
            error,
            flash: take_flash(req, admin),
        }
        .render(),
    )
}

#[handler]
pub(crate) async fn integrations(req: &Request, Data(admin): Data<&Arc<Admin>>, csrf: &CsrfToken) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    render_list(req, admin, &token, &csrf.0, None, None).await
}

#[handler]
pub(crate) async fn create_integration(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    body: String,
) -> Response {
    let typed = form_fields(&body);
    if !verifier.is_valid(form_value(&typed, "csrf")) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let mutation = "mutation($i: CreateIntegrationInput!) { createIntegration(input: $i) { integration { id } } }";
    let input = json!({
        "provider": form_value(&typed, "provider"), "name": form_value(&typed, "name"),
        "secret": form_value(&typed, "secret"), "onRefund": form_value(&typed, "on_refund"),
        "onCancel": form_value(&typed, "on_cancel"),
    });
    let (data, code, message) = answer(admin.run(req, Some(&token), mutation, json!({ "i": input })).await);
    match code.as_deref() {
        None => {
            let id = data["createIntegration"]["integration"]["id"].as_str().unwrap_or_default();
            super::pages::flash(req, admin, true, "Integration created: give the provider its inbound address");
            Redirect::see_other(format!("/admin/integrations/{}", utf8_percent_encode(id, COMPONENT))).into_response()
        }
        Some("UNAUTHENTICATED") => ended(req, admin),
        Some("FORBIDDEN") => message_page(StatusCode::FORBIDDEN, "Integrations", FORBIDDEN),
        // The secret typed is never sent back to the browser.
        Some(_) => {
            let error = message.unwrap_or_else(|| "That did not work.".into());
            render_list(req, admin, &token, &csrf.0, Some(&typed), Some(error)).await
        }
    }
}

pub(crate) struct MappingRow {
    pub provider_ref: String,
    pub product: String,
}

pub(crate) struct EventRow {
    pub id: String,
    pub kind: String,
    pub outcome: String,
    pub why: String,
    pub order: Option<(String, String)>,
    pub received: String,
    pub replayable: bool,
}

#[derive(Template)]
#[template(path = "admin/integration.html")]
struct IntegrationPage<'a> {
    title: &'a str,
    csrf: &'a str,
    staff: Staff,
    areas: Vec<Area>,
    back: &'a str,
    href: String,
    name: String,
    provider: String,
    setup: &'static str,
    inbound: String,
    enabled: bool,
    refused: i64,
    last_refusal: String,
    refunds: Vec<(&'static str, &'static str, bool)>,
    cancels: Vec<(&'static str, &'static str, bool)>,
    email_customer: bool,
    tolerance: i64,
    rate: i64,
    /// WooCommerce's paid statuses, comma-separated (`None` for other providers).
    paid_statuses: Option<String>,
    mappings: Vec<MappingRow>,
    products: Vec<(String, String)>,
    outcomes: Vec<(&'static str, bool)>,
    events: Vec<EventRow>,
    flash: Option<Flash>,
}

#[derive(Deserialize)]
pub(crate) struct EventFilter {
    outcome: Option<String>,
}

const OUTCOMES: [&str; 5] = ["NEEDS_ATTENTION", "FAILED", "DISABLED", "PROCESSED", "IGNORED"];

const DETAIL: &str = "query($id: ID!, $outcome: IntegrationEventOutcome) { me { role environment user { email } } \
    integration(id: $id) { id name provider enabled inboundUrl onRefund onCancel refusedCount lastRefusal \
      emailCustomer toleranceSeconds rateLimitPerMinute paidStatuses \
      productMappings { providerRef product { id name } } } \
    products(first: 100, filter: {status: ACTIVE}, orderBy: {field: NAME, direction: ASC}) { edges { node { id name } } } \
    integrationEvents(integrationId: $id, outcome: $outcome, first: 50) { nodes { id eventType outcome reason detail \
      receivedAt order { id externalId } } } }";

#[handler]
pub(crate) async fn integration(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    csrf: &CsrfToken,
    Path(id): Path<String>,
    Query(filter): Query<EventFilter>,
) -> Response {
    let Some(token) = session(req) else { return to_login(None) };
    let chosen = filter.outcome.filter(|o| OUTCOMES.contains(&o.as_str()));
    let (data, code, _) = answer(admin.run(req, Some(&token), DETAIL, json!({ "id": id, "outcome": chosen })).await);
    let Some(staff) = staff_of(&data) else { return ended(req, admin) };
    if code.as_deref() == Some("FORBIDDEN") || staff.role != "admin" {
        return message_page(StatusCode::FORBIDDEN, "Integrations", FORBIDDEN);
    }
    let i = &data["integration"];
    if i.is_null() {
        return message_page(StatusCode::NOT_FOUND, "No such integration", "There is no such integration here.");
    }
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let when = |v: &Value| v.as_str().map(|t| t.get(..16).unwrap_or(t).replace('T', " ")).unwrap_or_default();
    let mappings = i["productMappings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| MappingRow {
            provider_ref: text(&m["providerRef"]),
            product: m["product"]["name"].as_str().unwrap_or("— no licence (passed over)").to_string(),
        })
        .collect();
    let products = data["products"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (text(&e["node"]["id"]), text(&e["node"]["name"])))
        .collect();
    let events = data["integrationEvents"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| EventRow {
            id: text(&e["id"]),
            kind: text(&e["eventType"]),
            outcome: text(&e["outcome"]).to_lowercase().replace('_', " "),
            why: [e["reason"].as_str(), e["detail"].as_str()].into_iter().flatten().collect::<Vec<_>>().join(": "),
            order: e["order"]["id"].as_str().map(|o| {
                (format!("/admin/orders/{}", utf8_percent_encode(o, COMPONENT)), text(&e["order"]["externalId"]))
            }),
            received: when(&e["receivedAt"]),
            replayable: matches!(e["outcome"].as_str(), Some("NEEDS_ATTENTION" | "FAILED" | "DISABLED")),
        })
        .collect();
    page(
        StatusCode::OK,
        IntegrationPage {
            title: "Integration",
            csrf: &csrf.0,
            staff,
            areas: areas("Integrations"),
            back: "/admin/integrations",
            href: format!("/admin/integrations/{}", utf8_percent_encode(&id, COMPONENT)),
            name: text(&i["name"]),
            provider: label(&PROVIDERS, i["provider"].as_str().unwrap_or_default()),
            setup: setup(i["provider"].as_str().unwrap_or_default()),
            inbound: text(&i["inboundUrl"]),
            enabled: i["enabled"].as_bool().unwrap_or_default(),
            refused: i["refusedCount"].as_i64().unwrap_or_default(),
            last_refusal: text(&i["lastRefusal"]),
            refunds: choices(&REFUNDS, i["onRefund"].as_str().unwrap_or_default()),
            cancels: choices(&CANCELS, i["onCancel"].as_str().unwrap_or_default()),
            email_customer: i["emailCustomer"].as_bool().unwrap_or_default(),
            tolerance: i["toleranceSeconds"].as_i64().unwrap_or_default(),
            rate: i["rateLimitPerMinute"].as_i64().unwrap_or_default(),
            paid_statuses: (i["provider"] == "WOOCOMMERCE").then(|| {
                let list = i["paidStatuses"].as_array().into_iter().flatten().filter_map(Value::as_str);
                list.collect::<Vec<_>>().join(", ")
            }),
            mappings,
            products,
            outcomes: OUTCOMES.iter().map(|o| (*o, chosen.as_deref() == Some(*o))).collect(),
            events,
            flash: take_flash(req, admin),
        }
        .render(),
    )
}

/// The mappings as they are, for a change that adds or removes one.
async fn current_mappings(req: &Request, admin: &Admin, token: &str, id: &str) -> Option<Vec<Value>> {
    let query = "query($id: ID!) { integration(id: $id) { productMappings { providerRef product { id } } } }";
    let (data, _, _) = answer(admin.run(req, Some(token), query, json!({ "id": id })).await);
    let list = data["integration"]["productMappings"].as_array()?;
    Some(list.iter().map(|m| json!({ "providerRef": m["providerRef"], "productId": m["product"]["id"] })).collect())
}

#[handler]
pub(crate) async fn change_integration(
    req: &Request,
    Data(admin): Data<&Arc<Admin>>,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let typed = form_fields(&body);
    if !verifier.is_valid(form_value(&typed, "csrf")) {
        return forged();
    }
    let Some(token) = session(req) else { return to_login(None) };
    let here = format!("/admin/integrations/{}", utf8_percent_encode(&id, COMPONENT));
    const UPDATE: &str =
        "mutation($i: UpdateIntegrationInput!) { updateIntegration(input: $i) { integration { id } } }";
    let field = |name: &str| form_value(&typed, name).to_string();
    let (mutation, variables, done, back) = match form_value(&typed, "change") {
        "enable" | "disable" => {
            let on = form_value(&typed, "change") == "enable";
            let done =
                if on { "Integration enabled" } else { "Integration disabled: deliveries are recorded, not acted on" };
            (UPDATE, json!({ "i": { "id": id, "enabled": on } }), done, here)
        }
        "policies" => (
            UPDATE,
            json!({ "i": { "id": id, "onRefund": field("on_refund"), "onCancel": field("on_cancel") } }),
            "Policies saved",
            here,
        ),
        "settings" => {
            // A number that does not parse is sent as 0: the API refuses it at its field.
            let number = |name: &str| form_value(&typed, name).trim().parse::<i64>().unwrap_or(0);
            let mut input = json!({
                "id": id, "name": field("name"), "emailCustomer": form_value(&typed, "email_customer") == "yes",
                "toleranceSeconds": number("tolerance"), "rateLimitPerMinute": number("rate"),
            });
            if typed.iter().any(|(k, _)| k == "paid_statuses") {
                let statuses: Vec<&str> =
                    form_value(&typed, "paid_statuses").split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
                input["paidStatuses"] = json!(statuses);
            }
            (UPDATE, json!({ "i": input }), "Settings saved", here)
        }
        "secret" => {
            let hours: i64 = form_value(&typed, "keep_hours").trim().parse().unwrap_or(0);
            (
                UPDATE,
                json!({ "i": { "id": id, "secret": field("secret"), "keepPreviousSecretHours": hours } }),
                "Secret replaced",
                here,
            )
        }
        change @ ("add-mapping" | "remove-mapping") => {
            let Some(mut list) = current_mappings(req, admin, &token, &id).await else {
                return message_page(
                    StatusCode::NOT_FOUND,
                    "No such integration",
                    "There is no such integration here.",
                );
            };
            let provider_ref = field("provider_ref").trim().to_string();
            list.retain(|m| m["providerRef"] != provider_ref.as_str());
            if change == "add-mapping" {
                let product = Some(field("product")).filter(|p| !p.is_empty());
                list.push(json!({ "providerRef": provider_ref, "productId": product }));
            }
            let done = if change == "add-mapping" { "Mapping saved" } else { "Mapping removed" };
            (UPDATE, json!({ "i": { "id": id, "productMappings": list } }), done, here)
        }
        "replay" => (
            "mutation($id: ID!) { replayIntegrationEvent(input: {id: $id}) { event { outcome } } }",
            json!({ "id": field("event") }),
            "Event replayed",
            here,
        ),
        "delete" => (
            "mutation($id: ID!) { deleteIntegration(input: {id: $id}) { deletedId } }",
            json!({ "id": id }),
            "Integration deleted",
            "/admin/integrations".to_string(),
        ),
        _ => return StatusCode::BAD_REQUEST.into_response(),
    };
    let (_, code, message) = answer(admin.run(req, Some(&token), mutation, variables).await);
    if let Some(to) = outcome(req, admin, code.as_deref(), message, done) {
        return to;
    }
    Redirect::see_other(back).into_response()
}
