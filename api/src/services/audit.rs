//! Writing the audit trail. Every change of state calls [`record`] with the
//! same transaction as the change, so the event exists exactly when the change does.

use super::limits;
use super::pagination::{Keyset, Page, PageArgs, SortKind, paginate, time_value};
use crate::auth::{RequestContext, Viewer, may};
use crate::error::AppResult;
use chrono::{DateTime, Utc};
use entity::audit_event;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use serde_json::Value;

/// What changed, for one audit event.
#[derive(Debug, Default)]
pub struct Change<'a> {
    pub action: &'a str,
    pub target_kind: &'a str,
    pub target_id: &'a str,
    /// The full key when a licence key is involved; only its first 8 characters are stored.
    pub key: Option<&'a str>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// The (kind, id) an audit event names as the actor.
pub fn actor_of(viewer: &Viewer) -> (&'static str, Option<String>) {
    match viewer {
        Viewer::Anonymous => ("client", None),
        Viewer::System => ("system", None),
        Viewer::Staff { user_id, .. } => ("user", Some(user_id.clone())),
        Viewer::Customer { customer_id } => ("customer", Some(customer_id.clone())),
        Viewer::Integration { integration_id } => ("integration", Some(integration_id.clone())),
    }
}

pub async fn record(db: &impl ConnectionTrait, ctx: &RequestContext, change: Change<'_>) -> AppResult<()> {
    record_all(db, ctx, vec![change]).await
}

/// Several events in one statement (an order and every key it delivered).
pub async fn record_all(db: &impl ConnectionTrait, ctx: &RequestContext, changes: Vec<Change<'_>>) -> AppResult<()> {
    if let Some(insert) = insert_all(db.get_database_backend(), ctx, changes) {
        db.execute_raw(insert).await?;
    }
    Ok(())
}

/// The statement [`record_all`] runs (`None` for no change), for a caller
/// that sends it with others (see `events::record_and_emit`).
pub(crate) fn insert_all(
    backend: sea_orm::DbBackend,
    ctx: &RequestContext,
    changes: Vec<Change<'_>>,
) -> Option<sea_orm::Statement> {
    if changes.is_empty() {
        return None;
    }
    let (actor_kind, actor_id) = actor_of(&ctx.viewer);
    let now = entity::now();
    let rows = changes.into_iter().map(|change| audit_event::ActiveModel {
        id: Set(entity::new_id()),
        environment: Set(Some(ctx.environment.as_str().to_string())),
        actor_kind: Set(actor_kind.to_string()),
        actor_id: Set(actor_id.clone()),
        action: Set(change.action.to_string()),
        target_kind: Set(change.target_kind.to_string()),
        target_id: Set(change.target_id.to_string()),
        key_prefix: Set(change.key.map(entity::license_key::key_prefix)),
        before: Set(change.before),
        after: Set(change.after),
        created_at: Set(now),
    });
    Some(sea_orm::QueryTrait::build(&audit_event::Entity::insert_many(rows), backend))
}

/// Which audit events a list shows; every given field must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    /// `user`, `customer`, `client` or `system`.
    pub actor_kind: Option<String>,
    pub actor_id: Option<String>,
    pub action: Option<String>,
    /// From this instant on (inclusive).
    pub since: Option<DateTime<Utc>>,
    /// Before this instant.
    pub until: Option<DateTime<Utc>>,
}

/// The audit trail of the request's environment (and server-wide events,
/// such as settings changes), newest first.
pub async fn list(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    filter: &AuditFilter,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<audit_event::Model>> {
    ctx.viewer.require(may::AUDIT)?;
    let mut query = audit_event::Entity::find().filter(
        Condition::any()
            .add(audit_event::Column::Environment.eq(ctx.environment.as_str()))
            .add(audit_event::Column::Environment.is_null()),
    );
    let text = [
        (audit_event::Column::TargetKind, "targetKind", &filter.target_kind),
        (audit_event::Column::TargetId, "targetId", &filter.target_id),
        (audit_event::Column::ActorKind, "actorKind", &filter.actor_kind),
        (audit_event::Column::ActorId, "actorId", &filter.actor_id),
        (audit_event::Column::Action, "action", &filter.action),
    ];
    for (column, field, value) in text {
        if let Some(v) = limits::filter_word(field, value.as_deref())? {
            query = query.filter(column.eq(v));
        }
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_event::Column::CreatedAt.gte(entity::stored_time(since)));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_event::Column::CreatedAt.lt(entity::stored_time(until)));
    }
    let keyset = Keyset {
        column: audit_event::Column::CreatedAt,
        kind: SortKind::Time,
        id: audit_event::Column::Id,
        descending: true,
    };
    paginate(db, query, keyset, args, want_total, |e| time_value(&e.created_at), |e| e.id.clone()).await
}
