//! The event outbox. An event is written in the same transaction as the change
//! it announces, so it exists exactly when the change does; webhooks and email
//! deliver from here.

use crate::error::AppResult;
use entity::{Environment, event};
use sea_orm::{ConnectionTrait, EntityTrait, Set};
use serde_json::Value;

/// Every kind of event Keysmith writes: the one list webhooks subscribe to,
/// subscriptions filter by (the GraphQL enum `EventType`), and the README's
/// event table is checked against. The name on the wire (`as_str`) is the
/// variant's words, dotted: `LicenseCreated` is `license.created`.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[graphql(name = "EventType")]
pub enum EventKind {
    /// A licence was created by hand (`createLicense`).
    LicenseCreated,
    /// A licence was delivered on an order or assigned to a customer.
    LicenseAssigned,
    /// A device activated a licence.
    LicenseActivated,
    /// A device was deactivated.
    LicenseDeactivated,
    /// Staff inactivated a licence.
    LicenseInactivated,
    /// Staff reactivated a licence.
    LicenseReactivated,
    /// A licence was suspended (by staff or the abuse rule).
    LicenseSuspended,
    /// A suspension was lifted.
    LicenseUnsuspended,
    /// A licence passed its expiry and grace period.
    LicenseExpired,
    /// A licence was revoked (final).
    LicenseRevoked,
    /// A licence was deleted.
    LicenseDeleted,
    /// A licence in use expires in 30, 14 or 7 days (`data.days`).
    LicenseExpiring,
    /// A licence's expiry was moved later by a renewal (`data.previousExpiresAt`).
    LicenseRenewed,
    /// An order was placed.
    OrderCreated,
    /// Every unit of an order has its key.
    OrderFulfilled,
    /// Some units of an order have their keys; the pool ran short.
    OrderPartiallyFulfilled,
    /// Staff gave an order's line another key.
    OrderKeyReassigned,
    /// An order was refunded.
    OrderRefunded,
    /// A pool crossed the exhaustion threshold.
    PoolExhausting,
    /// A pool ran empty with orders waiting.
    PoolExhausted,
    /// A payment provider's event waits for an admin or was refused (`data.outcome`, `data.reason`).
    IntegrationEventNeedsAttention,
}

impl EventKind {
    pub const ALL: [EventKind; 21] = [
        Self::LicenseCreated,
        Self::LicenseAssigned,
        Self::LicenseActivated,
        Self::LicenseDeactivated,
        Self::LicenseInactivated,
        Self::LicenseReactivated,
        Self::LicenseSuspended,
        Self::LicenseUnsuspended,
        Self::LicenseExpired,
        Self::LicenseRevoked,
        Self::LicenseDeleted,
        Self::LicenseExpiring,
        Self::LicenseRenewed,
        Self::OrderCreated,
        Self::OrderFulfilled,
        Self::OrderPartiallyFulfilled,
        Self::OrderKeyReassigned,
        Self::OrderRefunded,
        Self::PoolExhausting,
        Self::PoolExhausted,
        Self::IntegrationEventNeedsAttention,
    ];

    /// The name on the wire: `license.created`, `order.partially_fulfilled` …
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LicenseCreated => "license.created",
            Self::LicenseAssigned => "license.assigned",
            Self::LicenseActivated => "license.activated",
            Self::LicenseDeactivated => "license.deactivated",
            Self::LicenseInactivated => "license.inactivated",
            Self::LicenseReactivated => "license.reactivated",
            Self::LicenseSuspended => "license.suspended",
            Self::LicenseUnsuspended => "license.unsuspended",
            Self::LicenseExpired => "license.expired",
            Self::LicenseRevoked => "license.revoked",
            Self::LicenseDeleted => "license.deleted",
            Self::LicenseExpiring => "license.expiring",
            Self::LicenseRenewed => "license.renewed",
            Self::OrderCreated => "order.created",
            Self::OrderFulfilled => "order.fulfilled",
            Self::OrderPartiallyFulfilled => "order.partially_fulfilled",
            Self::OrderKeyReassigned => "order.key_reassigned",
            Self::OrderRefunded => "order.refunded",
            Self::PoolExhausting => "pool.exhausting",
            Self::PoolExhausted => "pool.exhausted",
            Self::IntegrationEventNeedsAttention => "integration_event.needs_attention",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The README's event table, generated from this list and its docs.
    pub fn markdown_table() -> String {
        use async_graphql::registry::{MetaType, Registry};
        let mut registry = Registry::default();
        <Self as async_graphql::InputType>::create_type_info(&mut registry);
        let name = <Self as async_graphql::InputType>::type_name();
        let values = match registry.types.get(name.as_ref()) {
            Some(MetaType::Enum { enum_values, .. }) => enum_values.clone(),
            _ => Default::default(),
        };
        let mut table = String::from("| event | `EventType` | when |\n|---|---|---|\n");
        for (kind, (graphql, value)) in Self::ALL.into_iter().zip(values) {
            let when = value.description.unwrap_or_default();
            table.push_str(&format!("| `{}` | `{graphql}` | {when} |\n", kind.as_str()));
        }
        table
    }
}

/// What an event is about: its kind and the record it names.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub kind: &'a str,
    pub id: &'a str,
}

/// Records `kind` (`order.fulfilled`, `pool.exhausting` …) about `subject`.
pub async fn emit(
    db: &impl ConnectionTrait,
    environment: Environment,
    kind: EventKind,
    subject: Subject<'_>,
    payload: Value,
) -> AppResult<String> {
    let mut ids = emit_all(db, environment, vec![(kind, subject, payload)]).await?;
    Ok(ids.pop().unwrap_or_default())
}

/// Event ids in the order this process writes them, within a millisecond
/// too, so a replay in id order is the order the events happened.
static IDS: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());

fn next_id() -> String {
    let mut ids = IDS.lock().unwrap_or_else(|p| p.into_inner());
    // 80 random bits overflow only after 2^80 ids in one millisecond.
    ids.generate().map(|id| id.to_string()).unwrap_or_else(|_| entity::new_id())
}

/// Several events in one statement; returns their ids in order.
pub async fn emit_all(
    db: &impl ConnectionTrait,
    environment: Environment,
    events: Vec<(EventKind, Subject<'_>, Value)>,
) -> AppResult<Vec<String>> {
    let Some((insert, ids)) = insert_all(db.get_database_backend(), environment, events) else {
        return Ok(Vec::new());
    };
    super::live::write_and_announce(db, vec![insert], &ids).await?;
    Ok(ids)
}

/// A change's audit events and outbox events together: what
/// [`super::audit::record_all`] and [`emit_all`] write, and the announcement
/// of the events. On PostgreSQL that is one statement (both inserts and the
/// `NOTIFY` in one `WITH` chain), elsewhere one each.
pub async fn record_and_emit(
    db: &impl ConnectionTrait,
    ctx: &crate::auth::RequestContext,
    changes: Vec<super::audit::Change<'_>>,
    events: Vec<(EventKind, Subject<'_>, Value)>,
) -> AppResult<Vec<String>> {
    record_and_emit_with(db, ctx, changes, events, Vec::new()).await
}

/// [`record_and_emit`], with `more` writes of the same change (inserts
/// returning nothing) joining the same statement on PostgreSQL.
pub async fn record_and_emit_with(
    db: &impl ConnectionTrait,
    ctx: &crate::auth::RequestContext,
    changes: Vec<super::audit::Change<'_>>,
    events: Vec<(EventKind, Subject<'_>, Value)>,
    more: Vec<sea_orm::Statement>,
) -> AppResult<Vec<String>> {
    let backend = db.get_database_backend();
    let audit = super::audit::insert_all(backend, ctx, changes);
    let (outbox, ids) = insert_all(backend, ctx.environment, events).unzip();
    let ids = ids.unwrap_or_default();
    let writes = audit.into_iter().chain(outbox).chain(more).collect();
    super::live::write_and_announce(db, writes, &ids).await?;
    Ok(ids)
}

/// The statement [`emit_all`] runs and the new events' ids (`None` for no event).
fn insert_all(
    backend: sea_orm::DbBackend,
    environment: Environment,
    events: Vec<(EventKind, Subject<'_>, Value)>,
) -> Option<(sea_orm::Statement, Vec<String>)> {
    if events.is_empty() {
        return None;
    }
    let now = entity::now();
    let mut ids = Vec::with_capacity(events.len());
    let rows: Vec<event::ActiveModel> = events
        .into_iter()
        .map(|(kind, subject, payload)| {
            let id = next_id();
            ids.push(id.clone());
            event::ActiveModel {
                id: Set(id),
                environment: Set(Some(environment.as_str().to_string())),
                kind: Set(kind.as_str().to_string()),
                subject_kind: Set(subject.kind.to_string()),
                subject_id: Set(subject.id.to_string()),
                payload: Set(payload),
                created_at: Set(now),
                dispatched_at: Set(None),
            }
        })
        .collect();
    Some((sea_orm::QueryTrait::build(&event::Entity::insert_many(rows), backend), ids))
}

#[cfg(test)]
mod tests {
    use super::EventKind;
    use async_graphql::resolver_utils::EnumType;

    #[test]
    fn the_list_is_every_kind_once_in_declaration_order() {
        let items = EventKind::items();
        assert_eq!(items.len(), EventKind::ALL.len());
        for (item, kind) in items.iter().zip(EventKind::ALL) {
            assert_eq!(item.value, kind);
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(item.name.to_lowercase(), kind.as_str().replace('.', "_"), "names agree");
        }
    }

    #[test]
    fn the_readme_table_is_the_list() {
        let readme = include_str!("../../../README.md");
        let table = EventKind::markdown_table();
        assert!(readme.contains(&table), "README.md's event table is out of date; it must read:\n{table}");
    }
}
