//! Staff accounts: creating them, signing in, and turning a bearer token back
//! into the account it was issued for. Sign-in sessions (the admin portal's)
//! live in [`super::staff_sessions`].

use super::audit::{self, Change};
use super::limits;
use super::pagination::{Keyset, Page, PageArgs, SortKind, paginate, time_value};
use super::staff_sessions;
use crate::auth::jwt::{Claims, JwtKeys};
use crate::auth::{RequestContext, Role, Viewer, may, password};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};
use entity::Environment;
use entity::user::{self, StaffRole};
use entity::values::{Email, Password};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, Set};

/// A signed token and when it stops working.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

pub async fn create(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    email: &str,
    password: &str,
    role: StaffRole,
) -> AppResult<user::Model> {
    ctx.viewer.require(may::ADMINISTER)?;
    let email = Email::parse("email", email)?;
    let password = Password::parse("password", password)?;
    let password_hash = password::hash(password.expose().to_string()).await?;

    let txn = begin_write(db).await?;
    let now = entity::now();
    let created = user::ActiveModel {
        id: Set(entity::new_id()),
        email: Set(email.into_inner()),
        password_hash: Set(password_hash),
        role: Set(role),
        disabled: Set(false),
        token_version: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        ctx,
        Change {
            action: "user.created",
            target_kind: "user",
            target_id: &created.id,
            after: Some(serde_json::json!({ "email": created.email, "role": created.role })),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

pub async fn find_by_email(db: &DatabaseConnection, email: &str) -> AppResult<Option<user::Model>> {
    let Ok(email) = Email::parse("email", email) else {
        return Ok(None);
    };
    Ok(user::Entity::find().filter(user::Column::Email.eq(email.as_str())).one(db).await?)
}

pub async fn get(db: &DatabaseConnection, id: &str) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find_by_id(id.to_string()).one(db).await?)
}

/// Signs in a staff account. Unknown emails, wrong passwords and disabled
/// accounts get the same answer, in the same time. With `session`, the
/// sign-in opens a staff session and the token lives only as long as it
/// (signing out or idling ends it); without, the token is a bearer token for
/// API clients, as long-lived as `ttl_seconds` and the account's token version.
pub async fn login(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    keys: &JwtKeys,
    ttl_seconds: u64,
    email: &str,
    password: &str,
    session: bool,
) -> AppResult<(IssuedToken, user::Model)> {
    // Beyond this no account can match; refusing says nothing about any account.
    // Passwords are checked whatever their length (bounded by the body limit):
    // accounts made before new ones were limited may have longer ones.
    limits::at_most("email", email, Email::MAX)?;
    let account = find_by_email(db, email).await?;
    let matches = password::verify(password.to_string(), account.as_ref().map(|u| u.password_hash.clone())).await?;
    match account {
        Some(account) if matches && !account.disabled => {
            let token = if session {
                let (token, expires_at) = staff_sessions::open(db, ctx, keys, &account, ttl_seconds).await?;
                IssuedToken { token, expires_at }
            } else {
                issue_token(keys, &account, None, ttl_seconds)?
            };
            Ok((token, account))
        }
        _ => Err(AppError::Unauthenticated("invalid email or password".into())),
    }
}

pub fn issue_token(
    keys: &JwtKeys,
    account: &user::Model,
    environment: Option<Environment>,
    ttl_seconds: u64,
) -> AppResult<IssuedToken> {
    let (token, claims) = keys
        .issue(&account.id, account.role.into(), environment, account.token_version, ttl_seconds)
        .map_err(AppError::internal)?;
    Ok(IssuedToken { token, expires_at: DateTime::from_timestamp(claims.exp as i64, 0).unwrap_or_else(Utc::now) })
}

/// Who a bearer token speaks for.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub viewer: Viewer,
    /// The only environment the token may act in, when it is limited to one.
    pub environment: Option<Environment>,
    /// When the token was issued: a staff member's last sign-in. Session
    /// tokens are never re-issued as they are used, so for them too this is
    /// the moment of signing in (or of the password change that renewed it).
    pub issued_at: Option<DateTime<Utc>>,
    /// The session the token belongs to: a customer's portal session or a
    /// staff sign-in session, open at the time of the check.
    pub session_id: Option<String>,
}

/// The viewer a bearer token stands for, and the environment it is limited to.
/// A staff token only works while its account exists, is enabled and has not
/// moved to a newer token version; one with a session (`sid`) also only
/// while that session of that account is open. A customer's token lives as
/// long as its portal session.
pub async fn authenticate(db: &DatabaseConnection, keys: &JwtKeys, token: &str) -> AppResult<Authenticated> {
    let claims: Claims = keys.verify(token).map_err(AppError::Unauthenticated)?;
    let viewer = match claims.role {
        Role::Admin | Role::Manager | Role::Support => {
            let account = get(db, &claims.sub)
                .await?
                .filter(|u| !u.disabled && u.token_version == claims.ver)
                .ok_or_else(|| AppError::Unauthenticated("the token's account is disabled or changed".into()))?;
            if let Some(sid) = &claims.sid
                && !staff_sessions::in_use(db, sid, &account.id).await?
            {
                return Err(AppError::Unauthenticated("the session has ended; sign in again".into()));
            }
            Viewer::Staff { user_id: account.id, role: account.role }
        }
        // A customer's token lives only as long as its portal session.
        Role::Customer => {
            let open = match &claims.sid {
                Some(sid) => super::portal::session_open(db, sid, &claims.sub).await?,
                None => false,
            };
            if !open {
                return Err(AppError::Unauthenticated("the portal session has ended; sign in again".into()));
            }
            Viewer::Customer { customer_id: claims.sub }
        }
        Role::Anonymous => return Err(AppError::Unauthenticated("the token is not valid".into())),
    };
    let issued_at = DateTime::from_timestamp(i64::try_from(claims.iat).unwrap_or(0), 0);
    Ok(Authenticated { viewer, environment: claims.env, issued_at, session_id: claims.sid })
}

/// Staff accounts, oldest first (admin).
pub async fn list(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<user::Model>> {
    ctx.viewer.require(may::ADMINISTER)?;
    let keyset =
        Keyset { column: user::Column::CreatedAt, kind: SortKind::Time, id: user::Column::Id, descending: false };
    paginate(db, user::Entity::find(), keyset, args, want_total, |u| time_value(&u.created_at), |u| u.id.clone()).await
}

/// A change to a staff account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AccountPatch {
    pub role: Option<StaffRole>,
    pub disabled: Option<bool>,
    /// A new password set by an admin (a reset).
    pub password: Option<String>,
}

/// Changes an account's role, enabled state or password (admin). Any of
/// these ends the account's existing tokens and sessions at once (its token
/// version moves on). The last enabled admin can be neither disabled nor demoted.
pub async fn update(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: &str,
    patch: AccountPatch,
) -> AppResult<user::Model> {
    ctx.viewer.require(may::ADMINISTER)?;
    let password_hash = match &patch.password {
        Some(p) => Some(password::hash(Password::parse("password", p)?.expose().to_string()).await?),
        None => None,
    };
    let txn = begin_write(db).await?;
    let before = user::Entity::find_by_id(id.to_string())
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found_in("user", "id"))?;
    let role = patch.role.unwrap_or(before.role);
    let disabled = patch.disabled.unwrap_or(before.disabled);
    let was_admin = before.role == StaffRole::Admin && !before.disabled;
    if was_admin && (role != StaffRole::Admin || disabled) {
        let admins = user::Entity::find()
            .filter(user::Column::Role.eq(StaffRole::Admin))
            .filter(user::Column::Disabled.eq(false))
            .count(&txn)
            .await?;
        if admins <= 1 {
            let field = if disabled { "disabled" } else { "role" };
            return Err(AppError::Conflict {
                field: field.into(),
                reason: "this is the last enabled admin account".into(),
            });
        }
    }
    let changed = role != before.role || disabled != before.disabled || password_hash.is_some();
    if !changed {
        return Ok(before);
    }
    let mut row: user::ActiveModel = before.clone().into();
    row.role = Set(role);
    row.disabled = Set(disabled);
    if let Some(hash) = password_hash {
        row.password_hash = Set(hash);
    }
    row.token_version = Set(before.token_version + 1);
    row.updated_at = Set(entity::now());
    let after = row.update(&txn).await?;
    staff_sessions::end_all(&txn, &after.id, None).await?;
    audit::record(
        &txn,
        ctx,
        Change {
            action: "user.updated",
            target_kind: "user",
            target_id: &after.id,
            before: Some(serde_json::json!({ "role": before.role, "disabled": before.disabled })),
            after: Some(serde_json::json!({
                "role": after.role,
                "disabled": after.disabled,
                "passwordReset": patch.password.is_some(),
            })),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

/// A staff member changes their own password, proving the current one. Their
/// other tokens and sessions stop working; the answer carries a fresh token,
/// of the caller's own session when they are signed in with one (which goes
/// on), a bearer token otherwise.
pub async fn change_password(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    keys: &JwtKeys,
    ttl_seconds: u64,
    current: &str,
    new: &str,
) -> AppResult<IssuedToken> {
    ctx.viewer.require(may::READ)?;
    let Viewer::Staff { user_id, .. } = &ctx.viewer else {
        return Err(AppError::Forbidden("only a staff account has a password".into()));
    };
    let new = Password::parse("newPassword", new)?;
    let account = get(db, user_id).await?.ok_or_else(|| AppError::Unauthenticated("the account is gone".into()))?;
    if !password::verify(current.to_string(), Some(account.password_hash.clone())).await? {
        return Err(AppError::invalid("currentPassword", "is not this account's password"));
    }
    let hash = password::hash(new.expose().to_string()).await?;
    let txn = begin_write(db).await?;
    let mut row: user::ActiveModel = account.clone().into();
    row.password_hash = Set(hash);
    row.token_version = Set(account.token_version + 1);
    row.updated_at = Set(entity::now());
    let after = row.update(&txn).await?;
    audit::record(
        &txn,
        ctx,
        Change { action: "user.password_changed", target_kind: "user", target_id: &after.id, ..Change::default() },
    )
    .await?;
    let own_session = ctx.session_id.as_deref();
    staff_sessions::end_all(&txn, &after.id, own_session).await?;
    let issued = match own_session {
        Some(session) => {
            let (token, expires_at) = staff_sessions::reissue(&txn, keys, &after, session, ttl_seconds).await?;
            IssuedToken { token, expires_at }
        }
        None => issue_token(keys, &after, None, ttl_seconds)?,
    };
    txn.commit().await?;
    Ok(issued)
}
