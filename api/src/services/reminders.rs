//! "Licence expiring" notices: a `license.expiring` event 30, 14 and 7 days
//! before a licence in use expires, once each per expiry date, for webhooks
//! (and email) to deliver. Only the tightest notice that applies is sent: a
//! licence found with ten days left gets the 14-day notice, not the 30-day
//! one too. Runs on every node's sweeper; a notice is recorded with an
//! insert that only one node can make, and only that node announces it.

use super::events::{self, EventKind, Subject};
use super::sql::Sql;
use crate::db::begin_write;
use crate::error::AppResult;
use chrono::Duration;
use entity::{LicenseStatus, expiry_notice, license_key};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Set, Value};

/// Days before expiry at which licences are announced as expiring.
pub const NOTICE_DAYS: [i32; 3] = [7, 14, 30];
const BATCH: u64 = 200;

/// Announces every licence that reached a notice since the last sweep.
/// Returns how many notices were sent.
pub async fn announce_expiring(db: &DatabaseConnection) -> AppResult<u64> {
    let mut sent = 0;
    for (i, days) in NOTICE_DAYS.iter().copied().enumerate() {
        // Disjoint bands (0–7, 7–14, 14–30 days left): a licence is in one
        // band only, whatever a sweep meets first, so the tightest notice is
        // the one it gets.
        let wider_than = if i == 0 { 0 } else { NOTICE_DAYS[i - 1] };
        loop {
            let now = entity::now();
            let txn = begin_write(db).await?;
            let backend = txn.get_database_backend();
            let mut not_yet = Sql::new(
                "NOT EXISTS (SELECT 1 FROM expiry_notice n WHERE n.license_key_id = license_key.id \
                 AND n.days = ? AND n.expires_at = license_key.expires_at)",
            );
            not_yet.values.push(Value::from(days));
            let due = license_key::Entity::find()
                .filter(license_key::Column::Status.is_in([LicenseStatus::Assigned, LicenseStatus::Active]))
                .filter(license_key::Column::ExpiresAt.gt(now + Duration::days(i64::from(wider_than))))
                .filter(license_key::Column::ExpiresAt.lte(now + Duration::days(i64::from(days))))
                .filter(not_yet.expr(backend))
                .limit(BATCH)
                .all(&txn)
                .await?;
            if due.is_empty() {
                txn.commit().await?;
                break;
            }
            for licence in &due {
                let Some(expires_at) = licence.expires_at else { continue };
                // This notice, and the wider ones it makes needless; only the
                // node whose insert of this notice counted announces it.
                let mut mine = false;
                for wider in &NOTICE_DAYS[i..] {
                    let inserted = expiry_notice::Entity::insert(expiry_notice::ActiveModel {
                        license_key_id: Set(licence.id.clone()),
                        days: Set(*wider),
                        expires_at: Set(expires_at),
                        created_at: Set(now),
                    })
                    .on_conflict(
                        OnConflict::columns([
                            expiry_notice::Column::LicenseKeyId,
                            expiry_notice::Column::Days,
                            expiry_notice::Column::ExpiresAt,
                        ])
                        .do_nothing()
                        .to_owned(),
                    )
                    .exec_without_returning(&txn)
                    .await?;
                    mine |= *wider == days && inserted > 0;
                }
                if !mine {
                    continue;
                }
                let payload = serde_json::json!({
                    "licenseId": licence.id,
                    "keyPrefix": license_key::key_prefix(&licence.key),
                    "status": licence.status,
                    "productId": licence.product_id,
                    "customerId": licence.customer_id,
                    "expiresAt": expires_at,
                    "days": days,
                });
                let subject = Subject { kind: "license_key", id: &licence.id };
                events::emit(&txn, licence.environment, EventKind::LicenseExpiring, subject, payload).await?;
                remind(&txn, licence, expires_at, days).await?;
                sent += 1;
            }
            txn.commit().await?;
        }
    }
    Ok(sent)
}

/// Emails the licence's customer, when it has one, that it expires soon.
async fn remind(
    txn: &impl ConnectionTrait,
    licence: &license_key::Model,
    expires_at: chrono::DateTime<chrono::Utc>,
    days: i32,
) -> AppResult<()> {
    let Some(customer_id) = &licence.customer_id else { return Ok(()) };
    let Some(customer) = entity::customer::Entity::find_by_id(customer_id.clone()).one(txn).await? else {
        return Ok(());
    };
    let product = match &licence.product_id {
        Some(id) => entity::product::Entity::find_by_id(id.clone()).one(txn).await?.map(|p| p.name),
        None => None,
    };
    let what = product.map_or_else(|| "Your licence".to_string(), |name| format!("Your {name} licence"));
    let subject = format!("{what} expires in {days} days");
    let body = format!(
        "Hello{name},\n\n{what} (key {prefix}…) expires on {date}.\nRenew it before then to keep using it.\n",
        name = if customer.name.is_empty() { String::new() } else { format!(" {}", customer.name) },
        prefix = license_key::key_prefix(&licence.key),
        date = expires_at.format("%-d %B %Y"),
    );
    super::email::queue(txn, Some(licence.environment), "license.expiring", &customer.email, &subject, &body).await
}
