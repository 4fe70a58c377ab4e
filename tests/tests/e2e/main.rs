//! End-to-end tests: the real server over HTTP, each test on SQLite and on
//! PostgreSQL (see `keysmith_tests::on_both_databases!`).

mod admin;
mod admin_browser;
mod admin_keys;
mod admin_ops;
mod audit;
mod auth;
mod browser;
mod cli;
mod client;
mod email;
mod environments;
mod errors;
mod fulfilment;
mod generators;
mod imports;
mod jobs;
mod licenses;
mod limits;
mod logs;
mod offline;
mod orders;
mod pools;
mod portal;
mod preview;
mod products;
mod reliability;
mod roles;
mod runner;
mod schema_rules;
mod server;
mod staff_sessions;
mod storage;
mod surface;
mod users;
mod webhooks;
