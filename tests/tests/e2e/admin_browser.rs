//! The admin portal's keys work in a real headless Chromium: a licence made
//! by hand refused at its expiry field (its product named like a script shown
//! as text), a CSV upload whose bad line is reported by number and then
//! skipped, three keys selected on a tag's page and moved to another tag,
//! duplicates cleaned up, a form without its CSRF token refused, and a
//! support member who sees no create, revoke or delete controls and whose
//! hand-made POST is refused. Screenshots of each page at desktop and phone
//! widths land in `target/portal-screenshots/`.

use crate::browser::{browser, screenshot, wait_for_in, wait_for_text};
use entity::user::StaffRole;
use fantoccini::{Client, Locator};
use keysmith_tests::app::TEST_PASSWORD;
use keysmith_tests::{TestApp, data, on_both_databases};
use serde_json::json;

on_both_databases!(
    staff_upload_move_and_clean_up_keys_and_support_sees_less,
    the_business_is_run_from_the_admin_portal,
);

/// The page at desktop width, then at a phone's.
async fn both_widths(c: &Client, app: &TestApp, name: &str) {
    screenshot(c, app, name).await;
    c.set_window_size(390, 844).await.expect("a phone's window");
    screenshot(c, app, &format!("{name}-phone")).await;
    c.set_window_size(1200, 900).await.expect("a desktop window");
}

/// A new staff member of `role`; their email.
async fn staff(app: &TestApp, role: StaffRole) -> String {
    let token = app.staff_token(role).await;
    let me = app.graphql(Some(&token), "{ me { user { email } } }", json!({})).await;
    data(&me)["me"]["user"]["email"].as_str().expect("email").to_string()
}

async fn sign_in(c: &Client, app: &TestApp, email: &str) {
    c.goto(&app.url("/admin/login")).await.expect("the sign-in page");
    c.find(Locator::Id("email")).await.expect("email").send_keys(email).await.expect("type");
    c.find(Locator::Id("password")).await.expect("password").send_keys(TEST_PASSWORD).await.expect("type");
    c.find(Locator::Css("form.card button[type=submit]")).await.expect("sign in").click().await.expect("click");
    wait_for_text(c, "working in").await;
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.expect("click");
}

async fn click_text(c: &Client, text: &str) {
    let xpath = format!("//main//*[self::a or self::button or self::summary][normalize-space()='{text}']");
    c.find(Locator::XPath(&xpath)).await.unwrap_or_else(|e| panic!("{text}: {e}")).click().await.expect("click");
}

/// The id of the key `key`, through the API.
async fn key_id(app: &TestApp, token: &str, key: &str) -> String {
    let body = app
        .graphql(
            Some(token),
            "query($s: String) { licenseKeys(filter: {search: $s}) { edges { node { id key } } } }",
            json!({ "s": key }),
        )
        .await;
    let edges = data(&body)["licenseKeys"]["edges"].as_array().expect("edges").clone();
    edges.iter().find(|e| e["node"]["key"] == key).expect("the key")["node"]["id"].as_str().expect("id").to_string()
}

/// The keys of a tag, by key.
async fn keys_of(app: &TestApp, token: &str, tag: &str) -> Vec<String> {
    let body = app
        .graphql(
            Some(token),
            "query($t: ID) { licenseKeys(first: 100, filter: {tagId: $t}, orderBy: {field: KEY, direction: ASC}) { edges { node { key } } } }",
            json!({ "t": tag }),
        )
        .await;
    data(&body)["licenseKeys"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["key"].as_str().expect("key").to_string())
        .collect()
}

/// Posts a form built in the page (as a hand-made or forged form would be),
/// with the page's own CSRF token when `with_token`.
async fn post_from_page(c: &Client, action: &str, fields: &[(&str, &str)], with_token: bool) {
    let script = "const [action, fields, withToken] = arguments; \
        const form = document.createElement('form'); form.method = 'post'; form.action = action; \
        const add = (n, v) => { const i = document.createElement('input'); i.type = 'hidden'; i.name = n; i.value = v; form.appendChild(i); }; \
        if (withToken) add('csrf', document.querySelector('input[name=csrf]').value); \
        for (const [n, v] of fields) add(n, v); \
        document.body.appendChild(form); form.submit();";
    c.execute(script, vec![json!(action), json!(fields), json!(with_token)]).await.expect("post the form");
}

async fn staff_upload_move_and_clean_up_keys_and_support_sees_less(app: TestApp) {
    let Some(browser) = browser().await else { return };
    let c = &browser.client;
    let admin = app.staff_token(StaffRole::Admin).await;
    let script_name = "<script>alert(1)</script>";
    let made = app
        .graphql(
            Some(&admin),
            "mutation($n: String!) { p: createProduct(input: {name: $n}) { product { id } } \
             g: createGenerator(input: {name: \"Default\"}) { generator { id } } \
             pro: createTag(input: {name: \"pro\"}) { tag { id } } \
             next: createTag(input: {name: \"pro-2027\"}) { tag { id } } }",
            json!({ "n": script_name }),
        )
        .await;
    let product = data(&made)["p"]["product"]["id"].as_str().expect("product").to_string();
    let generator = data(&made)["g"]["generator"]["id"].as_str().expect("generator").to_string();
    let pro = data(&made)["pro"]["tag"]["id"].as_str().expect("pro").to_string();
    let next = data(&made)["next"]["tag"]["id"].as_str().expect("pro-2027").to_string();
    let import = "mutation($k: String!, $t: [ID!]!) { importLicenseKeys(input: {text: $k, tagIds: $t, duplicates: KEEP}) { imported } }";
    let keys = "DUPL-0001-KEYS\nMOVE-0001-KEYS\nMOVE-0002-KEYS\nMOVE-0003-KEYS\nSTAY-0001-KEYS";
    app.graphql(Some(&admin), import, json!({ "k": keys, "t": [pro] })).await;
    app.graphql(Some(&admin), import, json!({ "k": "DUPL-0001-KEYS", "t": [pro] })).await;
    let licence = app
        .graphql(
            Some(&admin),
            "mutation($p: ID!, $g: ID!) { createLicense(input: {productId: $p, generatorId: $g}) { license { id key } } }",
            json!({ "p": product, "g": generator }),
        )
        .await;
    let licence_id = data(&licence)["createLicense"]["license"]["id"].as_str().expect("licence").to_string();

    sign_in(c, &app, &staff(&app, StaffRole::Manager).await).await;

    // Create licence: the script-like product name is text; an expiry in the past is refused at its field.
    c.goto(&app.url("/admin/licenses/new")).await.expect("the create form");
    wait_for_text(c, "Create licence").await;
    both_widths(c, &app, "admin-create").await;
    let option = c.find(Locator::Css(&format!("#product option[value='{product}']"))).await.expect("the product");
    assert_eq!(option.text().await.expect("text"), script_name, "the name shows as text");
    option.click().await.expect("choose it");
    click(c, &format!("#generator option[value='{generator}']")).await;
    c.execute("document.getElementById('expires').value = '2020-01-01';", vec![]).await.expect("an expiry");
    click(c, "form.form-grid button[type=submit]").await;
    wait_for_in(c, "#expires-error", "future").await;
    assert!(c.get_alert_text().await.is_err(), "no script ran");
    both_widths(c, &app, "admin-create-error").await;

    // Edit and assign, as the row's menu offers them.
    c.goto(&app.url(&format!("/admin/licenses/{licence_id}/edit"))).await.expect("edit");
    wait_for_text(c, "Edit licence").await;
    both_widths(c, &app, "admin-edit").await;
    c.goto(&app.url(&format!("/admin/licenses/{licence_id}/assign"))).await.expect("assign");
    wait_for_text(c, "Assign to a customer").await;
    both_widths(c, &app, "admin-assign").await;
    c.goto(&app.url(&format!("/admin/licenses/{licence_id}"))).await.expect("preview");
    wait_for_text(c, "cURL").await;
    both_widths(c, &app, "admin-preview").await;

    // Upload a CSV with one bad line: its number and reason; then again, skipping it.
    let dir = tempfile::tempdir().expect("a directory");
    let csv = dir.path().join("keys.csv");
    std::fs::write(&csv, "key,tags\nUPLD-0001-KEYS,\nUPLD-0002-KEYS,,,2020-01-01\nUPLD-0003-KEYS\n").expect("the file");
    let csv = csv.to_str().expect("a path").to_string();
    c.goto(&app.url("/admin/keys/upload")).await.expect("the upload form");
    wait_for_text(c, "Upload keys").await;
    both_widths(c, &app, "admin-upload").await;
    c.find(Locator::Id("file")).await.expect("file").send_keys(&csv).await.expect("choose the file");
    click(c, &format!("input[name=tag][value='{next}']")).await;
    click_text(c, "Upload").await;
    wait_for_text(c, "Nothing was imported: 1 invalid line").await;
    let report = c.source().await.expect("the report");
    assert!(report.contains("<td class=\"num\">3</td><td>expiry: 2020-01-01 is not in the future</td>"), "{report}");
    both_widths(c, &app, "admin-upload-report-invalid").await;
    c.goto(&app.url("/admin/keys/upload")).await.expect("the upload form");
    c.find(Locator::Id("file")).await.expect("file").send_keys(&csv).await.expect("choose the file");
    click(c, &format!("input[name=tag][value='{next}']")).await;
    click(c, "input[name=skip_invalid]").await;
    click_text(c, "Upload").await;
    wait_for_text(c, "2 keys imported").await;
    both_widths(c, &app, "admin-upload-report").await;
    assert_eq!(keys_of(&app, &admin, &next).await, ["UPLD-0001-KEYS", "UPLD-0003-KEYS"]);

    // Three keys selected on the tag's page and moved to another tag.
    c.goto(&app.url(&format!("/admin/keys/tags/{pro}?sort=KEY"))).await.expect("the tag");
    wait_for_in(c, "#results", "6 keys").await;
    both_widths(c, &app, "admin-tag").await;
    for key in ["MOVE-0001-KEYS", "MOVE-0002-KEYS", "MOVE-0003-KEYS"] {
        click(c, &format!("input[name=key][value='{}']", key_id(&app, &admin, key).await)).await;
    }
    click(c, "#bulk-action option[value=move]").await;
    click_text(c, "Continue").await;
    wait_for_text(c, "3 keys from pro").await;
    both_widths(c, &app, "admin-bulk-move").await;
    click(c, &format!("#target option[value='{next}']")).await;
    click_text(c, "Move to tag").await;
    wait_for_text(c, "3 keys moved to pro-2027").await;
    let moved = keys_of(&app, &admin, &next).await;
    for key in ["MOVE-0001-KEYS", "MOVE-0002-KEYS", "MOVE-0003-KEYS"] {
        assert!(moved.contains(&key.to_string()), "{moved:?}");
    }
    assert_eq!(keys_of(&app, &admin, &pro).await, ["DUPL-0001-KEYS", "DUPL-0001-KEYS", "STAY-0001-KEYS"]);

    // Clean up duplicates from "More actions": the waiting copy goes.
    click_text(c, "More actions").await;
    click_text(c, "Clean up duplicates").await;
    wait_for_in(c, "dialog[open]", "keeping the oldest copy").await;
    both_widths(c, &app, "admin-clean-up-dialog").await;
    c.find(Locator::XPath("//dialog//button[normalize-space()='Clean up duplicates']"))
        .await
        .expect("confirm")
        .click()
        .await
        .expect("click");
    wait_for_text(c, "1 duplicate key removed").await;
    assert_eq!(keys_of(&app, &admin, &pro).await, ["DUPL-0001-KEYS", "STAY-0001-KEYS"]);
    c.goto(&app.url(&format!("/admin/keys/tags/{pro}/clean-up"))).await.expect("the clean-up page");
    wait_for_text(c, "keeping the oldest copy").await;
    both_widths(c, &app, "admin-clean-up").await;
    c.goto(&app.url(&format!("/admin/keys/tags/{next}/rename"))).await.expect("rename");
    wait_for_text(c, "Tag names are lowercase").await;
    both_widths(c, &app, "admin-rename").await;
    c.goto(&app.url(&format!("/admin/keys/tags/{next}/delete"))).await.expect("delete");
    wait_for_text(c, "for good").await;
    both_widths(c, &app, "admin-delete-tag").await;

    // A form without its CSRF token is refused and changes nothing.
    c.goto(&app.url("/admin/keys")).await.expect("the tags");
    both_widths(c, &app, "admin-keys-manager").await;
    post_from_page(c, "/admin/keys/tags", &[("name", "forged")], false).await;
    wait_for_text(c, "no longer valid").await;
    let tags = app.graphql(Some(&admin), "{ tags { edges { node { name } } } }", json!({})).await;
    assert!(!tags.to_string().contains("\"forged\""), "{tags}");

    // Support: no create, revoke or delete controls; a hand-made POST is refused.
    c.goto(&app.url("/admin/")).await.expect("home");
    c.find(Locator::XPath("//header//button[normalize-space()='Sign out']"))
        .await
        .expect("sign out")
        .click()
        .await
        .expect("click");
    wait_for_text(c, "You are signed out.").await;
    sign_in(c, &app, &staff(&app, StaffRole::Support).await).await;
    c.goto(&app.url("/admin/licenses")).await.expect("the licences");
    wait_for_in(c, "#results", "licence").await;
    let page = c.source().await.expect("the page");
    assert!(!page.contains("Create licence"), "no create");
    assert!(!page.contains("/confirm/revoke") && !page.contains("/confirm/delete"), "no revoke or delete");
    both_widths(c, &app, "admin-licenses-support").await;
    c.goto(&app.url(&format!("/admin/keys/tags/{pro}"))).await.expect("the tag");
    wait_for_in(c, "#results", "2 keys").await;
    let page = c.source().await.expect("the page");
    assert!(!page.contains("name=\"key\"") && !page.contains("More actions"), "no bulk actions");
    c.goto(&app.url("/admin/licenses")).await.expect("the licences");
    wait_for_in(c, "#results", "licence").await;
    post_from_page(c, &format!("/admin/licenses/{licence_id}/revoke"), &[("back", "/admin/licenses")], true).await;
    wait_for_text(c, "Your role may not do that.").await;
    let status = app
        .graphql(Some(&admin), "query($id: ID!) { licenseKey(id: $id) { status } }", json!({ "id": licence_id }))
        .await;
    assert_eq!(data(&status)["licenseKey"]["status"], "AVAILABLE", "nothing changed");
}

/// Opens `path`, waits until the page says `needle`, and screenshots it at both widths.
async fn visit(c: &Client, app: &TestApp, path: &str, needle: &str, name: &str) {
    c.goto(&app.url(path)).await.unwrap_or_else(|e| panic!("{path}: {e}"));
    wait_for_text(c, needle).await;
    both_widths(c, app, name).await;
}

/// Part 2 in Chromium: an order's key reassigned by searching the pool and one
/// unassigned back to it (the pool's count rises), a refund keeping the keys,
/// 2,000 licences generated and their job followed to 100% without a reload,
/// a lower exhaustion threshold putting the pool on the home page, a webhook's
/// secret shown once, support seeing the audit log but no settings, webhooks
/// or staff, and Ctrl+K finding a customer by part of their email. Every
/// page's screenshot at both widths.
async fn the_business_is_run_from_the_admin_portal(app: TestApp) {
    let Some(browser) = browser().await else { return };
    let c = &browser.client;
    let admin = app.staff_token(StaffRole::Admin).await;
    let made = app
        .graphql(
            Some(&admin),
            "mutation { t: createTag(input: {name: \"pro\"}) { tag { id } } g: createGenerator(input: {name: \"Default\"}) { generator { id } } }",
            json!({}),
        )
        .await;
    let tag = data(&made)["t"]["tag"]["id"].as_str().expect("tag").to_string();
    let generator = data(&made)["g"]["generator"]["id"].as_str().expect("generator").to_string();
    let keys = "BROW-0001-KEYS\nBROW-0002-KEYS\nBROW-0003-KEYS\nBROW-0004-KEYS\nBROW-0005-KEYS\nBROW-0006-KEYS";
    app.graphql(
        Some(&admin),
        "mutation($k: String!, $t: [ID!]!) { importLicenseKeys(input: {text: $k, tagIds: $t}) { imported } }",
        json!({ "k": keys, "t": [tag] }),
    )
    .await;
    let product = app
        .graphql(
            Some(&admin),
            "mutation($t: ID!) { createProduct(input: {name: \"Photo Studio\", delivery: {mode: TAG, tagId: $t}}) { product { id } } }",
            json!({ "t": tag }),
        )
        .await;
    let product = data(&product)["createProduct"]["product"]["id"].as_str().expect("product").to_string();
    let order = app
        .graphql(
            Some(&admin),
            "mutation($p: ID!) { createOrder(input: {externalId: \"SHOP-2001\", customer: {email: \"grace@navy.example\", name: \"Grace\"}, \
             lines: [{productId: $p, quantity: 2}], emailCustomer: false}) { order { id customer { id } } } }",
            json!({ "p": product }),
        )
        .await;
    let order_id = data(&order)["createOrder"]["order"]["id"].as_str().expect("order").to_string();
    let customer_id = data(&order)["createOrder"]["order"]["customer"]["id"].as_str().expect("customer").to_string();

    sign_in(c, &app, &staff(&app, StaffRole::Admin).await).await;
    both_widths(c, &app, "admin-home-admin").await;
    visit(c, &app, "/admin/orders", "SHOP-2001", "admin-orders").await;
    let order_page = format!("/admin/orders/{order_id}");
    visit(c, &app, &order_page, "Photo Studio × 2", "admin-order").await;

    // Assign new key: search the pool for one key, confirm.
    c.find(Locator::XPath("(//main//a[normalize-space()='Assign new key'])[1]"))
        .await
        .expect("Assign new key")
        .click()
        .await
        .expect("click");
    wait_for_text(c, "Search the pool").await;
    both_widths(c, &app, "admin-reassign").await;
    let search = c.find(Locator::Id("q")).await.expect("the pool's search");
    search.send_keys("0005").await.expect("type");
    search.send_keys("\u{e007}").await.expect("Enter");
    wait_for_text(c, "1 available matching").await;
    click_text(c, "Confirm").await;
    wait_for_text(c, "Key reassigned").await;
    let body = app
        .graphql(
            Some(&admin),
            "query($id: ID!) { order(id: $id) { lines { keys { key } } } }",
            json!({ "id": order_id }),
        )
        .await;
    assert!(body.to_string().contains("BROW-0005-KEYS"), "{body}");

    // Unassign a key back to the pool: the tags page shows one more remaining.
    let remaining = |page: String| page.lines().find(|l| l.starts_with("pro")).unwrap_or_default().to_string();
    c.goto(&app.url("/admin/keys")).await.expect("the tags");
    let before = remaining(wait_for_text(c, "pro").await);
    c.goto(&app.url(&order_page)).await.expect("the order");
    wait_for_text(c, "Photo Studio").await;
    c.find(Locator::XPath("(//main//a[normalize-space()='Unassign key'])[1]"))
        .await
        .expect("Unassign key")
        .click()
        .await
        .expect("click");
    wait_for_in(c, "dialog[open]", "leaves order SHOP-2001").await;
    both_widths(c, &app, "admin-unassign-dialog").await;
    c.find(Locator::Css("dialog form button.danger")).await.expect("confirm").click().await.expect("click");
    wait_for_text(c, "Key unassigned").await;
    c.goto(&app.url("/admin/keys")).await.expect("the tags");
    let after = remaining(wait_for_text(c, "pro").await);
    assert_ne!(before, after, "the pool's figures changed: {before} → {after}");
    let figures =
        app.graphql(Some(&admin), "query($id: ID!) { tag(id: $id) { remaining } }", json!({ "id": tag })).await;
    assert_eq!(data(&figures)["tag"]["remaining"], 5, "six keys, two delivered, one swapped back, one unassigned");

    // Refund keeping the keys.
    visit(c, &app, &format!("{order_page}/refund"), "Stay with the customer", "admin-refund").await;
    c.goto(&app.url(&order_page)).await.expect("the order");
    wait_for_text(c, "Photo Studio").await;
    click_text(c, "Refund").await;
    wait_for_in(c, "dialog[open]", "Stay with the customer").await;
    c.find(Locator::Css("dialog form button.danger")).await.expect("refund").click().await.expect("click");
    wait_for_text(c, "Order refunded; the customer keeps the keys").await;

    // Generate 2,000 licences and watch the job reach 100% without reloading.
    visit(c, &app, &format!("/admin/generators/{generator}/generate"), "Generate licences", "admin-generate").await;
    click(c, &format!("#product option[value='{product}']")).await;
    let count = c.find(Locator::Id("count")).await.expect("count");
    count.clear().await.expect("clear");
    count.send_keys("2000").await.expect("type");
    click_text(c, "Generate").await;
    wait_for_text(c, "100%").await;
    wait_for_text(c, "succeeded").await;
    both_widths(c, &app, "admin-job").await;

    // A lower threshold puts the pool on the home page.
    c.goto(&app.url("/admin/settings")).await.expect("settings");
    wait_for_text(c, "Exhaustion threshold").await;
    both_widths(c, &app, "admin-settings").await;
    let threshold = c.find(Locator::Id("exhaustionThreshold")).await.expect("threshold");
    threshold.clear().await.expect("clear");
    threshold.send_keys("10").await.expect("type");
    click_text(c, "Save settings").await;
    wait_for_text(c, "Settings saved").await;
    c.goto(&app.url("/admin/")).await.expect("home");
    let home = wait_for_in(c, "section[aria-labelledby=pools-low]", "pro").await;
    assert!(home.contains("% used"), "{home}");
    both_widths(c, &app, "admin-home-low").await;

    // A webhook endpoint: its secret once.
    c.goto(&app.url("/admin/webhooks")).await.expect("webhooks");
    wait_for_text(c, "New endpoint").await;
    both_widths(c, &app, "admin-webhooks").await;
    let setting = "mutation { updateSettings(input: {webhookAllowPrivateAddresses: true}) { settings { webhookAllowPrivateAddresses } } }";
    app.graphql(Some(&admin), setting, json!({})).await;
    c.find(Locator::Id("url")).await.expect("url").send_keys("http://127.0.0.1:9/hook").await.expect("type");
    click(c, "input[name=event][value='order.created']").await;
    click_text(c, "Create endpoint").await;
    let shown = wait_for_in(c, "#new-secret", "").await;
    assert!(shown.len() >= 32, "the secret: {shown}");
    both_widths(c, &app, "admin-webhook-secret").await;
    c.goto(&app.url("/admin/webhooks")).await.expect("webhooks");
    wait_for_text(c, "127.0.0.1:9/hook").await;
    assert!(!c.source().await.expect("page").contains(&shown), "shown once");
    click_text(c, "http://127.0.0.1:9/hook").await;
    wait_for_text(c, "Deliveries").await;
    both_widths(c, &app, "admin-webhook").await;

    // An integration with a mapping, for its pages.
    let mapped = json!([{ "providerRef": "price_photo", "productId": product }]);
    let integration =
        crate::providers::connect(&app, &admin, "STRIPE", crate::integrations::SECRET, mapped, json!({})).await;

    // Every other page, at both widths.
    for (path, needle, name) in [
        ("/admin/integrations", "New integration", "admin-integrations"),
        (&*format!("/admin/integrations/{integration}"), "Product mappings", "admin-integration"),
        ("/admin/products", "Photo Studio", "admin-products"),
        (&*format!("/admin/products/{product}"), "Its pool", "admin-product"),
        (&*format!("/admin/products/{product}/edit"), "Licence key delivery", "admin-product-edit"),
        ("/admin/products/new", "New product", "admin-product-new"),
        ("/admin/customers", "grace@navy.example", "admin-customers"),
        (&*format!("/admin/customers/{customer_id}"), "Devices", "admin-customer"),
        (&*format!("/admin/customers/{customer_id}/edit"), "Edit customer", "admin-customer-edit"),
        ("/admin/generators", "Default", "admin-generators"),
        ("/admin/generators/new", "80 bits", "admin-generator-new"),
        (&*format!("/admin/generators/{generator}/edit"), "Edit generator", "admin-generator-edit"),
        (&*format!("/admin/generators/{generator}/delete"), "Delete generator?", "admin-generator-delete"),
        ("/admin/jobs", "generate licenses", "admin-jobs"),
        ("/admin/activations", "Activations", "admin-activations"),
        ("/admin/audit", "order.created", "admin-audit"),
        ("/admin/users", "Add a staff member", "admin-users"),
        ("/admin/account", "Change password", "admin-account"),
    ] {
        visit(c, &app, path, needle, name).await;
    }

    // Support: the audit log, but no settings, webhooks or staff.
    c.goto(&app.url("/admin/")).await.expect("home");
    c.find(Locator::XPath("//header//button[normalize-space()='Sign out']"))
        .await
        .expect("sign out")
        .click()
        .await
        .expect("click");
    wait_for_text(c, "You are signed out.").await;
    sign_in(c, &app, &staff(&app, StaffRole::Support).await).await;
    let nav = c.find(Locator::Css("nav.side")).await.expect("nav").text().await.expect("text");
    assert!(
        nav.contains("Audit log") && !nav.contains("Settings") && !nav.contains("Webhooks") && !nav.contains("Staff"),
        "{nav}"
    );
    visit(c, &app, "/admin/audit", "order.created", "admin-audit-support").await;

    // Ctrl+K: the global search finds a customer by part of their email.
    c.find(Locator::Css("body")).await.expect("body").send_keys("\u{e009}k").await.expect("Ctrl+K");
    let focused = c.active_element().await.expect("focus");
    assert_eq!(focused.attr("id").await.expect("id").as_deref(), Some("global-search"));
    focused.send_keys("navy.exa\u{e007}").await.expect("type and Enter");
    let found = wait_for_in(c, "#results", "grace@navy.example").await;
    assert!(found.contains("SHOP-2001"), "{found}");
    both_widths(c, &app, "admin-search").await;
}
