//! Reading orders: a customer's purchases with their lines and the keys each
//! line was given. (Orders are placed by `createOrder`.)

use super::pagination::{Keyset, Page, PageArgs, SortKind, paginate, time_value};
use super::sql::escape_like;
use crate::auth::{RequestContext, may};
use crate::error::{AppError, AppResult};
use entity::customer;
use entity::order::{self, OrderStatus};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, Query};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter};

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
    if let Some(term) = filter.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let pattern = || LikeExpr::new(format!("%{}%", escape_like(&term.to_lowercase()))).escape('\\');
        let customers = Query::select()
            .column(customer::Column::Id)
            .from(customer::Entity)
            .and_where(customer::Column::Environment.eq(ctx.environment))
            .and_where(Expr::expr(Func::lower(Expr::col(customer::Column::Email))).like(pattern()))
            .to_owned();
        query = query.filter(
            Condition::any()
                .add(Expr::expr(Func::lower(Expr::col(order::Column::ExternalId))).like(pattern()))
                .add(order::Column::CustomerId.in_subquery(customers)),
        );
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
