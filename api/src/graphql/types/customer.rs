//! Customers as clients see them.

use super::common::{Environment, OrderDirection};
use async_graphql::{Enum, ID, InputObject, Object, SimpleObject};
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
    /// Unique in the environment (case does not matter).
    pub email: String,
    #[graphql(default)]
    pub name: String,
}

#[derive(Debug, InputObject)]
pub struct UpdateCustomerInput {
    pub id: ID,
    pub email: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, SimpleObject)]
pub struct CustomerPayload {
    pub customer: Customer,
}
