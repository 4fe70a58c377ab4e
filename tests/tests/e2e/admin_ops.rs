//! The admin portal's generators and background jobs over HTTP: a format
//! previewed with its bits and examples (the 80-bit rule refused at its
//! field), created and edited; licences generated for a product and the job
//! page followed to 100%; a generator in use refused deletion, naming the
//! product; the jobs list filtered; support kept out.

use crate::portal::{Page, PortalClient};
use entity::user::StaffRole;
use keysmith_tests::app::TEST_PASSWORD;
use keysmith_tests::{TestApp, data, on_both_databases};
use serde_json::json;

on_both_databases!(
    generators_are_previewed_saved_used_and_deleted,
    generated_licences_are_followed_on_the_job_page,
    products_are_made_with_their_delivery_edited_and_archived,
    home_shows_pools_running_low_and_orders_waiting,
    customers_are_found_made_edited_and_sent_a_portal_link,
    an_orders_keys_are_reassigned_unassigned_and_refunded,
    devices_are_listed_filtered_and_deactivated_and_the_audit_log_is_read,
    settings_webhooks_and_staff_are_administered,
    one_search_finds_licences_customers_orders_and_products,
);

async fn signed_in(app: &TestApp, role: StaffRole) -> PortalClient {
    let token = app.staff_token(role).await;
    let me = app.graphql(Some(&token), "{ me { user { email } } }", json!({})).await;
    let email = data(&me)["me"]["user"]["email"].as_str().expect("email").to_string();
    let mut browser = PortalClient::new(app);
    let form = browser.get("/admin/login").await;
    let signed =
        browser.post("/admin/login", &[("csrf", &form.csrf()), ("email", &email), ("password", TEST_PASSWORD)]).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    browser
}

fn flash(page: &Page) -> String {
    let at = page.body.find("class=\"flash ").unwrap_or_else(|| panic!("no message: {}", page.body));
    let text = &page.body[at..];
    let text = &text[text.find('>').expect("a tag") + 1..];
    text.split('<').next().unwrap_or_default().to_string()
}

/// A chunked format's fields.
fn chunked<'a>(csrf: &'a str, name: &'a str, groups: &'a str, intent: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("intent", intent),
        ("name", name),
        ("format", "CHUNKED"),
        ("prefix", "PRO-"),
        ("chunkCount", groups),
        ("chunkLength", "5"),
        ("separator", "-"),
        ("defaultActivationLimit", "2"),
        ("validityDays", ""),
        ("defaultFeatureFlags", "{}"),
    ]
}

async fn generators_are_previewed_saved_used_and_deleted(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let mut browser = signed_in(&app, StaffRole::Manager).await;
    let list = browser.get("/admin/generators").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("No generators yet"));
    let form = browser.get("/admin/generators/new").await;
    assert!(form.body.contains("at least <strong>80 bits</strong>"), "the rule before any error: {}", form.body);
    let csrf = form.csrf();

    // Three groups of five are 75 bits: the preview says so at the field, and nothing is saved.
    let weak = browser.post("/admin/generators/new", &chunked(&csrf, "Pro", "3", "preview")).await;
    assert_eq!(weak.status, 400, "{}", weak.body);
    assert!(weak.body.contains("75") && weak.body.contains("80"), "{}", weak.body);
    let saved = browser.post("/admin/generators/new", &chunked(&csrf, "Pro", "3", "save")).await;
    assert_eq!(saved.status, 400);
    let none = app.graphql(Some(&admin), "{ generators { totalCount } }", json!({})).await;
    assert_eq!(data(&none)["generators"]["totalCount"], 0);

    // Four groups: 100 bits and three examples; then saved.
    let strong = browser.post("/admin/generators/new", &chunked(&csrf, "Pro", "4", "preview")).await;
    assert_eq!(strong.status, 200, "{}", strong.body);
    assert!(strong.body.contains("<strong>100 bits</strong>"), "{}", strong.body);
    assert_eq!(strong.body.matches("<li><code>PRO-").count(), 3, "three examples: {}", strong.body);
    let saved = browser.post("/admin/generators/new", &chunked(&csrf, "Pro", "4", "save")).await;
    assert_eq!((saved.status, saved.location()), (303, "/admin/generators"));
    let list = browser.get("/admin/generators").await;
    assert!(flash(&list).starts_with("Generator Pro saved — its keys look like PRO-"), "{}", flash(&list));
    let body = app
        .graphql(
            Some(&admin),
            "{ generators { edges { node { id name bits defaultActivationLimit validityDays } } } }",
            json!({}),
        )
        .await;
    let generator = data(&body)["generators"]["edges"][0]["node"].clone();
    assert_eq!((generator["bits"].as_f64(), generator["defaultActivationLimit"].as_i64()), (Some(100.0), Some(2)));
    let id = generator["id"].as_str().expect("id").to_string();
    assert!(list.body.contains(&format!("/admin/generators/{id}/edit")));

    // Edit: a validity; the other fields as they were.
    let edit = browser.get(&format!("/admin/generators/{id}/edit")).await;
    assert!(edit.body.contains("value=\"PRO-\""), "{}", edit.body);
    let mut fields = chunked(&csrf, "Pro", "4", "save");
    fields.retain(|(k, _)| *k != "validityDays");
    fields.push(("validityDays", "365"));
    let updated = browser.post(&format!("/admin/generators/{id}/edit"), &fields).await;
    assert_eq!(updated.status, 303, "{}", updated.body);
    let body = app
        .graphql(
            Some(&admin),
            "query($id: ID!) { generator(id: $id) { validityDays chunkCount } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data(&body)["generator"], json!({ "validityDays": 365, "chunkCount": 4 }));

    // In use by a product: the confirmation names it, and deleting is refused.
    app.graphql(
        Some(&admin),
        "mutation($g: ID!) { createProduct(input: {name: \"Photo Studio\", delivery: {mode: AUTO_GENERATED, generatorId: $g}}) { product { id } } }",
        json!({ "g": id }),
    )
    .await;
    let confirm = browser.get(&format!("/admin/generators/{id}/delete")).await;
    assert!(confirm.body.contains("<strong>Photo Studio</strong>"), "{}", confirm.body);
    assert!(!confirm.body.contains("button type=\"submit\" class=\"danger\""), "no Delete button");
    let refused = browser.post(&format!("/admin/generators/{id}/delete"), &[("csrf", &csrf)]).await;
    assert_eq!(refused.status, 303);
    assert!(flash(&browser.get("/admin/generators").await).contains("change their delivery first"));

    // Unused: deleted.
    let saved = browser.post("/admin/generators/new", &chunked(&csrf, "Spare", "4", "save")).await;
    assert_eq!(saved.status, 303);
    let body = app.graphql(Some(&admin), "{ generators { edges { node { id name } } } }", json!({})).await;
    let spare = data(&body)["generators"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .find(|e| e["node"]["name"] == "Spare")
        .expect("spare")["node"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let gone = browser.post(&format!("/admin/generators/{spare}/delete"), &[("csrf", &csrf)]).await;
    assert_eq!(gone.status, 303);
    assert_eq!(flash(&browser.get("/admin/generators").await), "Generator deleted");

    // Support reads the list but changes nothing.
    let mut support = signed_in(&app, StaffRole::Support).await;
    let list = support.get("/admin/generators").await;
    assert_eq!(list.status, 200);
    assert!(!list.body.contains("New generator") && !list.body.contains("/edit"));
    assert_eq!(support.get("/admin/generators/new").await.status, 403);
    let forged = support.post("/admin/generators/new", &chunked(&list.csrf(), "Sneaky", "4", "save")).await;
    assert_ne!(forged.status, 303);
    let count = app.graphql(Some(&admin), "{ generators { totalCount } }", json!({})).await;
    assert_eq!(data(&count)["generators"]["totalCount"], 1);
}

async fn generated_licences_are_followed_on_the_job_page(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let made = app
        .graphql(
            Some(&admin),
            "mutation { g: createGenerator(input: {name: \"Default\"}) { generator { id } } \
             p: createProduct(input: {name: \"Photo Studio\"}) { product { id } } }",
            json!({}),
        )
        .await;
    let generator = data(&made)["g"]["generator"]["id"].as_str().expect("generator").to_string();
    let product = data(&made)["p"]["product"]["id"].as_str().expect("product").to_string();
    let mut browser = signed_in(&app, StaffRole::Manager).await;
    let path = format!("/admin/generators/{generator}/generate");
    let form = browser.get(&path).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains(&format!("<option value=\"{product}\">Photo Studio</option>")));

    // Too many: refused at the field.
    let refused = browser.post(&path, &[("csrf", &form.csrf()), ("product", &product), ("count", "100001")]).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("id=\"count-error\""), "{}", refused.body);

    let started = browser.post(&path, &[("csrf", &form.csrf()), ("product", &product), ("count", "2000")]).await;
    assert_eq!(started.status, 303, "{}", started.body);
    assert!(started.location().starts_with("/admin/jobs/"), "{}", started.location());
    // The job page refreshes itself until the job is done.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let done = loop {
        let page = browser.get(started.location()).await;
        assert_eq!(page.status, 200, "{}", page.body);
        if page.body.contains(">succeeded<") {
            break page;
        }
        assert!(page.body.contains("<meta http-equiv=\"refresh\" content=\"2\">"), "{}", page.body);
        assert!(std::time::Instant::now() < deadline, "the job did not finish: {}", page.body);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(done.body.contains("<strong>100%</strong>"), "{}", done.body);
    assert!(!done.body.contains("http-equiv=\"refresh\""), "a finished job's page stays put");
    let count = app
        .graphql(
            Some(&admin),
            "query($p: ID) { licenseKeys(filter: {productId: $p}) { totalCount } }",
            json!({ "p": product }),
        )
        .await;
    assert_eq!(data(&count)["licenseKeys"]["totalCount"], 2000);

    // The jobs list, filtered by kind.
    let list = browser.get("/admin/jobs?kind=GENERATE_LICENSES").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("<strong>1</strong> job"), "{}", list.body);
    assert!(list.body.contains(&format!("href=\"{}\"", started.location())));
    let none = browser.get("/admin/jobs?kind=GENERATE_LICENSES&status=FAILED").await;
    assert!(none.body.contains("No jobs match."));
    let missing = browser.get("/admin/jobs/01ZZZZZZZZZZZZZZZZZZZZZZZZ").await;
    assert_eq!(missing.status, 404);
}

async fn products_are_made_with_their_delivery_edited_and_archived(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let made = app
        .graphql(
            Some(&admin),
            "mutation { t: createTag(input: {name: \"pro-2027\"}) { tag { id } } \
             g: createGenerator(input: {name: \"Chunky\", format: CHUNKED}) { generator { id } } }",
            json!({}),
        )
        .await;
    let tag = data(&made)["t"]["tag"]["id"].as_str().expect("tag").to_string();
    let generator = data(&made)["g"]["generator"]["id"].as_str().expect("generator").to_string();
    app.graphql(
        Some(&admin),
        "mutation($t: [ID!]!) { importLicenseKeys(input: {text: \"P-0001\\nP-0002\\nP-0003\", tagIds: $t}) { imported } }",
        json!({ "t": [tag] }),
    )
    .await;
    let mut browser = signed_in(&app, StaffRole::Manager).await;
    let form = browser.get("/admin/products/new").await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("Auto-generated") && form.body.contains("Specific tag") && form.body.contains("No tag"));
    let csrf = form.csrf();
    let fields = |mode: &'static str, tag_id: &str| {
        vec![
            ("csrf".to_string(), csrf.clone()),
            ("name".to_string(), "<script>alert(1)</script> Studio".to_string()),
            ("description".to_string(), "Edits photos".to_string()),
            ("mode".to_string(), mode.to_string()),
            ("tagId".to_string(), tag_id.to_string()),
            ("generatorId".to_string(), String::new()),
            ("keyButtonText".to_string(), "Show my serial".to_string()),
            ("unavailableMessage".to_string(), "Your serial is on its way.".to_string()),
        ]
    };
    let pairs = |f: &[(String, String)]| f.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>();

    // "Specific tag" without a tag: refused at the tag's field.
    let missing = pairs(&fields("TAG", ""));
    let missing: Vec<(&str, &str)> = missing.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let refused = browser.post("/admin/products/new", &missing).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("id=\"tagId-error\""), "{}", refused.body);

    let good = pairs(&fields("TAG", &tag));
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let created = browser.post("/admin/products/new", &good).await;
    assert_eq!(created.status, 303, "{}", created.body);
    let product_page = created.location().to_string();
    let shown = browser.get(&product_page).await;
    assert!(shown.body.contains("&#60;script&#62;alert(1)&#60;/script&#62; Studio"), "escaped: {}", shown.body);
    assert!(!shown.body.contains("<script>alert(1)"));
    assert!(shown.body.contains("from tag pro-2027"), "{}", shown.body);
    assert!(shown.body.contains("<dt>Remaining</dt><dd>3</dd>"), "the pool's level: {}", shown.body);
    let id = product_page.rsplit('/').next().expect("an id").to_string();

    // Edit: auto-generated with a generator.
    let edit = browser.get(&format!("{product_page}/edit")).await;
    assert!(edit.body.contains("value=\"TAG\" checked"), "{}", edit.body);
    let mut changed = pairs(&fields("AUTO_GENERATED", ""));
    changed.retain(|(k, _)| k != "generatorId");
    changed.push(("generatorId".to_string(), generator.clone()));
    let changed: Vec<(&str, &str)> = changed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let saved = browser.post(&format!("{product_page}/edit"), &changed).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let body = app
        .graphql(
            Some(&admin),
            "query($id: ID!) { product(id: $id) { delivery { mode generatorId tagId } keyButtonText } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        data(&body)["product"],
        json!({ "delivery": { "mode": "AUTO_GENERATED", "generatorId": generator, "tagId": null }, "keyButtonText": "Show my serial" })
    );
    assert!(browser.get(&product_page).await.body.contains("generated (Chunky)"));

    // Archive: the list's status filter finds it.
    let confirm = browser.get(&format!("{product_page}/archive")).await;
    assert!(confirm.body.contains("Its licences keep working"), "{}", confirm.body);
    let archived = browser.post(&format!("{product_page}/archive"), &[("csrf", &csrf)]).await;
    assert_eq!(archived.status, 303);
    assert!(browser.get(&product_page).await.body.contains("archived"));
    let list = browser.get("/admin/products?status=ARCHIVED").await;
    assert!(list.body.contains("<strong>1</strong> product"), "{}", list.body);
    let active = browser.get("/admin/products?status=ACTIVE&q=studio").await;
    assert!(active.body.contains("<strong>0</strong> products"), "{}", active.body);

    // Support reads, changes nothing.
    let mut support = signed_in(&app, StaffRole::Support).await;
    let page = support.get(&product_page).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("/edit\"") && !support.get("/admin/products").await.body.contains("New product"));
    assert_eq!(support.get(&format!("{product_page}/edit")).await.status, 403);
}

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
    use sea_orm::ActiveModelTrait;
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
    entity::activation::ActiveModel {
        id: sea_orm::Set(entity::new_id()),
        license_key_id: sea_orm::Set(licence_id.clone()),
        fingerprint: sea_orm::Set("fp-laptop-0001".into()),
        name: sea_orm::Set(Some("Lin's laptop".into())),
        platform: sea_orm::Set(Some("macOS".into())),
        client_address: sea_orm::Set(None),
        created_at: sea_orm::Set(now),
        last_seen_at: sea_orm::Set(now),
        deactivated_at: sea_orm::Set(None),
    }
    .insert(app.db())
    .await
    .expect("an activation");

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

async fn settings_webhooks_and_staff_are_administered(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let mut boss = signed_in(&app, StaffRole::Admin).await;

    // Settings: the API's validation at its field; then saved.
    let form = boss.get("/admin/settings").await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("name=\"exhaustionThreshold\" inputmode=\"numeric\" value=\"80\""), "{}", form.body);
    let csrf = form.csrf();
    let values = |threshold: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("gracePeriodMinutes", "0".into()),
            ("offlineFileValidityHours", "24".into()),
            ("exhaustionThreshold", threshold.into()),
            ("abuseMaxFingerprints", "20".into()),
            ("abuseWindowMinutes", "60".into()),
            ("rateLimitPerKey", "60".into()),
            ("rateLimitPerAddress", "600".into()),
            ("adminIdleTimeoutMinutes", "30".into()),
            ("exhaustionEmail", "yes".into()),
            ("notificationEmail", "ops@seller.example".into()),
            ("webhookAllowPrivateAddresses", "yes".into()),
        ]
    };
    let wrong = values("150");
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = boss.post("/admin/settings", &wrong).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("id=\"exhaustionThreshold-error\""), "{}", refused.body);
    let right = values("60");
    let right: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = boss.post("/admin/settings", &right).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let now = app
        .graphql(
            Some(&admin),
            "{ settings { exhaustionThreshold notificationEmail webhookAllowPrivateAddresses } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&now)["settings"],
        json!({ "exhaustionThreshold": 60, "notificationEmail": "ops@seller.example", "webhookAllowPrivateAddresses": true })
    );

    // Webhooks: the secret is shown once.
    let hooks = boss.get("/admin/webhooks").await;
    assert!(hooks.body.contains("value=\"order.created\""), "{}", hooks.body);
    let created = boss
        .post(
            "/admin/webhooks",
            &[
                ("csrf", &hooks.csrf()),
                ("url", "http://127.0.0.1:9/hook"),
                ("event", "order.created"),
                ("event", "pool.exhausting"),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let secret = created
        .body
        .split("id=\"new-secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the secret")
        .to_string();
    assert!(secret.len() >= 32, "{secret}");
    let again = boss.get("/admin/webhooks").await;
    assert!(
        !again.body.contains(&secret) && again.body.contains("http://127.0.0.1:9/hook"),
        "shown once: {}",
        again.body
    );
    let empty = boss.post("/admin/webhooks", &[("csrf", &hooks.csrf()), ("url", "http://127.0.0.1:9/other")]).await;
    assert_eq!(empty.status, 400);
    assert!(empty.body.contains("at least one event"), "{}", empty.body);

    // Staff: added, its role changed, disabled.
    let staff_page = boss.get("/admin/users").await;
    let added = boss
        .post(
            "/admin/users",
            &[
                ("csrf", &staff_page.csrf()),
                ("email", "sam@seller.example"),
                ("role", "MANAGER"),
                ("password", "a temporary password"),
            ],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let users = app.graphql(Some(&admin), "{ users { edges { node { id email role disabled } } } }", json!({})).await;
    let sam = data(&users)["users"]["edges"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["node"]["email"] == "sam@seller.example")
        .expect("sam")["node"]
        .clone();
    assert_eq!(sam["role"], "MANAGER");
    let sam_id = sam["id"].as_str().expect("id").to_string();
    boss.post(
        &format!("/admin/users/{sam_id}"),
        &[("csrf", &staff_page.csrf()), ("change", "role"), ("role", "SUPPORT")],
    )
    .await;
    let done =
        boss.post(&format!("/admin/users/{sam_id}"), &[("csrf", &staff_page.csrf()), ("change", "disable")]).await;
    assert_eq!(done.status, 303);
    assert!(boss.get("/admin/users").await.body.contains("Account disabled"));
    let users = app.graphql(Some(&admin), "{ users { edges { node { email role disabled } } } }", json!({})).await;
    assert!(
        data(&users)["users"]["edges"]
            .as_array()
            .expect("users")
            .iter()
            .any(|u| u["node"] == json!({ "email": "sam@seller.example", "role": "SUPPORT", "disabled": true })),
        "{users}"
    );

    // Managers and support see none of it.
    let mut manager = signed_in(&app, StaffRole::Manager).await;
    let home = manager.get("/admin/").await;
    assert!(
        !home.body.contains("/admin/settings")
            && !home.body.contains("/admin/users")
            && !home.body.contains("/admin/webhooks")
    );
    for path in ["/admin/settings", "/admin/users", "/admin/webhooks"] {
        assert_eq!(manager.get(path).await.status, 403, "{path}");
    }

    // My account: a wrong current password is said at its field; the right one signs out everywhere.
    let account = manager.get("/admin/account").await;
    assert_eq!(account.status, 200);
    let wrong = manager
        .post(
            "/admin/account/password",
            &[("csrf", &account.csrf()), ("currentPassword", "not it at all"), ("newPassword", "a brand new password")],
        )
        .await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert!(wrong.body.contains("id=\"currentPassword-error\""), "{}", wrong.body);
    let changed = manager
        .post(
            "/admin/account/password",
            &[("csrf", &account.csrf()), ("currentPassword", TEST_PASSWORD), ("newPassword", "a brand new password")],
        )
        .await;
    assert_eq!((changed.status, changed.location()), (303, "/admin/login?notice=password-changed"), "{}", changed.body);
    assert_eq!(manager.get("/admin/").await.status, 303, "signed out");
}

async fn one_search_finds_licences_customers_orders_and_products(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let product = app
        .graphql(
            Some(&admin),
            "mutation { createProduct(input: {name: \"Grace Studio\"}) { product { id } } }",
            json!({}),
        )
        .await;
    let product = data(&product)["createProduct"]["product"]["id"].clone();
    let order = app
        .graphql(
            Some(&admin),
            "mutation($p: ID!) { createOrder(input: {externalId: \"GRACE-42\", customer: {email: \"grace@navy.example\", name: \"Grace Hopper\"}, \
             lines: [{productId: $p, quantity: 1}], emailCustomer: false}) { order { id lines { keys { key } } } } }",
            json!({ "p": product }),
        )
        .await;
    let key = data(&order)["createOrder"]["order"]["lines"][0]["keys"][0]["key"].as_str().expect("key").to_string();
    let mut support = signed_in(&app, StaffRole::Support).await;
    let home = support.get("/admin/").await;
    assert!(home.body.contains("id=\"global-search\""), "the header's search: {}", home.body);
    let found = support.get("/admin/search?q=navy.exa").await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(found.body.contains(">grace@navy.example</a>"), "the customer by part of the email: {}", found.body);
    assert!(found.body.contains("<code>GRACE-42</code>"), "the order by its customer's email");
    assert!(found.body.contains(&format!("<code>{key}</code>")), "the licence by its customer's email");
    let part: String = key.chars().skip(5).take(6).collect();
    let by_key = support.get(&format!("/admin/search?q={part}")).await;
    assert!(by_key.body.contains(&format!("<code>{key}</code>")), "any part of the key: {}", by_key.body);
    let product_hit = support.get("/admin/search?q=grace%20stu").await;
    assert!(product_hit.body.contains(">Grace Studio</a>"), "{}", product_hit.body);
    let nothing = support.get("/admin/search?q=zzzzzz").await;
    assert_eq!(nothing.body.matches("No match.").count(), 4);
}
