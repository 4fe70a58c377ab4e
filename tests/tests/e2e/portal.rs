//! The customer portal over HTTP: sign-in links (by email, from staff, in the
//! order email), the session cookie, the pages, CSRF, escaping and the
//! security headers. The browser test drives the same pages in Chromium.

use crate::email::app_with_smtp;
use entity::user::StaffRole;
use entity::{LicenseStatus, license_key, portal_link};
use keysmith_tests::smtp::SmtpServer;
use keysmith_tests::{Backend, TestApp, data, error_code, on_both_databases};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A browser without a browser: follows no redirects, keeps cookies.
#[derive(Clone)]
pub(crate) struct PortalClient {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
}

pub(crate) struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub(crate) fn location(&self) -> &str {
        self.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// The body without its CSRF tokens, which differ on every page.
    pub(crate) fn text(&self) -> String {
        self.body.replace(&self.csrf_or_empty(), "")
    }

    fn csrf_or_empty(&self) -> String {
        if self.body.contains("name=\"csrf\" value=\"") { self.csrf() } else { "\u{0}".into() }
    }

    /// The page's CSRF token (every form carries it).
    pub(crate) fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
        self.body[at..].split('"').next().expect("a value").to_string()
    }
}

impl PortalClient {
    pub(crate) fn new(app: &TestApp) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Self { http, base: app.url(""), cookies: HashMap::new() }
    }

    /// Puts a cookie in the client's jar, as if the server had set it.
    pub(crate) fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.to_string(), value.to_string());
    }

    /// A cookie the client holds.
    pub(crate) fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn keep(&mut self, resp: reqwest::Response) -> Page {
        for set in resp.headers().get_all("set-cookie") {
            let set = set.to_str().expect("ascii");
            let pair = set.split(';').next().expect("a pair");
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() || set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        Page { status, headers, body: resp.text().await.expect("body") }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("answer");
        self.keep(resp).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .expect("answer");
        self.keep(resp).await
    }

    /// Posts a `multipart/form-data` form (a file upload), as a browser does.
    pub(crate) async fn post_multipart(&mut self, path: &str, form: reqwest::multipart::Form) -> Page {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .multipart(form)
            .send()
            .await
            .expect("answer");
        self.keep(resp).await
    }

    /// Opens a sign-in link and presses its button: the answer to the POST.
    pub(crate) async fn follow(&mut self, link: &str) -> Page {
        let opened = self.get(link).await;
        assert_eq!(opened.status, 200, "{}", opened.body);
        let token = link.rsplit('/').next().expect("a token");
        assert!(opened.body.contains(&format!("name=\"token\" value=\"{token}\"")), "{}", opened.body);
        self.post("/portal/link", &[("csrf", &opened.csrf()), ("token", token)]).await
    }

    pub(crate) fn session(&self) -> Option<&String> {
        self.cookies.get("keysmith_portal")
    }
}

/// An order of `keys` uploaded keys of a product with its own button text,
/// for a customer named `name` (with no keys: one unit, waiting for its key).
/// Returns (order external id, licence ids).
pub(crate) async fn ordered(
    app: &TestApp,
    admin: &str,
    name: &str,
    email: &str,
    keys: &[&str],
) -> (String, Vec<String>) {
    let t = Some(admin);
    let tag = format!("portal-{}", ulid::Ulid::generate().to_string().to_lowercase());
    let tag = app
        .graphql(t, "mutation($n: String!) { createTag(input: {name: $n}) { tag { id } } }", json!({ "n": tag }))
        .await;
    let tag = data(&tag)["createTag"]["tag"]["id"].clone();
    if !keys.is_empty() {
        let imported = app
            .graphql(
                t,
                "mutation($k: String!, $t: [ID!]!) { importLicenseKeys(input: {text: $k, tagIds: $t}) { imported } }",
                json!({ "k": keys.join("\n"), "t": [tag] }),
            )
            .await;
        assert_eq!(data(&imported)["importLicenseKeys"]["imported"], keys.len());
    }
    let product = app
        .graphql(
            t,
            "mutation($t: ID!, $n: String!) { createProduct(input: {name: $n, keyButtonText: \"Show my serial\", \
             unavailableMessage: \"Your serial is on its way.\", delivery: {mode: TAG, tagId: $t}}) { product { id } } }",
            json!({ "t": tag, "n": format!("Photo Studio {}", &ulid::Ulid::generate().to_string()[20..]) }),
        )
        .await;
    let product = data(&product)["createProduct"]["product"]["id"].clone();
    let external = format!("ORD-{}", ulid::Ulid::generate());
    let order = app
        .graphql(
            t,
            "mutation($x: String!, $e: String!, $n: String!, $p: ID!, $q: Int!) { createOrder(input: {externalId: $x, \
             customer: {email: $e, name: $n}, lines: [{productId: $p, quantity: $q}]}) { order { lines { keys { id } } } } }",
            json!({ "x": external, "e": email, "n": name, "p": product, "q": keys.len().max(1) }),
        )
        .await;
    let ids = data(&order)["createOrder"]["order"]["lines"][0]["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["id"].as_str().expect("id").to_string())
        .collect();
    (external, ids)
}

/// A staff-made sign-in link's path (`/portal/link/…`).
pub(crate) async fn link_for(app: &TestApp, admin: &str, email: &str) -> String {
    let found = app
        .graphql(
            Some(admin),
            "query($s: String!) { customers(search: $s) { edges { node { id } } } }",
            json!({ "s": email }),
        )
        .await;
    let id = data(&found)["customers"]["edges"][0]["node"]["id"].clone();
    let link = app
        .graphql(
            Some(admin),
            "mutation($id: ID!) { createPortalLink(input: {customerId: $id}) { url } }",
            json!({ "id": id }),
        )
        .await;
    let url = data(&link)["createPortalLink"]["url"].as_str().expect("url").to_string();
    assert!(url.starts_with(&app.url("/portal/link/")), "{url}");
    url[app.url("").len()..].to_string()
}

/// An email's text with its quoted-printable soft line breaks undone.
fn decoded(mail: &str) -> String {
    mail.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=")
}

/// The sign-in link in an email.
fn link_in(mail: &str) -> String {
    let text = decoded(mail);
    let at = text.find("/portal/link/").expect("a portal link");
    text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_')).collect()
}

async fn mail_to(smtp: &SmtpServer, to: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mails: Vec<String> =
            smtp.mails().into_iter().filter(|m| m.to.iter().any(|t| t == to)).map(|m| m.data).collect();
        if mails.len() >= count {
            return mails;
        }
        assert!(Instant::now() < deadline, "no mail to {to}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_email_and_a_requested_link_sign_in_once_sqlite() {
    the_order_email_and_a_requested_link_sign_in_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_email_and_a_requested_link_sign_in_once_postgres() {
    the_order_email_and_a_requested_link_sign_in_once(Backend::Postgres).await;
}

async fn the_order_email_and_a_requested_link_sign_in_once(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let Some(app) = app_with_smtp(backend, &smtp).await else { return };
    let admin = app.staff_token(StaffRole::Admin).await;
    let (external, _) = ordered(&app, &admin, "Grace", "grace@buyer.example", &["PORTAL-MAIL-0001"]).await;
    let mail = mail_to(&smtp, "grace@buyer.example", 1).await.remove(0);
    assert!(mail.contains(&format!("Subject: Your licence keys for order {external}")), "{mail}");
    let link = link_in(&mail);
    assert!(!mail.contains("PORTAL-MAIL-0001"), "the key itself is never emailed");

    // Opening the link, as a mail scanner would, spends nothing; its button signs in.
    let mut scanner = PortalClient::new(&app);
    for _ in 0..2 {
        let opened = scanner.get(&link).await;
        assert_eq!(opened.status, 200);
        assert!(opened.body.contains("Sign in and see my keys"), "{}", opened.body);
        assert!(scanner.session().is_none());
    }
    let mut browser = PortalClient::new(&app);
    let followed = browser.follow(&link).await;
    assert_eq!((followed.status, followed.location()), (303, "/portal/"), "the token leaves the address bar");
    let set_cookie: Vec<&str> = followed.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    let session = set_cookie.iter().find(|c| c.starts_with("keysmith_portal=")).expect("a session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax") && session.contains("Path=/portal"),
        "{session}"
    );
    let page = browser.get("/portal/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&format!("Order {external}")) && page.body.contains("Show my serial"), "{}", page.body);
    assert!(page.body.contains("Grace") && page.body.contains("Ready to use") && page.body.contains("Never expires"));
    assert!(!page.body.contains("PORTAL-MAIL-0001"), "the key is shown only when asked for");

    // Single use: the same link again signs nobody in.
    let mut stranger = PortalClient::new(&app);
    let again = stranger.follow(&link).await;
    assert_eq!(again.status, 400);
    assert!(again.body.contains("expired or was already used"), "{}", again.body);
    assert!(stranger.session().is_none());

    // Asking for a link: the same answer for a known and an unknown email.
    let form = stranger.get("/portal/login").await;
    let csrf = form.csrf();
    let known = stranger.post("/portal/login", &[("csrf", &csrf), ("email", "GRACE@buyer.example")]).await;
    let unknown = stranger.post("/portal/login", &[("csrf", &csrf), ("email", "nobody@buyer.example")]).await;
    assert_eq!((known.status, known.text()), (unknown.status, unknown.text()));
    assert!(known.body.contains("If this email belongs to a customer"));
    let mails = mail_to(&smtp, "grace@buyer.example", 2).await;
    assert!(mails[1].contains("Subject: Your sign-in link"), "{}", mails[1]);
    assert!(smtp.mails().iter().all(|m| !m.to.iter().any(|t| t == "nobody@buyer.example")));
    let links = portal_link::Entity::find()
        .filter(portal_link::Column::Purpose.eq("SIGN_IN"))
        .all(app.db())
        .await
        .expect("links");
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].expires_at - links[0].created_at, chrono::Duration::minutes(15));
    // A sign-in with a new link ends the session the browser had.
    let mut earlier = PortalClient::new(&app);
    assert_eq!(earlier.follow(&link_for(&app, &admin, "grace@buyer.example").await).await.status, 303);
    stranger.cookies.insert("keysmith_portal".into(), earlier.session().expect("a session").clone());
    let earlier_token = earlier.session().expect("a session").clone();
    let signed_in = stranger.follow(&link_in(&mails[1])).await;
    assert_eq!(signed_in.status, 303);
    assert_ne!(stranger.session(), Some(&earlier_token));
    let ended = app.graphql(Some(&earlier_token), "{ myOrders { id } }", json!({})).await;
    assert_eq!(error_code(&ended), Some("UNAUTHENTICATED"), "the replaced session ended");
    // A forged POST of a link (no CSRF token) signs no one in and spends nothing.
    let fresh = link_for(&app, &admin, "grace@buyer.example").await;
    let mut victim = PortalClient::new(&app);
    let token = fresh.rsplit('/').next().expect("a token");
    let forged = victim.post("/portal/link", &[("token", token)]).await;
    assert_eq!(forged.status, 403);
    assert!(victim.session().is_none());
    assert_eq!(victim.follow(&fresh).await.status, 303, "the link still works");
    assert_eq!(stranger.get("/portal/").await.status, 200);

    // Signing out ends the session: its token no longer works anywhere.
    let token = stranger.session().expect("a session").clone();
    let page = stranger.get("/portal/").await;
    let out = stranger.post("/portal/logout", &[("csrf", &page.csrf())]).await;
    assert_eq!((out.status, out.location()), (303, "/portal/login?notice=signed-out"));
    let body = app.graphql(Some(&token), "{ myOrders { id } }", json!({})).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body:#}");
    let mut replay = PortalClient::new(&app);
    replay.cookies.insert("keysmith_portal".into(), token);
    assert_eq!(replay.get("/portal/").await.location(), "/portal/login");
}

on_both_databases!(
    pages_escape_everything_and_show_only_the_customers_own,
    posts_without_their_csrf_token_are_refused,
    revealing_an_uploaded_key_marks_it_in_use
);

async fn pages_escape_everything_and_show_only_the_customers_own(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let (_, mine) = ordered(&app, &admin, "<script>alert(1)</script>", "eve@buyer.example", &["PORTAL-ESC-0001"]).await;
    let (_, theirs) = ordered(&app, &admin, "Other", "other@buyer.example", &["PORTAL-OTHER-0001"]).await;
    let mut browser = PortalClient::new(&app);
    browser.follow(&link_for(&app, &admin, "eve@buyer.example").await).await;
    let page = browser.get("/portal/").await;
    let shown_as_text = ["&lt;script&gt;alert(1)&lt;/script&gt;", "&#60;script&#62;alert(1)&#60;/script&#62;"];
    assert!(shown_as_text.iter().any(|t| page.body.contains(t)), "{}", page.body);
    assert!(!page.body.contains("<script>alert"), "escaped");
    for (name, value) in
        [("x-content-type-options", "nosniff"), ("referrer-policy", "no-referrer"), ("cache-control", "no-store")]
    {
        assert_eq!(page.headers.get(name).and_then(|v| v.to_str().ok()), Some(value), "{name}");
    }
    let csp = page.headers.get("content-security-policy").and_then(|v| v.to_str().ok()).expect("a CSP");
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("script-src 'self'")
            && csp.contains("frame-ancestors 'none'")
    );
    assert!(!page.body.contains("PORTAL-OTHER") && !page.body.contains("Other"), "nothing of anyone else's");

    // Another customer's licence reads exactly like one that does not exist.
    let csrf = page.csrf();
    let other = browser.post("/portal/reveal", &[("csrf", &csrf), ("licenses", &theirs[0])]).await;
    let missing = browser.post("/portal/reveal", &[("csrf", &csrf), ("licenses", "01ZZZZZZZZZZZZZZZZZZZZZZZZ")]).await;
    assert_eq!((other.status, other.text()), (missing.status, missing.text()));
    assert_eq!(other.status, 404);
    let offline = browser.post(&format!("/portal/licenses/{}/offline-licence", theirs[0]), &[("csrf", &csrf)]).await;
    assert_eq!(offline.status, 404);
    let key = license_key::Entity::find_by_id(theirs[0].clone()).one(app.db()).await.expect("key").expect("row");
    assert!(key.revealed_at.is_none());
    // Their own offline file downloads with the page's token, and only with it:
    // the file holds the key, so downloading it is the key's reveal.
    let mine_path = format!("/portal/licenses/{}/offline-licence", mine[0]);
    let forged = browser.post(&mine_path, &[("csrf", "forged")]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(!forged.body.contains("PORTAL-ESC-0001"));
    let linked = browser.get(&mine_path).await;
    assert_eq!(linked.status, 405, "no download by a plain link: {}", linked.body);
    let key = license_key::Entity::find_by_id(mine[0].clone()).one(app.db()).await.expect("key").expect("row");
    assert!(key.revealed_at.is_none(), "refused downloads reveal nothing");
    let file = browser.post(&mine_path, &[("csrf", &csrf)]).await;
    assert_eq!(file.status, 200);
    assert!(
        file.headers
            .get("content-disposition")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .starts_with("attachment")
    );
    let content: Value = serde_json::from_str(&file.body).expect("JSON");
    assert_eq!(content["algorithm"], "Ed25519");
}

async fn posts_without_their_csrf_token_are_refused(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let (_, mine) = ordered(&app, &admin, "Mallory's victim", "victim@buyer.example", &["PORTAL-CSRF-0001"]).await;
    let mut browser = PortalClient::new(&app);
    browser.follow(&link_for(&app, &admin, "victim@buyer.example").await).await;
    let page = browser.get("/portal/").await;
    for form in [vec![("licenses", mine[0].as_str())], vec![("csrf", "forged"), ("licenses", mine[0].as_str())]] {
        let refused = browser.post("/portal/reveal", &form).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert!(refused.body.contains("This form is no longer valid"), "{}", refused.body);
        assert!(!refused.body.contains("PORTAL-CSRF-0001"));
    }
    let refused = browser.post("/portal/logout", &[("csrf", "forged")]).await;
    assert_eq!(refused.status, 403);
    assert!(browser.session().is_some(), "still signed in");
    let key = license_key::Entity::find_by_id(mine[0].clone()).one(app.db()).await.expect("key").expect("row");
    assert_eq!((key.status, key.revealed_at), (LicenseStatus::Assigned, None), "nothing changed");
    // With its token the same form works.
    let shown = browser.post("/portal/reveal", &[("csrf", &page.csrf()), ("licenses", &mine[0])]).await;
    assert_eq!(shown.status, 200);
    assert!(shown.body.contains("PORTAL-CSRF-0001"));
}

async fn revealing_an_uploaded_key_marks_it_in_use(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let (_, mine) = ordered(
        &app,
        &admin,
        "Ada",
        "ada@buyer.example",
        &["PORTAL-REVEAL-0001", "PORTAL-REVEAL-0002", "PORTAL-REVEAL-0003"],
    )
    .await;
    let customer = license_key::Entity::find_by_id(mine[0].clone()).one(app.db()).await.expect("key").expect("row");
    let token = app.customer_token(customer.customer_id.as_deref().expect("a customer")).await;
    let reveal = "mutation($id: ID!) { revealLicenseKey(input: {licenseId: $id}) { key status } }";
    let body = app.graphql(Some(&token), reveal, json!({ "id": mine[0] })).await;
    assert_eq!(data(&body)["revealLicenseKey"], json!({ "key": "PORTAL-REVEAL-0001", "status": "ACTIVE" }));
    let audit = app
        .graphql(Some(&admin), "query($id: ID!) { auditEvents(filter: {targetId: $id}) { edges { node { action actorKind keyPrefix } } } }", json!({ "id": mine[0] }))
        .await;
    let actions: Vec<&Value> =
        data(&audit)["auditEvents"]["edges"].as_array().expect("edges").iter().map(|e| &e["node"]).collect();
    assert_eq!(actions[0]["action"], "license.revealed");
    assert_eq!(actions[0]["actorKind"], "customer");
    // Again: no second change.
    let events = |id: String| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let query =
                "query($id: ID!) { auditEvents(filter: {targetId: $id}) { edges { node { action actorKind } } } }";
            let body = app.graphql(Some(&admin), query, json!({ "id": id })).await;
            data(&body)["auditEvents"]["edges"].as_array().expect("edges").len()
        }
    };
    let count = events(mine[0].clone()).await;
    let again = app.graphql(Some(&token), reveal, json!({ "id": mine[0] })).await;
    assert_eq!(data(&again)["revealLicenseKey"]["status"], "ACTIVE");
    assert_eq!(events(mine[0].clone()).await, count, "a second reveal records nothing");
    // Staff see the key without it counting as the customer's use.
    let staff_before = events(mine[1].clone()).await;
    let staff = app.graphql(Some(&admin), reveal, json!({ "id": mine[1] })).await;
    assert_eq!(data(&staff)["revealLicenseKey"], json!({ "key": "PORTAL-REVEAL-0002", "status": "ASSIGNED" }));
    let untouched = license_key::Entity::find_by_id(mine[1].clone()).one(app.db()).await.expect("key").expect("row");
    assert!(untouched.revealed_at.is_none());
    assert_eq!(events(mine[1].clone()).await, staff_before, "a staff reveal is not the key's use");
    // A key past its expiry is shown, and stays expired rather than going into use.
    let mut lapsed: license_key::ActiveModel =
        license_key::Entity::find_by_id(mine[2].clone()).one(app.db()).await.expect("key").expect("row").into();
    lapsed.expires_at = sea_orm::Set(Some(entity::now() - chrono::Duration::days(1)));
    sea_orm::ActiveModelTrait::update(lapsed, app.db()).await.expect("expire it");
    let shown = app.graphql(Some(&token), reveal, json!({ "id": mine[2] })).await;
    assert_eq!(data(&shown)["revealLicenseKey"]["key"], "PORTAL-REVEAL-0003", "{shown:#}");
    let lapsed = license_key::Entity::find_by_id(mine[2].clone()).one(app.db()).await.expect("key").expect("row");
    assert_ne!(lapsed.status, LicenseStatus::Active);
    // Orders list them as they are, for the customer only.
    let orders = app.graphql(Some(&token), "{ myOrders { lines { licenses { status revealed } } } }", json!({})).await;
    assert_eq!(
        data(&orders)["myOrders"][0]["lines"][0]["licenses"],
        json!([
            { "status": "ACTIVE", "revealed": true },
            { "status": "ASSIGNED", "revealed": false },
            { "status": "EXPIRED", "revealed": true }
        ])
    );
    let staff_orders = app.graphql(Some(&admin), "{ myOrders { id } }", json!({})).await;
    assert_eq!(error_code(&staff_orders), Some("FORBIDDEN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_resend_links_and_tell_customers_of_changes_sqlite() {
    staff_resend_links_and_tell_customers_of_changes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_resend_links_and_tell_customers_of_changes_postgres() {
    staff_resend_links_and_tell_customers_of_changes(Backend::Postgres).await;
}

/// Each email's subject line, in the order the server received them.
fn subjects(smtp: &SmtpServer, to: &str) -> Vec<String> {
    smtp.mails()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t == to))
        .filter_map(|m| m.data.lines().find_map(|l| l.strip_prefix("Subject: ").map(str::to_string)))
        .collect()
}

async fn staff_resend_links_and_tell_customers_of_changes(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let Some(app) = app_with_smtp(backend, &smtp).await else { return };
    let admin = app.staff_token(StaffRole::Admin).await;
    let support = app.staff_token(StaffRole::Support).await;
    let t = Some(admin.as_str());

    // An order placed with `emailCustomer: false` sends nothing.
    let product =
        app.graphql(t, "mutation { createProduct(input: {name: \"Quiet\"}) { product { id } } }", json!({})).await;
    let product = data(&product)["createProduct"]["product"]["id"].clone();
    let quiet = app
        .graphql(
            t,
            "mutation($p: ID!) { createOrder(input: {externalId: \"quiet-1\", customer: {email: \"quiet@buyer.example\"}, \
             lines: [{productId: $p, quantity: 1}], emailCustomer: false}) { order { id } } }",
            json!({ "p": product }),
        )
        .await;
    assert!(quiet.get("errors").is_none(), "{quiet:#}");

    // Support resends a link by email; the emailed link signs in.
    let (external, mine) = ordered(&app, &admin, "Lin", "lin@buyer.example", &["PORTAL-NOTIFY-0001"]).await;
    mail_to(&smtp, "lin@buyer.example", 1).await;
    let found = app
        .graphql(
            t,
            "query($id: ID!) { licenseKey(id: $id) { customer { id } tags { id } order { lines { id } } } }",
            json!({ "id": mine[0] }),
        )
        .await;
    let licence = &data(&found)["licenseKey"];
    let customer = licence["customer"]["id"].clone();
    let resend = "mutation($id: ID!) { createPortalLink(input: {customerId: $id, sendEmail: true}) { url } }";
    // The request names another Host: staff may see it, the customer's email never does.
    let sent: Value = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&support)
        .header("host", "licences.attacker.example")
        .json(&json!({ "query": resend, "variables": { "id": customer } }))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    let url = data(&sent)["createPortalLink"]["url"].as_str().expect("a link").to_string();
    let mails = mail_to(&smtp, "lin@buyer.example", 2).await;
    let emailed = link_in(&mails[1]);
    assert!(url.ends_with(&emailed), "the email carries the link the answer gave: {url} / {emailed}");
    assert!(!mails[1].contains("attacker"), "{}", mails[1]);
    assert!(mails[1].contains("Subject: Your sign-in link"), "{}", mails[1]);
    let mut browser = PortalClient::new(&app);
    assert_eq!(browser.follow(&emailed).await.location(), "/portal/");

    // A key reassigned with notifyCustomer and a refund with it each send a
    // note with a fresh link; without it, nothing.
    let more = app
        .graphql(
            t,
            "mutation($t: [ID!]!) { importLicenseKeys(input: {text: \"PORTAL-NOTIFY-0002\\nPORTAL-NOTIFY-0003\", tagIds: $t}) { imported } }",
            json!({ "t": [licence["tags"][0]["id"]] }),
        )
        .await;
    assert_eq!(data(&more)["importLicenseKeys"]["imported"], 2, "{more:#}");
    let reassign = "mutation($l: ID!, $k: ID!, $n: Boolean!) { reassignOrderKey(input: {lineId: $l, licenseId: $k, \
                    notifyCustomer: $n}) { license { id key } } }";
    let line = licence["order"]["lines"][0]["id"].clone();
    let quietly = app.graphql(t, reassign, json!({ "l": line, "k": mine[0], "n": false })).await;
    let second = data(&quietly)["reassignOrderKey"]["license"]["id"].clone();
    let loudly = app.graphql(t, reassign, json!({ "l": line, "k": second, "n": true })).await;
    assert!(loudly.get("errors").is_none(), "{loudly:#}");
    let mails = mail_to(&smtp, "lin@buyer.example", 3).await;
    assert!(mails[2].contains(&format!("Subject: A new licence key for your order {external}")), "{}", mails[2]);
    assert!(!mails[2].contains("PORTAL-NOTIFY-000"), "no key in an email");
    let listed = app
        .graphql(
            t,
            "query($s: String!) { orders(filter: {search: $s}) { edges { node { id } } } }",
            json!({ "s": external }),
        )
        .await;
    let order_id = data(&listed)["orders"]["edges"][0]["node"]["id"].clone();
    let refunded = app
        .graphql(
            t,
            "mutation($id: ID!) { refundOrder(input: {id: $id, notifyCustomer: true}) { order { status } } }",
            json!({ "id": order_id }),
        )
        .await;
    assert_eq!(data(&refunded)["refundOrder"]["order"]["status"], "REFUNDED", "{refunded:#}");
    let mails = mail_to(&smtp, "lin@buyer.example", 4).await;
    assert!(mails[3].contains(&format!("Subject: Your order {external} was refunded")), "{}", mails[3]);
    assert!(decoded(&mails[3]).contains("Its licence keys stay yours."), "{}", mails[3]);
    let refreshed = PortalClient::new(&app).follow(&link_in(&mails[3])).await;
    assert_eq!(refreshed.location(), "/portal/", "the note's link signs in");

    // Nothing more went out: not for the quiet order, not for the quiet reassignment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(subjects(&smtp, "lin@buyer.example").len(), 4, "{:?}", subjects(&smtp, "lin@buyer.example"));
    assert!(subjects(&smtp, "quiet@buyer.example").is_empty());
}
