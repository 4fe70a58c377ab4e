//! The business in the admin portal over HTTP: the home page's pools
//! running low and orders waiting; customers found, made, edited and sent a
//! portal link; an order's keys reassigned from the pool, unassigned and
//! refunded; devices listed and deactivated; the audit log read.

use crate::admin_keys::signed_in;
use entity::user::StaffRole;
use keysmith_tests::{TestApp, data, on_both_databases};
use serde_json::json;

on_both_databases!(
    home_shows_pools_running_low_and_orders_waiting,
    customers_are_found_made_edited_and_sent_a_portal_link,
    an_orders_keys_are_reassigned_unassigned_and_refunded,
    devices_are_listed_filtered_and_deactivated_and_the_audit_log_is_read,
);

async fn home_shows_pools_running_low_and_orders_waiting(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let made = app
        .graphql(
            Some(&admin),
            "mutation { pro: createTag(input: {name: \"pro\"}) { tag { id } } \
             empty: createTag(input: {name: \"empty\"}) { tag { id } } }",
            json!({}),
        )
        .await;
    let pro = data(&made)["pro"]["tag"]["id"].as_str().expect("pro").to_string();
    let empty = data(&made)["empty"]["tag"]["id"].as_str().expect("empty").to_string();
    app.graphql(
        Some(&admin),
        "mutation($t: [ID!]!) { importLicenseKeys(input: {text: \"H-1\\nH-2\\nH-3\\nH-4\", tagIds: $t}) { imported } }",
        json!({ "t": [pro] }),
    )
    .await;
    let products = app
        .graphql(
            Some(&admin),
            "mutation($pro: ID!, $empty: ID!) { \
             a: createProduct(input: {name: \"Pro\", delivery: {mode: TAG, tagId: $pro}}) { product { id } } \
             b: createProduct(input: {name: \"Soon\", delivery: {mode: TAG, tagId: $empty}}) { product { id } } }",
            json!({ "pro": pro, "empty": empty }),
        )
        .await;
    let order = "mutation($id: String!, $p: ID!, $n: Int!) { createOrder(input: {externalId: $id, \
                 customer: {email: \"ada@buyer.example\"}, lines: [{productId: $p, quantity: $n}], emailCustomer: false}) { order { status } } }";
    let pro_product = data(&products)["a"]["product"]["id"].clone();
    let soon_product = data(&products)["b"]["product"]["id"].clone();
    let sold = app.graphql(Some(&admin), order, json!({ "id": "SHOP-1001", "p": pro_product, "n": 2 })).await;
    assert_eq!(data(&sold)["createOrder"]["order"]["status"], "FULFILLED", "{sold}");
    let waiting = app.graphql(Some(&admin), order, json!({ "id": "SHOP-1002", "p": soon_product, "n": 1 })).await;
    assert_eq!(data(&waiting)["createOrder"]["order"]["status"], "WAITING", "{waiting}");

    // Half of pro is gone: under the default threshold (80) it is not low; at 50 it is.
    let mut browser = signed_in(&app, StaffRole::Admin).await;
    let home = browser.get("/admin/").await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains("No pool is past the exhaustion threshold."), "{}", home.body);
    assert!(home.body.contains("<code>SHOP-1002</code></a>") && !home.body.contains("SHOP-1001"), "{}", home.body);
    assert!(home.body.contains("Failed webhook deliveries"), "admins see deliveries");
    app.graphql(
        Some(&admin),
        "mutation { updateSettings(input: {exhaustionThreshold: 50}) { settings { exhaustionThreshold } } }",
        json!({}),
    )
    .await;
    let home = browser.get("/admin/").await;
    assert!(home.body.contains(&format!("<a href=\"/admin/keys/tags/{pro}\">pro</a>")), "{}", home.body);
    assert!(home.body.contains("50% used · 2 left"), "{}", home.body);

    // The API says the same to every role that reads (auto-generated never counts).
    let support = app.staff_token(StaffRole::Support).await;
    let low = app.graphql(Some(&support), "{ poolsRunningLow { name usedPercentage remaining } }", json!({})).await;
    assert_eq!(data(&low)["poolsRunningLow"], json!([{ "name": "pro", "usedPercentage": 50.0, "remaining": 2 }]));

    // A manager sees the same business, without the deliveries they may not read.
    let mut manager = signed_in(&app, StaffRole::Manager).await;
    let home = manager.get("/admin/").await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains("50% used · 2 left") && home.body.contains("<code>SHOP-1002</code>"));
    assert!(!home.body.contains("Failed webhook deliveries"));
}

async fn customers_are_found_made_edited_and_sent_a_portal_link(app: TestApp) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let admin = app.staff_token(StaffRole::Admin).await;
    let mut manager = signed_in(&app, StaffRole::Manager).await;
    let form = manager.get("/admin/customers/new").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = form.csrf();
    let bad =
        manager.post("/admin/customers/new", &[("csrf", &csrf), ("email", "not an email"), ("name", "Ada")]).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("id=\"email-error\""), "{}", bad.body);
    let made =
        manager.post("/admin/customers/new", &[("csrf", &csrf), ("email", "ada@buyer.example"), ("name", "Ada")]).await;
    assert_eq!(made.status, 303, "{}", made.body);
    let page_path = made.location().to_string();
    let id = page_path.rsplit('/').next().expect("an id").to_string();
    let again =
        manager.post("/admin/customers/new", &[("csrf", &csrf), ("email", "ADA@buyer.example"), ("name", "")]).await;
    assert_eq!(again.status, 400, "the same email twice: {}", again.body);
    let edited = manager
        .post(
            &format!("{page_path}/edit"),
            &[("csrf", &csrf), ("email", "ada@buyer.example"), ("name", "Ada Lovelace")],
        )
        .await;
    assert_eq!(edited.status, 303, "{}", edited.body);

    // An order: the customer's page shows the licence and the order.
    let product = app
        .graphql(Some(&admin), "mutation { createProduct(input: {name: \"Studio\"}) { product { id } } }", json!({}))
        .await;
    let product = data(&product)["createProduct"]["product"]["id"].clone();
    let order = app
        .graphql(
            Some(&admin),
            "mutation($p: ID!) { createOrder(input: {externalId: \"SHOP-7\", customer: {email: \"ada@buyer.example\"}, \
             lines: [{productId: $p, quantity: 1}], emailCustomer: false}) { order { lines { keys { key } } } } }",
            json!({ "p": product }),
        )
        .await;
    let key = data(&order)["createOrder"]["order"]["lines"][0]["keys"][0]["key"].as_str().expect("a key").to_string();
    let page = manager.get(&page_path).await;
    assert!(page.body.contains("Customer saved"));
    assert!(page.body.contains("<dd>Ada Lovelace</dd>"), "{}", page.body);
    assert!(
        page.body.contains(&format!("<code>{key}</code>")) && page.body.contains("<code>SHOP-7</code>"),
        "{}",
        page.body
    );

    // The list finds them by part of the email.
    let list = manager.get("/admin/customers?q=buyer.exa").await;
    assert!(list.body.contains(&format!("href=\"/admin/customers/{id}\">ada@buyer.example</a>")), "{}", list.body);

    // Support sends a portal sign-in link but edits nothing.
    let mut support = signed_in(&app, StaffRole::Support).await;
    let page = support.get(&page_path).await;
    assert!(!page.body.contains("/edit\"") && page.body.contains("Send a portal sign-in link"));
    let sent = support.post(&format!("{page_path}/portal-link"), &[("csrf", &page.csrf())]).await;
    assert_eq!(sent.status, 303);
    assert!(support.get(&page_path).await.body.contains("A portal sign-in link was emailed"));
    let emails = entity::email::Entity::find()
        .filter(entity::email::Column::ToAddress.eq("ada@buyer.example"))
        .all(app.db())
        .await
        .expect("emails");
    assert_eq!(emails.len(), 1, "one link email");
    assert_eq!(support.get(&format!("{page_path}/edit")).await.status, 403);
}

/// The keys on an order's lines, by key, with their statuses.
async fn order_keys(app: &TestApp, token: &str, id: &str) -> (String, Vec<(String, String)>) {
    let body = app
        .graphql(
            Some(token),
            "query($id: ID!) { order(id: $id) { status lines { keys { key status } } } }",
            json!({ "id": id }),
        )
        .await;
    let order = &data(&body)["order"];
    let mut keys: Vec<(String, String)> = order["lines"][0]["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| (k["key"].as_str().expect("key").to_string(), k["status"].as_str().expect("status").to_string()))
        .collect();
    keys.sort();
    (order["status"].as_str().expect("status").to_string(), keys)
}

async fn an_orders_keys_are_reassigned_unassigned_and_refunded(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let tag =
        app.graphql(Some(&admin), "mutation { createTag(input: {name: \"pro\"}) { tag { id } } }", json!({})).await;
    let tag = data(&tag)["createTag"]["tag"]["id"].as_str().expect("tag").to_string();
    for key in ["ORD-0001", "ORD-0002", "ORD-0003", "ORD-0004", "ORD-0005"] {
        app.graphql(
            Some(&admin),
            "mutation($k: String!, $t: [ID!]!) { importLicenseKeys(input: {text: $k, tagIds: $t}) { imported } }",
            json!({ "k": key, "t": [tag] }),
        )
        .await;
    }
    let product = app
        .graphql(
            Some(&admin),
            "mutation($t: ID!) { createProduct(input: {name: \"Pro\", delivery: {mode: TAG, tagId: $t}}) { product { id } } }",
            json!({ "t": tag }),
        )
        .await;
    let product = data(&product)["createProduct"]["product"]["id"].clone();
    let order = app
        .graphql(
            Some(&admin),
            "mutation($p: ID!) { createOrder(input: {externalId: \"SHOP-1\", customer: {email: \"ada@buyer.example\"}, \
             lines: [{productId: $p, quantity: 2}], emailCustomer: false}) { order { id lines { id keys { id key } } } } }",
            json!({ "p": product }),
        )
        .await;
    let order = data(&order)["createOrder"]["order"].clone();
    let order_id = order["id"].as_str().expect("order").to_string();
    let line = order["lines"][0]["id"].as_str().expect("line").to_string();
    let first =
        order["lines"][0]["keys"].as_array().expect("keys").iter().find(|k| k["key"] == "ORD-0001").expect("ORD-0001")
            ["id"]
            .as_str()
            .expect("id")
            .to_string();
    let second =
        order["lines"][0]["keys"].as_array().expect("keys").iter().find(|k| k["key"] == "ORD-0002").expect("ORD-0002")
            ["id"]
            .as_str()
            .expect("id")
            .to_string();

    let mut browser = signed_in(&app, StaffRole::Manager).await;
    let list = browser.get("/admin/orders?q=shop-").await;
    assert!(list.body.contains(&format!("href=\"/admin/orders/{order_id}\"><code>SHOP-1</code>")), "{}", list.body);
    let order_page = format!("/admin/orders/{order_id}");
    let page = browser.get(&order_page).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Pro × 2") && page.body.contains("<code>ORD-0001</code>"), "{}", page.body);

    // Assign new key: the pool is found by itself, searched by part of the key; the first match is chosen.
    let pick = browser.get(&format!("{order_page}/lines/{line}/reassign?license={first}&q=0004")).await;
    assert_eq!(pick.status, 200, "{}", pick.body);
    assert!(pick.body.contains("<strong>") || pick.body.contains("1 available"), "{}", pick.body);
    assert!(pick.body.contains("checked> <code>ORD-0004</code>"), "the match is preselected: {}", pick.body);
    assert!(!pick.body.contains("<code>ORD-0003</code>"));
    let chosen = pick
        .body
        .split("name=\"new_license\" value=\"")
        .nth(1)
        .and_then(|v| v.split('"').next())
        .expect("a choice")
        .to_string();
    let done = browser
        .post(
            &format!("{order_page}/lines/{line}/reassign"),
            &[("csrf", &pick.csrf()), ("license", &first), ("new_license", &chosen), ("old_key", "")],
        )
        .await;
    assert_eq!((done.status, done.location()), (303, order_page.as_str()), "{}", done.body);
    assert!(browser.get(&order_page).await.body.contains("Key reassigned"));
    let (_, keys) = order_keys(&app, &admin, &order_id).await;
    assert_eq!(
        keys,
        [("ORD-0002".to_string(), "ASSIGNED".to_string()), ("ORD-0004".to_string(), "ASSIGNED".to_string())]
    );
    let tag_page = format!("/admin/keys/tags/{tag}");
    assert!(browser.get(&tag_page).await.body.contains("<dt>Remaining</dt><dd>3</dd>"), "ORD-0001 went back");

    // Unassign a key back to the pool: the pool's count rises by one.
    let confirm = browser.get(&format!("{order_page}/keys/{second}/unassign")).await;
    assert!(confirm.body.contains("Returns to the pool"), "{}", confirm.body);
    let done = browser
        .post(&format!("{order_page}/keys/{second}/unassign"), &[("csrf", &confirm.csrf()), ("to", "POOL")])
        .await;
    assert_eq!(done.status, 303);
    let page = browser.get(&order_page).await;
    assert!(
        page.body.contains("Key unassigned") && page.body.contains("1 unit has no key on this line."),
        "{}",
        page.body
    );
    assert!(browser.get(&tag_page).await.body.contains("<dt>Remaining</dt><dd>4</dd>"), "the pool rose by one");

    // The missing unit: "Assign a key" takes the next one.
    let fill = browser.post(&format!("{order_page}/lines/{line}/reassign"), &[("csrf", &confirm.csrf())]).await;
    assert_eq!(fill.status, 303);
    assert!(browser.get(&order_page).await.body.contains("Key assigned"));
    let (status, keys) = order_keys(&app, &admin, &order_id).await;
    assert_eq!((status.as_str(), keys.len()), ("FULFILLED", 2));

    // Refund keeping the keys.
    let refund = browser.get(&format!("{order_page}/refund")).await;
    assert!(refund.body.contains("Stay with the customer"), "{}", refund.body);
    assert!(refund.body.contains("value=\"RETURN_UNREVEALED\""), "the API's fates are all offered: {}", refund.body);
    let done = browser.post(&format!("{order_page}/refund"), &[("csrf", &refund.csrf()), ("keys", "KEEP")]).await;
    assert_eq!(done.status, 303);
    assert!(browser.get(&order_page).await.body.contains("Order refunded; the customer keeps the keys"));
    let (status, kept) = order_keys(&app, &admin, &order_id).await;
    assert_eq!(status, "REFUNDED");
    assert!(kept.iter().all(|(_, s)| s == "ASSIGNED"), "{kept:?}");

    // Support reads the order, changes nothing.
    let mut support = signed_in(&app, StaffRole::Support).await;
    let page = support.get(&order_page).await;
    assert!(!page.body.contains("Assign new key") && !page.body.contains("Unassign key"), "{}", page.body);
    assert_eq!(support.get(&format!("{order_page}/lines/{line}/reassign")).await.status, 403);
}

async fn devices_are_listed_filtered_and_deactivated_and_the_audit_log_is_read(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let product = app
        .graphql(Some(&admin), "mutation { createProduct(input: {name: \"Studio\"}) { product { id } } }", json!({}))
        .await;
    let product = data(&product)["createProduct"]["product"]["id"].as_str().expect("product").to_string();
    let order = app
        .graphql(
            Some(&admin),
            "mutation($p: ID!) { createOrder(input: {externalId: \"SHOP-9\", customer: {email: \"lin@buyer.example\"}, \
             lines: [{productId: $p, quantity: 1}], emailCustomer: false}) { order { lines { keys { id key } } } } }",
            json!({ "p": product }),
        )
        .await;
    let licence = data(&order)["createOrder"]["order"]["lines"][0]["keys"][0].clone();
    let (licence_id, key) =
        (licence["id"].as_str().expect("id").to_string(), licence["key"].as_str().expect("key").to_string());
    let now = entity::now();
    keysmith_tests::app::seed::device(app.db(), &licence_id, "fp-laptop-0001", ("Lin's laptop", "macOS"), now, false)
        .await;

    let mut manager = signed_in(&app, StaffRole::Manager).await;
    let list = manager.get("/admin/activations?state=live").await;
    assert_eq!(list.status, 200, "{}", list.body);
    let row = list
        .body
        .split("<tr>")
        .find(|r| r.contains("Lin&#39;s laptop") || r.contains("Lin's laptop"))
        .unwrap_or_else(|| panic!("{}", list.body));
    assert!(
        row.contains(&format!("<code>{key}</code>"))
            && row.contains("lin@buyer.example")
            && row.contains("Studio")
            && row.contains("macOS"),
        "{row}"
    );
    let done = manager
        .post(
            &format!(
                "/admin/licenses/{licence_id}/devices/{}/deactivate",
                row.split("/devices/").nth(1).and_then(|r| r.split('/').next()).expect("the device")
            ),
            &[("csrf", &list.csrf()), ("back", "/admin/activations?state=live")],
        )
        .await;
    assert_eq!((done.status, done.location()), (303, "/admin/activations?state=live"));
    let live = manager.get("/admin/activations?state=live").await;
    assert!(
        live.body.contains("Device deactivated") && live.body.contains("<strong>0</strong> devices"),
        "{}",
        live.body
    );
    let ended = manager.get(&format!("/admin/activations?state=ended&product={product}")).await;
    assert!(ended.body.contains("<strong>1</strong> device"), "{}", ended.body);

    // The audit log: admins read it, filtered, with links to the targets; managers may not.
    assert!(!live.body.contains("/admin/audit"), "no audit log in a manager's navigation");
    assert_eq!(manager.get("/admin/audit").await.status, 403);
    let mut boss = signed_in(&app, StaffRole::Admin).await;
    let log = boss.get("/admin/audit?action=license.deactivated").await;
    assert_eq!(log.status, 200, "{}", log.body);
    assert!(log.body.contains("<strong>1</strong> event"), "{}", log.body);
    assert!(
        log.body.contains(&format!("href=\"/admin/licenses/{licence_id}\"")),
        "a living target is a link: {}",
        log.body
    );
    // Once the licence is deleted, its events no longer link to it.
    let deleted = app
        .graphql(
            Some(&admin),
            "mutation($id: ID!) { deleteLicense(input: {id: $id, force: true}) { keysChanged } }",
            json!({ "id": licence_id }),
        )
        .await;
    assert_eq!(data(&deleted)["deleteLicense"]["keysChanged"], 1, "{deleted}");
    let log = boss.get("/admin/audit?action=license.deactivated").await;
    assert!(
        !log.body.contains(&format!("href=\"/admin/licenses/{licence_id}\"")),
        "a deleted target is no link: {}",
        log.body
    );
    let created = boss.get(&format!("/admin/audit?kind=order&since={}", &now.to_rfc3339()[..10])).await;
    assert!(
        created.body.contains("order.created") && created.body.contains("href=\"/admin/orders/"),
        "{}",
        created.body
    );
    let wrong = boss.get("/admin/audit?since=yesterday").await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.body.contains("since: must be a date"));
}
