//! Staff accounts: creating them, signing in, and turning a bearer token back
//! into the account it was issued for.

use super::audit::{self, Change};
use crate::auth::jwt::{Claims, JwtKeys};
use crate::auth::{RequestContext, Role, Viewer, may, password};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};
use entity::Environment;
use entity::user::{self, StaffRole};
use entity::values::{Email, Password};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

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
/// accounts get the same answer, in the same time.
pub async fn login(
    db: &DatabaseConnection,
    keys: &JwtKeys,
    ttl_seconds: u64,
    email: &str,
    password: &str,
) -> AppResult<(IssuedToken, user::Model)> {
    let account = find_by_email(db, email).await?;
    let matches = password::verify(password.to_string(), account.as_ref().map(|u| u.password_hash.clone())).await;
    match account {
        Some(account) if matches && !account.disabled => {
            let token = issue_token(keys, &account, None, ttl_seconds)?;
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

/// The viewer a bearer token stands for, and the environment it is limited to.
/// A staff token only works while its account exists, is enabled and has not
/// moved to a newer token version.
/// Who a bearer token speaks for.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub viewer: Viewer,
    /// The only environment the token may act in, when it is limited to one.
    pub environment: Option<Environment>,
    /// When the token was issued: a staff member's last sign-in.
    pub issued_at: Option<DateTime<Utc>>,
}

pub async fn authenticate(db: &DatabaseConnection, keys: &JwtKeys, token: &str) -> AppResult<Authenticated> {
    let claims: Claims = keys.verify(token).map_err(AppError::Unauthenticated)?;
    let viewer = match claims.role {
        Role::Admin | Role::Manager | Role::Support => {
            let account = get(db, &claims.sub)
                .await?
                .filter(|u| !u.disabled && u.token_version == claims.ver)
                .ok_or_else(|| AppError::Unauthenticated("the token's account is disabled or changed".into()))?;
            Viewer::Staff { user_id: account.id, role: account.role }
        }
        Role::Customer => Viewer::Customer { customer_id: claims.sub },
        Role::Anonymous => return Err(AppError::Unauthenticated("the token is not valid".into())),
    };
    let issued_at = DateTime::from_timestamp(i64::try_from(claims.iat).unwrap_or(0), 0);
    Ok(Authenticated { viewer, environment: claims.env, issued_at })
}
