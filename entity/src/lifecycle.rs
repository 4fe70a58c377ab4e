//! The licence state machine: the only place that decides which status an action
//! leads to. Every service path that changes a licence's status asks [`transition`].

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LicenseStatus {
    /// In a pool, waiting to be delivered.
    #[sea_orm(string_value = "AVAILABLE")]
    Available,
    /// Delivered to a customer, not yet used.
    #[sea_orm(string_value = "ASSIGNED")]
    Assigned,
    /// Activated on a device or revealed to its customer.
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    /// Switched off by staff; reversible.
    #[sea_orm(string_value = "INACTIVE")]
    Inactive,
    /// Suspended by the abuse rule or by staff; reversible.
    #[sea_orm(string_value = "SUSPENDED")]
    Suspended,
    /// Past its expiry date.
    #[sea_orm(string_value = "EXPIRED")]
    Expired,
    /// Retired for good.
    #[sea_orm(string_value = "REVOKED")]
    Revoked,
}

impl LicenseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseStatus::Available => "AVAILABLE",
            LicenseStatus::Assigned => "ASSIGNED",
            LicenseStatus::Active => "ACTIVE",
            LicenseStatus::Inactive => "INACTIVE",
            LicenseStatus::Suspended => "SUSPENDED",
            LicenseStatus::Expired => "EXPIRED",
            LicenseStatus::Revoked => "REVOKED",
        }
    }
}

impl std::fmt::Display for LicenseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can be done to a licence's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LicenseAction {
    Assign,
    ReturnToPool,
    Activate,
    Reveal,
    Inactivate,
    Reactivate,
    Suspend,
    Unsuspend,
    Expire,
    Revoke,
    /// Changing a licence's customer, limits, expiry, flags or metadata: any
    /// status but REVOKED, and the status stays.
    Edit,
    /// Moving a delivered licence's expiry later (a paid renewal): ASSIGNED,
    /// ACTIVE, INACTIVE or SUSPENDED, and the status stays. An EXPIRED
    /// licence stays expired; its customer gets a new licence instead.
    Renew,
}

impl LicenseAction {
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseAction::Assign => "assign",
            LicenseAction::ReturnToPool => "return to pool",
            LicenseAction::Activate => "activate",
            LicenseAction::Reveal => "reveal",
            LicenseAction::Inactivate => "inactivate",
            LicenseAction::Reactivate => "reactivate",
            LicenseAction::Suspend => "suspend",
            LicenseAction::Unsuspend => "unsuspend",
            LicenseAction::Expire => "expire",
            LicenseAction::Revoke => "revoke",
            LicenseAction::Edit => "edit",
            LicenseAction::Renew => "renew",
        }
    }
}

/// An action the licence's current status does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} a licence that is {from}{}", action.as_str(), advice(*action, *from))]
pub struct TransitionError {
    pub from: LicenseStatus,
    pub action: LicenseAction,
}

/// What to do instead, where there is something.
fn advice(action: LicenseAction, from: LicenseStatus) -> &'static str {
    match (action, from) {
        (LicenseAction::Renew, LicenseStatus::Expired) => {
            ": an expired licence stays expired; issue a new licence (an order line that renews it does)"
        }
        _ => "",
    }
}

/// The status `action` leads to from `from`, or why it is not allowed.
///
/// Returning a key to its pool additionally requires that it was never
/// activated nor revealed; that depends on the licence's history, not its
/// status, and is checked by the caller.
pub fn transition(from: LicenseStatus, action: LicenseAction) -> Result<LicenseStatus, TransitionError> {
    use LicenseAction as A;
    use LicenseStatus as S;
    let to = match (action, from) {
        (A::Assign, S::Available) => S::Assigned,
        (A::ReturnToPool, S::Assigned) => S::Available,
        (A::Activate | A::Reveal, S::Assigned) => S::Active,
        (A::Inactivate, S::Active) => S::Inactive,
        (A::Reactivate, S::Inactive) => S::Active,
        (A::Suspend, S::Active) => S::Suspended,
        (A::Unsuspend, S::Suspended) => S::Active,
        (A::Expire, S::Assigned | S::Active) => S::Expired,
        (A::Revoke, s) if s != S::Revoked => S::Revoked,
        (A::Edit, s) if s != S::Revoked => s,
        (A::Renew, s @ (S::Assigned | S::Active | S::Inactive | S::Suspended)) => s,
        _ => return Err(TransitionError { from, action }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use LicenseAction as A;
    use LicenseStatus as S;
    use sea_orm::Iterable;

    /// The whole table from the design brief; every pair not listed must be refused.
    const ALLOWED: &[(A, S, S)] = &[
        (A::Assign, S::Available, S::Assigned),
        (A::ReturnToPool, S::Assigned, S::Available),
        (A::Activate, S::Assigned, S::Active),
        (A::Reveal, S::Assigned, S::Active),
        (A::Inactivate, S::Active, S::Inactive),
        (A::Reactivate, S::Inactive, S::Active),
        (A::Suspend, S::Active, S::Suspended),
        (A::Unsuspend, S::Suspended, S::Active),
        (A::Expire, S::Assigned, S::Expired),
        (A::Expire, S::Active, S::Expired),
        (A::Revoke, S::Available, S::Revoked),
        (A::Revoke, S::Assigned, S::Revoked),
        (A::Revoke, S::Active, S::Revoked),
        (A::Revoke, S::Inactive, S::Revoked),
        (A::Revoke, S::Suspended, S::Revoked),
        (A::Revoke, S::Expired, S::Revoked),
        (A::Edit, S::Available, S::Available),
        (A::Edit, S::Assigned, S::Assigned),
        (A::Edit, S::Active, S::Active),
        (A::Edit, S::Inactive, S::Inactive),
        (A::Edit, S::Suspended, S::Suspended),
        (A::Edit, S::Expired, S::Expired),
        (A::Renew, S::Assigned, S::Assigned),
        (A::Renew, S::Active, S::Active),
        (A::Renew, S::Inactive, S::Inactive),
        (A::Renew, S::Suspended, S::Suspended),
    ];

    #[test]
    fn every_status_action_pair_matches_the_table() {
        for action in A::iter() {
            for from in S::iter() {
                let expected = ALLOWED.iter().find(|(a, f, _)| *a == action && *f == from).map(|(_, _, to)| *to);
                match (transition(from, action), expected) {
                    (Ok(to), Some(want)) => assert_eq!(to, want, "{action:?} from {from:?}"),
                    (Err(e), None) => {
                        assert_eq!(e, TransitionError { from, action });
                        assert!(e.to_string().contains(from.as_str()), "{e}");
                    }
                    (got, want) => panic!("{action:?} from {from:?}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn renewing_an_expired_licence_says_to_issue_a_new_one() {
        let refused = transition(S::Expired, A::Renew).expect_err("refused");
        assert_eq!(
            refused.to_string(),
            "cannot renew a licence that is EXPIRED: an expired licence stays expired; issue a new licence \
             (an order line that renews it does)"
        );
        assert_eq!(
            transition(S::Available, A::Renew).expect_err("refused").to_string(),
            "cannot renew a licence that is AVAILABLE"
        );
    }

    #[test]
    fn revoked_is_terminal() {
        for action in A::iter() {
            assert!(transition(S::Revoked, action).is_err(), "{action:?}");
        }
    }

    /// Every status reachable from AVAILABLE through the table.
    fn reachable() -> Vec<S> {
        let mut seen = vec![S::Available];
        let mut i = 0;
        while i < seen.len() {
            for action in A::iter() {
                if let Ok(to) = transition(seen[i], action)
                    && !seen.contains(&to)
                {
                    seen.push(to);
                }
            }
            i += 1;
        }
        seen
    }

    proptest::proptest! {
        /// Random action sequences from AVAILABLE: the licence is always in a
        /// reachable state, a refused action leaves it where it was, and
        /// REVOKED is never left.
        #[test]
        fn random_action_sequences_stay_in_reachable_states(actions in proptest::collection::vec(0usize..12, 0..60)) {
            let all: Vec<A> = A::iter().collect();
            let reachable = reachable();
            let mut status = S::Available;
            for i in actions {
                let action = all[i % all.len()];
                let before = status;
                match transition(status, action) {
                    Ok(to) => status = to,
                    Err(e) => proptest::prop_assert_eq!(e, TransitionError { from: before, action }),
                }
                proptest::prop_assert!(reachable.contains(&status));
                if before == S::Revoked {
                    proptest::prop_assert_eq!(status, S::Revoked);
                }
            }
        }
    }
}
