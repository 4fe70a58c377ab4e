//! Pool exhaustion alerts. When a pool's used share reaches the threshold
//! (setting, default 80%), `pool.exhausting` is recorded in the event outbox,
//! once per crossing: the alert re-arms when the share falls below the
//! threshold again (keys added). `pool.exhausted` is recorded when the pool is
//! empty while orders wait on it, and re-arms when keys arrive.
//!
//! Checks run after orders and key arrivals, off the request path, and on the
//! sweeper's schedule for every pool a product delivers from. Several nodes may
//! check the same pool at once: the alert fires in the transaction whose
//! conditional update flips the flag, so exactly one of them records it.

use super::events::{self, EventKind, Subject};
use super::fulfilment;
use super::keys::TagRef;
use super::{settings, tags};
use crate::auth::RequestContext;
use crate::db::begin_write;
use crate::error::AppResult;
use entity::{Environment, pool_alert};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use serde_json::json;

/// What one check found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checked {
    pub exhausting_fired: bool,
    pub exhausted_fired: bool,
}

/// Compares `pool` with the threshold and fires or re-arms its alerts.
pub async fn check(db: &DatabaseConnection, environment: Environment, pool: &TagRef) -> AppResult<Checked> {
    let ctx = RequestContext::system(environment);
    let Some(stats) = tags::figures(db, &ctx, pool).await? else { return Ok(Checked::default()) };
    let settings = settings::current(db).await?;
    let threshold = i64::from(settings.exhaustion_threshold);
    let taken = stats.total - stats.remaining;
    let exhausting = stats.total > 0 && taken * 100 >= threshold * stats.total;
    let waiting = if stats.remaining == 0 { fulfilment::waiting_on(db, environment, pool).await? } else { 0 };
    let exhausted = stats.remaining == 0 && waiting > 0;

    let state = pool_alert::Entity::find_by_id((environment, pool.id().to_string())).one(db).await?;
    let (was_exhausting, was_exhausted) =
        state.as_ref().map_or((false, false), |s| (s.exhausting_at.is_some(), s.exhausted_at.is_some()));
    if was_exhausting == exhausting && was_exhausted == exhausted {
        return Ok(Checked::default());
    }
    let payload = json!({
        "poolId": pool.id(),
        "name": stats.name,
        "total": stats.total,
        "remaining": stats.remaining,
        "used": taken,
        "usedPercentage": stats.used_percentage(),
        "threshold": threshold,
        "waitingUnits": waiting,
    });
    let txn = begin_write(db).await?;
    pool_alert::Entity::insert(pool_alert::ActiveModel {
        environment: Set(environment),
        pool_id: Set(pool.id().to_string()),
        exhausting_at: Set(None),
        exhausted_at: Set(None),
    })
    .on_conflict(
        OnConflict::columns([pool_alert::Column::Environment, pool_alert::Column::PoolId]).do_nothing().to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    let subject = Subject { kind: "pool", id: pool.id() };
    let mut checked = Checked::default();
    if flip(&txn, environment, pool, pool_alert::Column::ExhaustingAt, exhausting).await? {
        events::emit(&txn, environment, EventKind::PoolExhausting, subject, payload.clone()).await?;
        checked.exhausting_fired = true;
    }
    if flip(&txn, environment, pool, pool_alert::Column::ExhaustedAt, exhausted).await? {
        events::emit(&txn, environment, EventKind::PoolExhausted, subject, payload).await?;
        checked.exhausted_fired = true;
    }
    if let Some(to) =
        settings.notification_email.as_deref().filter(|_| checked.exhausting_fired || checked.exhausted_fired)
    {
        let (kind, subject) = if checked.exhausted_fired {
            ("pool.exhausted", format!("Keysmith: the pool {} is empty and orders are waiting", stats.name))
        } else {
            ("pool.exhausting", format!("Keysmith: the pool {} is running out of keys", stats.name))
        };
        let body = format!(
            "The pool {name} ({environment}) has {remaining} of {total} keys left: {used} used ({percentage:.0} %), \
             past the alert threshold of {threshold} %.\n{waiting}\nAdd keys to the pool (import, generate or move \
             keys into it); orders waiting on it are filled as soon as keys arrive.\n",
            name = stats.name,
            environment = environment.as_str(),
            remaining = stats.remaining,
            total = stats.total,
            used = taken,
            percentage = stats.used_percentage(),
            waiting =
                if waiting > 0 { format!("{waiting} ordered units are waiting for a key.") } else { String::new() },
        );
        super::email::queue(&txn, Some(environment), kind, to, &subject, &body).await?;
    }
    txn.commit().await?;
    if checked.exhausting_fired || checked.exhausted_fired {
        tracing::info!(pool = pool.id(), remaining = stats.remaining, total = stats.total, "pool alert");
    }
    Ok(checked)
}

/// Sets (`on`) or clears an alert column if it is not that way already;
/// true when it was set just now, which is when its event fires.
async fn flip(
    txn: &impl ConnectionTrait,
    environment: Environment,
    pool: &TagRef,
    column: pool_alert::Column,
    on: bool,
) -> AppResult<bool> {
    let update = pool_alert::Entity::update_many()
        .filter(pool_alert::Column::Environment.eq(environment))
        .filter(pool_alert::Column::PoolId.eq(pool.id()));
    let changed = if on {
        update.col_expr(column, Expr::value(entity::now())).filter(column.is_null())
    } else {
        update.col_expr(column, Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None)).filter(column.is_not_null())
    }
    .exec(txn)
    .await?
    .rows_affected;
    Ok(on && changed == 1)
}

/// Checks every pool a product of `environment` delivers from.
pub async fn check_all(db: &DatabaseConnection, environment: Environment) -> AppResult<()> {
    for pool in fulfilment::delivery_pools(db, environment).await? {
        check(db, environment, &pool).await?;
    }
    Ok(())
}
