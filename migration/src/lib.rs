//! Keysmith's schema, as one ordered list of migrations that run unchanged on
//! SQLite and PostgreSQL. Add a new migration for every change; never edit one
//! that has shipped.

pub use sea_orm_migration::prelude::*;

mod client_api;
mod devices_in_use;
mod email;
mod expiry_notices;
mod fulfilment;
mod initial_schema;
mod integrations;
mod job_runner;
mod key_search;
mod portal;
mod renewals;
mod staff_sessions;
mod webhooks;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(initial_schema::Migration),
            Box::new(key_search::Migration),
            Box::new(fulfilment::Migration),
            Box::new(client_api::Migration),
            Box::new(webhooks::Migration),
            Box::new(expiry_notices::Migration),
            Box::new(email::Migration),
            Box::new(job_runner::Migration),
            Box::new(portal::Migration),
            Box::new(staff_sessions::Migration),
            Box::new(devices_in_use::Migration),
            Box::new(renewals::Migration),
            Box::new(integrations::Migration),
        ]
    }
}
