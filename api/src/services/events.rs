//! The event outbox. An event is written in the same transaction as the change
//! it announces, so it exists exactly when the change does; webhooks and email
//! deliver from here.

use crate::error::AppResult;
use entity::{Environment, event};
use sea_orm::{ConnectionTrait, EntityTrait, Set};
use serde_json::Value;

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
    kind: &str,
    subject: Subject<'_>,
    payload: Value,
) -> AppResult<String> {
    let mut ids = emit_all(db, environment, vec![(kind, subject, payload)]).await?;
    Ok(ids.pop().unwrap_or_default())
}

/// Several events in one statement; returns their ids in order.
pub async fn emit_all(
    db: &impl ConnectionTrait,
    environment: Environment,
    events: Vec<(&str, Subject<'_>, Value)>,
) -> AppResult<Vec<String>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let now = entity::now();
    let mut ids = Vec::with_capacity(events.len());
    let rows: Vec<event::ActiveModel> = events
        .into_iter()
        .map(|(kind, subject, payload)| {
            let id = entity::new_id();
            ids.push(id.clone());
            event::ActiveModel {
                id: Set(id),
                environment: Set(Some(environment.as_str().to_string())),
                kind: Set(kind.to_string()),
                subject_kind: Set(subject.kind.to_string()),
                subject_id: Set(subject.id.to_string()),
                payload: Set(payload),
                created_at: Set(now),
                dispatched_at: Set(None),
            }
        })
        .collect();
    event::Entity::insert_many(rows).exec_without_returning(db).await?;
    Ok(ids)
}
