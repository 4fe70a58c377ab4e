//! Keysmith's domain model: the sea-orm entities (one module per table) and the
//! pure rules on them — the licence state machine, validated value types and the
//! enumerations stored as text. Nothing here touches the network or a database
//! connection; `api` runs the queries, `migration` owns the schema.

pub mod activation;
pub mod audit_event;
pub mod customer;
pub mod email;
pub mod environment;
pub mod event;
pub mod expiry_notice;
pub mod fingerprint_attempt;
pub mod generator;
pub mod integration;
pub mod integration_customer;
pub mod integration_event;
pub mod integration_link;
pub mod integration_product;
pub mod job;
pub mod keygen;
pub mod license_key;
pub mod license_key_tag;
pub mod license_renewal;
pub mod lifecycle;
pub mod order;
pub mod order_line;
pub mod pool_alert;
pub mod portal_link;
pub mod portal_session;
pub mod product;
pub mod setting;
pub mod signing_key;
pub mod staff_session;
pub mod tag;
pub mod user;
pub mod values;
pub mod webhook_delivery;
pub mod webhook_endpoint;

pub use environment::Environment;
pub use lifecycle::{LicenseAction, LicenseStatus, TransitionError};
pub use values::InvalidValue;

/// The current time, truncated to microseconds: the precision PostgreSQL
/// keeps, so that SQLite and PostgreSQL store the same instant and a cursor
/// built from a row's timestamp compares equal to it.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    stored_time(chrono::Utc::now())
}

/// `t` as the databases keep it: PostgreSQL holds microseconds, so every
/// time Keysmith stores (client-supplied ones included) is cut to them, and
/// both databases sort, compare and page through the same values.
pub fn stored_time(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

/// A new sortable, unique identifier for any row (a ULID, 26 characters).
pub fn new_id() -> String {
    ulid::Ulid::generate().to_string()
}

/// `n` new ids in ascending order, however fast they are made: rows written
/// together at one instant (an order's lines) keep the order they were given
/// in when sorted by their creation time and id.
pub fn new_ids(n: usize) -> Vec<String> {
    let mut ids = ulid::Generator::new();
    (0..n).map(|_| ids.generate().unwrap_or_else(|overflow| overflow.commit_overflow_random()).to_string()).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_made_together_ascend() {
        let ids = super::new_ids(1_000);
        assert_eq!(ids.len(), 1_000);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending");
    }
}
