//! Bulk licence generation: queued by a request, made by the runner in
//! batches that commit together with the job's progress, so a stop loses
//! nothing: the next claim resumes where the last batch ended.

use super::{GENERATE_LICENSES, JobStatus, LEASE_SECONDS};
use crate::auth::{RequestContext, Viewer, may};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use crate::services::audit::{self, Change};
use crate::services::bulk;
use crate::services::generators::spec;
use chrono::Duration;
use entity::license_key::KeySource;
use entity::product::ProductStatus;
use entity::{Environment, generator, job, product, tag};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use std::collections::HashSet;

/// Most licences one generation job makes.
pub const MAX_GENERATE: i64 = 100_000;
/// Keys made and committed together with the job's progress.
const BATCH: i64 = 2000;

/// Queues the generation of `count` AVAILABLE licences of `product` from `generator`.
pub async fn generate_licenses(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    generator_id: &str,
    product_id: &str,
    count: i64,
) -> AppResult<job::Model> {
    ctx.viewer.require(may::MANAGE)?;
    if !(1..=MAX_GENERATE).contains(&count) {
        return Err(AppError::invalid("count", format!("must be between 1 and {MAX_GENERATE} (got {count})")));
    }
    let txn = begin_write(db).await?;
    let product = product::Entity::find_by_id(product_id.to_string())
        .filter(product::Column::Environment.eq(ctx.environment))
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found_in("product", "productId"))?;
    if product.status != ProductStatus::Active {
        return Err(AppError::invalid("productId", "the product is archived"));
    }
    generator::Entity::find_by_id(generator_id.to_string())
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found_in("generator", "generatorId"))?;
    let created = job::ActiveModel {
        id: Set(entity::new_id()),
        environment: Set(Some(ctx.environment.as_str().to_string())),
        kind: Set(GENERATE_LICENSES.into()),
        status: Set(JobStatus::Queued.as_str().into()),
        progress: Set(0),
        total: Set(count),
        payload: Set(serde_json::json!({ "generatorId": generator_id, "productId": product_id })),
        result: Set(None),
        error: Set(None),
        created_by: Set(match &ctx.viewer {
            Viewer::Staff { user_id, .. } => Some(user_id.clone()),
            _ => None,
        }),
        locked_by: Set(None),
        locked_until: Set(None),
        created_at: Set(entity::now()),
        started_at: Set(None),
        finished_at: Set(None),
        run_after: Set(None),
        every_seconds: Set(None),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        ctx,
        Change {
            action: "job.queued",
            target_kind: "job",
            target_id: &created.id,
            after: Some(serde_json::json!({ "kind": GENERATE_LICENSES, "count": count, "productId": product_id, "generatorId": generator_id })),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

/// Makes the rest of a generation job's licences, a batch a transaction.
/// `None` when another node took the job over.
pub(super) async fn run(db: &DatabaseConnection, node: &str, job: &job::Model) -> AppResult<Option<serde_json::Value>> {
    let environment = job.environment.as_deref().and_then(Environment::parse).unwrap_or_default();
    let generator_id = job.payload["generatorId"].as_str().unwrap_or_default().to_string();
    let product_id = job.payload["productId"].as_str().unwrap_or_default().to_string();
    let generator = generator::Entity::find_by_id(generator_id.clone())
        .one(db)
        .await?
        .ok_or_else(|| AppError::invalid("generatorId", "the generator no longer exists"))?;
    let format =
        spec(&generator).map_err(|e| AppError::internal(format!("generator {} is unusable: {e}", generator.id)))?;
    let auto = tag::auto_generated_id(environment).to_string();
    let mut progress = job.progress;
    while progress < job.total {
        let count = BATCH.min(job.total - progress) as usize;
        let now = entity::now();
        let common = bulk::Common {
            environment,
            source: KeySource::Generated,
            generator_id: Some(generator.id.clone()),
            feature_flags: generator.default_feature_flags.clone(),
            now,
        };
        let txn = begin_write(db).await?;
        let mut keys: HashSet<String> = HashSet::with_capacity(count);
        while keys.len() < count {
            while keys.len() < count {
                keys.insert(format.generate(&mut rand::rng()));
            }
            // Collisions with stored keys are retried, never stored.
            for taken in bulk::already_in_pool(&txn, environment, keys.iter().map(String::as_str)).await? {
                keys.remove(&taken);
            }
        }
        let expires_at = generator.validity_days.map(|d| now + Duration::days(i64::from(d)));
        let rows: Vec<bulk::NewKey> = keys
            .into_iter()
            .map(|key| bulk::NewKey {
                id: entity::new_id(),
                key,
                product_id: Some(product_id.clone()),
                activation_limit: generator.default_activation_limit,
                expires_at,
            })
            .collect();
        bulk::insert(&txn, &common, &rows).await?;
        bulk::tag(&txn, &auto, &rows.into_iter().map(|r| r.id).collect::<Vec<_>>()).await?;
        progress += count as i64;
        let kept = job::Entity::update_many()
            .col_expr(job::Column::Progress, Expr::value(progress))
            .col_expr(job::Column::LockedUntil, Expr::value(entity::now() + Duration::seconds(LEASE_SECONDS)))
            .filter(job::Column::Id.eq(job.id.as_str()))
            .filter(job::Column::LockedBy.eq(node))
            .exec(&txn)
            .await?
            .rows_affected;
        if kept != 1 {
            txn.rollback().await?;
            return Ok(None);
        }
        txn.commit().await?;
    }
    let ctx = RequestContext::system(environment);
    let txn = begin_write(db).await?;
    audit::record(
        &txn,
        &ctx,
        Change {
            action: "license.generated",
            target_kind: "job",
            target_id: &job.id,
            after: Some(
                serde_json::json!({ "count": job.total, "productId": product_id, "generatorId": generator_id }),
            ),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    bulk::refresh_statistics(db, job.total.max(0) as u64).await;
    crate::services::fulfilment::after_keys_arrived(db, environment).await;
    Ok(Some(serde_json::json!({ "generated": job.total })))
}
