//! The admin portal over HTTP: signing in with a server-side staff session,
//! its cookie, the environment switch, CSRF, signing out, and the rule that
//! the admin cookie is never a credential for `POST /graphql`.

use crate::portal::PortalClient;
use entity::user::StaffRole;
use keysmith_tests::app::TEST_PASSWORD;
use keysmith_tests::app::seed;
use keysmith_tests::{TestApp, data, on_both_databases};
use sea_orm::EntityTrait;
use serde_json::json;

on_both_databases!(
    staff_sign_in_work_in_an_environment_and_sign_out,
    forged_and_wrong_sign_ins_change_nothing,
    the_licences_page_searches_filters_and_sorts_from_its_address,
    licence_actions_are_confirmed_and_follow_the_role,
    a_licence_preview_shows_devices_samples_and_its_trail,
    a_preview_asks_for_the_password_when_the_sign_in_is_old,
    a_licence_is_created_by_hand_with_errors_at_their_fields,
    a_licence_is_edited_assigned_and_exported_from_the_list,
    admin_pages_cost_the_same_statements_whatever_their_size,
);

/// A staff account of `role`; its email.
async fn staff(app: &TestApp, role: StaffRole) -> String {
    let token = app.staff_token(role).await;
    let me = app.graphql(Some(&token), "{ me { user { email } } }", json!({})).await;
    data(&me)["me"]["user"]["email"].as_str().expect("email").to_string()
}

async fn sign_in(client: &mut PortalClient, email: &str, password: &str) -> crate::portal::Page {
    let form = client.get("/admin/login").await;
    assert_eq!(form.status, 200);
    let csrf = form.csrf();
    client.post("/admin/login", &[("csrf", &csrf), ("email", email), ("password", password)]).await
}

async fn staff_sign_in_work_in_an_environment_and_sign_out(app: TestApp) {
    let email = staff(&app, StaffRole::Manager).await;
    let mut browser = PortalClient::new(&app);

    // Nobody signed in: every page sends the browser to the sign-in form.
    let home = browser.get("/admin/").await;
    assert_eq!((home.status, home.location()), (303, "/admin/login"));

    let signed = sign_in(&mut browser, &email, TEST_PASSWORD).await;
    assert_eq!((signed.status, signed.location()), (303, "/admin/"), "{}", signed.body);
    let set_cookie: Vec<&str> = signed.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    let session = set_cookie.iter().find(|c| c.starts_with("keysmith_admin=")).expect("the session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(session.contains(flag), "{flag} in {session}");
    }

    let home = browser.get("/admin/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains(&email), "the page names who is signed in");
    assert!(home.body.contains("Production") && !home.body.contains("env-banner"));
    for header in ["content-security-policy", "x-frame-options", "x-content-type-options"] {
        assert!(home.headers.contains_key(header), "{header}");
    }

    // The admin cookie is no credential for the API.
    let token = browser.cookie("keysmith_admin").expect("the cookie").to_string();
    let api = app
        .http
        .post(app.url("/graphql"))
        .header("Cookie", format!("keysmith_admin={token}"))
        .json(&json!({ "query": "{ me { role } }" }))
        .send()
        .await
        .expect("answer")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    assert_eq!(data(&api)["me"]["role"], "ANONYMOUS");

    // One click to staging: the banner says so on every page.
    let csrf = home.csrf();
    let switched =
        browser.post("/admin/environment", &[("csrf", &csrf), ("environment", "staging"), ("back", "/admin/")]).await;
    assert_eq!((switched.status, switched.location()), (303, "/admin/"));
    let staging = browser.get("/admin/").await;
    assert!(staging.body.contains("env-banner") && staging.body.contains("Switch to production"));
    // The switch never sends the browser off the admin portal.
    let csrf = staging.csrf();
    let away = browser
        .post("/admin/environment", &[("csrf", &csrf), ("environment", "production"), ("back", "https://example.com/")])
        .await;
    assert_eq!(away.location(), "/admin/");

    // Signing out ends the session: the old cookie no longer works.
    let home = browser.get("/admin/").await;
    let csrf = home.csrf();
    let out = browser.post("/admin/logout", &[("csrf", &csrf)]).await;
    assert_eq!((out.status, out.location()), (303, "/admin/login?notice=signed-out"));
    let replayed = app
        .http
        .get(app.url("/admin/"))
        .header("Cookie", format!("keysmith_admin={token}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(replayed.status(), 200, "the client follows the redirect to the sign-in form");
    assert!(replayed.url().path().ends_with("/admin/login"), "{}", replayed.url());
    let bearer = app.graphql(Some(&token), "{ me { role } }", json!({})).await;
    assert_eq!(keysmith_tests::error_code(&bearer), Some("UNAUTHENTICATED"), "the session's token is dead too");
}

async fn forged_and_wrong_sign_ins_change_nothing(app: TestApp) {
    let email = staff(&app, StaffRole::Support).await;
    let mut browser = PortalClient::new(&app);

    let wrong = sign_in(&mut browser, &email, "not the password at all").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("The email or password is wrong"));
    assert!(browser.cookie("keysmith_admin").is_none());

    // Without the CSRF token nothing is signed in.
    browser.get("/admin/login").await;
    let forged = browser.post("/admin/login", &[("email", &email), ("password", TEST_PASSWORD)]).await;
    assert!(forged.status == 403 || forged.status == 400, "{}", forged.status);
    assert!(browser.cookie("keysmith_admin").is_none());

    let signed = sign_in(&mut browser, &email, TEST_PASSWORD).await;
    assert_eq!(signed.location(), "/admin/");
    let home = browser.get("/admin/").await;
    assert!(home.body.contains("support"), "the role is shown");
    // A signed-in sign-out without the token is refused and ends nothing.
    let forged = browser.post("/admin/logout", &[("csrf", "forged")]).await;
    assert_eq!(forged.status, 403);
    assert_eq!(browser.get("/admin/").await.status, 200);
}

async fn signed_in_browser(app: &TestApp, role: StaffRole) -> PortalClient {
    let email = staff(app, role).await;
    let mut browser = PortalClient::new(app);
    let signed = sign_in(&mut browser, &email, TEST_PASSWORD).await;
    assert_eq!(signed.location(), "/admin/");
    browser
}

/// The keys a licences page lists, in order.
fn listed(page: &crate::portal::Page, keys: &[&str]) -> Vec<String> {
    let mut found: Vec<(usize, String)> = keys
        .iter()
        .filter_map(|k| page.body.find(&format!("<code>{k}</code>")).map(|at| (at, k.to_string())))
        .collect();
    found.sort();
    found.into_iter().map(|(_, k)| k).collect()
}

async fn the_licences_page_searches_filters_and_sorts_from_its_address(app: TestApp) {
    let env = entity::Environment::Production;
    let keys = ["ADMIN-LIST-AAAA", "ADMIN-LIST-BBBB", "ADMIN-LIST-CCCC"];
    let mut ids = Vec::new();
    for key in keys {
        ids.push(seed::key(app.db(), env, key, entity::LicenseStatus::Available, &[]).await);
    }
    seed::deliver(app.db(), &ids[0], false).await;
    seed::deliver(app.db(), &ids[1], true).await;
    let first =
        entity::license_key::Entity::find_by_id(ids[0].clone()).one(app.db()).await.expect("read").expect("row");
    let product = first.product_id.clone().expect("a product");
    let customer = entity::customer::Entity::find_by_id(first.customer_id.clone().expect("a customer"))
        .one(app.db())
        .await
        .expect("read")
        .expect("row");
    let admin = app.staff_token(StaffRole::Admin).await;
    let renamed = app
        .graphql(
            Some(&admin),
            "mutation($id: ID!) { updateProduct(input: {id: $id, name: \"<script>alert(1)</script>\"}) { product { name } } }",
            json!({ "id": product }),
        )
        .await;
    assert_eq!(data(&renamed)["updateProduct"]["product"]["name"], "<script>alert(1)</script>");

    let mut browser = signed_in_browser(&app, StaffRole::Support).await;
    let all = browser.get("/admin/licenses").await;
    assert_eq!(all.status, 200);
    assert!(all.body.contains("<strong>3</strong> licences"), "{}", all.body);
    let shown_as_text = ["&lt;script&gt;alert(1)&lt;/script&gt;", "&#60;script&#62;alert(1)&#60;/script&#62;"];
    assert!(shown_as_text.iter().any(|t| all.body.contains(t)), "the name is shown as text");
    assert!(!all.body.contains("<script>alert"), "escaped");
    assert!(all.body.contains("Lifetime") && all.body.contains("0 / 1"));

    // Find a licence by its customer's email.
    let found = browser.get(&format!("/admin/licenses?q={}", customer.email)).await;
    assert_eq!(listed(&found, &keys), vec![keys[0]]);
    // Product and status filters combine; the sort is in the address too.
    let view = format!("/admin/licenses?product={product}&status=ASSIGNED&sort=KEY&dir=desc");
    let filtered = browser.get(&view).await;
    assert_eq!(listed(&filtered, &keys), vec![keys[0]]);
    assert_eq!(listed(&browser.get(&view).await, &keys), vec![keys[0]], "the same address, the same rows");
    let active = browser.get("/admin/licenses?status=ACTIVE").await;
    assert_eq!(listed(&active, &keys), vec![keys[1]]);
    let by_key_desc = browser.get("/admin/licenses?sort=KEY&dir=desc").await;
    assert_eq!(listed(&by_key_desc, &keys), vec![keys[2], keys[1], keys[0]]);
    let by_key_asc = browser.get("/admin/licenses?sort=KEY&dir=asc").await;
    assert_eq!(listed(&by_key_asc, &keys), vec![keys[0], keys[1], keys[2]]);
    // The API's refusal is shown on the page.
    let long = browser.get(&format!("/admin/licenses?q={}", "x".repeat(300))).await;
    assert_eq!(long.status, 400);
    assert!(long.body.contains("at most 256"), "{}", long.body);
}

async fn licence_actions_are_confirmed_and_follow_the_role(app: TestApp) {
    let env = entity::Environment::Production;
    let id = seed::key(app.db(), env, "ADMIN-ACT-0001", entity::LicenseStatus::Available, &[]).await;
    seed::deliver(app.db(), &id, true).await;
    let activated = app
        .graphql(
            None,
            "mutation { activateLicense(input: {key: \"ADMIN-ACT-0001\", fingerprint: \"device-0001\"}) { code } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&activated)["activateLicense"]["code"], "VALID", "{activated:#}");
    let status = |app: &TestApp, id: String| {
        let db = app.db().clone();
        async move { entity::license_key::Entity::find_by_id(id).one(&db).await.expect("read").expect("row").status }
    };

    // Support sees only what support may do, and a hand-made POST to a
    // manager's action is refused and changes nothing.
    let mut support = signed_in_browser(&app, StaffRole::Support).await;
    let list = support.get("/admin/licenses").await;
    assert!(list.body.contains(&format!("/admin/licenses/{id}/confirm/inactivate")));
    for hidden in ["revoke", "delete", "suspend", "return"] {
        assert!(!list.body.contains(&format!("/confirm/{hidden}")), "support sees no {hidden}");
    }
    let csrf = list.csrf();
    let forged =
        support.post(&format!("/admin/licenses/{id}/revoke"), &[("csrf", &csrf), ("back", "/admin/licenses")]).await;
    assert_eq!((forged.status, forged.location()), (303, "/admin/licenses"));
    let after = support.get("/admin/licenses").await;
    assert!(after.body.contains("Your role may not do that."), "the refusal is shown");
    assert_eq!(status(&app, id.clone()).await, entity::LicenseStatus::Active);
    // Without the CSRF token nothing happens either.
    let manager_browser = &mut signed_in_browser(&app, StaffRole::Manager).await;
    let no_token = manager_browser.post(&format!("/admin/licenses/{id}/revoke"), &[("csrf", "forged")]).await;
    assert_eq!(no_token.status, 403);
    assert_eq!(status(&app, id.clone()).await, entity::LicenseStatus::Active);

    // A manager revokes through its confirmation, which says what it ends.
    let back = "/admin/licenses?status=ACTIVE";
    let confirm = manager_browser
        .get(&format!("/admin/licenses/{id}/confirm/revoke?back={}", "%2Fadmin%2Flicenses%3Fstatus%3DACTIVE"))
        .await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("permanent") && confirm.body.contains("ends 1 device"), "{}", confirm.body);
    let csrf = confirm.csrf();
    let done = manager_browser.post(&format!("/admin/licenses/{id}/revoke"), &[("csrf", &csrf), ("back", back)]).await;
    assert_eq!((done.status, done.location()), (303, back));
    let list = manager_browser.get(back).await;
    assert!(list.body.contains("Licence revoked"));
    assert_eq!(status(&app, id.clone()).await, entity::LicenseStatus::Revoked);
    // The message is shown once.
    assert!(!manager_browser.get(back).await.body.contains("Licence revoked"));
}

async fn a_licence_preview_shows_devices_samples_and_its_trail(app: TestApp) {
    let env = entity::Environment::Production;
    let id = seed::key(app.db(), env, "ADMIN-PREVIEW-0001", entity::LicenseStatus::Available, &[]).await;
    seed::deliver(app.db(), &id, true).await;
    let activated = app
        .graphql(
            None,
            "mutation { activateLicense(input: {key: \"ADMIN-PREVIEW-0001\", fingerprint: \"fp-preview-0001\", \
             name: \"Studio laptop\"}) { code } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&activated)["activateLicense"]["code"], "VALID", "{activated:#}");

    let mut support = signed_in_browser(&app, StaffRole::Support).await;
    let preview = support.get(&format!("/admin/licenses/{id}")).await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    for shown in ["ADMIN-PREVIEW-0001", "Studio laptop", "curl", "Python", "Audit trail", "Deactivate"] {
        assert!(preview.body.contains(shown), "{shown} on the preview");
    }
    let file = support.get(&format!("/admin/licenses/{id}/offline-licence")).await;
    assert_eq!(file.status, 200);
    assert!(file.headers["content-disposition"].to_str().unwrap_or_default().starts_with("attachment"));
    assert!(file.body.contains("payload"), "{}", file.body);

    // Deactivating the live device frees its slot.
    let device =
        preview.body.split("/devices/").nth(1).and_then(|rest| rest.split('/').next()).expect("a device").to_string();
    let csrf = preview.csrf();
    let done = support.post(&format!("/admin/licenses/{id}/devices/{device}/deactivate"), &[("csrf", &csrf)]).await;
    assert_eq!(done.status, 303);
    let after = support.get(&format!("/admin/licenses/{id}")).await;
    assert!(after.body.contains("Device deactivated") && after.body.contains("ended "), "{}", after.body);

    // Managers do not read the audit trail; the page says so instead.
    let mut manager = signed_in_browser(&app, StaffRole::Manager).await;
    let preview = manager.get(&format!("/admin/licenses/{id}")).await;
    assert_eq!(preview.status, 200);
    assert!(preview.body.contains("The audit trail is for admins and support."));
    // A licence that is not there.
    let missing = manager.get("/admin/licenses/01ZZZZZZZZZZZZZZZZZZZZZZZZ").await;
    assert_eq!(missing.status, 404);
}

async fn a_preview_asks_for_the_password_when_the_sign_in_is_old(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let set = "mutation { updateSettings(input: {previewRequiresRecentSignIn: true}) \
               { settings { previewRequiresRecentSignIn } } }";
    data(&app.graphql(Some(&admin), set, json!({})).await);
    let id = seed::key(
        app.db(),
        entity::Environment::Production,
        "ADMIN-REAUTH-0001",
        entity::LicenseStatus::Available,
        &[],
    )
    .await;
    seed::deliver(app.db(), &id, true).await;
    let mut browser = signed_in_browser(&app, StaffRole::Support).await;
    let fresh = browser.get(&format!("/admin/licenses/{id}")).await;
    assert!(fresh.status == 200 && fresh.body.contains("ADMIN-REAUTH-0001"), "just signed in: {}", fresh.status);

    // The same session ten minutes after signing in.
    let token = browser.cookie("keysmith_admin").expect("the cookie").to_string();
    let mut claims = app.state.jwt.verify(&token).expect("claims");
    claims.iat -= 600;
    let old = app.state.jwt.sign(&claims).expect("sign");
    browser.set_cookie("keysmith_admin", &old);
    let asked = browser.get(&format!("/admin/licenses/{id}")).await;
    assert_eq!(asked.status, 401);
    assert!(asked.body.contains("enter your password again") && !asked.body.contains("ADMIN-REAUTH-0001"));
    let csrf = asked.csrf();
    let back = format!("/admin/licenses/{id}");
    let wrong = browser
        .post("/admin/reauth", &[("csrf", &csrf), ("password", "not the password at all"), ("back", &back)])
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("That is not your password."));
    let csrf = wrong.csrf();
    let again = browser.post("/admin/reauth", &[("csrf", &csrf), ("password", TEST_PASSWORD), ("back", &back)]).await;
    assert_eq!((again.status, again.location()), (303, back.as_str()));
    let shown = browser.get(&back).await;
    assert_eq!(shown.status, 200);
    assert!(shown.body.contains("ADMIN-REAUTH-0001"));
    // The old session ended with the new sign-in.
    let replay = app.graphql(Some(&old), "{ me { role } }", json!({})).await;
    assert_eq!(keysmith_tests::error_code(&replay), Some("UNAUTHENTICATED"));
}

async fn a_licence_is_created_by_hand_with_errors_at_their_fields(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let product = app
        .graphql(Some(&admin), "mutation { createProduct(input: {name: \"Pro Suite\"}) { product { id } } }", json!({}))
        .await;
    let product = data(&product)["createProduct"]["product"]["id"].as_str().expect("product").to_string();
    let generator = app
        .graphql(
            Some(&admin),
            "mutation { createGenerator(input: {name: \"Default\"}) { generator { id } } }",
            json!({}),
        )
        .await;
    let generator = data(&generator)["createGenerator"]["generator"]["id"].as_str().expect("generator").to_string();
    let customer = app
        .graphql(
            Some(&admin),
            "mutation { createCustomer(input: {email: \"lin@buyer.example\", name: \"Lin\"}) { customer { id } } }",
            json!({}),
        )
        .await;
    let customer = data(&customer)["createCustomer"]["customer"]["id"].as_str().expect("customer").to_string();

    // Support may not: no button, and the form says so.
    let mut support = signed_in_browser(&app, StaffRole::Support).await;
    assert!(!support.get("/admin/licenses").await.body.contains("/admin/licenses/new"));
    assert_eq!(support.get("/admin/licenses/new").await.status, 403);

    let mut manager = signed_in_browser(&app, StaffRole::Manager).await;
    assert!(manager.get("/admin/licenses").await.body.contains("/admin/licenses/new"));
    let form = manager.get("/admin/licenses/new").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("Pro Suite") && form.body.contains("Default"));
    let csrf = form.csrf();
    let post = |expires: &'static str, flags: &'static str, email: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("product", product.clone()),
            ("generator", generator.clone()),
            ("customer", email.to_string()),
            ("limit", "2".to_string()),
            ("expires", expires.to_string()),
            ("flags", flags.to_string()),
            ("metadata", "{}".to_string()),
        ]
    };

    // An expiry in the past: the API's refusal shows at the expiry field, and nothing is created.
    let fields = post("2020-01-01", "{}", "lin@buyer.example");
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let past = manager.post("/admin/licenses/new", &pairs).await;
    assert_eq!(past.status, 400, "{}", past.body);
    let at_field = past.body.split("id=\"expires-error\">").nth(1).unwrap_or_default();
    assert!(at_field.starts_with("must be in the future") || at_field.contains("future"), "{}", past.body);
    assert!(past.body.contains("value=\"lin@buyer.example\""), "what was typed is kept");
    // Flags that are not a JSON object, and an unknown customer, each at their field.
    let fields = post("", "not json", "nobody@buyer.example");
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let wrong = manager.post("/admin/licenses/new", &pairs).await;
    assert_eq!(wrong.status, 400);
    assert!(
        wrong.body.contains("id=\"flags-error\"") && wrong.body.contains("id=\"customer-error\""),
        "{}",
        wrong.body
    );
    let count = entity::license_key::Entity::find().all(app.db()).await.expect("keys").len();
    assert_eq!(count, 0, "nothing was created");

    // Then right: the licence is the customer's, with its limit.
    let fields = post("2099-12-31", "{\"tier\": \"pro\"}", "lin@buyer.example");
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let made = manager.post("/admin/licenses/new", &pairs).await;
    assert_eq!(made.status, 303, "{}", made.body);
    let preview = manager.get(made.location()).await;
    assert!(preview.body.contains("Licence created"));
    let keys = entity::license_key::Entity::find().all(app.db()).await.expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].customer_id.as_deref(), Some(customer.as_str()));
    assert_eq!((keys[0].status, keys[0].activation_limit), (entity::LicenseStatus::Assigned, 2));
    assert_eq!(keys[0].feature_flags, json!({ "tier": "pro" }));
}

/// The value of the form input `name` on a page.
fn input_value(page: &crate::portal::Page, name: &str) -> String {
    let marker = format!("name=\"{name}\"");
    let at = page.body.find(&marker).unwrap_or_else(|| panic!("no {name}: {}", page.body));
    let tag = page.body[at..].split('>').next().unwrap_or_default();
    tag.split("value=\"").nth(1).and_then(|v| v.split('"').next()).unwrap_or_default().to_string()
}

async fn a_licence_is_edited_assigned_and_exported_from_the_list(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let made = app
        .graphql(
            Some(&admin),
            "mutation { p: createProduct(input: {name: \"Pro Suite\"}) { product { id } } \
             g: createGenerator(input: {name: \"Default\"}) { generator { id } } \
             c: createCustomer(input: {email: \"lin@buyer.example\", name: \"Lin\"}) { customer { id } } }",
            json!({}),
        )
        .await;
    let product = data(&made)["p"]["product"]["id"].as_str().expect("product").to_string();
    let generator = data(&made)["g"]["generator"]["id"].as_str().expect("generator").to_string();
    let customer = data(&made)["c"]["customer"]["id"].as_str().expect("customer").to_string();
    let create = "mutation($p: ID!, $g: ID!, $c: ID) { createLicense(input: {productId: $p, generatorId: $g, customerId: $c, \
                  activationLimit: 1, expiresAt: \"2099-06-30T23:59:59Z\"}) { license { id key } } }";
    let waiting = app.graphql(Some(&admin), create, json!({ "p": product, "g": generator })).await;
    let waiting = data(&waiting)["createLicense"]["license"].clone();
    let (waiting_id, waiting_key) = (waiting["id"].as_str().expect("id"), waiting["key"].as_str().expect("key"));
    let sold = app.graphql(Some(&admin), create, json!({ "p": product, "g": generator, "c": customer })).await;
    let sold = data(&sold)["createLicense"]["license"].clone();
    let (sold_id, sold_key) = (sold["id"].as_str().expect("id"), sold["key"].as_str().expect("key"));
    let read = |id: &str| {
        let app = &app;
        let admin = admin.clone();
        let id = id.to_string();
        async move {
            let body = app
                .graphql(
                    Some(&admin),
                    "query($id: ID!) { licenseKey(id: $id) { status activationLimit expiresAt customer { email } } }",
                    json!({ "id": id }),
                )
                .await;
            data(&body)["licenseKey"].clone()
        }
    };

    let mut manager = signed_in_browser(&app, StaffRole::Manager).await;
    let list = manager.get("/admin/licenses").await;
    let waiting_row = list.body.split("<tr").find(|r| r.contains(waiting_key)).expect("the waiting licence's row");
    assert!(waiting_row.contains(&format!("/admin/licenses/{waiting_id}/assign?back=")), "{waiting_row}");
    assert!(waiting_row.contains(&format!("/admin/licenses/{waiting_id}/edit?back=")));
    let sold_row = list.body.split("<tr").find(|r| r.contains(sold_key)).expect("the sold licence's row");
    assert!(!sold_row.contains("/assign?"), "an assigned licence is not offered for assigning: {sold_row}");

    // Assign: an unknown email is said at the field; a known one assigns.
    let form = manager.get(&format!("/admin/licenses/{waiting_id}/assign")).await;
    assert_eq!(form.status, 200, "{}", form.body);
    let path = format!("/admin/licenses/{waiting_id}/assign");
    let unknown = manager
        .post(&path, &[("csrf", &form.csrf()), ("back", "/admin/licenses"), ("customer", "nobody@x.example")])
        .await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.body.contains("id=\"customer-error\""), "{}", unknown.body);
    assert_eq!(read(waiting_id).await["status"], "AVAILABLE");
    let assigned = manager
        .post(&path, &[("csrf", &form.csrf()), ("back", "/admin/licenses"), ("customer", "lin@buyer.example")])
        .await;
    assert_eq!((assigned.status, assigned.location()), (303, "/admin/licenses"));
    assert!(manager.get("/admin/licenses").await.body.contains("Licence assigned to lin@buyer.example"));
    let now = read(waiting_id).await;
    assert_eq!(
        (now["status"].as_str(), now["customer"]["email"].as_str()),
        (Some("ASSIGNED"), Some("lin@buyer.example"))
    );

    // Edit: key, product and environment read-only; an expiry in the past is refused at its field.
    let path = format!("/admin/licenses/{sold_id}/edit");
    let form = manager.get(&path).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains(&format!("<code>{sold_key}</code>")) && form.body.contains("Pro Suite"));
    assert!(form.body.contains("<dd>Production</dd>"));
    assert_eq!(input_value(&form, "limit"), "1");
    assert_eq!(input_value(&form, "expires"), "2099-06-30");
    let fields = |limit: &str, expires: &str| {
        vec![
            ("csrf".to_string(), form.csrf()),
            ("back".to_string(), "/admin/licenses".to_string()),
            ("customer".to_string(), "lin@buyer.example".to_string()),
            ("limit".to_string(), limit.to_string()),
            ("expires".to_string(), expires.to_string()),
            ("flags".to_string(), "{}".to_string()),
            ("metadata".to_string(), "{}".to_string()),
            ("was_customer".to_string(), input_value(&form, "was_customer")),
            ("was_limit".to_string(), input_value(&form, "was_limit")),
            ("was_expires".to_string(), input_value(&form, "was_expires")),
            ("was_flags".to_string(), "{}".to_string()),
            ("was_metadata".to_string(), "{}".to_string()),
        ]
    };
    let send = |fields: &[(String, String)]| fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>();
    let past = send(&fields("5", "2020-01-01"));
    let past: Vec<(&str, &str)> = past.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let refused = manager.post(&path, &past).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("id=\"expires-error\">"), "{}", refused.body);
    assert_eq!(read(sold_id).await["activationLimit"], 1, "nothing changed");
    let limit = send(&fields("5", "2099-06-30"));
    let limit: Vec<(&str, &str)> = limit.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let saved = manager.post(&path, &limit).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert!(manager.get("/admin/licenses").await.body.contains("Licence saved"));
    let now = read(sold_id).await;
    assert_eq!(now["activationLimit"], 5);
    assert_eq!(now["expiresAt"], "2099-06-30T23:59:59+00:00", "the untouched expiry stays");

    // Support may not edit, by page or by hand-made form.
    let mut support = signed_in_browser(&app, StaffRole::Support).await;
    assert_eq!(support.get(&path).await.status, 403);
    let list = support.get("/admin/licenses").await;
    assert!(!list.body.contains("/edit?back=") && !list.body.contains("export.csv"), "support sees no edit or export");
    let csrf = list.csrf();
    let forged = support.post(&path, &[("csrf", &csrf), ("limit", "9"), ("was_limit", "5")]).await;
    assert_ne!(forged.status, 303);
    assert_eq!(read(sold_id).await["activationLimit"], 5);

    // Export: exactly the filtered list.
    app.graphql(
        Some(&admin),
        "mutation($id: ID!) { revokeLicense(input: {id: $id}) { license { id } } }",
        json!({ "id": sold_id }),
    )
    .await;
    let csv = manager.get(&format!("/admin/licenses/export.csv?product={product}&status=ASSIGNED")).await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(csv.body.contains(waiting_key) && !csv.body.contains(sold_key), "{}", csv.body);
    let json_file = manager.get(&format!("/admin/licenses/export.json?product={product}")).await;
    let rows: serde_json::Value = serde_json::from_str(&json_file.body).expect("JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(2));

    // A revoked licence says why it cannot be edited.
    let locked = manager.get(&path).await;
    assert!(locked.body.contains("A revoked licence is final"), "{}", locked.body);
    assert!(!locked.body.contains("name=\"limit\""));
    assert!(manager.get("/admin/licenses").await.body.contains("Edit — revoked licences cannot change"));
}

/// A page is one or two GraphQL operations whose nested fields come through
/// DataLoaders: 50 rows cost the statements 5 rows cost.
async fn admin_pages_cost_the_same_statements_whatever_their_size(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let made = app
        .graphql(
            Some(&admin),
            "mutation { p: createProduct(input: {name: \"Pro Suite\"}) { product { id } } \
             g: createGenerator(input: {name: \"Default\"}) { generator { id } } \
             c: createCustomer(input: {email: \"lin@buyer.example\", name: \"Lin\"}) { customer { id } } \
             t: createTag(input: {name: \"pro\"}) { tag { id } } }",
            json!({}),
        )
        .await;
    let product = data(&made)["p"]["product"]["id"].as_str().expect("product").to_string();
    let generator = data(&made)["g"]["generator"]["id"].as_str().expect("generator").to_string();
    let customer = data(&made)["c"]["customer"]["id"].as_str().expect("customer").to_string();
    let tag = data(&made)["t"]["tag"]["id"].as_str().expect("tag").to_string();
    for i in 0..60 {
        let who = if i < 5 { json!(customer) } else { serde_json::Value::Null };
        let body = app
            .graphql(
                Some(&admin),
                "mutation($p: ID!, $g: ID!, $c: ID) { createLicense(input: {productId: $p, generatorId: $g, customerId: $c}) { license { id } } }",
                json!({ "p": product, "g": generator, "c": who }),
            )
            .await;
        let id = data(&body)["createLicense"]["license"]["id"].as_str().expect("id").to_string();
        if i < 55 {
            app.graphql(
                Some(&admin),
                "mutation($t: ID!, $k: [ID!]!) { tagLicenseKeys(input: {tagId: $t, keyIds: $k}) { keysChanged } }",
                json!({ "t": tag, "k": [id] }),
            )
            .await;
        }
    }
    let mut browser = signed_in_browser(&app, StaffRole::Manager).await;
    let mut cost = async |path: &str, rows: usize| {
        // The fewest of eight tries: background workers may add a statement now and then.
        let mut fewest = u64::MAX;
        for _ in 0..8 {
            let before = app.state.statements.load(std::sync::atomic::Ordering::SeqCst);
            let page = browser.get(path).await;
            let after = app.state.statements.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(page.status, 200, "{}", page.body);
            assert_eq!(page.body.matches("<td class=\"key\">").count(), rows, "{path}");
            fewest = fewest.min(after - before);
        }
        fewest
    };
    let few = cost("/admin/licenses?status=ASSIGNED", 5).await;
    let many = cost("/admin/licenses?sort=CREATED_AT&dir=asc", 50).await;
    assert_eq!(few, many, "the licences page: 50 rows cost what 5 do");
    let few = cost(&format!("/admin/keys/tags/{tag}?status=ASSIGNED"), 5).await;
    let many = cost(&format!("/admin/keys/tags/{tag}"), 50).await;
    assert_eq!(few, many, "a tag's page: 50 keys cost what 5 do");
}
