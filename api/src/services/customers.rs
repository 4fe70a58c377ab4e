//! Customers: buyers known by email within one environment.

use super::audit::{self, Change};
use super::limits;
use super::pagination::{Keyset, Page, PageArgs, SortKind, paginate, time_value};
use super::sql::contains;
use crate::auth::{RequestContext, may};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use entity::customer;
use entity::values::{Email, bounded_text};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CustomerOrderField {
    Email,
    Name,
    #[default]
    CreatedAt,
}

pub async fn get(db: &DatabaseConnection, ctx: &RequestContext, id: &str) -> AppResult<customer::Model> {
    ctx.viewer.require(may::READ)?;
    find(db, ctx, id).await?.ok_or_else(|| AppError::not_found("customer"))
}

pub(crate) async fn find(
    db: &impl ConnectionTrait,
    ctx: &RequestContext,
    id: &str,
) -> AppResult<Option<customer::Model>> {
    Ok(customer::Entity::find_by_id(id.to_string())
        .filter(customer::Column::Environment.eq(ctx.environment))
        .one(db)
        .await?)
}

pub async fn list(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    search: Option<&str>,
    order: (CustomerOrderField, bool),
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<customer::Model>> {
    ctx.viewer.require(may::READ)?;
    let mut query = customer::Entity::find().filter(customer::Column::Environment.eq(ctx.environment));
    if let Some(term) = limits::search("search", search)? {
        let backend = db.get_database_backend();
        query = query.filter(contains(backend, &["customer.email", "customer.name"], term).expr(backend));
    }
    let (field, descending) = order;
    let (column, kind) = match field {
        CustomerOrderField::Email => (customer::Column::Email, SortKind::Text),
        CustomerOrderField::Name => (customer::Column::Name, SortKind::Text),
        CustomerOrderField::CreatedAt => (customer::Column::CreatedAt, SortKind::Time),
    };
    let keyset = Keyset { column, kind, id: customer::Column::Id, descending };
    paginate(
        db,
        query,
        keyset,
        args,
        want_total,
        |c| match field {
            CustomerOrderField::Email => c.email.clone(),
            CustomerOrderField::Name => c.name.clone(),
            CustomerOrderField::CreatedAt => time_value(&c.created_at),
        },
        |c| c.id.clone(),
    )
    .await
}

pub async fn create(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    email: &str,
    name: &str,
) -> AppResult<customer::Model> {
    ctx.viewer.require(may::MANAGE)?;
    let email = Email::parse("email", email)?;
    let name = bounded_text("name", name, 0, 200, false)?;
    let txn = begin_write(db).await?;
    let now = entity::now();
    let created = customer::ActiveModel {
        id: Set(entity::new_id()),
        environment: Set(ctx.environment),
        email: Set(email.into_inner()),
        name: Set(name),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        ctx,
        Change {
            action: "customer.created",
            target_kind: "customer",
            target_id: &created.id,
            after: Some(serde_json::json!({ "email": created.email, "name": created.name })),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

pub async fn update(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: &str,
    email: Option<&str>,
    name: Option<&str>,
) -> AppResult<customer::Model> {
    ctx.viewer.require(may::MANAGE)?;
    let email = email.map(|e| Email::parse("email", e)).transpose()?;
    let name = name.map(|n| bounded_text("name", n, 0, 200, false)).transpose()?;
    let txn = begin_write(db).await?;
    let before = find(&txn, ctx, id).await?.ok_or_else(|| AppError::not_found_in("customer", "id"))?;
    let mut active: customer::ActiveModel = before.clone().into();
    if let Some(email) = email {
        active.email = Set(email.into_inner());
    }
    if let Some(name) = name {
        active.name = Set(name);
    }
    active.updated_at = Set(entity::now());
    let after = active.update(&txn).await?;
    audit::record(
        &txn,
        ctx,
        Change {
            action: "customer.updated",
            target_kind: "customer",
            target_id: &after.id,
            before: Some(serde_json::json!({ "email": before.email, "name": before.name })),
            after: Some(serde_json::json!({ "email": after.email, "name": after.name })),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}
