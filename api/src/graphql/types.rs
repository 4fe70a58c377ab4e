//! GraphQL output and input types. These are not the database rows: each
//! object wraps a domain value and exposes only the fields clients may see.

pub mod common;
pub mod customer;
pub mod generator;
pub mod integration;
pub mod job;
pub mod order;
pub mod pool;
pub mod portal;
pub mod product;
pub mod session;
pub mod settings;
pub mod validation;
pub mod webhook;
