//! The admin portal's keys area over HTTP: the tags overview with each pool's
//! figures and bar, the system tags marked, sorted and searched from the
//! address; a tag's keys found by any part of the key, filtered by status and
//! paged; a tag that does not exist answered with a page that says so.

use crate::pools::create_tag;
use crate::portal::{Page, PortalClient};
use entity::user::StaffRole;
use keysmith_tests::app::{TEST_PASSWORD, seed};
use keysmith_tests::{TestApp, data, on_both_databases};
use serde_json::json;

on_both_databases!(
    the_tags_overview_shows_each_pool_with_its_figures_sorted_and_searched,
    a_tags_keys_are_searched_by_any_part_filtered_by_status_and_paged,
);

/// A staff account of `role`; its email (as in `admin.rs`).
async fn staff(app: &TestApp, role: StaffRole) -> String {
    let token = app.staff_token(role).await;
    let me = app.graphql(Some(&token), "{ me { user { email } } }", json!({})).await;
    data(&me)["me"]["user"]["email"].as_str().expect("email").to_string()
}

/// A browser signed in to the admin portal as a new staff member of `role`.
async fn signed_in(app: &TestApp, role: StaffRole) -> PortalClient {
    let email = staff(app, role).await;
    let mut browser = PortalClient::new(app);
    let form = browser.get("/admin/login").await;
    assert_eq!(form.status, 200);
    let csrf = form.csrf();
    let signed = browser.post("/admin/login", &[("csrf", &csrf), ("email", &email), ("password", TEST_PASSWORD)]).await;
    assert_eq!((signed.status, signed.location()), (303, "/admin/"), "{}", signed.body);
    browser
}

/// Imports `keys` as pasted text into the tag `tag_id` (no tag when `None`).
async fn import(app: &TestApp, token: &str, keys: &[&str], tag_id: Option<&str>) {
    let body = app
        .graphql(
            Some(token),
            "mutation($k: String!, $t: [ID!]!) { importLicenseKeys(input: {text: $k, tagIds: $t}) { committed imported } }",
            json!({ "k": keys.join("\n"), "t": tag_id.into_iter().collect::<Vec<_>>() }),
        )
        .await;
    assert_eq!(data(&body)["importLicenseKeys"], json!({ "committed": true, "imported": keys.len() }));
}

/// The id of the key `key`, found through the API.
async fn key_id(app: &TestApp, token: &str, key: &str) -> String {
    let body = app
        .graphql(
            Some(token),
            "query($s: String) { licenseKeys(filter: {search: $s}) { edges { node { id key } } } }",
            json!({ "s": key }),
        )
        .await;
    let edges = data(&body)["licenseKeys"]["edges"].as_array().expect("edges");
    let node = &edges.iter().find(|e| e["node"]["key"] == key).expect("the key")["node"];
    node["id"].as_str().expect("an id").to_string()
}

fn tag_link(id: &str) -> String {
    format!("href=\"/admin/keys/tags/{id}\"")
}

/// The table row holding `marker`.
fn row<'a>(page: &'a Page, marker: &str) -> &'a str {
    page.body.split("<tr").find(|r| r.contains(marker)).unwrap_or_else(|| panic!("no row with {marker}: {}", page.body))
}

/// The overview's figures for the tag `id`, in its columns' order: total,
/// remaining, assigned, used, used share.
fn figures(page: &Page, id: &str) -> Vec<String> {
    row(page, &tag_link(id))
        .split("<td class=\"num\">")
        .skip(1)
        .map(|cell| cell.split('<').next().unwrap_or_default().to_string())
        .collect()
}

/// Which of `markers` the page holds, in the page's order.
fn in_order(page: &Page, markers: &[String]) -> Vec<String> {
    let mut found: Vec<(usize, String)> =
        markers.iter().filter_map(|m| page.body.find(m.as_str()).map(|at| (at, m.clone()))).collect();
    found.sort();
    found.into_iter().map(|(_, m)| m).collect()
}

/// The tags the overview lists, by id, in its order.
fn tags_listed(page: &Page, ids: &[&str]) -> Vec<String> {
    let links: Vec<String> = ids.iter().map(|id| tag_link(id)).collect();
    let shown = in_order(page, &links);
    shown.iter().map(|link| ids[links.iter().position(|l| l == link).expect("a link")].to_string()).collect()
}

/// The keys a tag's page lists, in its order.
fn keys_listed(page: &Page, keys: &[&str]) -> Vec<String> {
    let codes: Vec<String> = keys.iter().map(|k| format!("<code>{k}</code>")).collect();
    in_order(page, &codes).into_iter().map(|c| c["<code>".len()..c.len() - "</code>".len()].to_string()).collect()
}

/// The address a page's "Previous" (`prev`) or "Next" (`next`) link goes to.
fn pager_link(page: &Page, rel: &str) -> Option<String> {
    page.body.split("<a href=\"").find_map(|chunk| {
        let (href, rest) = chunk.split_once('"')?;
        rest.starts_with(&format!(" rel=\"{rel}\"")).then(|| href.replace("&#38;", "&").replace("&amp;", "&"))
    })
}

async fn the_tags_overview_shows_each_pool_with_its_figures_sorted_and_searched(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let pro = create_tag(&app, &admin, "pro").await;
    let lite = create_tag(&app, &admin, "lite").await;
    let empty = create_tag(&app, &admin, "empty").await;
    let pro_keys = ["PRO-AAAA-0001", "PRO-AAAA-0002", "PRO-AAAA-0003", "PRO-AAAA-0004", "PRO-AAAA-0005"];
    import(&app, &admin, &pro_keys, Some(pro.as_str())).await;
    import(&app, &admin, &["LITE-BBBB-0001", "LITE-BBBB-0002"], Some(lite.as_str())).await;
    import(&app, &admin, &["LOOSE-CCCC-0001"], None).await;
    // Two pro keys delivered, one of them in use.
    seed::deliver(app.db(), &key_id(&app, &admin, pro_keys[0]).await, false).await;
    seed::deliver(app.db(), &key_id(&app, &admin, pro_keys[1]).await, true).await;
    let auto = entity::tag::auto_generated_id(entity::Environment::Production);

    let mut browser = signed_in(&app, StaffRole::Support).await;
    let overview = browser.get("/admin/keys").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert!(overview.body.contains("<strong>5</strong> tags"), "{}", overview.body);
    assert_eq!(figures(&overview, &pro), ["5", "3", "1", "1", "40%"]);
    assert_eq!(figures(&overview, &lite), ["2", "2", "0", "0", "0%"]);
    assert_eq!(figures(&overview, "no-tag"), ["1", "1", "0", "0", "0%"]);
    assert_eq!(figures(&overview, &empty), ["0", "0", "0", "0", "0%"]);
    assert_eq!(figures(&overview, auto), ["0", "0", "0", "0", "0%"]);
    assert!(row(&overview, &tag_link(&pro)).contains("<progress class=\"share\" max=\"100\" value=\"40.0\""));
    // Keysmith's own tags are marked as such; the seller's are not.
    for id in [auto, "no-tag"] {
        assert!(row(&overview, &tag_link(id)).contains("badge-system"), "{id} is a system tag");
    }
    for id in [&pro, &lite, &empty] {
        assert!(!row(&overview, &tag_link(id)).contains("badge-system"), "{id} is the seller's");
    }

    // By name unless the address says otherwise; by remaining keys either way.
    let ids = [auto, empty.as_str(), lite.as_str(), "no-tag", pro.as_str()];
    assert_eq!(tags_listed(&overview, &ids), ids);
    let most = browser.get("/admin/keys?sort=remaining&dir=desc").await;
    assert_eq!(tags_listed(&most, &ids), [pro.as_str(), lite.as_str(), "no-tag", auto, empty.as_str()]);
    assert!(most.body.contains("aria-sort=\"descending\""));
    let fewest = browser.get("/admin/keys?sort=remaining&dir=asc").await;
    assert_eq!(tags_listed(&fewest, &ids), [auto, empty.as_str(), "no-tag", lite.as_str(), pro.as_str()]);

    // Search matches any part of a name, system tags included, and stays in the field.
    let found = browser.get("/admin/keys?q=it").await;
    assert_eq!(tags_listed(&found, &ids), [lite.as_str()]);
    assert!(found.body.contains("value=\"it\""));
    let generated = browser.get("/admin/keys?q=GEN").await;
    assert_eq!(tags_listed(&generated, &ids), [auto]);
    let none = browser.get("/admin/keys?q=nothing-like-this").await;
    assert!(none.body.contains("<strong>0</strong> tags") && none.body.contains("No tags match."));
}

async fn a_tags_keys_are_searched_by_any_part_filtered_by_status_and_paged(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let pro = create_tag(&app, &admin, "pro").await;
    let keys = ["ABCD-1111-WXYZ", "EFGH-2222-WXYZ", "IJKL-3333-QRST"];
    import(&app, &admin, &keys, Some(pro.as_str())).await;
    import(&app, &admin, &["ABCD-1111-LOOSE"], None).await;
    let every = ["ABCD-1111-WXYZ", "EFGH-2222-WXYZ", "IJKL-3333-QRST", "ABCD-1111-LOOSE"];
    let order = seed::deliver(app.db(), &key_id(&app, &admin, keys[1]).await, false).await;
    let external =
        app.graphql(Some(&admin), "query($id: ID!) { order(id: $id) { externalId } }", json!({ "id": order })).await;
    let external = data(&external)["order"]["externalId"].as_str().expect("an external id").to_string();

    let mut browser = signed_in(&app, StaffRole::Support).await;
    let page = browser.get(&format!("/admin/keys/tags/{pro}?sort=KEY&dir=asc")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<h1>pro</h1>"), "{}", page.body);
    assert!(page.body.contains("<strong>3</strong> keys"));
    assert_eq!(keys_listed(&page, &every), keys, "only the tag's keys, by key");
    let sold = row(&page, "<code>EFGH-2222-WXYZ</code>");
    assert!(sold.contains(&format!("<code>{external}</code>")), "the order's own id: {sold}");
    assert!(sold.contains(">assigned<") && sold.contains(">uploaded<"), "{sold}");
    assert!(sold.contains(&format!("{}>pro</a>", tag_link(&pro))), "its tags link to their pages: {sold}");

    // Any part of the key, any case: only this tag's keys.
    let middle = browser.get(&format!("/admin/keys/tags/{pro}?q=1111-W")).await;
    assert_eq!(keys_listed(&middle, &every), ["ABCD-1111-WXYZ"]);
    assert!(middle.body.contains("<strong>1</strong> key"));
    assert!(middle.body.contains("value=\"1111-W\""));
    let part = browser.get(&format!("/admin/keys/tags/{pro}?q=wxyz&sort=KEY")).await;
    assert_eq!(keys_listed(&part, &every), ["ABCD-1111-WXYZ", "EFGH-2222-WXYZ"]);

    // The status filter, alone and with a search.
    let assigned = browser.get(&format!("/admin/keys/tags/{pro}?status=ASSIGNED")).await;
    assert_eq!(keys_listed(&assigned, &every), ["EFGH-2222-WXYZ"]);
    assert!(assigned.body.contains("<option value=\"ASSIGNED\" selected>"));
    let waiting = browser.get(&format!("/admin/keys/tags/{pro}?status=AVAILABLE&q=WXYZ")).await;
    assert_eq!(keys_listed(&waiting, &every), ["ABCD-1111-WXYZ"]);

    // "No tag" is the keys without any tag, and a system tag.
    let loose = browser.get("/admin/keys/tags/no-tag").await;
    assert_eq!(loose.status, 200, "{}", loose.body);
    assert_eq!(keys_listed(&loose, &every), ["ABCD-1111-LOOSE"]);
    assert!(loose.body.contains("badge-system"));

    // The API's refusal is shown on the page; a tag that is not there is a 404 page.
    let long = browser.get(&format!("/admin/keys/tags/{pro}?q={}", "x".repeat(300))).await;
    assert_eq!(long.status, 400);
    assert!(long.body.contains("at most 256"), "{}", long.body);
    let missing = browser.get("/admin/keys/tags/01ZZZZZZZZZZZZZZZZZZZZZZZZ").await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(missing.body.contains("No such tag"));
    assert_eq!(browser.get("/admin/keys").await.status, 200, "a missing tag ends no session");

    // Fifty keys a page, "Next" and "Previous" in the address.
    let bulk = create_tag(&app, &admin, "bulk").await;
    let many: Vec<String> = (0..55).map(|i| format!("BULK-{i:04}-KEYS")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    import(&app, &admin, &many, Some(bulk.as_str())).await;
    let first = browser.get(&format!("/admin/keys/tags/{bulk}?sort=KEY")).await;
    assert!(first.body.contains("<strong>55</strong> keys"));
    assert_eq!(keys_listed(&first, &many), &many[..50]);
    assert!(pager_link(&first, "prev").is_none());
    let second = browser.get(&pager_link(&first, "next").expect("a next page")).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(keys_listed(&second, &many), &many[50..]);
    assert!(pager_link(&second, "next").is_none());
    let back = browser.get(&pager_link(&second, "prev").expect("a previous page")).await;
    assert_eq!(keys_listed(&back, &many), &many[..50]);
}
