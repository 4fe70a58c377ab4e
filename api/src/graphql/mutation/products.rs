use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::product::{
    ArchiveProductInput, ArchiveProductPayload, CreateProductInput, CreateProductPayload, Product, UpdateProductInput,
    UpdateProductPayload,
};
use crate::services::products::{self, NewProduct, ProductPatch};
use async_graphql::{Context, MaybeUndefined, Object, Result};

#[derive(Default)]
pub struct ProductMutation;

#[Object]
impl ProductMutation {
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn create_product(&self, ctx: &Context<'_>, input: CreateProductInput) -> Result<CreateProductPayload> {
        let (state, rc) = request(ctx)?;
        let new = NewProduct {
            name: input.name,
            description: input.description,
            delivery: input.delivery.map(Into::into),
            key_button_text: input.key_button_text,
            unavailable_message: input.unavailable_message,
            requires_fingerprint: input.requires_fingerprint,
            renewal_period: input.renewal_period.map(|p| p.parse("renewalPeriod")).transpose()?,
        };
        let product = products::create(&state.db, rc, new).await?;
        Ok(CreateProductPayload { product: Product(product) })
    }

    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn update_product(&self, ctx: &Context<'_>, input: UpdateProductInput) -> Result<UpdateProductPayload> {
        let (state, rc) = request(ctx)?;
        let patch = ProductPatch {
            name: input.name,
            description: input.description,
            delivery: input.delivery.map(Into::into),
            key_button_text: input.key_button_text,
            unavailable_message: input.unavailable_message,
            requires_fingerprint: input.requires_fingerprint,
            renewal_period: match input.renewal_period {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(p) => Some(Some(p.parse("renewalPeriod")?)),
            },
        };
        let product = products::update(&state.db, rc, &input.id, patch).await?;
        Ok(UpdateProductPayload { product: Product(product) })
    }

    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn archive_product(&self, ctx: &Context<'_>, input: ArchiveProductInput) -> Result<ArchiveProductPayload> {
        let (state, rc) = request(ctx)?;
        let product = products::archive(&state.db, rc, &input.id).await?;
        Ok(ArchiveProductPayload { product: Product(product) })
    }
}
