use crate::auth::may;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::job::Job;
use crate::graphql::types::pool::{KeysChangedPayload, LicenseKey};
use crate::graphql::types::product::PeriodInput;
use crate::services::jobs;
use crate::services::licenses::{self, LicensePatch, NewLicense};
use crate::services::renewals::{self, RenewalBasis};
use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::LicenseAction;

#[derive(Debug, InputObject)]
pub struct CreateLicenseInput {
    /// An active product of this environment.
    pub product_id: ID,
    /// The key format; its defaults fill what is not given here.
    pub generator_id: ID,
    /// Given: the licence is ASSIGNED to this customer; otherwise AVAILABLE.
    pub customer_id: Option<ID>,
    /// `-1` (unlimited) or 1–10000.
    pub activation_limit: Option<i32>,
    /// In the future; null for a lifetime licence; omitted for the generator's validity.
    pub expires_at: MaybeUndefined<DateTime<Utc>>,
    /// A JSON object of at most 10 KB.
    pub feature_flags: Option<Json<serde_json::Value>>,
    /// A JSON object of at most 10 KB, seen by staff only.
    pub metadata: Option<Json<serde_json::Value>>,
}

#[derive(Debug, InputObject)]
pub struct UpdateLicenseInput {
    pub id: ID,
    pub customer_id: Option<ID>,
    pub activation_limit: Option<i32>,
    /// In the future, or null for a lifetime licence.
    pub expires_at: MaybeUndefined<DateTime<Utc>>,
    /// A JSON object of at most 10 KB.
    pub feature_flags: Option<Json<serde_json::Value>>,
    /// A JSON object of at most 10 KB, seen by staff only.
    pub metadata: Option<Json<serde_json::Value>>,
}

#[derive(Debug, InputObject)]
pub struct AssignLicenseInput {
    pub id: ID,
    pub customer_id: ID,
}

#[derive(Debug, InputObject)]
pub struct LicenseIdInput {
    pub id: ID,
}

#[derive(Debug, InputObject)]
pub struct DeleteLicenseInput {
    pub id: ID,
    /// Needed when the licence was ever activated.
    #[graphql(default)]
    pub force: bool,
}

#[derive(Debug, InputObject)]
pub struct GenerateLicensesInput {
    pub generator_id: ID,
    /// An active product of this environment.
    pub product_id: ID,
    /// 1–100000 licences.
    pub count: i32,
}

#[derive(Debug, SimpleObject)]
pub struct GenerateLicensesPayload {
    /// Follow it with `job(id)`: the licences are made in the background.
    pub job: Job,
}

#[derive(Debug, SimpleObject)]
pub struct LicensePayload {
    pub license: LicenseKey,
}

#[derive(Debug, InputObject)]
pub struct RenewLicenseInput {
    /// An ASSIGNED, ACTIVE, INACTIVE or SUSPENDED licence with an expiry
    /// (one past its expiry but inside the grace period too).
    pub license_id: ID,
    /// How much longer it runs; the product's renewal period when omitted.
    pub period: Option<PeriodInput>,
    /// Where the period starts; `FROM_EXPIRY` when omitted or null.
    pub basis: Option<RenewalBasis>,
    /// The payment's id (1–200 characters): a licence is renewed once per
    /// reference, so a repeated notice of one payment renews nothing again.
    pub reference: Option<String>,
}

#[derive(Debug, SimpleObject)]
pub struct RenewLicensePayload {
    /// The same licence with its new expiry; nothing else changed.
    pub license: LicenseKey,
    pub previous_expires_at: DateTime<Utc>,
    /// False when the reference had renewed the licence already: nothing changed.
    pub renewed: bool,
}

fn tri(value: MaybeUndefined<DateTime<Utc>>) -> Option<Option<DateTime<Utc>>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(t) => Some(Some(t)),
    }
}

async fn act(ctx: &Context<'_>, id: &ID, action: LicenseAction, customer: Option<&str>) -> Result<LicensePayload> {
    let (state, rc) = request(ctx)?;
    let license = licenses::act(&state.db, rc, id, action, customer).await?;
    Ok(LicensePayload { license: LicenseKey::from(license) })
}

#[derive(Default)]
pub struct LicenseMutation;

#[Object]
impl LicenseMutation {
    /// Creates a licence with a fresh key from a generator.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn create_license(&self, ctx: &Context<'_>, input: CreateLicenseInput) -> Result<LicensePayload> {
        let (state, rc) = request(ctx)?;
        let new = NewLicense {
            product_id: input.product_id.0,
            generator_id: input.generator_id.0,
            customer_id: input.customer_id.map(|c| c.0),
            activation_limit: input.activation_limit.map(i64::from),
            expires_at: tri(input.expires_at),
            feature_flags: input.feature_flags.map(|j| j.0),
            metadata: input.metadata.map(|j| j.0),
        };
        let license = licenses::create(&state.db, rc, new).await?;
        Ok(LicensePayload { license: LicenseKey::from(license) })
    }

    /// Queues the generation of up to 100000 AVAILABLE licences into the
    /// `auto-generated` pool; returns the job at once.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn generate_licenses(
        &self,
        ctx: &Context<'_>,
        input: GenerateLicensesInput,
    ) -> Result<GenerateLicensesPayload> {
        let (state, rc) = request(ctx)?;
        let job =
            jobs::generate_licenses(&state.db, rc, &input.generator_id, &input.product_id, i64::from(input.count))
                .await?;
        state.jobs_queued.notify_one();
        Ok(GenerateLicensesPayload { job: Job(job) })
    }

    /// Changes customer, activation limit, expiry, flags or metadata; never key, product or environment.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn update_license(&self, ctx: &Context<'_>, input: UpdateLicenseInput) -> Result<LicensePayload> {
        let (state, rc) = request(ctx)?;
        let patch = LicensePatch {
            customer_id: input.customer_id.map(|c| c.0),
            activation_limit: input.activation_limit.map(i64::from),
            expires_at: tri(input.expires_at),
            feature_flags: input.feature_flags.map(|j| j.0),
            metadata: input.metadata.map(|j| j.0),
        };
        let license = licenses::update(&state.db, rc, &input.id, patch).await?;
        Ok(LicensePayload { license: LicenseKey::from(license) })
    }

    /// AVAILABLE → ASSIGNED to a customer.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn assign_license(&self, ctx: &Context<'_>, input: AssignLicenseInput) -> Result<LicensePayload> {
        act(ctx, &input.id, LicenseAction::Assign, Some(&input.customer_id)).await
    }

    /// ASSIGNED (never activated or revealed) → AVAILABLE.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn return_license_to_pool(&self, ctx: &Context<'_>, input: LicenseIdInput) -> Result<LicensePayload> {
        act(ctx, &input.id, LicenseAction::ReturnToPool, None).await
    }

    /// ACTIVE → INACTIVE.
    #[graphql(guard = "RoleGuard::new(may::SWITCH)")]
    async fn inactivate_license(&self, ctx: &Context<'_>, input: LicenseIdInput) -> Result<LicensePayload> {
        act(ctx, &input.id, LicenseAction::Inactivate, None).await
    }

    /// INACTIVE → ACTIVE.
    #[graphql(guard = "RoleGuard::new(may::SWITCH)")]
    async fn reactivate_license(&self, ctx: &Context<'_>, input: LicenseIdInput) -> Result<LicensePayload> {
        act(ctx, &input.id, LicenseAction::Reactivate, None).await
    }

    /// ACTIVE → SUSPENDED.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn suspend_license(&self, ctx: &Context<'_>, input: LicenseIdInput) -> Result<LicensePayload> {
        act(ctx, &input.id, LicenseAction::Suspend, None).await
    }

    /// SUSPENDED → ACTIVE.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn unsuspend_license(&self, ctx: &Context<'_>, input: LicenseIdInput) -> Result<LicensePayload> {
        act(ctx, &input.id, LicenseAction::Unsuspend, None).await
    }

    /// Any status but REVOKED → REVOKED, for good; every activation ends.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn revoke_license(&self, ctx: &Context<'_>, input: LicenseIdInput) -> Result<LicensePayload> {
        act(ctx, &input.id, LicenseAction::Revoke, None).await
    }

    /// Moves a licence's expiry later by a period (a paid renewal), keeping
    /// the same key, status and devices. An EXPIRED licence stays expired
    /// (`INVALID_TRANSITION`): issue a new licence instead.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn renew_license(&self, ctx: &Context<'_>, input: RenewLicenseInput) -> Result<RenewLicensePayload> {
        let (state, rc) = request(ctx)?;
        let period = input.period.map(|p| p.parse("period")).transpose()?;
        let renewed = renewals::renew(
            &state.db,
            rc,
            &input.license_id,
            period,
            input.basis.unwrap_or_default(),
            input.reference.as_deref(),
        )
        .await?;
        Ok(RenewLicensePayload {
            license: LicenseKey::from(renewed.license),
            previous_expires_at: renewed.previous_expires_at,
            renewed: renewed.renewed,
        })
    }

    /// Deletes a licence; one that was ever activated needs `force: true`.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn delete_license(&self, ctx: &Context<'_>, input: DeleteLicenseInput) -> Result<KeysChangedPayload> {
        let (state, rc) = request(ctx)?;
        Ok(licenses::delete(&state.db, rc, &input.id, input.force).await?.into())
    }
}
