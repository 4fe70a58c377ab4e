//! Customers as clients see them.

use super::common::{Environment, ListConnection, OrderDirection};
use super::order::{Order, OrderFilter, OrderOrder, list_orders};
use super::pool::{LicenseKey, LicenseKeyOrder, PoolKeyFilter, list_keys};
use crate::services::keys::KeyFilter;
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::customer::Model;

pub struct Customer(pub Model);

#[Object]
impl Customer {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn environment(&self) -> Environment {
        self.0.environment.into()
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The customer's licences, newest first unless `orderBy` says otherwise.
    #[graphql(complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn licenses(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<PoolKeyFilter>,
        order_by: Option<LicenseKeyOrder>,
    ) -> Result<ListConnection<LicenseKey>> {
        let filter = filter.unwrap_or_default();
        let filter = KeyFilter {
            customer_id: Some(self.0.id.clone()),
            status: filter.status.map(Into::into),
            search: filter.search,
            ..KeyFilter::default()
        };
        list_keys(ctx, first, after, filter, order_by).await
    }
    /// The customer's orders, newest first unless `orderBy` says otherwise.
    #[graphql(complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<OrderFilter>,
        order_by: Option<OrderOrder>,
    ) -> Result<ListConnection<Order>> {
        let mut filter = filter.unwrap_or_default();
        filter.customer_id = Some(ID(self.0.id.clone()));
        list_orders(ctx, first, after, filter, order_by).await
    }
}

impl std::fmt::Debug for Customer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Customer").field(&self.0.id).finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum CustomerOrderField {
    Email,
    Name,
    CreatedAt,
}

#[derive(Debug, InputObject)]
pub struct CustomerOrder {
    pub field: CustomerOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

#[derive(Debug, InputObject)]
pub struct CreateCustomerInput {
    /// Unique in the environment (case does not matter); at most 254 characters.
    pub email: String,
    /// Up to 200 characters.
    #[graphql(default)]
    pub name: String,
}

#[derive(Debug, InputObject)]
pub struct UpdateCustomerInput {
    pub id: ID,
    /// At most 254 characters.
    pub email: Option<String>,
    /// Up to 200 characters.
    pub name: Option<String>,
}

#[derive(Debug, SimpleObject)]
pub struct CustomerPayload {
    pub customer: Customer,
}
