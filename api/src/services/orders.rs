//! Reading orders: a customer's purchases with their lines and the keys each
//! line was given. (Orders are placed by `createOrder`.)

use super::limits;
use super::pagination::{Keyset, Page, PageArgs, SortKind, paginate, time_value};
use super::sql::order_search;
use crate::auth::{RequestContext, may};
use crate::error::{AppError, AppResult};
use entity::order::{self, OrderStatus};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

/// Which orders a list shows; every part narrows it.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    /// Any part of the external id or of the customer's email.
    pub search: Option<String>,
    pub status: Option<OrderStatus>,
    pub customer_id: Option<String>,
}

/// Orders of the request's environment by creation time.
pub async fn list(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    filter: &OrderFilter,
    descending: bool,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<order::Model>> {
    ctx.viewer.require(may::READ)?;
    let mut query = order::Entity::find().filter(order::Column::Environment.eq(ctx.environment));
    if let Some(status) = filter.status {
        query = query.filter(order::Column::Status.eq(status));
    }
    if let Some(customer) = &filter.customer_id {
        query = query.filter(order::Column::CustomerId.eq(customer.as_str()));
    }
    if let Some(term) = limits::search("search", filter.search.as_deref())? {
        let backend = db.get_database_backend();
        query = query.filter(order_search(backend, ctx.environment, term).expr(backend));
    }
    let keyset = Keyset { column: order::Column::CreatedAt, kind: SortKind::Time, id: order::Column::Id, descending };
    paginate(db, query, keyset, args, want_total, |o| time_value(&o.created_at), |o| o.id.clone()).await
}

pub async fn get(db: &DatabaseConnection, ctx: &RequestContext, id: &str) -> AppResult<order::Model> {
    ctx.viewer.require(may::READ)?;
    order::Entity::find_by_id(id.to_string())
        .filter(order::Column::Environment.eq(ctx.environment))
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found("order"))
}
