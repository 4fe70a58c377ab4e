//! Rate limits on the client operations (validate, activate, deactivate):
//! one budget per client address and one per key, checked before any lookup
//! so that guessing keys costs the guesser and not the database.
//!
//! The budgets live in this node's memory (GCRA cells, `governor`): a
//! deployment of N nodes behind a load balancer allows up to N times the
//! configured rate. That keeps the check off the database on the hottest path;
//! the abuse rule, which changes a licence, is counted in the database instead.

use super::settings::Settings;
use entity::Environment;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::RwLock;
use std::time::Duration;

/// Why a call was refused: which budget ran out and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

impl Limited {
    /// Whole seconds to wait, never 0.
    pub fn retry_after_seconds(&self) -> u64 {
        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)
    }
}

/// The per-address and per-key budgets of one node.
#[derive(Default)]
pub struct ClientLimits(RwLock<Limiters>);

#[derive(Default)]
struct Limiters {
    per_key: u32,
    per_address: u32,
    keys: Option<DefaultKeyedRateLimiter<u64>>,
    addresses: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

impl ClientLimits {
    /// Spends one call from `address`'s budget and then from `key`'s, under
    /// the limits `settings` give (a changed limit starts fresh budgets).
    pub fn check(
        &self,
        settings: &Settings,
        address: Option<IpAddr>,
        environment: Environment,
        key: &str,
    ) -> Result<(), Limited> {
        self.follow(settings);
        let Ok(limiters) = self.0.read() else { return Ok(()) };
        // The limiter's own clock: a new one costs a CPU feature probe.
        let refused =
            |n: governor::NotUntil<_>, clock: &DefaultClock| Limited { retry_after: n.wait_time_from(clock.now()) };
        if let (Some(addresses), Some(address)) = (&limiters.addresses, address) {
            addresses.check_key(&address).map_err(|n| refused(n, addresses.clock()))?;
        }
        if let Some(keys) = &limiters.keys {
            let hashed = xxhash_rust::xxh3::xxh3_64(format!("{}\0{key}", environment.as_str()).as_bytes());
            keys.check_key(&hashed).map_err(|n| refused(n, keys.clock()))?;
        }
        Ok(())
    }

    fn follow(&self, settings: &Settings) {
        let wanted = (settings.rate_limit_per_key, settings.rate_limit_per_address);
        if self.0.read().is_ok_and(|l| (l.per_key, l.per_address) == wanted) {
            return;
        }
        if let Ok(mut l) = self.0.write()
            && (l.per_key, l.per_address) != wanted
        {
            *l = Limiters {
                per_key: wanted.0,
                per_address: wanted.1,
                keys: limiter(wanted.0),
                addresses: limiter(wanted.1),
            };
        }
    }

    /// Forgets budgets that have refilled completely, so that a flood of
    /// random keys or addresses does not keep memory: the sweeper calls this
    /// on its schedule (every minute by default).
    pub fn shrink(&self) {
        if let Ok(l) = self.0.read() {
            if let Some(keys) = &l.keys {
                keys.retain_recent();
                keys.shrink_to_fit();
            }
            if let Some(addresses) = &l.addresses {
                addresses.retain_recent();
                addresses.shrink_to_fit();
            }
        }
    }
}

/// Sign-in attempts allowed per client address per minute, on each node.
pub const LOGINS_PER_ADDRESS: u32 = 30;
/// Sign-in attempts allowed per email per minute, on each node.
pub const LOGINS_PER_EMAIL: u32 = 10;

/// Budgets for staff sign-in: per client address and per email (lowercased),
/// so that guessing passwords is slow from one place and for one account.
pub struct LoginLimits {
    addresses: DefaultKeyedRateLimiter<IpAddr>,
    emails: DefaultKeyedRateLimiter<u64>,
}

impl Default for LoginLimits {
    fn default() -> Self {
        let quota = |n| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            addresses: RateLimiter::keyed(quota(LOGINS_PER_ADDRESS)),
            emails: RateLimiter::keyed(quota(LOGINS_PER_EMAIL)),
        }
    }
}

impl LoginLimits {
    /// Spends one attempt from the address's budget and the email's.
    pub fn check(&self, address: Option<IpAddr>, email: &str) -> Result<(), Limited> {
        let refused =
            |n: governor::NotUntil<_>, clock: &DefaultClock| Limited { retry_after: n.wait_time_from(clock.now()) };
        if let Some(address) = address {
            self.addresses.check_key(&address).map_err(|n| refused(n, self.addresses.clock()))?;
        }
        let email = xxhash_rust::xxh3::xxh3_64(email.trim().to_lowercase().as_bytes());
        self.emails.check_key(&email).map_err(|n| refused(n, self.emails.clock()))
    }

    /// Forgets budgets that have refilled completely.
    pub fn shrink(&self) {
        self.addresses.retain_recent();
        self.emails.retain_recent();
    }
}

/// Deliveries per minute to each integration's inbound address, each with
/// the integration's own quota (node-local, like the client budgets).
#[derive(Default)]
pub struct IntegrationLimits(
    std::sync::Mutex<std::collections::HashMap<String, (u32, governor::DefaultDirectRateLimiter)>>,
);

impl IntegrationLimits {
    pub fn check(&self, integration_id: &str, per_minute: u32) -> Result<(), Limited> {
        let Some(quota) = NonZeroU32::new(per_minute) else { return Ok(()) };
        let Ok(mut limiters) = self.0.lock() else { return Ok(()) };
        let entry = limiters
            .entry(integration_id.to_string())
            .or_insert_with(|| (per_minute, RateLimiter::direct(Quota::per_minute(quota))));
        if entry.0 != per_minute {
            *entry = (per_minute, RateLimiter::direct(Quota::per_minute(quota)));
        }
        let limiter = &entry.1;
        limiter.check().map_err(|n| Limited { retry_after: n.wait_time_from(limiter.clock().now()) })
    }

    /// Forgets integrations whose budget is full again (their state is the starting state).
    pub fn shrink(&self) {
        if let Ok(mut limiters) = self.0.lock() {
            limiters.retain(|_, (per_minute, limiter)| {
                NonZeroU32::new(*per_minute).is_some_and(|n| !matches!(limiter.check_n(n), Ok(Ok(()))))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_key: u32, per_address: u32) -> Settings {
        Settings { rate_limit_per_key: per_key, rate_limit_per_address: per_address, ..Settings::default() }
    }

    #[test]
    fn each_key_and_each_address_has_its_own_budget() {
        let l = ClientLimits::default();
        let s = limits(3, 5);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(&s, Some(a), Environment::Production, "K1").is_ok());
        }
        let refused = l.check(&s, Some(a), Environment::Production, "K1").unwrap_err();
        assert!(refused.retry_after_seconds() >= 1 && refused.retry_after_seconds() <= 20, "{refused:?}");
        // The same key in the other environment is another budget.
        assert!(l.check(&s, Some(b), Environment::Staging, "K1").is_ok());
        // Address a has spent 4 of its 5; one more key, then it is throttled for every key.
        assert!(l.check(&s, Some(a), Environment::Production, "K2").is_ok());
        assert!(l.check(&s, Some(a), Environment::Production, "K3").is_err());
        assert!(l.check(&s, Some(b), Environment::Production, "K3").is_ok());
    }

    #[test]
    fn zero_means_no_limit_and_a_new_limit_starts_fresh() {
        let l = ClientLimits::default();
        for _ in 0..100 {
            assert!(l.check(&limits(0, 0), None, Environment::Production, "K").is_ok());
        }
        assert!(l.check(&limits(1, 0), None, Environment::Production, "K").is_ok());
        assert!(l.check(&limits(1, 0), None, Environment::Production, "K").is_err());
        assert!(l.check(&limits(2, 0), None, Environment::Production, "K").is_ok());
    }
}
