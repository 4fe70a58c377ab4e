use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::customer::{CreateCustomerInput, Customer, CustomerPayload, UpdateCustomerInput};
use crate::services::customers;
use async_graphql::{Context, Object, Result};

#[derive(Default)]
pub struct CustomerMutation;

#[Object]
impl CustomerMutation {
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn create_customer(&self, ctx: &Context<'_>, input: CreateCustomerInput) -> Result<CustomerPayload> {
        let (state, rc) = request(ctx)?;
        let created = customers::create(&state.db, rc, &input.email, &input.name).await?;
        Ok(CustomerPayload { customer: Customer(created) })
    }

    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn update_customer(&self, ctx: &Context<'_>, input: UpdateCustomerInput) -> Result<CustomerPayload> {
        let (state, rc) = request(ctx)?;
        let updated =
            customers::update(&state.db, rc, &input.id, input.email.as_deref(), input.name.as_deref()).await?;
        Ok(CustomerPayload { customer: Customer(updated) })
    }
}
