//! Placing orders and delivering keys: each delivery setting, idempotency,
//! refusals that change nothing, shortfalls filled when keys arrive, staff
//! managing an order's keys, exhaustion alerts — and, under many concurrent
//! clients and on two server processes, never one key twice.

use entity::user::StaffRole;
use entity::{LicenseStatus, audit_event, customer, event, license_key, order};
use keysmith_tests::{TestApp, data, error_code, error_field, on_both_databases};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use std::collections::HashSet;

const ORDER_FIELDS: &str = "id externalId status customer { id email name } \
    lines { id quantity missing product { id } keys { id key status customerId orderId productId tags { name } } }";

/// A manager's view of the shop, with the calls the tests repeat.
pub(crate) struct Shop<'a> {
    pub app: &'a TestApp,
    pub token: String,
}

impl<'a> Shop<'a> {
    pub async fn new(app: &'a TestApp) -> Self {
        Shop { app, token: app.staff_token(StaffRole::Manager).await }
    }

    pub async fn call(&self, query: &str, variables: Value) -> Value {
        self.app.graphql(Some(&self.token), query, variables).await
    }

    async fn ok(&self, query: &str, variables: Value) -> Value {
        let body = self.call(query, variables).await;
        data(&body).clone()
    }

    pub async fn tag(&self, name: &str) -> String {
        let d = self
            .ok("mutation($n: String!) { createTag(input: {name: $n}) { tag { id } } }", json!({ "n": name }))
            .await;
        d["createTag"]["tag"]["id"].as_str().expect("tag id").to_string()
    }

    pub async fn import(&self, keys: &[&str], tags: &[&str]) -> i64 {
        let d = self
            .ok(
                "mutation($k: String!, $t: [ID!]!) { importLicenseKeys(input: {text: $k, tagIds: $t}) { imported } }",
                json!({ "k": keys.join("\n"), "t": tags }),
            )
            .await;
        d["importLicenseKeys"]["imported"].as_i64().expect("imported")
    }

    pub async fn product(&self, name: &str, delivery: Value) -> String {
        let d = self
            .ok(
                "mutation($n: String!, $d: DeliveryInput) { createProduct(input: {name: $n, delivery: $d}) { product { id } } }",
                json!({ "n": name, "d": delivery }),
            )
            .await;
        d["createProduct"]["product"]["id"].as_str().expect("product id").to_string()
    }

    /// `createOrder` as the shop sends it; the whole response.
    pub async fn order(&self, external_id: &str, email: &str, lines: &[(&str, i64)]) -> Value {
        let lines: Vec<Value> = lines.iter().map(|(p, q)| json!({ "productId": p, "quantity": q })).collect();
        self.call(
            &format!(
                "mutation($x: String!, $e: String!, $l: [OrderLineInput!]!) {{ createOrder(input: \
                 {{externalId: $x, customer: {{email: $e, name: \"Ada Buyer\"}}, lines: $l}}) \
                 {{ created order {{ {ORDER_FIELDS} }} }} }}"
            ),
            json!({ "x": external_id, "e": email, "l": lines }),
        )
        .await
    }

    pub async fn placed(&self, external_id: &str, email: &str, lines: &[(&str, i64)]) -> Value {
        let body = self.order(external_id, email, lines).await;
        data(&body)["createOrder"]["order"].clone()
    }

    pub async fn read(&self, order_id: &str) -> Value {
        let d = self
            .ok(&format!("query($id: ID!) {{ order(id: $id) {{ {ORDER_FIELDS} }} }}"), json!({ "id": order_id }))
            .await;
        d["order"].clone()
    }

    pub async fn licence(&self, id: &str) -> Value {
        let d = self
            .ok(
                "query($id: ID!) { licenseKey(id: $id) { id key status customerId orderId productId activatedAt } }",
                json!({ "id": id }),
            )
            .await;
        d["licenseKey"].clone()
    }
}

/// The key strings of an order line.
fn keys_of(line: &Value) -> Vec<String> {
    line["keys"].as_array().expect("keys").iter().map(|k| k["key"].as_str().expect("key").to_string()).collect()
}

async fn counts(app: &TestApp) -> (u64, u64, u64, u64) {
    let db = app.db();
    (
        order::Entity::find().count(db).await.expect("count"),
        customer::Entity::find().count(db).await.expect("count"),
        license_key::Entity::find()
            .filter(license_key::Column::Status.ne(LicenseStatus::Available))
            .count(db)
            .await
            .expect("count"),
        audit_event::Entity::find().count(db).await.expect("count"),
    )
}

async fn events_of(app: &TestApp, kind: &str) -> Vec<event::Model> {
    event::Entity::find()
        .filter(event::Column::Kind.eq(kind))
        .order_by_asc(event::Column::CreatedAt)
        .all(app.db())
        .await
        .expect("events")
}

on_both_databases!(
    orders_deliver_from_each_delivery_setting_once_per_external_id,
    short_lines_wait_and_arriving_keys_fill_them_oldest_order_first,
    staff_reassign_unassign_and_refund_an_orders_keys,
    pools_announce_exhaustion_once_per_crossing,
    two_hundred_concurrent_orders_share_a_hundred_keys_without_a_double,
);

async fn orders_deliver_from_each_delivery_setting_once_per_external_id(app: TestApp) {
    let shop = Shop::new(&app).await;
    let gold = shop.tag("gold").await;
    let other = shop.tag("other").await;
    assert_eq!(shop.import(&["GOLD-1", "GOLD-2", "GOLD-3"], &[&gold]).await, 3);
    assert_eq!(shop.import(&["OTHER-1"], &[&other]).await, 1);
    assert_eq!(shop.import(&["PLAIN-1", "PLAIN-2"], &[]).await, 2);
    let generator = shop
        .ok(
            "mutation { createGenerator(input: {name: \"Chunks\", format: CHUNKED, prefix: \"APP\", \
             defaultActivationLimit: 3}) { generator { id } } }",
            json!({}),
        )
        .await["createGenerator"]["generator"]["id"]
        .clone();
    let minted = shop.product("Minted", json!({ "mode": "AUTO_GENERATED", "generatorId": generator })).await;
    let ulids = shop.product("Ulids", json!({ "mode": "AUTO_GENERATED" })).await;
    let tagged = shop.product("Tagged", json!({ "mode": "TAG", "tagId": gold })).await;
    let untagged = shop.product("Untagged", json!({ "mode": "NO_TAG" })).await;

    let lines = [(minted.as_str(), 2), (ulids.as_str(), 1), (tagged.as_str(), 2), (untagged.as_str(), 1)];
    let body = shop.order("shop-1001", "Ada@Example.com", &lines).await;
    assert_eq!(data(&body)["createOrder"]["created"], true);
    let placed = &data(&body)["createOrder"]["order"];
    assert_eq!(placed["status"], "FULFILLED");
    assert_eq!(placed["customer"]["email"], "ada@example.com", "the customer is created by email");
    assert_eq!(placed["customer"]["name"], "Ada Buyer");
    let by_product = |p: &str| {
        placed["lines"].as_array().expect("lines").iter().find(|l| l["product"]["id"] == p).expect("line").clone()
    };
    let minted_line = by_product(&minted);
    assert_eq!(minted_line["missing"], 0);
    for key in minted_line["keys"].as_array().expect("keys") {
        assert!(key["key"].as_str().expect("key").starts_with("APP"), "the generator's format: {key}");
        assert_eq!(key["tags"], json!([{ "name": "auto-generated" }]));
    }
    let ulid_key = keys_of(&by_product(&ulids)).pop().expect("a key");
    assert!(ulid::Ulid::from_string(&ulid_key).is_ok(), "ULID without a generator: {ulid_key}");
    assert_eq!(keys_of(&by_product(&tagged)), ["GOLD-1", "GOLD-2"], "the tag's oldest keys");
    assert_eq!(keys_of(&by_product(&untagged)), ["PLAIN-1"], "the oldest untagged key");
    let customer_id = placed["customer"]["id"].clone();
    for line in placed["lines"].as_array().expect("lines") {
        for key in line["keys"].as_array().expect("keys") {
            assert_eq!(key["status"], "ASSIGNED");
            assert_eq!(key["customerId"], customer_id);
            assert_eq!(key["orderId"], placed["id"]);
            assert_eq!(key["productId"], line["product"]["id"]);
        }
    }
    let delivered = counts(&app).await.2;
    assert_eq!(delivered, 6);

    // The same external id and content, lines in another order: the same order, nothing new.
    let again = shop.order("shop-1001", "ada@example.com", &[lines[3], lines[2], lines[1], lines[0]]).await;
    assert_eq!(data(&again)["createOrder"]["created"], false);
    assert_eq!(data(&again)["createOrder"]["order"]["id"], placed["id"]);
    let before = counts(&app).await;
    assert_eq!(before.2, delivered, "no key delivered twice");
    for (email, lines) in
        [("ada@example.com", vec![(minted.as_str(), 3)]), ("someone-else@example.com", lines.to_vec())]
    {
        let body = shop.order("shop-1001", email, &lines).await;
        assert_eq!((error_code(&body), error_field(&body)), (Some("CONFLICT"), Some("externalId")), "{body:#}");
    }
    // A second order by the same email finds the customer.
    let second = shop.placed("shop-1002", "ADA@example.com", &[(tagged.as_str(), 1)]).await;
    assert_eq!(second["customer"]["id"], customer_id);
    assert_eq!(keys_of(&second["lines"][0]), ["GOLD-3"]);

    // Refusals name the field and change nothing.
    let archived = shop.product("Old", json!({ "mode": "NO_TAG" })).await;
    shop.ok("mutation($id: ID!) { archiveProduct(input: {id: $id}) { product { id } } }", json!({ "id": archived }))
        .await;
    let before = counts(&app).await;
    // (external id, lines, email, code, field)
    type Refusal<'a> = (&'a str, Vec<(&'a str, i64)>, &'a str, &'a str, &'a str);
    let refusals: Vec<Refusal> = vec![
        ("", vec![(untagged.as_str(), 1)], "new@example.com", "INVALID_INPUT", "externalId"),
        ("shop-2", vec![(untagged.as_str(), 1)], "not an email", "INVALID_INPUT", "customer.email"),
        ("shop-3", vec![], "new@example.com", "INVALID_INPUT", "lines"),
        (
            "shop-4",
            vec![(untagged.as_str(), 1), (ulids.as_str(), 0)],
            "new@example.com",
            "INVALID_INPUT",
            "lines[1].quantity",
        ),
        ("shop-5", vec![(untagged.as_str(), 1001)], "new@example.com", "INVALID_INPUT", "lines[0].quantity"),
        (
            "shop-6",
            vec![(untagged.as_str(), 1), ("01ZZZZZZZZZZZZZZZZZZZZZZZZ", 1)],
            "new@example.com",
            "NOT_FOUND",
            "lines[1].productId",
        ),
        ("shop-7", vec![(archived.as_str(), 1)], "new@example.com", "INVALID_INPUT", "lines[0].productId"),
    ];
    for (external, lines, email, code, field) in refusals {
        let body = shop.order(external, email, &lines).await;
        assert_eq!((error_code(&body), error_field(&body)), (Some(code), Some(field)), "{body:#}");
    }
    assert_eq!(counts(&app).await, before, "refused orders leave no order, customer, key or audit event");
    let plain = shop.licence_by_key("PLAIN-2").await;
    assert_eq!(plain["status"], "AVAILABLE");

    // The customer-facing texts and the delivery setting change later.
    let updated = shop
        .ok(
            "mutation($id: ID!, $t: ID!) { updateProduct(input: {id: $id, keyButtonText: \"Get your key\", \
             unavailableMessage: \"On its way\", delivery: {mode: TAG, tagId: $t}}) \
             { product { keyButtonText unavailableMessage delivery { mode tagId } } } }",
            json!({ "id": untagged, "t": other }),
        )
        .await;
    assert_eq!(
        updated["updateProduct"]["product"],
        json!({ "keyButtonText": "Get your key", "unavailableMessage": "On its way", "delivery": { "mode": "TAG", "tagId": other } })
    );
    let third = shop.placed("shop-1003", "ada@example.com", &[(untagged.as_str(), 1)]).await;
    assert_eq!(keys_of(&third["lines"][0]), ["OTHER-1"], "the new setting applies to the next order");
}

impl Shop<'_> {
    pub async fn licence_by_key(&self, key: &str) -> Value {
        let d = self
            .ok(
                "query($s: String!) { licenseKeys(filter: {search: $s}) { edges { node { id key status customerId orderId } } } }",
                json!({ "s": key }),
            )
            .await;
        d["licenseKeys"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| e["node"].clone())
            .find(|n| n["key"] == key)
            .unwrap_or_else(|| panic!("no licence {key}"))
    }
}

async fn short_lines_wait_and_arriving_keys_fill_them_oldest_order_first(app: TestApp) {
    let shop = Shop::new(&app).await;
    let silver = shop.tag("silver").await;
    let spare = shop.tag("spare").await;
    shop.import(&["SILVER-1"], &[&silver]).await;
    let product = shop.product("Silver", json!({ "mode": "TAG", "tagId": silver })).await;
    let plain = shop.product("Plain", json!({ "mode": "NO_TAG" })).await;

    let first = shop.placed("o-1", "one@example.com", &[(product.as_str(), 3)]).await;
    assert_eq!(first["status"], "PARTIALLY_FULFILLED");
    assert_eq!(first["lines"][0]["missing"], 2);
    assert_eq!(keys_of(&first["lines"][0]), ["SILVER-1"]);
    let second = shop.placed("o-2", "two@example.com", &[(product.as_str(), 1)]).await;
    assert_eq!((second["status"].as_str(), second["lines"][0]["missing"].as_i64()), (Some("WAITING"), Some(1)));
    let third = shop.placed("o-3", "three@example.com", &[(plain.as_str(), 1)]).await;
    assert_eq!(third["status"], "WAITING");
    let id = |o: &Value| o["id"].as_str().expect("id").to_string();

    // Import: the oldest waiting order is served first.
    shop.import(&["SILVER-2", "SILVER-3"], &[&silver]).await;
    let first_now = shop.read(&id(&first)).await;
    assert_eq!(first_now["status"], "FULFILLED");
    assert_eq!(keys_of(&first_now["lines"][0]), ["SILVER-1", "SILVER-2", "SILVER-3"]);
    assert_eq!(shop.read(&id(&second)).await["status"], "WAITING", "the younger order still waits");
    let fulfilled = events_of(&app, "order.fulfilled").await;
    assert!(fulfilled.iter().any(|e| e.subject_id == id(&first)), "order.fulfilled is in the outbox");
    let backfilled = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("order.backfilled"))
        .filter(audit_event::Column::TargetId.eq(id(&first)))
        .one(app.db())
        .await
        .expect("read")
        .expect("an audit event for the backfill");
    assert_eq!(backfilled.actor_kind, "system");

    // Move: keys moved into the pool fill the next waiting line.
    shop.import(&["SPARE-1"], &[&spare]).await;
    assert_eq!(shop.read(&id(&second)).await["status"], "WAITING");
    shop.ok(
        "mutation($f: ID!, $t: ID!) { moveLicenseKeys(input: {fromTagId: $f, toTagId: $t}) { keysChanged } }",
        json!({ "f": spare, "t": silver }),
    )
    .await;
    let second_now = shop.read(&id(&second)).await;
    assert_eq!(
        (second_now["status"].as_str(), keys_of(&second_now["lines"][0])),
        (Some("FULFILLED"), vec!["SPARE-1".to_string()])
    );

    // Import without a tag fills the NO_TAG order; then tagging a key fills a TAG order.
    shop.import(&["LOOSE-1"], &[]).await;
    let third_now = shop.read(&id(&third)).await;
    assert_eq!(
        (third_now["status"].as_str(), keys_of(&third_now["lines"][0])),
        (Some("FULFILLED"), vec!["LOOSE-1".to_string()])
    );
    let fourth = shop.placed("o-4", "four@example.com", &[(product.as_str(), 1)]).await;
    assert_eq!(fourth["status"], "WAITING");
    shop.import(&["LOOSE-2"], &[]).await;
    let loose = shop.licence_by_key("LOOSE-2").await;
    assert_eq!(loose["status"], "AVAILABLE", "no NO_TAG order waits, so the key stays");
    shop.ok(
        "mutation($t: ID!, $k: [ID!]!) { tagLicenseKeys(input: {tagId: $t, keyIds: $k}) { keysChanged } }",
        json!({ "t": silver, "k": [loose["id"]] }),
    )
    .await;
    assert_eq!(keys_of(&shop.read(&id(&fourth)).await["lines"][0]), ["LOOSE-2"]);

    // Generation: keys generated for a product delivering from `auto-generated`.
    let auto_tag = shop.ok("{ tags(search: \"auto\") { edges { node { id name } } } }", json!({})).await["tags"]["edges"][0]["node"]["id"]
        .clone();
    let generated = shop.product("Generated", json!({ "mode": "TAG", "tagId": auto_tag })).await;
    let fifth = shop.placed("o-5", "five@example.com", &[(generated.as_str(), 2)]).await;
    assert_eq!(fifth["status"], "WAITING");
    let generator = shop.ok("mutation { createGenerator(input: {name: \"G\"}) { generator { id } } }", json!({})).await
        ["createGenerator"]["generator"]["id"]
        .clone();
    shop.ok(
        "mutation($p: ID!, $g: ID!) { generateLicenses(input: {productId: $p, generatorId: $g, count: 2}) { job { id } } }",
        json!({ "p": generated, "g": generator }),
    )
    .await;
    let mut status = Value::Null;
    for _ in 0..100 {
        status = shop.read(&id(&fifth)).await["status"].clone();
        if status == "FULFILLED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "FULFILLED", "generated keys fill the waiting line");
}

async fn staff_reassign_unassign_and_refund_an_orders_keys(app: TestApp) {
    let shop = Shop::new(&app).await;
    let pool = shop.tag("pool").await;
    shop.import(&["POOL-A1", "POOL-A2", "POOL-B1", "POOL-B2", "POOL-C1", "POOL-C2"], &[&pool]).await;
    let product = shop.product("Pooled", json!({ "mode": "TAG", "tagId": pool })).await;
    let placed = shop.placed("m-1", "m@example.com", &[(product.as_str(), 2)]).await;
    let line = placed["lines"][0]["id"].as_str().expect("line").to_string();
    assert_eq!(keys_of(&placed["lines"][0]), ["POOL-A1", "POOL-A2"]);

    // The keys the line could get: the pool's AVAILABLE ones, first one first, searchable.
    let available = |search: Option<&'static str>| {
        let shop = &shop;
        let line = line.clone();
        async move {
            let d = shop
                .ok(
                    "query($l: ID!, $s: String) { availableKeysForLine(lineId: $l, search: $s) { totalCount edges { node { key } } } }",
                    json!({ "l": line, "s": search }),
                )
                .await;
            d["availableKeysForLine"]["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|e| e["node"]["key"].as_str().expect("key").to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(available(None).await, ["POOL-B1", "POOL-B2", "POOL-C1", "POOL-C2"]);
    assert_eq!(available(Some("l-c2")).await, ["POOL-C2"], "any part, any case");
    let support = app.staff_token(StaffRole::Support).await;
    let seen = app
        .graphql(
            Some(&support),
            "query($l: ID!) { availableKeysForLine(lineId: $l) { totalCount } }",
            json!({ "l": line }),
        )
        .await;
    assert_eq!(data(&seen)["availableKeysForLine"]["totalCount"], 4, "support reads it too");

    let reassign = "mutation($i: ReassignOrderKeyInput!) { reassignOrderKey(input: $i) \
                    { line { missing keys { key } } license { id key status } previous { id key status customerId orderId } } }";
    let a1 = shop.licence_by_key("POOL-A1").await;
    let a2 = shop.licence_by_key("POOL-A2").await;
    // A chosen key replaces a never-revealed one, which goes back to the pool.
    let c2 = shop.licence_by_key("POOL-C2").await;
    let d =
        shop.ok(reassign, json!({ "i": { "lineId": line, "licenseId": a1["id"], "newLicenseId": c2["id"] } })).await;
    let r = &d["reassignOrderKey"];
    assert_eq!(r["license"]["key"], "POOL-C2");
    assert_eq!(r["license"]["status"], "ASSIGNED");
    assert_eq!(
        r["previous"],
        json!({ "id": a1["id"], "key": "POOL-A1", "status": "AVAILABLE", "customerId": null, "orderId": null })
    );
    let mut on_line: Vec<String> =
        r["line"]["keys"].as_array().expect("keys").iter().map(|k| k["key"].as_str().expect("k").to_string()).collect();
    on_line.sort();
    assert_eq!(on_line, ["POOL-A2", "POOL-C2"]);

    // An activated key is retired when replaced, and the first available key is taken
    // (the key just returned is the oldest, so it goes out again — to this line).
    seed_activation(&app, a2["id"].as_str().expect("id")).await;
    let before = counts(&app).await;
    let refused = shop
        .call(reassign, json!({ "i": { "lineId": line, "licenseId": a2["id"], "oldKey": "RETURN_TO_POOL" } }))
        .await;
    assert_eq!(error_code(&refused), Some("INVALID_TRANSITION"), "{refused:#}");
    assert_eq!(counts(&app).await, before, "the refused reassignment changed nothing");
    assert_eq!(shop.licence(a2["id"].as_str().expect("id")).await["status"], "ACTIVE");
    let d = shop.ok(reassign, json!({ "i": { "lineId": line, "licenseId": a2["id"] } })).await;
    let r = &d["reassignOrderKey"];
    assert_eq!(r["license"]["key"], "POOL-A1");
    assert_eq!(r["previous"]["status"], "REVOKED");
    assert_eq!(r["previous"]["orderId"], Value::Null);
    let audit = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("order.key_reassigned"))
        .count(app.db())
        .await
        .expect("count");
    assert_eq!(audit, 2);
    // A key not in the line's pool is refused by name.
    let elsewhere = shop.tag("elsewhere").await;
    shop.import(&["ELSEWHERE-1"], &[&elsewhere]).await;
    let stranger = shop.licence_by_key("ELSEWHERE-1").await;
    let c1 = shop.licence_by_key("POOL-C1").await;
    let body = shop
        .call(reassign, json!({ "i": { "lineId": line, "licenseId": c2["id"], "newLicenseId": stranger["id"] } }))
        .await;
    assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some("newLicenseId")));
    let body = shop.call(reassign, json!({ "i": { "lineId": line, "newLicenseId": c1["id"] } })).await;
    assert_eq!(
        (error_code(&body), error_field(&body)),
        (Some("INVALID_INPUT"), Some("licenseId")),
        "the line has all its keys"
    );

    // Unassign: back to the pool, or retired as used; the line then holds one key fewer.
    let unassign = "mutation($id: ID!, $to: UnassignTarget!) { unassignLicense(input: {id: $id, to: $to}) \
                    { license { status customerId orderId } } }";
    let d = shop.ok(unassign, json!({ "id": c2["id"], "to": "POOL" })).await;
    assert_eq!(d["unassignLicense"]["license"], json!({ "status": "AVAILABLE", "customerId": null, "orderId": null }));
    let after = shop.read(placed["id"].as_str().expect("id")).await;
    assert_eq!(keys_of(&after["lines"][0]), ["POOL-A1"]);
    // With a key short the line takes one again: the first available.
    let d = shop.ok(reassign, json!({ "i": { "lineId": line } })).await;
    assert_eq!(d["reassignOrderKey"]["license"]["key"], "POOL-B1");
    let a1_id = shop.licence_by_key("POOL-A1").await["id"].clone();
    let d = shop.ok(unassign, json!({ "id": a1_id, "to": "USED" })).await;
    assert_eq!(d["unassignLicense"]["license"]["status"], "REVOKED");
    let body = shop.call(unassign, json!({ "id": c1["id"], "to": "POOL" })).await;
    assert_eq!((error_code(&body), error_field(&body)), (Some("INVALID_INPUT"), Some("id")), "an unassigned key");

    // Refunds: KEEP by default; RETURN_TO_POOL; REVOKE; never twice.
    let refund = "mutation($id: ID!, $k: RefundKeys) { refundOrder(input: {id: $id, keys: $k}) { order { status refundedAt } } }";
    let kept = shop.placed("m-2", "m@example.com", &[(product.as_str(), 1)]).await;
    let d = shop.ok(refund, json!({ "id": kept["id"] })).await;
    assert_eq!(d["refundOrder"]["order"]["status"], "REFUNDED");
    assert!(d["refundOrder"]["order"]["refundedAt"].is_string());
    let kept_key = &kept["lines"][0]["keys"][0];
    assert_eq!(shop.licence(kept_key["id"].as_str().expect("id")).await["status"], "ASSIGNED", "KEEP leaves the key");
    let again = shop.call(refund, json!({ "id": kept["id"] })).await;
    assert_eq!((error_code(&again), error_field(&again)), (Some("CONFLICT"), Some("id")));

    let returned = shop.placed("m-3", "m@example.com", &[(product.as_str(), 1)]).await;
    let returned_key = returned["lines"][0]["keys"][0]["id"].as_str().expect("id").to_string();
    shop.ok(refund, json!({ "id": returned["id"], "k": "RETURN_TO_POOL" })).await;
    let now = shop.licence(&returned_key).await;
    assert_eq!((now["status"].as_str(), &now["orderId"]), (Some("AVAILABLE"), &Value::Null));

    let revoked = shop.placed("m-4", "m@example.com", &[(product.as_str(), 1)]).await;
    let revoked_key = revoked["lines"][0]["keys"][0]["id"].as_str().expect("id").to_string();
    seed_activation(&app, &revoked_key).await;
    let before = counts(&app).await;
    let refused = shop.call(refund, json!({ "id": revoked["id"], "k": "RETURN_TO_POOL" })).await;
    assert_eq!(error_code(&refused), Some("INVALID_TRANSITION"), "an activated key cannot go back: {refused:#}");
    assert_eq!(counts(&app).await, before);
    assert_eq!(shop.read(revoked["id"].as_str().expect("id")).await["status"], "FULFILLED");
    shop.ok(refund, json!({ "id": revoked["id"], "k": "REVOKE" })).await;
    assert_eq!(shop.licence(&revoked_key).await["status"], "REVOKED");
    assert_eq!(events_of(&app, "order.refunded").await.len(), 3);
}

/// Marks a delivered key as activated on one device, as the client API would.
async fn seed_activation(app: &TestApp, key_id: &str) {
    use sea_orm::{ActiveModelTrait, Set};
    let now = entity::now();
    let key = license_key::Entity::find_by_id(key_id.to_string()).one(app.db()).await.expect("read").expect("key");
    let mut active: license_key::ActiveModel = key.into();
    active.status = Set(LicenseStatus::Active);
    active.activated_at = Set(Some(now));
    active.update(app.db()).await.expect("activate");
    let fingerprint = format!("device-{}", entity::new_id());
    keysmith_tests::app::seed::device(app.db(), key_id, &fingerprint, ("Device", "linux"), now, false).await;
}

async fn pools_announce_exhaustion_once_per_crossing(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let set = app
        .graphql(
            Some(&admin),
            "mutation { updateSettings(input: {exhaustionThreshold: 50}) { settings { exhaustionThreshold } } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&set)["updateSettings"]["settings"]["exhaustionThreshold"], 50);
    let refused = app
        .graphql(
            Some(&admin),
            "mutation { updateSettings(input: {exhaustionThreshold: 0}) { settings { exhaustionThreshold } } }",
            json!({}),
        )
        .await;
    assert_eq!((error_code(&refused), error_field(&refused)), (Some("INVALID_INPUT"), Some("exhaustionThreshold")));

    let shop = Shop::new(&app).await;
    let bronze = shop.tag("bronze").await;
    shop.import(&["B-1", "B-2", "B-3", "B-4"], &[&bronze]).await;
    let product = shop.product("Bronze", json!({ "mode": "TAG", "tagId": bronze })).await;
    let exhausting = || events_of(&app, "pool.exhausting");
    let wait_for = |kind: &'static str, n: usize| {
        let app = &app;
        async move {
            for _ in 0..100 {
                if events_of(app, kind).await.len() >= n {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            events_of(app, kind).await
        }
    };
    shop.placed("e-1", "e@example.com", &[(product.as_str(), 1)]).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(exhausting().await.is_empty(), "25% used is under the threshold");
    shop.placed("e-2", "e@example.com", &[(product.as_str(), 1)]).await;
    let fired = wait_for("pool.exhausting", 1).await;
    assert_eq!(fired.len(), 1, "50% used crosses it");
    assert_eq!(fired[0].subject_id, bronze);
    assert_eq!(fired[0].payload["usedPercentage"], 50.0);
    assert_eq!(fired[0].payload["remaining"], 2);
    shop.placed("e-3", "e@example.com", &[(product.as_str(), 1)]).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(exhausting().await.len(), 1, "once per crossing");

    // Keys arrive: 3 of 8 used, under the threshold again; crossing again fires again.
    shop.import(&["B-5", "B-6", "B-7", "B-8"], &[&bronze]).await;
    shop.placed("e-4", "e@example.com", &[(product.as_str(), 1)]).await;
    assert_eq!(wait_for("pool.exhausting", 2).await.len(), 2, "a second crossing");

    // Emptied with an order waiting: pool.exhausted.
    assert!(events_of(&app, "pool.exhausted").await.is_empty());
    let waiting = shop.placed("e-5", "e@example.com", &[(product.as_str(), 5)]).await;
    assert_eq!(waiting["status"], "PARTIALLY_FULFILLED");
    let exhausted = wait_for("pool.exhausted", 1).await;
    assert_eq!(exhausted.len(), 1);
    assert_eq!(exhausted[0].payload["waitingUnits"], 1);
}

async fn two_hundred_concurrent_orders_share_a_hundred_keys_without_a_double(app: TestApp) {
    let shop = Shop::new(&app).await;
    let hot = shop.tag("hot").await;
    let keys: Vec<String> = (0..100).map(|i| format!("HOT-{i:03}")).collect();
    assert_eq!(shop.import(&keys.iter().map(String::as_str).collect::<Vec<_>>(), &[&hot]).await, 100);
    let product = shop.product("Hot", json!({ "mode": "TAG", "tagId": hot })).await;
    let results = place_concurrently(&app, &shop.token, &product, 200, "c").await;
    assert_no_double(&results, &keys, 100);
    assert_stored(&app, 100, 100).await;
}

/// What the database holds after the race: `delivered` keys delivered once
/// each, `waiting` orders each waiting for one unit.
async fn assert_stored(app: &TestApp, delivered: u64, waiting: u64) {
    let db = app.db();
    let taken = license_key::Entity::find()
        .filter(license_key::Column::Status.eq(LicenseStatus::Assigned))
        .all(db)
        .await
        .expect("keys");
    assert_eq!(taken.len() as u64, delivered);
    let lines: HashSet<_> = taken.iter().map(|k| k.order_line_id.clone().expect("a line")).collect();
    assert_eq!(lines.len() as u64, delivered, "one key per line");
    let strings: HashSet<_> = taken.iter().map(|k| k.key.clone()).collect();
    assert_eq!(strings.len() as u64, delivered, "no key string twice");
    let waiting_orders = order::Entity::find()
        .filter(order::Column::Status.eq(order::OrderStatus::Waiting))
        .count(db)
        .await
        .expect("count");
    assert_eq!(waiting_orders, waiting);
    let missing: i64 =
        entity::order_line::Entity::find().all(db).await.expect("lines").iter().map(|l| i64::from(l.missing)).sum();
    assert_eq!(missing as u64, waiting, "each waiting order misses one unit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_postgres_never_share_a_key() {
    use crate::cli::{Served, keysmith};
    let Some(app) = TestApp::spawn(keysmith_tests::Backend::Postgres).await else { return };
    let shop = Shop::new(&app).await;
    let hot = shop.tag("hot").await;
    let keys: Vec<String> = (0..100).map(|i| format!("NODE-{i:03}")).collect();
    assert_eq!(shop.import(&keys.iter().map(String::as_str).collect::<Vec<_>>(), &[&hot]).await, 100);
    let product = shop.product("Hot", json!({ "mode": "TAG", "tagId": hot })).await;
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let mut cmd = keysmith(app.dir());
        cmd.env("DATABASE_URL", &app.database_url).env("KEYSMITH_JWT_SECRET", keysmith_tests::app::TEST_SECRET);
        nodes.push(Served::start(cmd, app.dir()).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let url = format!("{}/graphql", nodes[i % 2].base);
        let (http, token, product) = (app.http.clone(), shop.token.clone(), product.clone());
        tasks.spawn(async move { order_over_http(&http, &url, &token, &product, &format!("n-{i}"), i).await });
    }
    let mut results = Vec::new();
    while let Some(done) = tasks.join_next().await {
        results.push(done.expect("the order task"));
    }
    for node in nodes {
        node.terminate();
    }
    assert_no_double(&results, &keys, 100);
    assert_stored(&app, 100, 100).await;
}

/// Places `n` one-unit orders at once (`prefix-0` …); the (order status, keys) of each.
pub(crate) async fn place_concurrently(
    app: &TestApp,
    token: &str,
    product: &str,
    n: usize,
    prefix: &str,
) -> Vec<(String, Vec<String>)> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (http, url, token, product) =
            (app.http.clone(), app.url("/graphql"), token.to_string(), product.to_string());
        let external = format!("{prefix}-{i}");
        tasks.spawn(async move { order_over_http(&http, &url, &token, &product, &external, i).await });
    }
    let mut results = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        results.push(done.expect("the order task"));
    }
    results
}

pub(crate) async fn order_over_http(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    product: &str,
    external: &str,
    i: usize,
) -> (String, Vec<String>) {
    let body: Value = http
        .post(url)
        .bearer_auth(token)
        .json(&json!({
            "query": "mutation($x: String!, $e: String!, $p: ID!) { createOrder(input: {externalId: $x, \
                      customer: {email: $e}, lines: [{productId: $p, quantity: 1}]}) \
                      { order { status lines { missing keys { key } } } } }",
            "variables": { "x": external, "e": format!("buyer{}@example.com", i % 37), "p": product },
        }))
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("json");
    assert!(body.get("errors").is_none(), "every order succeeds, none sees a lock or a race: {body:#}");
    let placed = &body["data"]["createOrder"]["order"];
    (placed["status"].as_str().expect("status").to_string(), keys_of(&placed["lines"][0]))
}

/// Exactly `delivered` orders got one key each, every key of `pool` at most once; the rest wait.
pub(crate) fn assert_no_double(results: &[(String, Vec<String>)], pool: &[String], delivered: usize) {
    let mut seen = HashSet::new();
    let mut fulfilled = 0;
    for (status, keys) in results {
        match status.as_str() {
            "FULFILLED" => {
                assert_eq!(keys.len(), 1);
                fulfilled += 1;
            }
            "WAITING" => assert!(keys.is_empty()),
            other => panic!("unexpected status {other}"),
        }
        for key in keys {
            assert!(pool.contains(key), "{key} is from the pool");
            assert!(seen.insert(key.clone()), "{key} was delivered twice");
        }
    }
    assert_eq!(fulfilled, delivered, "every key delivered, no more");
    assert_eq!(results.len() - fulfilled, results.len() - delivered, "the others wait");
}
