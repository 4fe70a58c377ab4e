//! Lines waiting for keys: filled oldest order first when keys reach their
//! pool, and the pools products deliver from.

use super::*;

/// What a backfill did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backfill {
    /// Keys delivered to waiting lines.
    pub delivered: u64,
    /// Pools keys were taken from.
    pub pools: Vec<TagRef>,
}

/// Fills lines still waiting for keys, oldest order first, from whatever their
/// products' pools hold now. Runs as the system after keys reach a pool
/// (import, move, tag, generation, return to pool, a product's new delivery
/// setting) and on the sweeper's schedule, so no waiting line is forgotten.
pub async fn backfill(db: &DatabaseConnection, environment: Environment) -> AppResult<Backfill> {
    let ctx = RequestContext::system(environment);
    let mut done = Backfill::default();
    let mut after: Option<(DateTime<Utc>, String)> = None;
    loop {
        let batch = retrying(|| backfill_batch(db, &ctx, after.clone())).await?;
        done.delivered += batch.delivered;
        for pool in batch.pools {
            if !done.pools.contains(&pool) {
                done.pools.push(pool);
            }
        }
        match batch.last {
            Some(last) => after = Some(last),
            None => break,
        }
    }
    if done.delivered > 0 {
        tracing::info!(environment = environment.as_str(), delivered = done.delivered, "filled waiting order lines");
    }
    Ok(done)
}

struct BatchResult {
    delivered: u64,
    pools: Vec<TagRef>,
    /// Where the next batch starts; `None` when this was the last.
    last: Option<(DateTime<Utc>, String)>,
}

async fn backfill_batch(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    after: Option<(DateTime<Utc>, String)>,
) -> AppResult<BatchResult> {
    let txn = begin_write(db).await?;
    let backend = txn.get_database_backend();
    // Waiting lines of unrefunded orders, oldest order first, locked on PostgreSQL.
    let sql = sql::waiting_lines(backend, ctx.environment, after.as_ref(), BACKFILL_BATCH);
    let rows = txn.query_all_raw(sql.statement(backend)).await?;
    let mut result = BatchResult { delivered: 0, pools: Vec::new(), last: None };
    if rows.len() as u64 == BACKFILL_BATCH {
        let last = rows.last().map(|r| -> Result<_, sea_orm::DbErr> {
            Ok((r.try_get_by_index::<DateTime<Utc>>(1)?, r.try_get_by_index::<String>(0)?))
        });
        result.last = last.transpose()?;
    }
    let ids: Vec<String> = rows.iter().map(|r| r.try_get_by_index::<String>(0)).collect::<Result<_, _>>()?;
    let mut lines: Vec<order_line::Model> =
        order_line::Entity::find().filter(order_line::Column::Id.is_in(ids.clone())).all(&txn).await?;
    lines.sort_by_key(|l| ids.iter().position(|id| *id == l.id));
    let mut products: HashMap<String, product::Model> = HashMap::new();
    let mut empty: HashSet<Source> = HashSet::new();
    let mut touched_orders = BTreeMap::new();
    for line in lines {
        if !products.contains_key(&line.product_id)
            && let Some(p) = product::Entity::find_by_id(line.product_id.clone()).one(&txn).await?
        {
            products.insert(p.id.clone(), p);
        }
        let Some(product) = products.get(&line.product_id) else { continue };
        let source = source_of(product);
        if empty.contains(&source) || source == Source::Nowhere {
            continue;
        }
        let placed = order::Entity::find_by_id(line.order_id.clone())
            .one(&txn)
            .await?
            .ok_or_else(|| AppError::internal(format!("order {} vanished", line.order_id)))?;
        let delivered = deliver(&txn, ctx, product, &line, &placed.customer_id, line.missing, None).await?;
        if (delivered.len() as i32) < line.missing {
            empty.insert(source.clone());
        }
        if delivered.is_empty() {
            continue;
        }
        if let Source::Pool(pool) = &source
            && !result.pools.contains(pool)
        {
            result.pools.push(pool.clone());
        }
        result.delivered += delivered.len() as u64;
        let remaining = line.missing - delivered.len() as i32;
        audit::record(
            &txn,
            ctx,
            Change {
                action: "order.backfilled",
                target_kind: "order",
                target_id: &line.order_id,
                before: Some(json!({ "lineId": line.id, "missing": line.missing })),
                after: Some(json!({
                    "lineId": line.id,
                    "missing": remaining,
                    "keys": delivered.iter().map(|k| license_key::key_prefix(&k.key)).collect::<Vec<_>>(),
                })),
                ..Change::default()
            },
        )
        .await?;
        touched_orders.insert(line.order_id.clone(), ());
        set_missing(&txn, line, remaining).await?;
    }
    for order_id in touched_orders.keys() {
        refresh_status(&txn, ctx, order_id).await?;
    }
    txn.commit().await?;
    Ok(result)
}

/// The pools products of `environment` deliver from (for the exhaustion checks).
pub async fn delivery_pools(db: &impl ConnectionTrait, environment: Environment) -> AppResult<Vec<TagRef>> {
    let products = product::Entity::find()
        .filter(product::Column::Environment.eq(environment))
        .filter(product::Column::Status.eq(ProductStatus::Active))
        .filter(product::Column::DeliveryMode.ne(DeliveryMode::AutoGenerated))
        .select_only()
        .column(product::Column::DeliveryMode)
        .column(product::Column::DeliveryTagId)
        .into_tuple::<(DeliveryMode, Option<String>)>()
        .all(db)
        .await?;
    let mut pools: Vec<TagRef> = Vec::new();
    for (mode, tag) in products {
        let pool = match (mode, tag) {
            (DeliveryMode::NoTag, _) => TagRef::NoTag,
            (DeliveryMode::Tag, Some(id)) => TagRef::Tag(id),
            _ => continue,
        };
        if !pools.contains(&pool) {
            pools.push(pool);
        }
    }
    Ok(pools)
}

/// Units still waiting on `pool` (lines of unrefunded orders whose product delivers from it).
pub async fn waiting_on(db: &impl ConnectionTrait, environment: Environment, pool: &TagRef) -> AppResult<i64> {
    let sql = sql::units_waiting(environment, pool);
    let backend = db.get_database_backend();
    let row = db.query_one_raw(sql.statement(backend)).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or_default())
}

/// After keys reached a pool of `environment` (import, move, tag, generation,
/// a return to the pool, a product's new delivery setting): fills the lines
/// waiting on them and re-checks the pools against the exhaustion threshold.
/// Failures are logged, not returned — the keys are in, and the sweeper
/// tries again — and the number of keys delivered is returned.
pub async fn after_keys_arrived(db: &DatabaseConnection, environment: Environment) -> u64 {
    let delivered = match backfill(db, environment).await {
        Ok(done) => done.delivered,
        Err(e) => {
            tracing::warn!(error = %e.detail(), "filling waiting order lines failed; the sweeper will retry");
            0
        }
    };
    if let Err(e) = crate::services::exhaustion::check_all(db, environment).await {
        tracing::warn!(error = %e.detail(), "exhaustion check failed; the sweeper will retry");
    }
    delivered
}
