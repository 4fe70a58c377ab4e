//! GraphiQL as Keysmith serves it: its files are Keysmith's own (hashed
//! names, a year's immutable caching, gzip when asked), and the IDE works in
//! a headless Chromium that can reach nothing but Keysmith — the schema's
//! docs open once a staff token is pasted in the headers pane, and a query
//! runs — with nothing refused by the page's Content-Security-Policy.

use crate::browser::{browser, screenshot, wait_for_in};
use entity::user::StaffRole;
use fantoccini::{Client, Locator};
use keysmith_tests::{TestApp, data, on_both_databases, until};
use serde_json::json;

on_both_databases!(graphiql_files_are_keysmiths_own_and_cached_for_good, graphiql_works_with_no_network_but_keysmith);

/// The addresses of the page's scripts and stylesheets.
fn assets_of(html: &str) -> Vec<String> {
    html.split(['"'])
        .filter(|part| part.starts_with("/graphiql/") && (part.ends_with(".js") || part.ends_with(".css")))
        .map(str::to_string)
        .collect()
}

async fn graphiql_files_are_keysmiths_own_and_cached_for_good(app: TestApp) {
    let page = app.http.get(app.url("/graphql")).header("Accept", "text/html").send().await.expect("the page");
    let policy = page.headers()["content-security-policy"].to_str().expect("policy").to_string();
    for rule in ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"] {
        assert!(policy.contains(rule), "{rule} in {policy}");
    }
    assert!(
        !policy.contains("unsafe-inline") && !policy.contains("unsafe-eval") && !policy.contains("http"),
        "{policy}"
    );
    let html = page.text().await.expect("html");
    assert!(!html.contains("http://") && !html.contains("https://"), "nothing from elsewhere:\n{html}");
    assert!(!html.contains("<script>"), "no inline script:\n{html}");
    let assets = assets_of(&html);
    assert_eq!(assets.len(), 6, "React, ReactDOM, GraphiQL's script and stylesheet, Keysmith's two: {assets:?}");

    for path in &assets {
        let hash = path.rsplit('.').nth(1).expect("a hash in the name");
        assert!(hash.len() == 10 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{path}");
        let zipped = app.http.get(app.url(path)).header("Accept-Encoding", "gzip").send().await.expect("file");
        assert_eq!(zipped.status(), 200, "{path}");
        assert_eq!(zipped.headers()["cache-control"], "public, max-age=31536000, immutable", "{path}");
        assert_eq!(zipped.headers()["content-encoding"], "gzip", "{path}");
        let zipped_size = zipped.bytes().await.expect("bytes").len();
        let plain = app.http.get(app.url(path)).send().await.expect("file");
        assert!(plain.headers().get("content-encoding").is_none(), "{path}");
        let kind = plain.headers()["content-type"].to_str().expect("type").to_string();
        assert!(kind.starts_with(if path.ends_with(".js") { "text/javascript" } else { "text/css" }), "{kind}");
        let plain = plain.bytes().await.expect("bytes");
        assert!(zipped_size < plain.len(), "{path}: gzip {zipped_size} of {}", plain.len());
        if path.contains("/react") {
            assert!(!String::from_utf8_lossy(&plain).contains("development"), "{path} is a production build");
        }
    }
    let licences = app.http.get(app.url("/graphiql/licences.txt")).send().await.expect("licences");
    let licences = licences.text().await.expect("text");
    assert!(licences.contains("GraphQL Contributors") && licences.contains("Facebook, Inc."), "{licences}");
    let unknown = app.http.get(app.url("/graphiql/graphiql.0000000000.js")).send().await.expect("answer");
    assert_eq!(unknown.status(), 404, "an old name is gone, not served something else");
}

/// Types `text` into the CodeMirror editor inside `css`, replacing what it held.
async fn type_into(c: &Client, css: &str, text: &str) {
    c.find(Locator::Css(&format!("{css} .CodeMirror")))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .expect("focus the editor");
    let editor = c.active_element().await.expect("the editor's input");
    editor.send_keys("\u{e009}a").await.expect("select all");
    editor.send_keys("\u{e017}").await.expect("delete");
    editor.send_keys(text).await.expect("type");
}

async fn graphiql_works_with_no_network_but_keysmith(app: TestApp) {
    let Some(browser) = browser().await else { return };
    let c = &browser.client;
    let admin = app.staff_token(StaffRole::Admin).await;
    let me = app.graphql(Some(&admin), "{ me { user { email } } }", json!({})).await;
    let email = data(&me)["me"]["user"]["email"].as_str().expect("email").to_string();

    c.goto(&app.url("/graphql")).await.expect("GraphiQL");
    wait_for_in(c, ".graphiql-container", "").await;
    screenshot(c, &app, "graphiql-loaded").await;

    // The staff token in the headers pane, then the schema fetched with it.
    c.find(Locator::XPath("//button[normalize-space()='Headers']"))
        .await
        .expect("the headers tab")
        .click()
        .await
        .expect("open");
    let headers = json!({ "Authorization": format!("Bearer {admin}") }).to_string();
    type_into(c, ".graphiql-editor-tool .graphiql-editor:not(.hidden)", &headers).await;
    c.find(Locator::Css("button[aria-label='Show Documentation Explorer']"))
        .await
        .expect("the docs button")
        .click()
        .await
        .expect("open the docs");
    screenshot(c, &app, "graphiql-headers").await;
    // GraphiQL takes the headers pane's text in after a pause in typing:
    // fetch the schema again until the docs show it (fetched with the token).
    until("the docs to show the schema fetched with the token", || async {
        c.find(Locator::Css("button[aria-label='Re-fetch GraphQL schema']"))
            .await
            .expect("the re-fetch button")
            .click()
            .await
            .expect("re-fetch");
        let docs = c.find(Locator::Css(".graphiql-doc-explorer")).await.ok()?;
        docs.text().await.ok().filter(|text| text.contains("Root Types"))
    })
    .await;
    c.find(Locator::XPath("//*[contains(@class,'graphiql-doc-explorer')]//a[normalize-space()='Query']"))
        .await
        .expect("the Query type")
        .click()
        .await
        .expect("open Query");
    wait_for_in(c, ".graphiql-doc-explorer", "licenseKeys").await;
    screenshot(c, &app, "graphiql-docs").await;

    // A query runs with the pasted token.
    type_into(c, ".graphiql-query-editor", "{ me { user { email role } } }").await;
    c.find(Locator::Css("button.graphiql-execute-button")).await.expect("run").click().await.expect("run");
    let result = wait_for_in(c, ".graphiql-response", &email).await;
    assert!(result.contains("ADMIN"), "{result}");
    screenshot(c, &app, "graphiql-result").await;

    let refused = c
        .execute("return document.documentElement.getAttribute('data-csp-refused')", vec![])
        .await
        .expect("the page's record");
    assert_eq!(refused, serde_json::Value::Null, "nothing refused by the page's policy");
}
