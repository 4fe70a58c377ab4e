//! Renewals: a paid period added to a delivered licence's expiry, the same
//! key kept. Only the expiry moves: the status, the devices, the limits and
//! the customer stay. A licence inside its grace period after expiry is still
//! renewed; one already EXPIRED is not (the lifecycle has no way back): its
//! customer gets a new licence.

use super::audit::{self, Change};
use super::events::{self, EventKind, Subject};
use super::licenses::{self, effective_status, snapshot};
use crate::auth::{RequestContext, may};
use crate::db::{begin_write, retrying};
use crate::error::{AppError, AppResult, contended};
use chrono::{DateTime, Days, Months, Utc};
use entity::lifecycle::transition;
use entity::values::bounded_text;
use entity::{LicenseAction, license_key, license_renewal, product};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, Set};
use serde_json::json;

/// The most a renewal adds: ten years, in whichever unit.
pub const MAX_DAYS: i32 = 3_650;
pub const MAX_MONTHS: i32 = 120;
pub const MAX_YEARS: i32 = 10;

/// A renewal's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Days(u32),
    Months(u32),
    Years(u32),
}

impl Period {
    /// Exactly one of `days` (1–3650), `months` (1–120) or `years` (1–10);
    /// `field` names the input in errors.
    pub fn parse(field: &str, days: Option<i32>, months: Option<i32>, years: Option<i32>) -> AppResult<Self> {
        let given = [days.is_some(), months.is_some(), years.is_some()].into_iter().filter(|g| *g).count();
        if given != 1 {
            return Err(AppError::invalid(field, "must give exactly one of days, months or years"));
        }
        let within = |unit: &str, n: i32, max: i32| {
            if (1..=max).contains(&n) {
                Ok(n as u32)
            } else {
                Err(AppError::invalid(format!("{field}.{unit}"), format!("must be 1–{max} (got {n})")))
            }
        };
        Ok(match (days, months, years) {
            (Some(n), _, _) => Period::Days(within("days", n, MAX_DAYS)?),
            (_, Some(n), _) => Period::Months(within("months", n, MAX_MONTHS)?),
            (_, _, Some(n)) => Period::Years(within("years", n, MAX_YEARS)?),
            _ => unreachable!("exactly one unit was given"),
        })
    }

    /// `at` plus the period, in calendar terms (a month from 31 January is
    /// the last day of February).
    pub fn after(self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Period::Days(n) => at.checked_add_days(Days::new(u64::from(n))),
            Period::Months(n) => at.checked_add_months(Months::new(n)),
            Period::Years(n) => at.checked_add_months(Months::new(n.checked_mul(12)?)),
        }
    }

    /// The unit and count as a product stores them.
    pub fn stored(self) -> (&'static str, i32) {
        match self {
            Period::Days(n) => ("DAYS", n as i32),
            Period::Months(n) => ("MONTHS", n as i32),
            Period::Years(n) => ("YEARS", n as i32),
        }
    }

    /// A period as a product stores it; `None` when it sets none.
    pub fn from_stored(unit: Option<&str>, count: Option<i32>) -> Option<Self> {
        let n = u32::try_from(count?).ok()?;
        match unit? {
            "DAYS" => Some(Period::Days(n)),
            "MONTHS" => Some(Period::Months(n)),
            "YEARS" => Some(Period::Years(n)),
            _ => None,
        }
    }

    fn describe(self) -> serde_json::Value {
        match self {
            Period::Days(n) => json!({ "days": n }),
            Period::Months(n) => json!({ "months": n }),
            Period::Years(n) => json!({ "years": n }),
        }
    }
}

/// Where a renewal's period starts.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RenewalBasis {
    /// From the current expiry, however far ahead or behind: no paid day is
    /// lost, and a late renewal inside the grace period does not add the gap.
    #[default]
    FromExpiry,
    /// From now, whatever the current expiry (which may move earlier).
    FromNow,
    /// From now if the licence has passed its expiry (inside the grace
    /// period), otherwise from its expiry.
    FromNowIfExpired,
}

impl RenewalBasis {
    fn as_str(self) -> &'static str {
        match self {
            RenewalBasis::FromExpiry => "FROM_EXPIRY",
            RenewalBasis::FromNow => "FROM_NOW",
            RenewalBasis::FromNowIfExpired => "FROM_NOW_IF_EXPIRED",
        }
    }
}

/// What a renewal asks for.
#[derive(Debug, Clone, Copy)]
pub struct Renewal<'a> {
    pub period: Period,
    pub basis: RenewalBasis,
    /// A payment's id: the licence is renewed once per reference (1–200 characters).
    pub reference: Option<&'a str>,
    /// The order line that renews it, on a renewal order.
    pub order_line_id: Option<&'a str>,
}

/// A renewed licence and the expiry it had before; `renewed` is false when
/// the reference had renewed it already (nothing changed this time).
#[derive(Debug, Clone)]
pub struct Renewed {
    pub license: license_key::Model,
    pub previous_expires_at: DateTime<Utc>,
    pub renewed: bool,
}

/// The longest renewal reference.
pub const MAX_REFERENCE: usize = 200;

/// Renews the licence `license_id` by `period` (by its product's renewal
/// period when `None`) from `basis`, once per `reference` when given.
pub async fn renew(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    license_id: &str,
    period: Option<Period>,
    basis: RenewalBasis,
    reference: Option<&str>,
) -> AppResult<Renewed> {
    ctx.viewer.require(may::MANAGE)?;
    let reference = reference.map(|r| bounded_text("reference", r, 1, MAX_REFERENCE, false)).transpose()?;
    retrying(|| async {
        let txn = begin_write(db).await?;
        let found = licenses::find(&txn, ctx, license_id)
            .await?
            .ok_or_else(|| AppError::not_found_in("licence", "licenseId"))?;
        // Under the row's lock where rows lock: two renewals at once both
        // count, and a reference seen by one is seen by the other.
        let before = licenses::relocked(&txn, found).await?;
        let period = match period {
            Some(period) => period,
            None => product_period(&txn, &before).await?.ok_or_else(|| {
                AppError::invalid("period", "is required: the licence's product has no renewal period")
            })?,
        };
        let asked = Renewal { period, basis, reference: reference.as_deref(), order_line_id: None };
        let renewed = renew_in(&txn, ctx, before, asked).await?;
        txn.commit().await?;
        Ok(renewed)
    })
    .await
}

/// The renewal period of `licence`'s product, if it has one.
pub(crate) async fn product_period(
    txn: &DatabaseTransaction,
    licence: &license_key::Model,
) -> AppResult<Option<Period>> {
    let Some(product_id) = &licence.product_id else {
        return Ok(None);
    };
    let product = product::Entity::find_by_id(product_id.clone()).one(txn).await?;
    Ok(product.and_then(|p| Period::from_stored(p.renewal_period_unit.as_deref(), p.renewal_period_count)))
}

/// [`renew`] inside the caller's transaction, `before` read under its lock.
pub(crate) async fn renew_in(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    before: license_key::Model,
    asked: Renewal<'_>,
) -> AppResult<Renewed> {
    let Renewal { period, basis, reference, order_line_id } = asked;
    if let Some(reference) = reference {
        let done = license_renewal::Entity::find()
            .filter(license_renewal::Column::LicenseKeyId.eq(before.id.as_str()))
            .filter(license_renewal::Column::Reference.eq(reference))
            .one(txn)
            .await?;
        if let Some(done) = done {
            return Ok(Renewed { license: before, previous_expires_at: done.expires_before, renewed: false });
        }
    }
    let now = entity::now();
    let from = effective_status(&before, now - licenses::grace_period(txn).await?);
    transition(from, LicenseAction::Renew)?;
    let Some(previous) = before.expires_at else {
        return Err(AppError::invalid("licenseId", "the licence is for a lifetime: it has no expiry to renew"));
    };
    let start = match basis {
        RenewalBasis::FromExpiry => previous,
        RenewalBasis::FromNow => now,
        RenewalBasis::FromNowIfExpired => previous.max(now),
    };
    let expires_at = period
        .after(start)
        .filter(|t| t.timestamp() < 253_402_300_800)
        .ok_or_else(|| AppError::invalid("period", "takes the expiry past the year 9999"))?;
    let mut active: license_key::ActiveModel = before.clone().into();
    active.expires_at = Set(Some(entity::stored_time(expires_at)));
    active.updated_at = Set(now);
    let after = active.update(txn).await?;
    let (unit, count) = period.stored();
    license_renewal::Entity::insert(license_renewal::ActiveModel {
        id: Set(entity::new_id()),
        license_key_id: Set(after.id.clone()),
        reference: Set(reference.map(str::to_string)),
        period: Set(format!("{count} {unit}")),
        basis: Set(basis.as_str().to_string()),
        expires_before: Set(previous),
        expires_after: Set(after.expires_at.unwrap_or(previous)),
        order_line_id: Set(order_line_id.map(str::to_string)),
        created_at: Set(now),
    })
    .exec_without_returning(txn)
    .await
    .map_err(contended)?;
    let renewal = json!({ "period": period.describe(), "basis": basis.as_str(), "reference": reference });
    let mut recorded = snapshot(&after);
    recorded["renewal"] = renewal.clone();
    audit::record(
        txn,
        ctx,
        Change {
            action: "license.renewed",
            target_kind: "license_key",
            target_id: &after.id,
            key: Some(&after.key),
            before: Some(snapshot(&before)),
            after: Some(recorded),
        },
    )
    .await?;
    let mut payload = licenses::event_payload(&after);
    payload["previousExpiresAt"] = json!(previous);
    payload["renewal"] = renewal;
    let subject = Subject { kind: "license_key", id: &after.id };
    events::emit(txn, after.environment, EventKind::LicenseRenewed, subject, payload).await?;
    Ok(Renewed { license: after, previous_expires_at: previous, renewed: true })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_period_is_one_unit_within_its_bounds() {
        assert_eq!(Period::parse("period", Some(30), None, None).expect("days"), Period::Days(30));
        assert_eq!(Period::parse("period", None, None, Some(10)).expect("years"), Period::Years(10));
        let field = |e: AppError| e.field().map(str::to_string);
        let none = Period::parse("period", None, None, None).expect_err("none");
        assert_eq!(field(none), Some("period".into()));
        let two = Period::parse("period", Some(1), Some(1), None).expect_err("two");
        assert_eq!(field(two), Some("period".into()));
        let zero = Period::parse("period", None, Some(0), None).expect_err("zero");
        assert_eq!(field(zero), Some("period.months".into()));
        let long = Period::parse("period", Some(MAX_DAYS + 1), None, None).expect_err("too long");
        assert_eq!(field(long), Some("period.days".into()));
    }

    #[test]
    fn a_period_is_stored_as_unit_and_count() {
        for period in [Period::Days(30), Period::Months(1), Period::Years(2)] {
            let (unit, count) = period.stored();
            assert_eq!(Period::from_stored(Some(unit), Some(count)), Some(period));
        }
        assert_eq!(Period::from_stored(None, None), None);
        assert_eq!(Period::from_stored(Some("WEEKS"), Some(1)), None);
    }

    #[test]
    fn months_and_years_are_calendar_months() {
        let end_of_january = Utc.with_ymd_and_hms(2027, 1, 31, 12, 0, 0).unwrap();
        assert_eq!(Period::Months(1).after(end_of_january), Utc.with_ymd_and_hms(2027, 2, 28, 12, 0, 0).single());
        assert_eq!(Period::Years(1).after(end_of_january), Utc.with_ymd_and_hms(2028, 1, 31, 12, 0, 0).single());
        assert_eq!(Period::Days(1).after(end_of_january), Utc.with_ymd_and_hms(2027, 2, 1, 12, 0, 0).single());
    }
}
