//! What customers see of their own on the portal, and the portal's sign-in.
//! These types carry only what a buyer may know: no metadata, notes,
//! sources, tags or anyone else's records.

use super::order::{OrderStatus, RenewalOutcome};
use super::pool::LicenseStatus;
use crate::graphql::request;
use crate::services::own::{OwnLicence, OwnLine, OwnOrder};
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{activation, customer, license_key};

#[derive(InputObject)]
pub struct RequestPortalLinkInput {
    /// At most 254 characters.
    pub email: String,
}

#[derive(SimpleObject)]
pub struct RequestPortalLinkPayload {
    /// The same whether or not the email is known.
    pub message: String,
}

#[derive(InputObject)]
pub struct CreatePortalLinkInput {
    pub customer_id: ID,
    /// Also email the link to the customer (a resend); the answer carries it either way.
    #[graphql(default = false)]
    pub send_email: bool,
}

#[derive(SimpleObject)]
pub struct PortalLinkPayload {
    /// The single-use sign-in address to hand to the customer.
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct SignInWithPortalLinkInput {
    /// The token from the link's address (at most 100 characters).
    pub token: String,
}

#[derive(SimpleObject)]
pub struct PortalSessionPayload {
    /// A customer token for this session; signing out ends it.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct RevealLicenseKeyInput {
    pub license_id: ID,
}

pub struct RevealLicenseKeyPayload {
    pub licence: license_key::Model,
}

#[Object]
impl RevealLicenseKeyPayload {
    /// The whole key.
    async fn key(&self) -> &str {
        &self.licence.key
    }
    async fn license_id(&self) -> ID {
        ID(self.licence.id.clone())
    }
    /// The licence's status after the reveal.
    async fn status(&self) -> LicenseStatus {
        self.licence.status.into()
    }
}

pub struct PortalAccount(pub customer::Model);

#[Object]
impl PortalAccount {
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
}

pub struct PortalOrder(pub OwnOrder);

#[Object]
impl PortalOrder {
    async fn id(&self) -> ID {
        ID(self.0.order.id.clone())
    }
    /// The seller's order number.
    async fn external_id(&self) -> &str {
        &self.0.order.external_id
    }
    async fn status(&self) -> OrderStatus {
        self.0.order.status.into()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.order.created_at
    }
    async fn lines(&self) -> Vec<PortalOrderLine<'_>> {
        self.0.lines.iter().map(PortalOrderLine).collect()
    }
}

pub struct PortalOrderLine<'a>(&'a OwnLine);

#[Object]
impl PortalOrderLine<'_> {
    async fn quantity(&self) -> i32 {
        self.0.line.quantity
    }
    /// Keys not delivered yet: the product's unavailable message applies.
    async fn waiting(&self) -> i32 {
        self.0.line.missing
    }
    async fn product_name(&self) -> &str {
        &self.0.product.name
    }
    /// The seller's text for the key button, e.g. "Licence Key".
    async fn key_button_text(&self) -> &str {
        &self.0.product.key_button_text
    }
    /// The seller's message where no key is assigned yet.
    async fn unavailable_message(&self) -> &str {
        &self.0.product.unavailable_message
    }
    async fn licenses(&self) -> Vec<PortalLicense<'_>> {
        self.0.licences.iter().map(PortalLicense).collect()
    }
    /// On a line that renews one of the customer's licences, what the
    /// renewal did.
    async fn renewal_outcome(&self) -> Option<RenewalOutcome> {
        RenewalOutcome::of(&self.0.line)
    }
    /// The licence the line renews, as it is now.
    async fn renews(&self, ctx: &Context<'_>) -> Result<Option<PortalRenewed>> {
        let Some(id) = &self.0.line.renews_license_id else {
            return Ok(None);
        };
        let (_, rc) = request(ctx)?;
        let found = super::pool::licence_named(ctx, id).await?;
        // Only while it is still the viewer's: staff may have given it to someone else since.
        let own = match &rc.viewer {
            crate::auth::Viewer::Customer { customer_id } => Some(customer_id.as_str()),
            _ => None,
        };
        Ok(found.filter(|l| own.is_none() || l.customer_id.as_deref() == own).map(PortalRenewed))
    }
}

/// A licence an order line renews.
pub struct PortalRenewed(license_key::Model);

#[Object]
impl PortalRenewed {
    /// The key's first characters.
    async fn key_prefix(&self) -> String {
        license_key::key_prefix(&self.0.key)
    }
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
}

pub struct PortalLicense<'a>(&'a OwnLicence);

#[Object]
impl PortalLicense<'_> {
    async fn id(&self) -> ID {
        ID(self.0.licence.id.clone())
    }
    /// The status now (a licence past its expiry reads EXPIRED).
    async fn status(&self) -> LicenseStatus {
        self.0.status.into()
    }
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.licence.expires_at
    }
    /// The key's first characters, to tell licences apart.
    async fn key_prefix(&self) -> String {
        license_key::key_prefix(&self.0.licence.key)
    }
    /// Whether the customer has been shown the key.
    async fn revealed(&self) -> bool {
        self.0.licence.revealed_at.is_some()
    }
    /// -1: unlimited.
    async fn activation_limit(&self) -> i32 {
        self.0.licence.activation_limit
    }
    async fn activations_used(&self) -> i32 {
        self.0.devices.len() as i32
    }
    /// The devices the licence is active on.
    async fn activations(&self) -> Vec<PortalDevice<'_>> {
        self.0.devices.iter().map(PortalDevice).collect()
    }
}

pub struct PortalDevice<'a>(&'a activation::Model);

#[Object]
impl PortalDevice<'_> {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    async fn platform(&self) -> Option<&str> {
        self.0.platform.as_deref()
    }
    async fn activated_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn last_seen_at(&self) -> DateTime<Utc> {
        self.0.last_seen_at
    }
}
