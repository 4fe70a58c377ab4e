//! Renewals: `renewLicense` moves a delivered licence's expiry later and
//! keeps its key, status and devices; the basis decides where the period
//! starts; the grace period, expired and lifetime licences, bad periods and
//! renewals racing each other.

use crate::client::{activate, delivered, settings, validate};
use crate::fulfilment::Shop;
use chrono::{DateTime, Duration, Months, Utc};
use entity::user::StaffRole;
use entity::{LicenseStatus, audit_event, event, license_key};
use keysmith_tests::{TestApp, data, error_code, error_field, on_both_databases};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};

on_both_databases!(
    a_renewal_moves_the_expiry_and_keeps_everything_else,
    the_basis_decides_where_the_period_starts,
    expired_lifetime_and_bad_renewals_are_refused_and_change_nothing,
    renewals_at_the_same_moment_each_count,
    a_product_renewal_period_is_used_when_a_renewal_names_none,
    a_renewal_order_extends_the_licence_or_replaces_an_expired_one,
    a_reference_renews_once_however_often_it_comes,
);

const RENEW: &str = "mutation($id: ID!, $p: PeriodInput, $b: RenewalBasis) { renewLicense(input: \
                     {licenseId: $id, period: $p, basis: $b}) { previousExpiresAt license { id key status expiresAt \
                     activationsUsed } } }";

async fn renew(app: &TestApp, token: &str, id: &str, period: Value, basis: Option<&str>) -> Value {
    app.graphql(Some(token), RENEW, json!({ "id": id, "p": period, "b": basis })).await
}

/// Sets a licence's expiry as it is stored, past or future.
async fn expire_at(app: &TestApp, id: &str, at: Option<DateTime<Utc>>) -> DateTime<Utc> {
    let row = license_key::Entity::find_by_id(id.to_string()).one(app.db()).await.expect("read").expect("licence");
    let mut row: license_key::ActiveModel = row.into();
    row.expires_at = Set(at.map(entity::stored_time));
    row.update(app.db()).await.expect("update").expires_at.unwrap_or_default()
}

async fn stored(app: &TestApp, id: &str) -> license_key::Model {
    license_key::Entity::find_by_id(id.to_string()).one(app.db()).await.expect("read").expect("licence")
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("a time: {value}"))
}

async fn a_renewal_moves_the_expiry_and_keeps_everything_else(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let (id, customer, _) = delivered(&app, "RENEW-KEY-0001", 3).await;
    let old = expire_at(&app, &id, Some(Utc::now() + Duration::days(20))).await;
    assert_eq!(activate(&app, "RENEW-KEY-0001", "pc-1").await["code"], "VALID");
    let before = stored(&app, &id).await;

    let body = renew(&app, &manager, &id, json!({ "months": 1 }), None).await;
    let renewed = &data(&body)["renewLicense"];
    let new = old.checked_add_months(Months::new(1)).expect("a month later");
    assert_eq!(time(&renewed["previousExpiresAt"]), old, "{body:#}");
    assert_eq!(time(&renewed["license"]["expiresAt"]), new, "from the old expiry, a calendar month");
    assert_eq!(renewed["license"]["key"], "RENEW-KEY-0001", "the same key");
    assert_eq!((&renewed["license"]["status"], &renewed["license"]["activationsUsed"]), (&json!("ACTIVE"), &json!(1)));

    // Only the expiry moved.
    let after = stored(&app, &id).await;
    assert_eq!(after.expires_at, Some(new));
    assert_eq!(
        (after.status, after.customer_id.as_deref(), after.activation_limit, after.devices_in_use),
        (before.status, Some(customer.as_str()), before.activation_limit, before.devices_in_use)
    );
    // The shipped software sees it at its next check.
    let checked = validate(&app, "RENEW-KEY-0001", Some("pc-1")).await;
    assert_eq!(checked["code"], "VALID", "{checked:#}");
    assert_eq!(time(&checked["license"]["expiresAt"]), new);
    // The audit trail and the webhook/subscription event say what changed.
    let audit = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("license.renewed"))
        .all(app.db())
        .await
        .expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].target_id, id);
    let after_json = audit[0].after.clone().expect("after");
    assert_eq!(after_json["renewal"], json!({ "period": { "months": 1 }, "basis": "FROM_EXPIRY", "reference": null }));
    let announced =
        event::Entity::find().filter(event::Column::Kind.eq("license.renewed")).all(app.db()).await.expect("events");
    assert_eq!(announced.len(), 1);
    assert_eq!(announced[0].subject_id, id);
    assert_eq!(time(&announced[0].payload["previousExpiresAt"]), old);
    assert_eq!(time(&announced[0].payload["expiresAt"]), new);
    assert_eq!(announced[0].payload["keyPrefix"], "RENEW-KE", "eight characters of the key at most");
}

async fn the_basis_decides_where_the_period_starts(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let (id, _, _) = delivered(&app, "BASIS-KEY-0001", 1).await;

    // FROM_NOW: now plus the period, even when that is earlier than the expiry.
    expire_at(&app, &id, Some(Utc::now() + Duration::days(30))).await;
    let asked = Utc::now();
    let body = renew(&app, &manager, &id, json!({ "days": 10 }), Some("FROM_NOW")).await;
    let at = time(&data(&body)["renewLicense"]["license"]["expiresAt"]);
    assert!(at >= asked + Duration::days(10) - Duration::seconds(1) && at <= Utc::now() + Duration::days(10), "{at}");

    // FROM_NOW_IF_EXPIRED before the expiry: from the expiry.
    let old = expire_at(&app, &id, Some(Utc::now() + Duration::days(5))).await;
    let body = renew(&app, &manager, &id, json!({ "days": 10 }), Some("FROM_NOW_IF_EXPIRED")).await;
    assert_eq!(time(&data(&body)["renewLicense"]["license"]["expiresAt"]), old + Duration::days(10), "{body:#}");

    // Past the expiry but inside the grace period the licence still renews:
    // FROM_NOW_IF_EXPIRED from now, FROM_EXPIRY from the old expiry.
    settings(&app, &admin, json!({ "gracePeriodMinutes": 60 })).await;
    let lapsed = expire_at(&app, &id, Some(Utc::now() - Duration::minutes(10))).await;
    let asked = Utc::now();
    let body = renew(&app, &manager, &id, json!({ "days": 1 }), Some("FROM_NOW_IF_EXPIRED")).await;
    let at = time(&data(&body)["renewLicense"]["license"]["expiresAt"]);
    assert!(at >= asked + Duration::days(1) - Duration::seconds(1) && at <= Utc::now() + Duration::days(1), "{at}");
    expire_at(&app, &id, Some(lapsed)).await;
    let body = renew(&app, &manager, &id, json!({ "days": 1 }), None).await;
    assert_eq!(time(&data(&body)["renewLicense"]["license"]["expiresAt"]), lapsed + Duration::days(1), "{body:#}");
    assert_eq!(data(&body)["renewLicense"]["license"]["status"], "ASSIGNED");
}

async fn expired_lifetime_and_bad_renewals_are_refused_and_change_nothing(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    settings(&app, &admin, json!({ "gracePeriodMinutes": 0 })).await;
    let (id, _, _) = delivered(&app, "REFUSED-KEY-0001", 1).await;

    // Past its expiry and the grace period: EXPIRED, with the way forward.
    let lapsed = expire_at(&app, &id, Some(Utc::now() - Duration::days(2))).await;
    let body = renew(&app, &manager, &id, json!({ "days": 30 }), None).await;
    assert_eq!(error_code(&body), Some("INVALID_TRANSITION"), "{body:#}");
    let message = body["errors"][0]["message"].as_str().expect("a message");
    assert!(message.contains("EXPIRED") && message.contains("issue a new licence"), "{message}");
    assert_eq!(stored(&app, &id).await.expires_at, Some(lapsed), "nothing changed");

    // A lifetime licence has no expiry to renew (another one: the sweeper
    // may have written the first one down as EXPIRED by now).
    let (lifetime, _, _) = delivered(&app, "REFUSED-KEY-0002", 1).await;
    let body = renew(&app, &manager, &lifetime, json!({ "days": 30 }), None).await;
    assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some("licenseId")), "{body:#}");
    assert_eq!(stored(&app, &lifetime).await.expires_at, None);

    // Periods: exactly one unit, within its bounds, each refusal naming the field.
    let soon = expire_at(&app, &id, Some(Utc::now() + Duration::days(3))).await;
    for (period, field) in [
        (json!({}), "period"),
        (json!({ "days": 1, "months": 1 }), "period"),
        (json!({ "months": 0 }), "period.months"),
        (json!({ "days": -3 }), "period.days"),
        (json!({ "days": 3651 }), "period.days"),
        (json!({ "years": 11 }), "period.years"),
    ] {
        let body = renew(&app, &manager, &id, period.clone(), None).await;
        assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some(field)), "{period}: {body:#}");
    }
    assert_eq!(stored(&app, &id).await.expires_at, Some(soon));

    // Support may not renew; an unknown licence is not found; a revoked one stays revoked.
    let support = app.staff_token(StaffRole::Support).await;
    let body = renew(&app, &support, &id, json!({ "days": 1 }), None).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body:#}");
    let body = renew(&app, &manager, "01M00000000000000000000000", json!({ "days": 1 }), None).await;
    assert_eq!((error_code(&body), error_field(&body)), (Some("NOT_FOUND"), Some("licenseId")), "{body:#}");
    let revoke = "mutation($id: ID!) { revokeLicense(input: {id: $id}) { license { status } } }";
    let body = app.graphql(Some(&manager), revoke, json!({ "id": id })).await;
    assert_eq!(data(&body)["revokeLicense"]["license"]["status"], "REVOKED");
    let body = renew(&app, &manager, &id, json!({ "days": 1 }), None).await;
    assert_eq!(error_code(&body), Some("INVALID_TRANSITION"), "{body:#}");
    assert_eq!(stored(&app, &id).await.expires_at, Some(soon));
    assert_eq!(stored(&app, &id).await.status, LicenseStatus::Revoked);
}

/// A subscription's payments may arrive together: every renewal counts.
async fn renewals_at_the_same_moment_each_count(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let (id, _, _) = delivered(&app, "RACE-RENEW-0001", 1).await;
    let old = expire_at(&app, &id, Some(Utc::now() + Duration::days(1))).await;
    let vars = json!({ "id": id, "p": { "days": 1 } });
    let answers =
        futures_util::future::join_all((0..20).map(|_| app.graphql(Some(&manager), RENEW, vars.clone()))).await;
    let mut previous: Vec<DateTime<Utc>> =
        answers.iter().map(|body| time(&data(body)["renewLicense"]["previousExpiresAt"])).collect();
    previous.sort();
    let expected: Vec<DateTime<Utc>> = (0..20).map(|d| old + Duration::days(d)).collect();
    assert_eq!(previous, expected, "each renewal started where the one before it ended");
    assert_eq!(stored(&app, &id).await.expires_at, Some(old + Duration::days(20)));
    let audited = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("license.renewed"))
        .all(app.db())
        .await
        .expect("audit");
    assert_eq!(audited.len(), 20);
}

async fn a_product_renewal_period_is_used_when_a_renewal_names_none(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let (id, _, product) = delivered(&app, "PERIOD-KEY-0001", 1).await;
    let old = expire_at(&app, &id, Some(Utc::now() + Duration::days(3))).await;
    let update = "mutation($id: ID!, $p: PeriodInput) { updateProduct(input: {id: $id, renewalPeriod: $p}) \
                  { product { renewalPeriod { unit count } } } }";

    // No period anywhere: the renewal must name one.
    let body = app.graphql(Some(&manager), RENEW, json!({ "id": id })).await;
    assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some("period")), "{body:#}");

    // A product's period is checked like any period, and kept.
    let body = app.graphql(Some(&manager), update, json!({ "id": product, "p": { "months": 0 } })).await;
    assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some("renewalPeriod.months")));
    let body = app.graphql(Some(&manager), update, json!({ "id": product, "p": { "years": 1 } })).await;
    assert_eq!(data(&body)["updateProduct"]["product"]["renewalPeriod"], json!({ "unit": "YEARS", "count": 1 }));
    let body = app.graphql(Some(&manager), RENEW, json!({ "id": id })).await;
    let renewed = time(&data(&body)["renewLicense"]["license"]["expiresAt"]);
    assert_eq!(renewed, old.checked_add_months(Months::new(12)).expect("a year later"), "{body:#}");
    // A period given wins over the product's.
    let body = renew(&app, &manager, &id, json!({ "days": 1 }), None).await;
    assert_eq!(time(&data(&body)["renewLicense"]["license"]["expiresAt"]), renewed + Duration::days(1));

    // Null clears it; a new product may set one from the start.
    let body = app.graphql(Some(&manager), update, json!({ "id": product, "p": null })).await;
    assert_eq!(data(&body)["updateProduct"]["product"]["renewalPeriod"], Value::Null, "{body:#}");
    let create = "mutation { createProduct(input: {name: \"Yearly\", renewalPeriod: {months: 12}}) \
                  { product { renewalPeriod { unit count } } } }";
    let body = app.graphql(Some(&manager), create, json!({})).await;
    assert_eq!(data(&body)["createProduct"]["product"]["renewalPeriod"], json!({ "unit": "MONTHS", "count": 12 }));
}

/// `createOrder` with one line renewing `licence`; the whole response.
async fn renewal_order(
    shop: &Shop<'_>,
    external_id: &str,
    email: &str,
    product: &str,
    licence: &str,
    quantity: i64,
) -> Value {
    let order = "mutation($x: String!, $e: String!, $p: ID!, $r: ID!, $q: Int!) { createOrder(input: {externalId: $x, \
                 customer: {email: $e}, lines: [{productId: $p, quantity: $q, renews: $r}], emailCustomer: false}) \
                 { created order { status lines { missing renewalOutcome renews { id } keys { id key renewedFrom { id } } } } } }";
    shop.call(order, json!({ "x": external_id, "e": email, "p": product, "r": licence, "q": quantity })).await
}

async fn a_renewal_order_extends_the_licence_or_replaces_an_expired_one(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let shop = Shop::new(&app).await;
    let pool = shop.tag("subscriptions").await;
    assert_eq!(shop.import(&["SUB-0001", "SUB-0002", "SUB-0003"], &[&pool]).await, 3);
    let product = shop.product("Monthly", json!({ "mode": "TAG", "tagId": pool })).await;
    let other = shop.product("Other", json!({ "mode": "AUTO_GENERATED" })).await;
    let first = shop.placed("sub-1", "ada@example.com", &[(product.as_str(), 1)]).await;
    let licence = first["lines"][0]["keys"][0]["id"].as_str().expect("the licence").to_string();
    let key = first["lines"][0]["keys"][0]["key"].as_str().expect("the key").to_string();

    // Without a renewal period the product cannot be renewed by an order.
    let body = renewal_order(&shop, "sub-2", "ada@example.com", &product, &licence, 1).await;
    assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some("lines[0].renews")), "{body:#}");
    let set = "mutation($id: ID!) { updateProduct(input: {id: $id, renewalPeriod: {months: 1}}) { product { id } } }";
    assert!(shop.call(set, json!({ "id": product })).await.get("errors").is_none());

    // Paid again: the same licence runs a month longer; no key is taken.
    let old = expire_at(&app, &licence, Some(Utc::now() + Duration::days(5))).await;
    let body = renewal_order(&shop, "sub-2", "ada@example.com", &product, &licence, 1).await;
    let order = &data(&body)["createOrder"]["order"];
    assert_eq!(order["status"], "FULFILLED", "{body:#}");
    let line = &order["lines"][0];
    assert_eq!(
        (&line["renewalOutcome"], &line["missing"], &line["renews"]["id"]),
        (&json!("EXTENDED"), &json!(0), &json!(licence))
    );
    assert_eq!(line["keys"], json!([]));
    let month = old.checked_add_months(Months::new(1)).expect("a month later");
    assert_eq!(stored(&app, &licence).await.expires_at, Some(month));
    // The customer's portal says so, with the new expiry.
    let customer = first["customer"]["id"].as_str().expect("the customer");
    let token = app.customer_token(customer).await;
    let mine = app
        .graphql(
            Some(&token),
            "{ myOrders { externalId lines { renewalOutcome renews { keyPrefix expiresAt } } } }",
            json!({}),
        )
        .await;
    let renewal =
        data(&mine)["myOrders"].as_array().expect("orders").iter().find(|o| o["externalId"] == "sub-2").cloned();
    let line = &renewal.expect("the renewal order")["lines"][0];
    assert_eq!((&line["renewalOutcome"], &line["renews"]["keyPrefix"]), (&json!("EXTENDED"), &json!("SUB-0001")));
    assert_eq!(time(&line["renews"]["expiresAt"]), month);
    // The provider's retry is the same order: it is not renewed twice.
    let again = renewal_order(&shop, "sub-2", "ada@example.com", &product, &licence, 1).await;
    assert_eq!(data(&again)["createOrder"]["created"], false, "{again:#}");
    assert_eq!(stored(&app, &licence).await.expires_at, Some(month));

    // The extended line takes no key, from staff either.
    let line_id = {
        let read = shop
            .call(
                "query($x: String!) { orders(filter: {search: $x}) { edges { node { lines { id } } } } }",
                json!({ "x": "sub-2" }),
            )
            .await;
        data(&read)["orders"]["edges"][0]["node"]["lines"][0]["id"].as_str().expect("the line").to_string()
    };
    let reassign = "mutation($l: ID!) { reassignOrderKey(input: {lineId: $l}) { line { id } } }";
    let body = shop.call(reassign, json!({ "l": line_id })).await;
    assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some("lineId")), "{body:#}");

    // Refused, naming the field, and nothing placed: another customer's
    // licence, another product's, more than one unit.
    for (x, email, p, q, field) in [
        ("bad-1", "eve@example.com", product.as_str(), 1, "lines[0].renews"),
        ("bad-2", "ada@example.com", other.as_str(), 1, "lines[0].renews"),
        ("bad-3", "ada@example.com", product.as_str(), 2, "lines[0].quantity"),
        ("bad-4", "ada@example.com", product.as_str(), 1, "lines[0].renews"),
    ] {
        // bad-4 names a licence id longer than any.
        let renews = if x == "bad-4" { format!("{licence}X") } else { licence.clone() };
        let body = renewal_order(&shop, x, email, p, &renews, q).await;
        assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some(field)), "{x}: {body:#}");
        let read = shop
            .call("query($x: String!) { orders(filter: {search: $x}) { edges { node { id } } } }", json!({ "x": x }))
            .await;
        assert_eq!(data(&read)["orders"]["edges"], json!([]), "{x} was not placed");
    }

    // Expired past the grace period: a new key replaces it, linked to it.
    settings(&app, &admin, json!({ "gracePeriodMinutes": 0 })).await;
    expire_at(&app, &licence, Some(Utc::now() - Duration::days(2))).await;
    let body = renewal_order(&shop, "sub-3", "ada@example.com", &product, &licence, 1).await;
    let line = &data(&body)["createOrder"]["order"]["lines"][0];
    assert_eq!((&line["renewalOutcome"], &line["missing"]), (&json!("REISSUED"), &json!(0)), "{body:#}");
    let fresh = &line["keys"][0];
    assert_ne!(fresh["key"], json!(key), "a new key");
    assert_eq!(fresh["renewedFrom"]["id"], json!(licence));
    assert_eq!(validate(&app, &key, None).await["code"], "EXPIRED", "the old licence stays expired");
    let fresh_key = fresh["key"].as_str().expect("the new key");
    assert_eq!(validate(&app, fresh_key, None).await["code"], "VALID");
    assert_eq!(stored(&app, fresh["id"].as_str().expect("id")).await.status, LicenseStatus::Assigned);

    // Replacing it when the pool is empty: the line waits, and the key that
    // arrives later is linked to the licence it replaces too.
    let old_fresh = fresh["id"].as_str().expect("id").to_string();
    // The pool's last key goes to another order first.
    shop.placed("sub-4", "ada@example.com", &[(product.as_str(), 1)]).await;
    expire_at(&app, &old_fresh, Some(Utc::now() - Duration::days(2))).await;
    let body = renewal_order(&shop, "sub-5", "ada@example.com", &product, &old_fresh, 1).await;
    let line = &data(&body)["createOrder"]["order"]["lines"][0];
    assert_eq!((&line["renewalOutcome"], &line["missing"]), (&json!("REISSUED"), &json!(1)), "{body:#}");
    assert_eq!(shop.import(&["SUB-0004"], &[&pool]).await, 1);
    let delivered = keysmith_tests::until("the waiting line's key", || async {
        let key = license_key::Entity::find()
            .filter(license_key::Column::Key.eq("SUB-0004"))
            .one(app.db())
            .await
            .expect("read")?;
        (key.status == LicenseStatus::Assigned).then_some(key)
    })
    .await;
    assert_eq!(delivered.renewed_from_id.as_deref(), Some(old_fresh.as_str()), "linked to the licence it replaces");
}

/// A payment provider sends the same notice again and again, sometimes at
/// once: with its payment's id as the reference, the licence is renewed once.
async fn a_reference_renews_once_however_often_it_comes(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let (id, _, _) = delivered(&app, "REF-KEY-0001", 1).await;
    let old = expire_at(&app, &id, Some(Utc::now() + Duration::days(2))).await;
    let query = "mutation($id: ID!, $r: String) { renewLicense(input: {licenseId: $id, period: {days: 30}, \
                 reference: $r}) { renewed previousExpiresAt license { expiresAt } } }";
    let vars = json!({ "id": id, "r": "in_1Q2w3E" });
    let answers: Vec<Value> =
        futures_util::future::join_all((0..10).map(|_| app.graphql(Some(&manager), query, vars.clone())))
            .await
            .iter()
            .map(|body| data(body)["renewLicense"].clone())
            .collect();
    let renewed = answers.iter().filter(|a| a["renewed"] == true).count();
    assert_eq!(renewed, 1, "one of ten renewed: {answers:#?}");
    let after = old + Duration::days(30);
    for answer in &answers {
        assert_eq!(time(&answer["previousExpiresAt"]), old, "{answer:#}");
        assert_eq!(time(&answer["license"]["expiresAt"]), after, "every answer shows the licence as it is");
    }
    assert_eq!(stored(&app, &id).await.expires_at, Some(after));
    // Another payment renews again; a reference is 1–200 characters.
    let body = app.graphql(Some(&manager), query, json!({ "id": id, "r": "in_next" })).await;
    assert_eq!(data(&body)["renewLicense"]["renewed"], true, "{body:#}");
    assert_eq!(stored(&app, &id).await.expires_at, Some(after + Duration::days(30)));
    let body = app.graphql(Some(&manager), query, json!({ "id": id, "r": "x".repeat(201) })).await;
    assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some("reference")), "{body:#}");
    let audited = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("license.renewed"))
        .all(app.db())
        .await
        .expect("audit");
    assert_eq!(audited.len(), 2, "one audit event per renewal that happened");
}
