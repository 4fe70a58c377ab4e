//! The admin portal's catalogue over HTTP: generators (a format previewed
//! with its bits and examples, the 80-bit rule refused at its field, created,
//! edited, refused deletion while a product uses it), licences generated and
//! their job page followed to 100% (the jobs list filtered), and products
//! with their licence delivery, edited and archived; support kept out.

use crate::admin_keys::{flash, signed_in};
use entity::user::StaffRole;
use keysmith_tests::{TestApp, data, on_both_databases};
use serde_json::json;

on_both_databases!(
    generators_are_previewed_saved_used_and_deleted,
    generated_licences_are_followed_on_the_job_page,
    products_are_made_with_their_delivery_edited_and_archived,
);

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
    let location = started.location().to_string();
    let done = keysmith_tests::until("the job to succeed", || {
        let (mut browser, location) = (browser.clone(), location.clone());
        async move {
            let page = browser.get(&location).await;
            assert_eq!(page.status, 200, "{}", page.body);
            if page.body.contains(">succeeded<") {
                return Some(page);
            }
            assert!(page.body.contains("<meta http-equiv=\"refresh\" content=\"2\">"), "{}", page.body);
            None
        }
    })
    .await;
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
            ("renewalCount".to_string(), "12".to_string()),
            ("renewalUnit".to_string(), "MONTHS".to_string()),
        ]
    };
    let pairs = |f: &[(String, String)]| f.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>();

    // "Specific tag" without a tag: refused at the tag's field.
    let missing = pairs(&fields("TAG", ""));
    let missing: Vec<(&str, &str)> = missing.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let refused = browser.post("/admin/products/new", &missing).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("id=\"tagId-error\""), "{}", refused.body);

    // A renewal period out of range: refused at its field.
    let mut long = pairs(&fields("TAG", &tag));
    long.retain(|(k, _)| k != "renewalCount");
    long.push(("renewalCount".to_string(), "121".to_string()));
    let long: Vec<(&str, &str)> = long.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let refused = browser.post("/admin/products/new", &long).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("id=\"renewalPeriod-error\""), "{}", refused.body);

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
    assert!(shown.body.contains("<dt>Renewal period</dt><dd>12 months</dd>"), "{}", shown.body);
    let id = product_page.rsplit('/').next().expect("an id").to_string();

    // Edit: auto-generated with a generator.
    let edit = browser.get(&format!("{product_page}/edit")).await;
    assert!(edit.body.contains("value=\"TAG\" checked"), "{}", edit.body);
    assert!(edit.body.contains("value=\"12\"") && edit.body.contains("value=\"MONTHS\" selected"), "{}", edit.body);
    let mut changed = pairs(&fields("AUTO_GENERATED", ""));
    changed.retain(|(k, _)| k != "generatorId" && k != "renewalCount");
    // No count: the renewal period is cleared.
    changed.push(("renewalCount".to_string(), String::new()));
    changed.push(("generatorId".to_string(), generator.clone()));
    let changed: Vec<(&str, &str)> = changed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let saved = browser.post(&format!("{product_page}/edit"), &changed).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let body = app
        .graphql(
            Some(&admin),
            "query($id: ID!) { product(id: $id) { delivery { mode generatorId tagId } keyButtonText renewalPeriod { unit } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        data(&body)["product"],
        json!({ "delivery": { "mode": "AUTO_GENERATED", "generatorId": generator, "tagId": null }, "keyButtonText": "Show my serial", "renewalPeriod": null })
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
