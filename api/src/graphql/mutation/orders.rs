use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::mutation::licenses::LicensePayload;
use crate::graphql::request;
use crate::graphql::types::order::{
    CreateOrderInput, CreateOrderPayload, Order, OrderLine, OrderPayload, ReassignOrderKeyInput,
    ReassignOrderKeyPayload, RefundOrderInput, UnassignLicenseInput,
};
use crate::graphql::types::pool::LicenseKey;
use crate::services::fulfilment;
use async_graphql::{Context, Object, Result};

#[derive(Default)]
pub struct OrderMutation;

#[Object]
impl OrderMutation {
    /// Places an order and delivers one key per unit at once; lines the pool
    /// cannot cover wait and are filled, oldest order first, when keys arrive.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn create_order(&self, ctx: &Context<'_>, input: CreateOrderInput) -> Result<CreateOrderPayload> {
        let (state, rc) = request(ctx)?;
        let mut order: fulfilment::NewOrder = input.into();
        order.portal_base = Some(state.config.address_for_links());
        let placed = fulfilment::create_order(&state.db, rc, order).await?;
        if !placed.pools.is_empty() {
            state.pools_to_check.note(placed.pools);
            state.jobs_queued.notify_one();
        }
        let order = match placed.lines {
            Some(lines) => Order::placed(placed.order, lines),
            None => Order::from(placed.order),
        };
        Ok(CreateOrderPayload { order, created: placed.created })
    }

    /// Puts a new key on an order line: a chosen one or the first available,
    /// replacing `licenseId` when given.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn reassign_order_key(
        &self,
        ctx: &Context<'_>,
        input: ReassignOrderKeyInput,
    ) -> Result<ReassignOrderKeyPayload> {
        let (state, rc) = request(ctx)?;
        let notify = input.notify_customer;
        let mut reassignment: fulfilment::Reassignment = input.into();
        reassignment.notify_customer = notify.then(|| state.config.address_for_links());
        let done = fulfilment::reassign(&state.db, rc, reassignment).await?;
        state.pools_to_check.note(done.pools);
        Ok(ReassignOrderKeyPayload {
            line: OrderLine::from(done.line),
            license: LicenseKey::from(done.license),
            previous: done.previous.map(LicenseKey::from),
        })
    }

    /// Takes a key off its order and customer: back to the pool, or retired as used.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn unassign_license(&self, ctx: &Context<'_>, input: UnassignLicenseInput) -> Result<LicensePayload> {
        let (state, rc) = request(ctx)?;
        let key = fulfilment::unassign(&state.db, rc, &input.id, input.to.into()).await?;
        Ok(LicensePayload { license: LicenseKey::from(key) })
    }

    /// Marks an order refunded. Its keys stay with the customer unless `keys` says otherwise.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn refund_order(&self, ctx: &Context<'_>, input: RefundOrderInput) -> Result<OrderPayload> {
        let (state, rc) = request(ctx)?;
        let base = input.notify_customer.then(|| state.config.address_for_links());
        let keys = input.keys.unwrap_or_default().into();
        let order = fulfilment::refund(&state.db, rc, &input.id, keys, base.as_deref()).await?;
        Ok(OrderPayload { order: Order::from(order) })
    }
}
