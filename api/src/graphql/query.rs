//! The query root, merged from one object per area.

mod activations;
mod audit;
mod customers;
mod generators;
pub(crate) mod integrations;
mod jobs;
mod licenses;
mod orders;
mod pools;
mod portal;
mod products;
mod session;
mod settings;
mod webhooks;

use async_graphql::MergedObject;

#[derive(Default, MergedObject)]
pub struct Query(
    activations::ActivationQuery,
    audit::AuditQuery,
    products::ProductQuery,
    customers::CustomerQuery,
    generators::GeneratorQuery,
    integrations::IntegrationQuery,
    jobs::JobQuery,
    licenses::LicenseQuery,
    orders::OrderQuery,
    pools::PoolQuery,
    portal::PortalQuery,
    session::SessionQuery,
    settings::SettingsQuery,
    webhooks::WebhookQuery,
);
