//! Staff sign-in sessions: what the admin portal signs in with. A session's
//! id travels in its token (`sid`), and the token works only while the
//! session is open — not signed out, not past its expiry, not idle longer than
//! the `adminIdleTimeoutMinutes` setting — on top of the account checks every
//! staff token gets (enabled, same token version). Tokens without a session
//! (bearer tokens for API clients) are not affected by any of this.

use super::audit::{self, Change};
use super::settings;
use crate::auth::jwt::JwtKeys;
use crate::auth::{RequestContext, Viewer, may};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Duration, Utc};
use entity::staff_session;
use entity::user;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

/// A session's last use is written again only once it is this old, so that
/// a busy session costs one write a minute, not one a request.
pub const SEEN_EVERY_SECONDS: i64 = 60;

/// The instant a token's `exp` claim names.
fn expiry(exp: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(i64::try_from(exp).unwrap_or(i64::MAX), 0).unwrap_or_else(Utc::now)
}

/// Opens a session for `account` (who just proved their password) and signs
/// its token; both last `ttl_seconds`. The sign-in is audited. Returns the
/// token and when it (and the session) expires.
pub(crate) async fn open(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    keys: &JwtKeys,
    account: &user::Model,
    ttl_seconds: u64,
) -> AppResult<(String, DateTime<Utc>)> {
    let id = entity::new_id();
    let (token, claims) = keys
        .issue_staff_session(&account.id, account.role.into(), account.token_version, &id, ttl_seconds)
        .map_err(AppError::internal)?;
    let expires_at = expiry(claims.exp);
    let now = entity::now();
    let txn = begin_write(db).await?;
    staff_session::Entity::insert(staff_session::ActiveModel {
        id: Set(id.clone()),
        user_id: Set(account.id.clone()),
        created_at: Set(now),
        last_seen_at: Set(now),
        expires_at: Set(expires_at),
        ended_at: Set(None),
    })
    .exec_without_returning(&txn)
    .await?;
    // The request was anonymous until now; the event names who signed in.
    let signed_in =
        RequestContext::new(Viewer::Staff { user_id: account.id.clone(), role: account.role }, ctx.environment);
    audit::record(
        &txn,
        &signed_in,
        Change {
            action: "user.signed_in",
            target_kind: "user",
            target_id: &account.id,
            after: Some(serde_json::json!({ "session": id })),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok((token, expires_at))
}

/// Whether the session `id` of `user_id` is open, marking it used now when
/// its last use is over a minute old. A session found idle past the timeout
/// is ended for good: raising the timeout later does not bring it back.
pub(crate) async fn in_use(db: &DatabaseConnection, id: &str, user_id: &str) -> AppResult<bool> {
    let now = entity::now();
    let Some(session) = staff_session::Entity::find_by_id(id.to_string())
        .filter(staff_session::Column::UserId.eq(user_id))
        .filter(staff_session::Column::EndedAt.is_null())
        .filter(staff_session::Column::ExpiresAt.gt(now))
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    let idle = now - session.last_seen_at;
    let timeout = Duration::minutes(i64::from(settings::current(db).await?.admin_idle_timeout_minutes));
    if idle > timeout {
        let _turn = crate::db::write_turn(db).await;
        let ended = staff_session::Entity::update_many()
            .col_expr(staff_session::Column::EndedAt, Expr::value(now))
            .filter(staff_session::Column::Id.eq(id))
            .filter(staff_session::Column::EndedAt.is_null())
            .exec(db)
            .await;
        if let Err(e) = ended {
            tracing::warn!(error = %AppError::from(e).detail(), "ending an idle staff session failed");
        }
        return Ok(false);
    }
    if idle >= Duration::seconds(SEEN_EVERY_SECONDS) {
        // Only one of several requests arriving together writes; a failed
        // write costs the session a minute of idle time, never the request.
        let _turn = crate::db::write_turn(db).await;
        let stamped = staff_session::Entity::update_many()
            .col_expr(staff_session::Column::LastSeenAt, Expr::value(now))
            .filter(staff_session::Column::Id.eq(id))
            .filter(staff_session::Column::LastSeenAt.lt(now - Duration::seconds(SEEN_EVERY_SECONDS)))
            .exec(db)
            .await;
        if let Err(e) = stamped {
            tracing::warn!(error = %AppError::from(e).detail(), "recording a staff session's use failed");
        }
    }
    Ok(true)
}

/// Ends every open session of `user_id` but `keep`, inside the caller's
/// transaction: their tokens already stopped with the account's new token
/// version, and the sessions now say so too.
pub(crate) async fn end_all(txn: &impl ConnectionTrait, user_id: &str, keep: Option<&str>) -> AppResult<()> {
    let mut update = staff_session::Entity::update_many()
        .col_expr(staff_session::Column::EndedAt, Expr::value(entity::now()))
        .filter(staff_session::Column::UserId.eq(user_id))
        .filter(staff_session::Column::EndedAt.is_null());
    if let Some(keep) = keep {
        update = update.filter(staff_session::Column::Id.ne(keep));
    }
    update.exec(txn).await?;
    Ok(())
}

/// Ends the caller's staff session: its token stops working at once, on
/// every node. Whether a session was ended: a bearer token belongs to none,
/// and a session already ended is not ended twice.
pub async fn sign_out(db: &DatabaseConnection, ctx: &RequestContext) -> AppResult<bool> {
    ctx.viewer.require(may::READ)?;
    let (Viewer::Staff { user_id, .. }, Some(session)) = (&ctx.viewer, &ctx.session_id) else {
        return Ok(false);
    };
    let txn = begin_write(db).await?;
    let ended = staff_session::Entity::update_many()
        .col_expr(staff_session::Column::EndedAt, Expr::value(entity::now()))
        .filter(staff_session::Column::Id.eq(session.as_str()))
        .filter(staff_session::Column::UserId.eq(user_id.as_str()))
        .filter(staff_session::Column::EndedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected;
    if ended == 1 {
        audit::record(
            &txn,
            ctx,
            Change {
                action: "user.signed_out",
                target_kind: "user",
                target_id: user_id,
                after: Some(serde_json::json!({ "session": session })),
                ..Change::default()
            },
        )
        .await?;
    }
    txn.commit().await?;
    Ok(ended == 1)
}

/// A fresh token for the session `id` of `account`, whose token version just
/// moved on (a password change from inside the session): the session goes on,
/// now lasting as long as the new token, inside the caller's transaction.
pub(crate) async fn reissue(
    txn: &impl ConnectionTrait,
    keys: &JwtKeys,
    account: &user::Model,
    id: &str,
    ttl_seconds: u64,
) -> AppResult<(String, DateTime<Utc>)> {
    let (token, claims) = keys
        .issue_staff_session(&account.id, account.role.into(), account.token_version, id, ttl_seconds)
        .map_err(AppError::internal)?;
    let expires_at = expiry(claims.exp);
    staff_session::Entity::update_many()
        .col_expr(staff_session::Column::ExpiresAt, Expr::value(expires_at))
        .filter(staff_session::Column::Id.eq(id))
        .filter(staff_session::Column::UserId.eq(account.id.as_str()))
        .exec(txn)
        .await?;
    Ok((token, expires_at))
}
