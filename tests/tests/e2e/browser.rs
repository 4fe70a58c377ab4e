//! The customer portal in a real headless Chromium, driven over WebDriver
//! (chromedriver): sign in by link (opening it, then its button), the key dialog and its Copy button, a
//! forged cross-origin POST, deactivating a device, signing out. Screenshots
//! of the pages land in `target/portal-screenshots/`.

use crate::portal::{link_for, ordered};
use entity::activation;
use entity::user::StaffRole;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use keysmith_tests::{TestApp, data, error_code, on_both_databases, tool};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Chromium under chromedriver, both ended when this is dropped.
pub(crate) struct Browser {
    pub(crate) client: Client,
    driver: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    /// Asks chromedriver to shut down, which quits its browsers, and waits
    /// for it to end; killing chromedriver alone leaves every Chromium it
    /// started running. Killed when it cannot be asked.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let asked = std::net::TcpStream::connect(("127.0.0.1", self.port)).and_then(|mut stream| {
            let request =
                format!("GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", self.port);
            stream.write_all(request.as_bytes())?;
            // Its answer comes once the browsers are quitting.
            stream.read(&mut [0u8; 512])
        });
        if asked.is_err() {
            let _ = self.driver.kill();
        }
        let _ = self.driver.wait();
    }
}

/// WebDriver's "Set Permission" (chromedriver supports it): lets the page
/// read the clipboard back, so the test sees what Copy put there.
#[derive(Debug)]
struct SetPermission(&'static str);

impl WebDriverCompatibleCommand for SetPermission {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/permissions", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (reqwest::Method, Option<String>) {
        let body = json!({ "descriptor": { "name": self.0 }, "state": "granted" });
        (reqwest::Method::POST, Some(body.to_string()))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port()
}

/// Starts chromedriver and a headless Chromium that reaches nothing but
/// 127.0.0.1; `None` (loudly) when they are not installed outside CI.
pub(crate) async fn browser() -> Option<Browser> {
    let driver_path = tool("chromedriver")?;
    let chromium = tool("chromium")?;
    let port = free_port();
    let driver = Command::new(driver_path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = tempfile::tempdir().expect("a profile directory");
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,900",
        // No network but the machine itself: a name resolves to nothing and
        // any other address goes to a dead proxy, so a page that needs a file
        // from elsewhere fails here as it would on an offline machine.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=127.0.0.1",
        &format!("--user-data-dir={}", profile.path().display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), json!({ "binary": chromium, "args": args }));
    let webdriver = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        let plain = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(plain).capabilities(caps.clone()).connect(&webdriver).await {
            Ok(client) => break client,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromedriver did not start a browser: {e}"),
        }
    };
    Some(Browser { client, driver, port, _profile: profile })
}

/// Where screenshots go: `target/portal-screenshots/` of the workspace.
pub(crate) fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("portal-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    dir
}

pub(crate) async fn screenshot(client: &Client, app: &TestApp, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let backend = format!("{:?}", app.backend).to_lowercase();
    std::fs::write(screenshot_dir().join(format!("{name}-{backend}.png")), png).expect("save the screenshot");
}

pub(crate) async fn text_of(client: &Client, css: &str) -> String {
    client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.expect("text")
}

/// Waits until the page's `<main>` says `needle`.
pub(crate) async fn wait_for_text(client: &Client, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = match client.find(Locator::Css("main")).await {
            Ok(main) => main.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "the page never said {needle:?}; it says:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A page on another origin (same site: 127.0.0.1, another port) that posts
/// a form to the portal without a CSRF token as soon as it loads.
async fn forging_site(target: &str, activation_id: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let html = format!(
        "<!doctype html><title>Win a prize</title><form id=f method=post action=\"{target}\">\
         <input type=hidden name=activation value=\"{activation_id}\"></form>\
         <script>document.getElementById('f').submit()</script>"
    );
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                html.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    format!("http://{address}/")
}

async fn activate(app: &TestApp, key: &str, fingerprint: &str, name: &str) -> Value {
    let body = app
        .graphql(
            None,
            "mutation($k: String!, $f: String!, $n: String!) { activateLicense(input: {key: $k, fingerprint: $f, \
             name: $n, platform: \"Windows 11\"}) { code } }",
            json!({ "k": key, "f": fingerprint, "n": name }),
        )
        .await;
    assert_eq!(data(&body)["activateLicense"]["code"], "VALID", "{body:#}");
    body
}

async fn live_devices(app: &TestApp) -> Vec<String> {
    let mut names: Vec<String> = activation::Entity::find()
        .filter(activation::Column::DeactivatedAt.is_null())
        .all(app.db())
        .await
        .expect("activations")
        .into_iter()
        .filter_map(|a| a.name)
        .collect();
    names.sort();
    names
}

on_both_databases!(
    a_customer_signs_in_copies_a_key_ends_a_device_and_signs_out,
    staff_sign_in_find_a_licence_revoke_it_and_sign_out,
);

async fn a_customer_signs_in_copies_a_key_ends_a_device_and_signs_out(app: TestApp) {
    let Some(browser) = browser().await else { return };
    let c = &browser.client;
    let admin = app.staff_token(StaffRole::Admin).await;
    let keys = ["STUDIO-7Q4K-2M9X-BETA", "STUDIO-8R5L-3N0Y-GAMA"];
    let (external, licences) = ordered(&app, &admin, "Grace Hopper", "grace@buyer.example", &keys).await;
    let limit = app
        .graphql(
            Some(&admin),
            "mutation($id: ID!) { updateLicense(input: {id: $id, activationLimit: 2}) { license { activationLimit } } }",
            json!({ "id": licences[0] }),
        )
        .await;
    assert_eq!(data(&limit)["updateLicense"]["license"]["activationLimit"], 2, "{limit:#}");
    activate(&app, keys[0], "device-laptop", "Studio laptop").await;
    activate(&app, keys[0], "device-desktop", "Office desktop").await;
    // A second order whose pool is empty: the product's unavailable message shows.
    let (waiting, _) = ordered(&app, &admin, "Grace Hopper", "grace@buyer.example", &[]).await;

    // Signing in by link leaves the token out of the address bar.
    let link = link_for(&app, &admin, "grace@buyer.example").await;
    c.goto(&app.url(&link)).await.expect("open the link");
    wait_for_text(c, "nothing happens until you press the button").await;
    screenshot(c, &app, "sign-in-link").await;
    c.find(Locator::XPath("//button[normalize-space()='Sign in and see my keys']"))
        .await
        .expect("the sign-in button")
        .click()
        .await
        .expect("click");
    let page = wait_for_text(c, &format!("Order {external}")).await;
    assert_eq!(c.current_url().await.expect("url").path(), "/portal/");
    assert!(page.contains("Active on 2 of 2 devices") && page.contains("Studio laptop (Windows 11)"), "{page}");
    assert!(page.contains(&format!("Order {waiting}")) && page.contains("Your serial is on its way."), "{page}");
    assert!(!page.contains(keys[0]) && !page.contains(keys[1]), "keys show only when asked for");
    screenshot(c, &app, "orders").await;
    c.set_window_size(390, 844).await.expect("a phone's window");
    screenshot(c, &app, "orders-phone").await;
    c.set_window_size(1200, 900).await.expect("a desktop window");

    // A forged POST from another origin carries the session cookie but no
    // CSRF token: refused, and the device stays.
    let laptop = activation::Entity::find()
        .filter(activation::Column::Name.eq("Studio laptop"))
        .one(app.db())
        .await
        .expect("find")
        .expect("the laptop's activation");
    let evil = forging_site(&app.url("/portal/devices/deactivate"), &laptop.id).await;
    c.goto(&evil).await.expect("open the forging page");
    let refused = wait_for_text(c, "This form is no longer valid").await;
    assert!(!refused.contains("deactivated"), "{refused}");
    assert_eq!(live_devices(&app).await, ["Office desktop", "Studio laptop"], "nothing changed");
    c.goto(&app.url("/portal/")).await.expect("back to the portal");
    wait_for_text(c, &format!("Order {external}")).await;

    // The key button opens the dialog with both keys in large type.
    c.find(Locator::XPath("//button[normalize-space()='Show my serial']"))
        .await
        .expect("the key button")
        .click()
        .await
        .expect("click");
    let dialog = wait_for_text(c, keys[1]).await;
    assert!(dialog.contains(keys[0]), "{dialog}");
    let title = text_of(c, "dialog h2").await;
    assert!(title.contains(&external) && title.contains("Photo Studio"), "{title}");
    let size = c.find(Locator::Css("code.key")).await.expect("a key").css_value("font-size").await.expect("size");
    assert!(size.trim_end_matches("px").parse::<f64>().expect("px") >= 24.0, "large type: {size}");
    screenshot(c, &app, "key-dialog").await;

    // Copy puts the key on the clipboard.
    c.issue_cmd(SetPermission("clipboard-read")).await.expect("clipboard permission");
    c.issue_cmd(SetPermission("clipboard-write")).await.expect("clipboard permission");
    let copy = c.find(Locator::Css("button[data-copy='key-1']")).await.expect("a Copy button");
    copy.click().await.expect("press Copy");
    let deadline = Instant::now() + Duration::from_secs(10);
    while copy.text().await.expect("text") != "Copied" {
        assert!(Instant::now() < deadline, "Copy never said Copied: {}", copy.text().await.unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pasted = c
        .execute_async("navigator.clipboard.readText().then(arguments[0], e => arguments[0]('error: ' + e))", vec![])
        .await
        .expect("read the clipboard");
    assert_eq!(pasted, json!(keys[0]), "the clipboard holds the first key");

    // Deactivating a device frees its slot.
    c.goto(&app.url("/portal/")).await.expect("close the dialog");
    wait_for_text(c, "Studio laptop").await;
    c.find(Locator::Css("button[aria-label='Deactivate Studio laptop']"))
        .await
        .expect("the laptop's Deactivate button")
        .click()
        .await
        .expect("click");
    let after = wait_for_text(c, "The device was deactivated").await;
    assert!(!after.contains("Studio laptop") && after.contains("Office desktop"), "{after}");
    assert!(after.contains("Active on 1 of 2 devices"), "{after}");
    assert_eq!(live_devices(&app).await, ["Office desktop"]);
    screenshot(c, &app, "device-deactivated").await;

    // Signing out ends the session itself, not only the browser's cookie;
    // the orders page then sends the browser to sign in.
    let session = c.get_named_cookie("keysmith_portal").await.expect("the session cookie").value().to_string();
    c.find(Locator::XPath("//button[normalize-space()='Sign out']"))
        .await
        .expect("Sign out")
        .click()
        .await
        .expect("click");
    wait_for_text(c, "You are signed out.").await;
    let ended = app.graphql(Some(&session), "{ myOrders { id } }", json!({})).await;
    assert_eq!(error_code(&ended), Some("UNAUTHENTICATED"), "{ended:#}");
    screenshot(c, &app, "signed-out").await;
    c.goto(&app.url("/portal/")).await.expect("the orders page");
    wait_for_text(c, "Email me a sign-in link").await;
    assert_eq!(c.current_url().await.expect("url").path(), "/portal/login");
    screenshot(c, &app, "login").await;
}

/// Waits until the element `css` exists and its text says `needle`.
pub(crate) async fn wait_for_in(client: &Client, css: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = match client.find(Locator::Css(css)).await {
            Ok(found) => found.text().await.ok(),
            Err(_) => None,
        };
        if let Some(text) = text.as_deref().filter(|text| text.contains(needle)) {
            return text.to_string();
        }
        assert!(Instant::now() < deadline, "{css} never said {needle:?}; it says:\n{text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The admin portal in Chromium: sign in, find a licence by its customer's
/// email as you type, `/` and Esc, filters and sort in the address surviving a
/// reload, revoke through the confirmation, the staging banner, sign out and
/// the old cookie refused. Screenshots at desktop and phone widths.
async fn staff_sign_in_find_a_licence_revoke_it_and_sign_out(app: TestApp) {
    let Some(browser) = browser().await else { return };
    let c = &browser.client;
    let admin = app.staff_token(StaffRole::Admin).await;
    let keys = ["ADMIN-UI-7Q4K-ALFA", "ADMIN-UI-8R5L-BRAV"];
    ordered(&app, &admin, "Ada Lovelace", "ada@buyer.example", &keys[..1]).await;
    ordered(&app, &admin, "Alan Turing", "alan@buyer.example", &keys[1..]).await;
    let manager = app.staff_token(StaffRole::Manager).await;
    let me = app.graphql(Some(&manager), "{ me { user { email } } }", json!({})).await;
    let email = data(&me)["me"]["user"]["email"].as_str().expect("email").to_string();

    c.goto(&app.url("/admin/")).await.expect("open the admin portal");
    wait_for_text(c, "Keysmith admin").await;
    assert_eq!(c.current_url().await.expect("url").path(), "/admin/login");
    screenshot(c, &app, "admin-login").await;
    c.set_window_size(390, 844).await.expect("a phone's window");
    screenshot(c, &app, "admin-login-phone").await;
    c.set_window_size(1200, 900).await.expect("a desktop window");
    c.find(Locator::Id("email")).await.expect("email").send_keys(&email).await.expect("type");
    c.find(Locator::Id("password"))
        .await
        .expect("password")
        .send_keys(keysmith_tests::app::TEST_PASSWORD)
        .await
        .expect("type");
    c.find(Locator::Css("form.card button[type=submit]")).await.expect("sign in").click().await.expect("click");
    wait_for_text(c, "working in production").await;
    screenshot(c, &app, "admin-home").await;
    c.set_window_size(390, 844).await.expect("a phone's window");
    screenshot(c, &app, "admin-home-phone").await;
    c.set_window_size(1200, 900).await.expect("a desktop window");

    c.goto(&app.url("/admin/licenses")).await.expect("the licences");
    wait_for_in(c, "#results", "2 licences").await;
    screenshot(c, &app, "admin-licenses").await;
    c.set_window_size(390, 844).await.expect("a phone's window");
    screenshot(c, &app, "admin-licenses-phone").await;
    c.set_window_size(1200, 900).await.expect("a desktop window");

    // "/" goes to the search; typing finds the licence by its customer's email.
    c.find(Locator::Css("body")).await.expect("body").send_keys("/").await.expect("press /");
    let focused = c.active_element().await.expect("focus");
    assert_eq!(focused.attr("id").await.expect("id").as_deref(), Some("q"));
    focused.send_keys("ada@buyer").await.expect("type");
    let found = wait_for_in(c, "#results", "1 licence").await;
    assert!(found.contains(keys[0]) && !found.contains(keys[1]), "{found}");
    assert!(c.current_url().await.expect("url").query().unwrap_or_default().contains("q=ada"), "the address follows");

    // A filter and a sort in the address: a reload shows the same rows.
    let view = "/admin/licenses?status=ASSIGNED&sort=KEY&dir=desc";
    c.goto(&app.url(view)).await.expect("a view");
    let first = wait_for_in(c, "#results", "2 licences").await;
    c.refresh().await.expect("reload");
    let again = wait_for_in(c, "#results", "2 licences").await;
    assert_eq!(first, again);
    assert!(first.find(keys[1]) < first.find(keys[0]), "sorted by key, descending");
    // The product filter joins them: one product, one status, a sort.
    let product = app
        .graphql(
            Some(&admin),
            "query($s: String) { licenseKeys(filter: {search: $s}) { edges { node { product { id } } } } }",
            json!({ "s": keys[1] }),
        )
        .await;
    let product =
        data(&product)["licenseKeys"]["edges"][0]["node"]["product"]["id"].as_str().expect("a product").to_string();
    c.goto(&app.url(&format!("/admin/licenses?product={product}&status=ASSIGNED&sort=EXPIRES_AT&dir=asc")))
        .await
        .expect("a combined view");
    let combined = wait_for_in(c, "#results", "1 licence").await;
    c.refresh().await.expect("reload");
    assert_eq!(wait_for_in(c, "#results", "1 licence").await, combined);
    assert!(combined.contains(keys[1]) && !combined.contains(keys[0]), "{combined}");
    let chosen = c.find(Locator::Css("#product option[selected]")).await.expect("the product stays chosen");
    assert_eq!(chosen.attr("value").await.expect("value").as_deref(), Some(product.as_str()));
    c.goto(&app.url(view)).await.expect("a view");
    wait_for_in(c, "#results", "2 licences").await;

    // The actions menu opens and Esc closes it.
    let summary = c.find(Locator::Css(&format!("summary[aria-label='Actions for {}']", keys[0]))).await.expect("menu");
    summary.click().await.expect("open");
    let revoke = c.find(Locator::Css("details[open] a.danger")).await.expect("an open menu");
    c.find(Locator::Css("body")).await.expect("body").send_keys("\u{e00c}").await.expect("Esc");
    assert!(c.find(Locator::Css("details[open]")).await.is_err(), "Esc closed the menu");
    summary.click().await.expect("open again");
    let revoke_href = revoke.attr("href").await.expect("href").unwrap_or_default();
    assert!(revoke_href.contains("/confirm/"), "{revoke_href}");
    let open_revoke = async || {
        c.find(Locator::XPath("//details[@open]//a[normalize-space()='Revoke']"))
            .await
            .expect("Revoke")
            .click()
            .await
            .expect("click");
        wait_for_in(c, "dialog[open]", "Revoking is permanent").await;
    };
    // The confirmation opens as a dialog over the list; Esc closes it and nothing happens.
    open_revoke().await;
    screenshot(c, &app, "admin-confirm-revoke-dialog").await;
    c.find(Locator::Css("body")).await.expect("body").send_keys("\u{e00c}").await.expect("Esc");
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("body:not(:has(dialog))"))
        .await
        .expect("Esc closed the dialog");
    summary.click().await.expect("open the menu again");
    open_revoke().await;
    c.find(Locator::Css("dialog form button.danger")).await.expect("confirm").click().await.expect("click");
    wait_for_text(c, "Licence revoked").await;
    assert_eq!(c.current_url().await.expect("url").path(), "/admin/licenses");
    // The same confirmation as a page of its own, as it opens without the script.
    c.goto(&app.url(&revoke_href)).await.expect("the confirmation page");
    wait_for_text(c, "Revoking is permanent").await;
    screenshot(c, &app, "admin-confirm-revoke").await;
    c.set_window_size(390, 844).await.expect("a phone's window");
    screenshot(c, &app, "admin-confirm-revoke-phone").await;
    c.set_window_size(1200, 900).await.expect("a desktop window");

    // The pools at a glance.
    c.goto(&app.url("/admin/keys")).await.expect("the tags overview");
    wait_for_text(c, "no tag").await;
    screenshot(c, &app, "admin-keys").await;
    c.set_window_size(390, 844).await.expect("a phone's window");
    screenshot(c, &app, "admin-keys-phone").await;
    c.set_window_size(1200, 900).await.expect("a desktop window");
    c.goto(&app.url("/admin/licenses")).await.expect("the licences");
    wait_for_in(c, "#results", "2 licences").await;

    // Staging is one click away and unmistakable.
    c.find(Locator::XPath("//button[normalize-space()='Switch to staging']"))
        .await
        .expect("switch")
        .click()
        .await
        .expect("click");
    wait_for_in(c, ".env-banner", "Staging").await;
    screenshot(c, &app, "admin-licenses-staging").await;
    c.set_window_size(390, 844).await.expect("a phone's window");
    screenshot(c, &app, "admin-licenses-staging-phone").await;
    c.set_window_size(1200, 900).await.expect("a desktop window");

    // Signing out ends the session: its cookie no longer works.
    let cookie = c.get_named_cookie("keysmith_admin").await.expect("the session cookie").value().to_string();
    c.find(Locator::XPath("//button[normalize-space()='Sign out']"))
        .await
        .expect("sign out")
        .click()
        .await
        .expect("click");
    wait_for_text(c, "You are signed out.").await;
    let replayed = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(app.url("/admin/licenses"))
        .header("Cookie", format!("keysmith_admin={cookie}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(replayed.status(), 303);
}
