//! Who is asking: the viewer behind a request, the roles, and the one
//! permission check that both GraphQL guards and services use.

pub mod jwt;
pub mod password;
pub mod secret;

use crate::error::AppError;
use entity::Environment;
use entity::user::StaffRole;
use serde::{Deserialize, Serialize};

/// Every kind of caller. Staff roles come from the account; `Customer` signs in
/// to the portal; `Anonymous` is shipped software or a stranger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Manager,
    Support,
    Customer,
    Anonymous,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Support => "support",
            Role::Customer => "customer",
            Role::Anonymous => "anonymous",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "manager" => Some(Role::Manager),
            "support" => Some(Role::Support),
            "customer" => Some(Role::Customer),
            "anonymous" => Some(Role::Anonymous),
            _ => None,
        }
    }

    pub fn is_staff(self) -> bool {
        matches!(self, Role::Admin | Role::Manager | Role::Support)
    }
}

impl From<StaffRole> for Role {
    fn from(role: StaffRole) -> Self {
        match role {
            StaffRole::Admin => Role::Admin,
            StaffRole::Manager => Role::Manager,
            StaffRole::Support => Role::Support,
        }
    }
}

/// Who may do what; named for the design brief's role table.
pub mod may {
    use super::Role;

    /// Staff accounts, settings and webhooks. (Deleting generators, licences,
    /// tags and keys is the managers' too: [`MANAGE`].)
    pub const ADMINISTER: &[Role] = &[Role::Admin];
    /// Products, generators, tags, keys, orders, customers, lifecycle actions.
    pub const MANAGE: &[Role] = &[Role::Admin, Role::Manager];
    /// Read everything staff can see.
    pub const READ: &[Role] = &[Role::Admin, Role::Manager, Role::Support];
    /// Inactivate and reactivate licences: support may switch them off and on again.
    pub const SWITCH: &[Role] = &[Role::Admin, Role::Manager, Role::Support];
    /// Read the audit trail.
    pub const AUDIT: &[Role] = &[Role::Admin, Role::Support];
    /// Staff see everything; a customer sees their own (activations, offline files).
    pub const READ_OWN: &[Role] = &[Role::Admin, Role::Manager, Role::Support, Role::Customer];
    /// End a device's activation: support and up any, a customer their own.
    pub const END_DEVICE: &[Role] = &[Role::Admin, Role::Manager, Role::Support, Role::Customer];
    /// A customer, for what is theirs alone (their orders on the portal).
    pub const CUSTOMER: &[Role] = &[Role::Customer];
    /// Anyone at all, signed in or not (staff sign-in, client validation).
    pub const ANYONE: &[Role] = &[Role::Admin, Role::Manager, Role::Support, Role::Customer, Role::Anonymous];
}

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    Anonymous,
    /// Keysmith itself: command-line tools and background work. Acts as an admin.
    System,
    Staff {
        user_id: String,
        role: StaffRole,
    },
    Customer {
        customer_id: String,
    },
    /// A payment provider's verified webhook, acting for an integration with a manager's rights.
    Integration {
        integration_id: String,
    },
}

impl Viewer {
    pub fn role(&self) -> Role {
        match self {
            Viewer::Anonymous => Role::Anonymous,
            Viewer::System => Role::Admin,
            Viewer::Staff { role, .. } => (*role).into(),
            Viewer::Customer { .. } => Role::Customer,
            Viewer::Integration { .. } => Role::Manager,
        }
    }

    /// Succeeds when the viewer holds one of `roles`; anonymous callers are
    /// told to authenticate, others that they are not allowed.
    pub fn require(&self, roles: &[Role]) -> Result<(), AppError> {
        let role = self.role();
        if roles.contains(&role) {
            Ok(())
        } else if role == Role::Anonymous {
            Err(AppError::Unauthenticated("this operation needs a token".into()))
        } else {
            Err(AppError::Forbidden(format!("the {} role may not do this", role.as_str())))
        }
    }
}

/// Everything a service needs to know about the request it serves.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub viewer: Viewer,
    pub environment: Environment,
    /// When the request's token was issued (the caller's last sign-in).
    pub issued_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The `Host` the request was sent to, for addresses shown to staff
    /// when no public URL is configured. Never used in anything sent out.
    pub host: Option<String>,
    /// The client's address (the connection's peer, or what the configured
    /// proxy header says), for per-address rate limits and activation records.
    pub client_address: Option<std::net::IpAddr>,
    /// The session the request's token belongs to (a customer's portal
    /// session or a staff sign-in session), which signing out ends.
    pub session_id: Option<String>,
}

impl RequestContext {
    pub fn new(viewer: Viewer, environment: Environment) -> Self {
        Self { viewer, environment, issued_at: None, host: None, client_address: None, session_id: None }
    }

    /// The built-in identity of command-line tools and background work.
    pub fn system(environment: Environment) -> Self {
        Self::new(Viewer::System, environment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_distinguishes_unauthenticated_from_forbidden() {
        let support = Viewer::Staff { user_id: "u".into(), role: StaffRole::Support };
        assert!(support.require(may::READ).is_ok());
        assert_eq!(support.require(may::MANAGE).unwrap_err().code(), "FORBIDDEN");
        assert_eq!(Viewer::Anonymous.require(may::READ).unwrap_err().code(), "UNAUTHENTICATED");
        let customer = Viewer::Customer { customer_id: "c".into() };
        assert_eq!(customer.require(may::READ).unwrap_err().code(), "FORBIDDEN");
    }
}
