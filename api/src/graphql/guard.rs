//! The one guard type on every mutation and every sensitive field: the roles
//! allowed, checked with the same rule services use.

use crate::auth::{RequestContext, Role};
use crate::error::AppError;
use async_graphql::{Context, Guard, Result};

pub struct RoleGuard {
    roles: &'static [Role],
}

impl RoleGuard {
    pub fn new(roles: &'static [Role]) -> Self {
        Self { roles }
    }
}

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let request = ctx.data::<RequestContext>().map_err(|_| AppError::internal("the request carries no context"))?;
        Ok(request.viewer.require(self.roles)?)
    }
}
