//! The signed-in viewer and staff sign-in.

use super::common::{Environment, Role, StaffRole};
use async_graphql::{ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::user::Model;

/// A staff account.
pub struct StaffUser(pub Model);

#[Object]
impl StaffUser {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn role(&self) -> StaffRole {
        self.0.role.into()
    }
    async fn disabled(&self) -> bool {
        self.0.disabled
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

impl std::fmt::Debug for StaffUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StaffUser").field(&self.0.id).finish()
    }
}

/// Who is asking, in which environment.
#[derive(Debug, SimpleObject)]
pub struct Me {
    pub role: Role,
    pub environment: Environment,
    /// The staff account, for staff tokens.
    pub user: Option<StaffUser>,
}

#[derive(InputObject)]
pub struct LoginInput {
    /// At most 254 characters.
    pub email: String,
    /// At most 256 characters.
    #[graphql(secret)]
    pub password: String,
    /// Open a server-side session (what the admin portal signs in with): the
    /// token then works only until `signOut`, until the session has been
    /// unused for the `adminIdleTimeoutMinutes` setting, or until the account
    /// is disabled or its role or password changes. Without it the token is
    /// a bearer token for API clients, valid until it expires or the account
    /// changes.
    #[graphql(default = false)]
    pub session: bool,
}

#[derive(Debug, SimpleObject)]
pub struct LoginPayload {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// When the token stops working at the latest (a session may end sooner).
    pub expires_at: DateTime<Utc>,
    pub user: StaffUser,
}

#[derive(Debug, SimpleObject)]
pub struct SignOutPayload {
    /// Whether a session was ended: false when the token belongs to none
    /// (a staff bearer token without a session) or it had already ended.
    pub signed_out: bool,
}

#[derive(InputObject)]
pub struct CreateUserInput {
    /// At most 254 characters.
    pub email: String,
    /// 12–256 characters.
    #[graphql(secret)]
    pub password: String,
    pub role: StaffRole,
}

#[derive(InputObject)]
pub struct UpdateUserInput {
    pub id: ID,
    pub role: Option<StaffRole>,
    pub disabled: Option<bool>,
    /// A new password (a reset by an admin): 12–256 characters.
    #[graphql(secret)]
    pub password: Option<String>,
}

#[derive(InputObject)]
pub struct ChangePasswordInput {
    /// At most 256 characters.
    #[graphql(secret)]
    pub current_password: String,
    /// 12–256 characters.
    #[graphql(secret)]
    pub new_password: String,
}

#[derive(Debug, SimpleObject)]
pub struct UserPayload {
    pub user: StaffUser,
}

#[derive(Debug, SimpleObject)]
pub struct TokenPayload {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}
