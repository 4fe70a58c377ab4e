//! The mutation root, merged from one object per area. Every mutation takes
//! one `input` object, returns a payload, and carries a `RoleGuard`.

mod activations;
mod customers;
mod generators;
mod integrations;
pub(crate) mod licenses;
mod orders;
mod pools;
mod portal;
mod products;
mod session;
mod settings;
mod validation;
mod webhooks;

use async_graphql::MergedObject;

#[derive(Default, MergedObject)]
pub struct Mutation(
    activations::ActivationMutation,
    products::ProductMutation,
    customers::CustomerMutation,
    generators::GeneratorMutation,
    integrations::IntegrationMutation,
    licenses::LicenseMutation,
    orders::OrderMutation,
    pools::PoolMutation,
    portal::PortalMutation,
    session::SessionMutation,
    settings::SettingsMutation,
    validation::ValidationMutation,
    webhooks::WebhookMutation,
);
