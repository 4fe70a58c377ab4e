//! The audit trail: who changed what, and when.

use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::common::{ListConnection, connection};
use crate::services::audit::{self, AuditFilter as Filter};
use crate::services::pagination::PageArgs;
use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

/// One change of state, written in the same transaction as the change.
#[derive(Debug, SimpleObject)]
pub struct AuditEvent {
    pub id: ID,
    /// `user` (staff), `customer`, `client` (shipped software) or `system`.
    pub actor_kind: String,
    /// The staff account or customer, when the actor has one.
    pub actor_id: Option<ID>,
    /// A dotted verb: `license.activated`, `order.created`, `settings.updated` …
    pub action: String,
    pub target_kind: String,
    pub target_id: ID,
    /// The first 8 characters of the licence key involved; never more.
    pub key_prefix: Option<String>,
    pub before: Option<Json<serde_json::Value>>,
    pub after: Option<Json<serde_json::Value>>,
    pub created_at: DateTime<Utc>,
}

impl From<entity::audit_event::Model> for AuditEvent {
    fn from(e: entity::audit_event::Model) -> Self {
        Self {
            id: ID(e.id),
            actor_kind: e.actor_kind,
            actor_id: e.actor_id.map(ID),
            action: e.action,
            target_kind: e.target_kind,
            target_id: ID(e.target_id),
            key_prefix: e.key_prefix,
            before: e.before.map(Json),
            after: e.after.map(Json),
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Default, InputObject)]
pub struct AuditEventFilter {
    /// What was changed: `license_key`, `order`, `tag` … (at most 100 characters).
    pub target_kind: Option<String>,
    pub target_id: Option<ID>,
    /// `user`, `customer`, `client` or `system` (at most 100 characters).
    pub actor_kind: Option<String>,
    pub actor_id: Option<ID>,
    /// A dotted verb such as `license.activated` (at most 100 characters).
    pub action: Option<String>,
    /// From this instant on.
    pub since: Option<DateTime<Utc>>,
    /// Before this instant.
    pub until: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The audit trail of the request's environment and of server-wide
    /// changes, newest first (admin and support).
    #[graphql(
        guard = "RoleGuard::new(may::AUDIT)",
        complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<AuditEventFilter>,
    ) -> Result<ListConnection<AuditEvent>> {
        let (state, rc) = request(ctx)?;
        let args = PageArgs::parse(first, after)?;
        let f = filter.unwrap_or_default();
        let filter = Filter {
            target_kind: f.target_kind,
            target_id: f.target_id.map(|id| id.0),
            actor_kind: f.actor_kind,
            actor_id: f.actor_id.map(|id| id.0),
            action: f.action,
            since: f.since,
            until: f.until,
        };
        let want_total = ctx.look_ahead().field("totalCount").exists();
        Ok(connection(audit::list(&state.db, rc, &filter, &args, want_total).await?, AuditEvent::from))
    }
}
