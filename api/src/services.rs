//! Domain services: one module per area. A service takes a connection (or a
//! transaction it opens itself) and the request context, checks the viewer's
//! permission, enforces the domain rules and returns domain values. Services
//! know nothing of GraphQL or HTTP — but for one thing: the list of event
//! kinds (`events::EventKind`) is also the GraphQL enum, so there is one list.

pub mod abuse;
pub mod activations;
pub mod audit;
pub mod bulk;
pub mod customers;
pub mod email;
pub mod events;
pub mod exhaustion;
pub mod export;
pub mod fulfilment;
pub mod generators;
pub mod import;
pub mod integrations;
pub mod jobs;
pub mod keys;
pub mod licenses;
pub mod limits;
pub mod live;
pub mod offline;
pub mod orders;
pub mod own;
pub mod pagination;
pub mod portal;
pub mod products;
pub mod ratelimit;
pub mod reminders;
pub mod renewals;
pub mod samples;
pub mod settings;
pub mod sql;
pub mod staff_sessions;
pub mod tags;
pub mod users;
pub mod validation;
pub mod webhooks;
