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
    selected_keys_are_moved_tagged_and_deleted_through_confirmations,
    a_tag_is_created_renamed_cleaned_up_exported_and_deleted,
    support_sees_no_key_management_and_its_forged_posts_change_nothing,
    keys_are_uploaded_from_a_csv_with_its_bad_line_reported_by_number,
    a_large_upload_shows_its_progress_until_the_report,
    oversized_forms_are_refused_before_they_are_read,
);

/// A staff account of `role`; its email (as in `admin.rs`).
async fn staff(app: &TestApp, role: StaffRole) -> String {
    let token = app.staff_token(role).await;
    let me = app.graphql(Some(&token), "{ me { user { email } } }", json!({})).await;
    data(&me)["me"]["user"]["email"].as_str().expect("email").to_string()
}

/// A browser signed in to the admin portal as a new staff member of `role`.
pub(crate) async fn signed_in(app: &TestApp, role: StaffRole) -> PortalClient {
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

/// The keys of the tag `tag_id`, through the API.
async fn keys_of(app: &TestApp, token: &str, tag_id: &str) -> Vec<String> {
    let body = app
        .graphql(
            Some(token),
            "query($t: ID) { licenseKeys(first: 100, filter: {tagId: $t}, orderBy: {field: KEY, direction: ASC}) { edges { node { key } } } }",
            json!({ "t": tag_id }),
        )
        .await;
    data(&body)["licenseKeys"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["key"].as_str().expect("a key").to_string())
        .collect()
}

/// The flash message a page shows after an action.
pub(crate) fn flash(page: &Page) -> String {
    let at = page.body.find("class=\"flash ").unwrap_or_else(|| panic!("no message: {}", page.body));
    let text = &page.body[at..];
    let text = &text[text.find('>').expect("a tag") + 1..];
    text.split('<').next().unwrap_or_default().to_string()
}

async fn selected_keys_are_moved_tagged_and_deleted_through_confirmations(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let pro = create_tag(&app, &admin, "pro").await;
    let pro_2027 = create_tag(&app, &admin, "pro-2027").await;
    let keys = ["MOVE-0001-AAAA", "MOVE-0002-BBBB", "MOVE-0003-CCCC", "STAY-0004-DDDD"];
    import(&app, &admin, &keys, Some(pro.as_str())).await;
    let ids: Vec<String> = futures_util::future::join_all(keys.iter().map(|k| key_id(&app, &admin, k))).await;
    seed::deliver(app.db(), &ids[0], false).await;
    let mut browser = signed_in(&app, StaffRole::Manager).await;
    let tag_page = format!("/admin/keys/tags/{pro}");
    let page = browser.get(&tag_page).await;
    assert!(page.body.contains("data-select-all=\"key\""), "select-all: {}", page.body);
    assert!(page.body.contains(&format!("form=\"bulk\" name=\"key\" value=\"{}\"", ids[1])));
    let csrf = page.csrf();

    // Three keys, "Move to tag": the confirmation counts the keys and the order.
    let chosen = [("csrf", csrf.as_str()), ("back", tag_page.as_str()), ("action", "move")]
        .into_iter()
        .chain(ids[..3].iter().map(|id| ("key", id.as_str())))
        .collect::<Vec<_>>();
    let confirm = browser.post(&format!("{tag_page}/bulk"), &chosen).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(confirm.body.contains("3 keys from pro"), "{}", confirm.body);
    assert!(confirm.body.contains("delivered on 1 customer order"), "{}", confirm.body);
    assert!(confirm.body.contains(&format!("<option value=\"{pro_2027}\">pro-2027</option>")), "{}", confirm.body);
    assert_eq!(keys_of(&app, &admin, &pro_2027).await, Vec::<String>::new(), "nothing moves before Confirm");
    let apply =
        [("csrf", confirm.csrf()), ("back", tag_page.clone()), ("action", "move".into()), ("target", pro_2027.clone())]
            .into_iter()
            .chain(ids[..3].iter().map(|id| ("key", id.clone())))
            .collect::<Vec<_>>();
    let apply: Vec<(&str, &str)> = apply.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let moved = browser.post(&format!("{tag_page}/bulk/apply"), &apply).await;
    assert_eq!((moved.status, moved.location()), (303, tag_page.as_str()));
    let after = browser.get(&tag_page).await;
    assert_eq!(flash(&after), "3 keys moved to pro-2027");
    assert_eq!(keys_of(&app, &admin, &pro_2027).await, &keys[..3]);
    assert_eq!(keys_of(&app, &admin, &pro).await, &keys[3..]);

    // "Add tag" keeps the source; "Remove tag" offers the tags the keys carry.
    let page = browser.get(&format!("/admin/keys/tags/{pro_2027}")).await;
    let two = [("csrf", page.csrf()), ("action", "add".into()), ("target", pro.clone())]
        .into_iter()
        .chain(ids[1..3].iter().map(|id| ("key", id.clone())))
        .collect::<Vec<_>>();
    let two: Vec<(&str, &str)> = two.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let added = browser.post(&format!("/admin/keys/tags/{pro_2027}/bulk/apply"), &two).await;
    assert_eq!(added.status, 303);
    assert_eq!(flash(&browser.get(added.location()).await), "Tag pro added to 2 keys");
    assert_eq!(keys_of(&app, &admin, &pro).await, [keys[1], keys[2], keys[3]]);
    let page = browser.get(&format!("/admin/keys/tags/{pro_2027}")).await;
    let remove = browser
        .post(
            &format!("/admin/keys/tags/{pro_2027}/bulk"),
            &[("csrf", &page.csrf()), ("action", "remove"), ("key", &ids[1])],
        )
        .await;
    assert!(remove.body.contains(&format!("<option value=\"{pro}\">pro</option>")), "{}", remove.body);
    assert!(remove.body.contains(&format!("<option value=\"{pro_2027}\">pro-2027</option>")));
    let removed = browser
        .post(
            &format!("/admin/keys/tags/{pro_2027}/bulk/apply"),
            &[("csrf", &remove.csrf()), ("action", "remove"), ("target", &pro), ("key", &ids[1])],
        )
        .await;
    assert_eq!(flash(&browser.get(removed.location()).await), "Tag pro removed from 1 key");
    assert_eq!(keys_of(&app, &admin, &pro).await, [keys[2], keys[3]]);

    // Delete: the order that loses its key is counted before and after.
    let page = browser.get(&format!("/admin/keys/tags/{pro_2027}")).await;
    let confirm = browser
        .post(
            &format!("/admin/keys/tags/{pro_2027}/bulk"),
            &[("csrf", &page.csrf()), ("action", "delete"), ("key", &ids[0]), ("key", &ids[1])],
        )
        .await;
    assert!(confirm.body.contains("2 keys from pro-2027"), "{}", confirm.body);
    assert!(confirm.body.contains("1 customer order loses a key."), "{}", confirm.body);
    let deleted = browser
        .post(
            &format!("/admin/keys/tags/{pro_2027}/bulk/apply"),
            &[("csrf", &confirm.csrf()), ("action", "delete"), ("key", &ids[0]), ("key", &ids[1])],
        )
        .await;
    assert_eq!(flash(&browser.get(deleted.location()).await), "2 keys deleted; 1 customer order lost a key");
    assert_eq!(keys_of(&app, &admin, &pro_2027).await, [keys[2]]);

    // Nothing selected, or a forged form: nothing happens.
    let page = browser.get(&tag_page).await;
    let empty = browser.post(&format!("{tag_page}/bulk"), &[("csrf", &page.csrf()), ("action", "delete")]).await;
    assert_eq!(flash(&browser.get(empty.location()).await), "Select at least one key first.");
    let forged = browser
        .post(&format!("{tag_page}/bulk/apply"), &[("csrf", "forged"), ("action", "delete"), ("key", &ids[3])])
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(keys_of(&app, &admin, &pro).await, [keys[2], keys[3]]);
}

async fn a_tag_is_created_renamed_cleaned_up_exported_and_deleted(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let mut browser = signed_in(&app, StaffRole::Manager).await;
    let overview = browser.get("/admin/keys").await;
    assert!(overview.body.contains("action=\"/admin/keys/tags\""), "the create form: {}", overview.body);

    // Create: a bad name is refused with the rule; a good one opens the tag.
    let refused = browser.post("/admin/keys/tags", &[("csrf", &overview.csrf()), ("name", "Pro 2027")]).await;
    assert_eq!(refused.location(), "/admin/keys");
    assert!(flash(&browser.get("/admin/keys").await).contains("lowercase letters"));
    let created = browser.post("/admin/keys/tags", &[("csrf", &overview.csrf()), ("name", "launch")]).await;
    assert_eq!(created.status, 303);
    let tag_page = created.location().to_string();
    let id = tag_page.rsplit('/').next().expect("an id").to_string();
    assert_eq!(flash(&browser.get(&tag_page).await), "Tag launch created");

    // Rename: the rule is explained on the form; the API's refusal is shown at the field.
    let form = browser.get(&format!("{tag_page}/rename")).await;
    assert!(form.body.contains("Tag names are lowercase"), "{}", form.body);
    let bad = browser.post(&format!("{tag_page}/rename"), &[("csrf", &form.csrf()), ("name", "Launch")]).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("id=\"name-error\">must use only lowercase letters"), "{}", bad.body);
    assert!(bad.body.contains("value=\"Launch\""), "what was typed stays");
    let renamed = browser.post(&format!("{tag_page}/rename"), &[("csrf", &form.csrf()), ("name", "launch-2027")]).await;
    assert_eq!(renamed.location(), tag_page);
    assert_eq!(flash(&browser.get(&tag_page).await), "Tag renamed to launch-2027");

    // Clean up: the waiting copy goes, the oldest stays; then nothing is left to remove.
    import(&app, &admin, &["DUPE-0001-KEEP", "UNIQ-0002-ONLY"], Some(id.as_str())).await;
    let again = app
        .graphql(
            Some(&admin),
            "mutation($t: [ID!]!) { importLicenseKeys(input: {text: \"DUPE-0001-KEEP\", tagIds: $t, duplicates: KEEP}) { imported } }",
            json!({ "t": [id] }),
        )
        .await;
    assert_eq!(data(&again)["importLicenseKeys"]["imported"], 1);
    let confirm = browser.get(&format!("{tag_page}/clean-up")).await;
    assert!(confirm.body.contains("keeping the oldest copy"), "{}", confirm.body);
    let cleaned = browser.post(&format!("{tag_page}/clean-up"), &[("csrf", &confirm.csrf())]).await;
    assert_eq!(cleaned.location(), tag_page);
    assert_eq!(flash(&browser.get(&tag_page).await), "1 duplicate key removed");
    assert_eq!(keys_of(&app, &admin, &id).await, ["DUPE-0001-KEEP", "UNIQ-0002-ONLY"]);
    browser.post(&format!("{tag_page}/clean-up"), &[("csrf", &confirm.csrf())]).await;
    assert_eq!(flash(&browser.get(&tag_page).await), "No duplicates found: nothing was removed");

    // Export: exactly the view's keys, as CSV and JSON.
    let csv = browser.get(&format!("{tag_page}/export.csv?search=uniq")).await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(csv.headers["content-type"].to_str().expect("ascii").starts_with("text/csv"));
    assert!(csv.body.contains("UNIQ-0002-ONLY") && !csv.body.contains("DUPE-0001-KEEP"), "{}", csv.body);
    let json_file = browser.get(&format!("{tag_page}/export.json")).await;
    let rows: serde_json::Value = serde_json::from_str(&json_file.body).expect("JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{rows}");

    // Delete the tag with its keys: counted, then gone.
    let confirm = browser.get(&format!("{tag_page}/delete")).await;
    assert!(confirm.body.contains("Deletes the tag launch-2027 and its 2 keys for good."), "{}", confirm.body);
    let deleted = browser.post(&format!("{tag_page}/delete"), &[("csrf", &confirm.csrf())]).await;
    assert_eq!(deleted.location(), "/admin/keys");
    assert_eq!(flash(&browser.get("/admin/keys").await), "Tag deleted with its 2 keys");
    assert_eq!(browser.get(&tag_page).await.status, 404);
}

async fn support_sees_no_key_management_and_its_forged_posts_change_nothing(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let pro = create_tag(&app, &admin, "pro").await;
    let other = create_tag(&app, &admin, "other").await;
    import(&app, &admin, &["SUPP-0001-KEYS"], Some(pro.as_str())).await;
    let id = key_id(&app, &admin, "SUPP-0001-KEYS").await;
    let mut browser = signed_in(&app, StaffRole::Support).await;
    let tag_page = format!("/admin/keys/tags/{pro}");
    let page = browser.get(&tag_page).await;
    assert_eq!(page.status, 200);
    for control in ["id=\"bulk\"", "data-select-all", "More actions", "/rename", "/delete", "/clean-up", "export.csv"] {
        assert!(!page.body.contains(control), "support sees no {control}");
    }
    let overview = browser.get("/admin/keys").await;
    assert!(
        !overview.body.contains("Create tag") && !overview.body.contains("/admin/keys/upload"),
        "{}",
        overview.body
    );

    // Hand-made forms with a valid token: the API refuses, nothing changes.
    let csrf = page.csrf();
    for (path, form) in [
        (format!("{tag_page}/bulk/apply"), vec![("csrf", csrf.as_str()), ("action", "delete"), ("key", id.as_str())]),
        (
            format!("{tag_page}/bulk/apply"),
            vec![("csrf", csrf.as_str()), ("action", "move"), ("target", other.as_str()), ("key", id.as_str())],
        ),
        (format!("{tag_page}/delete"), vec![("csrf", csrf.as_str()), ("force", "yes")]),
        (format!("{tag_page}/rename"), vec![("csrf", csrf.as_str()), ("name", "renamed")]),
        ("/admin/keys/tags".to_string(), vec![("csrf", csrf.as_str()), ("name", "sneaky")]),
    ] {
        let refused = browser.post(&path, &form).await;
        let shown = if refused.status == 303 { browser.get(refused.location()).await.body } else { refused.body };
        assert!(shown.contains("Your role may not"), "{path}: {shown}");
    }
    assert_eq!(keys_of(&app, &admin, &pro).await, ["SUPP-0001-KEYS"]);
    let tags = app.graphql(Some(&admin), "{ tags { edges { node { name } } } }", json!({})).await;
    let names: Vec<&str> = data(&tags)["tags"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|e| e["node"]["name"].as_str())
        .collect();
    assert!(names.contains(&"pro") && !names.contains(&"renamed") && !names.contains(&"sneaky"), "{names:?}");
}

/// An upload form: the page's token, `fields`, and a file when given.
fn upload_form(csrf: &str, fields: &[(&str, &str)], file: Option<(&str, Vec<u8>)>) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new().text("csrf", csrf.to_string());
    for (name, value) in fields {
        form = form.text(name.to_string(), value.to_string());
    }
    match file {
        Some((name, bytes)) => form.part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_string())),
        None => form.part("file", reqwest::multipart::Part::bytes(Vec::new()).file_name("")),
    }
}

/// The figure a report shows under `label`.
fn report_figure(page: &Page, label: &str) -> String {
    let at = page.body.find(&format!("<dt>{label}</dt><dd>")).unwrap_or_else(|| panic!("no {label}: {}", page.body));
    page.body[at + label.len() + 13..].split('<').next().unwrap_or_default().to_string()
}

async fn keys_are_uploaded_from_a_csv_with_its_bad_line_reported_by_number(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let pro = create_tag(&app, &admin, "pro").await;
    let mut browser = signed_in(&app, StaffRole::Manager).await;
    let form = browser.get("/admin/keys/upload").await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("enctype=\"multipart/form-data\""));
    assert!(form.body.contains(&format!("name=\"tag\" value=\"{pro}\"")), "the tags to choose: {}", form.body);
    let csrf = form.csrf();
    let csv =
        b"key,tags,product,expiry,activationLimit\nCSV-0001-AAAA,launch\nCSV-0002-BBBB,,,2020-01-01\n\nCSV-0003-CCCC\n"
            .to_vec();

    // One bad line: nothing imported, the line's number and reason shown.
    let sent = browser
        .post_multipart("/admin/keys/upload", upload_form(&csrf, &[("tag", &pro)], Some(("keys.csv", csv.clone()))))
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert!(sent.location().starts_with("/admin/keys/upload/"), "{}", sent.location());
    let report = browser.get(sent.location()).await;
    assert_eq!(report.status, 200, "{}", report.body);
    assert!(report.body.contains("Nothing was imported: 1 invalid line."), "{}", report.body);
    assert!(
        report.body.contains("<td class=\"num\">3</td><td>expiry: 2020-01-01 is not in the future</td>"),
        "{}",
        report.body
    );
    assert_eq!(keys_of(&app, &admin, &pro).await, Vec::<String>::new());

    // Again with "skip invalid lines": the others arrive, in the chosen tag, and the CSV's tag is created.
    let sent = browser
        .post_multipart(
            "/admin/keys/upload",
            upload_form(&csrf, &[("tag", &pro), ("skip_invalid", "yes")], Some(("keys.csv", csv))),
        )
        .await;
    let report = browser.get(sent.location()).await;
    assert!(report.body.contains("2 keys imported"), "{}", report.body);
    assert_eq!(report_figure(&report, "Invalid lines"), "1");
    assert_eq!(report_figure(&report, "Imported"), "2");
    assert!(report.body.contains("<span class=\"tag-link\">launch</span>"), "tags created: {}", report.body);
    assert_eq!(keys_of(&app, &admin, &pro).await, ["CSV-0001-AAAA", "CSV-0003-CCCC"]);

    // Pasted keys: the one already in the pool is skipped and counted.
    let sent = browser
        .post_multipart("/admin/keys/upload", upload_form(&csrf, &[("text", "CSV-0001-AAAA\nPASTE-0004")], None))
        .await;
    let report = browser.get(sent.location()).await;
    assert!(report.body.contains("From pasted keys."), "{}", report.body);
    assert_eq!(report_figure(&report, "Imported"), "1");
    assert_eq!(report_figure(&report, "Already in the pool"), "1");
    assert_eq!(keys_of(&app, &admin, "no-tag").await, ["PASTE-0004"]);

    // Nothing to import, both at once, a forged form: refused, nothing changes.
    let empty = browser.post_multipart("/admin/keys/upload", upload_form(&csrf, &[], None)).await;
    assert_eq!(empty.status, 400);
    assert!(empty.body.contains("Paste keys or choose a file."), "{}", empty.body);
    let both = browser
        .post_multipart(
            "/admin/keys/upload",
            upload_form(&csrf, &[("text", "BOTH-0001")], Some(("more.txt", b"BOTH-0002".to_vec()))),
        )
        .await;
    assert!(both.body.contains("not both"), "{}", both.body);
    assert!(both.body.contains(">BOTH-0001</textarea>"), "what was pasted stays");
    let forged =
        browser.post_multipart("/admin/keys/upload", upload_form("forged", &[("text", "FORGED-0001")], None)).await;
    assert_eq!(forged.status, 403);
    assert_eq!(keys_of(&app, &admin, "no-tag").await, ["PASTE-0004"]);

    // Another staff member cannot read this report; support may not upload.
    let mut support = signed_in(&app, StaffRole::Support).await;
    assert_eq!(support.get(sent.location()).await.status, 404);
    let refused = support.get("/admin/keys/upload").await;
    assert_eq!(refused.status, 403);
}

async fn a_large_upload_shows_its_progress_until_the_report(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let mut browser = signed_in(&app, StaffRole::Manager).await;
    let form = browser.get("/admin/keys/upload").await;
    let count = 60_000;
    let file: String = (0..count).map(|i| format!("LARGE-{i:08}-UPLOAD\n")).collect();
    let sent = browser
        .post_multipart("/admin/keys/upload", upload_form(&form.csrf(), &[], Some(("large.txt", file.into_bytes()))))
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    // While it runs the page refreshes itself; then the report is there.
    let location = sent.location().to_string();
    let report = keysmith_tests::until("the import's report", || {
        let (mut browser, location) = (browser.clone(), location.clone());
        async move {
            let page = browser.get(&location).await;
            assert_eq!(page.status, 200, "{}", page.body);
            if page.body.contains("Upload report") {
                return Some(page);
            }
            assert!(page.body.contains("<meta http-equiv=\"refresh\" content=\"2\">"), "{}", page.body);
            assert!(page.body.contains("Importing keys"));
            None
        }
    })
    .await;
    assert!(!report.body.contains("http-equiv=\"refresh\""), "a finished report stays put");
    assert!(report.body.contains(&format!("{count} keys imported")), "{}", report.body);
    let total =
        app.graphql(Some(&admin), "{ licenseKeys(filter: {search: \"LARGE-\"}) { totalCount } }", json!({})).await;
    assert_eq!(data(&total)["licenseKeys"]["totalCount"], count);
}

async fn oversized_forms_are_refused_before_they_are_read(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let mut browser = signed_in(&app, StaffRole::Manager).await;
    let page = browser.get("/admin/keys").await;
    let huge = "a".repeat(app.state.config.max_body_bytes + 32 * 1024);
    let refused = browser.post("/admin/keys/tags", &[("csrf", &page.csrf()), ("name", &huge)]).await;
    assert_eq!(refused.status, 413, "{}", refused.body);
    let pasted =
        browser.post_multipart("/admin/keys/upload", upload_form(&page.csrf(), &[("text", &huge)], None)).await;
    assert_eq!(pasted.status, 400, "pasted text past the request limit: {}", pasted.body);
    assert!(pasted.body.contains("choose a file for more"), "{}", pasted.body);
    let tags = app.graphql(Some(&admin), "{ tags { totalCount } }", json!({})).await;
    assert_eq!(data(&tags)["tags"]["totalCount"], 2, "only the system tags");
    assert_eq!(browser.get("/admin/keys").await.status, 200, "the session still works");
}
