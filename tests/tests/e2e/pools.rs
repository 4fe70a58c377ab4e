//! Pools: tags and their figures, keys in a tag, moving, tagging, deleting and
//! cleaning up — every operation and its refusals, on both databases.

use entity::user::StaffRole;
use entity::{Environment, LicenseStatus, audit_event, license_key};
use keysmith_tests::app::seed;
use keysmith_tests::{TestApp, data, error_code, error_field, on_both_databases};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

const CREATE_TAG: &str =
    "mutation($n: String!) { createTag(input: {name: $n}) { tag { id name system total remaining } } }";
const TAG: &str = "query($id: ID!) { tag(id: $id) { id name system total remaining assigned used usedPercentage } }";

pub async fn create_tag(app: &TestApp, token: &str, name: &str) -> String {
    let body = app.graphql(Some(token), CREATE_TAG, json!({ "n": name })).await;
    data(&body)["createTag"]["tag"]["id"].as_str().expect("tag id").to_string()
}

async fn key_count(app: &TestApp) -> u64 {
    license_key::Entity::find().count(app.db()).await.expect("count")
}

async fn keys_in(app: &TestApp, token: &str, tag_id: &str, filter: Value) -> Vec<String> {
    let body = app
        .graphql(
            Some(token),
            "query($id: ID!, $f: PoolKeyFilter) { tag(id: $id) { keys(first: 100, filter: $f, orderBy: {field: KEY}) { edges { node { key } } } } }",
            json!({ "id": tag_id, "f": filter }),
        )
        .await;
    data(&body)["tag"]["keys"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["key"].as_str().expect("key").to_string())
        .collect()
}

on_both_databases!(
    keys_are_read_again_by_their_ids,
    tag_names_follow_the_rule_and_system_tags_stay,
    the_overview_counts_every_pool_in_the_database,
    deleting_a_tag_deletes_its_keys_and_counts_the_orders_that_lose_them,
    keys_in_a_tag_are_searched_filtered_and_paged,
    keys_move_between_tags_and_carry_several,
    keys_are_deleted_by_id_or_by_filter,
    duplicates_are_cleaned_up_keeping_the_oldest,
);

async fn tag_names_follow_the_rule_and_system_tags_stay(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    for bad in ["Pro", "pro_2", "2pro", "-pro", "pro tier", &"a".repeat(65), ""] {
        let body = app.graphql(Some(&manager), CREATE_TAG, json!({ "n": bad })).await;
        assert_eq!(error_code(&body), Some("INVALID_INPUT"), "{bad:?}: {body:#}");
        assert_eq!(error_field(&body), Some("name"));
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("lowercase letters, digits and '-'"), "the rule is named: {message}");
    }
    let system = app.graphql(Some(&manager), CREATE_TAG, json!({ "n": "auto-generated" })).await;
    assert!(system["errors"][0]["message"].as_str().unwrap_or_default().contains("system tag"), "{system:#}");

    let id = create_tag(&app, &manager, "pro-2024").await;
    let clash = app.graphql(Some(&manager), CREATE_TAG, json!({ "n": "pro-2024" })).await;
    assert_eq!(error_code(&clash), Some("CONFLICT"));
    assert_eq!(error_field(&clash), Some("name"));

    let rename = "mutation($id: ID!, $n: String!) { renameTag(input: {id: $id, name: $n}) { tag { id name } } }";
    let renamed = app.graphql(Some(&manager), rename, json!({ "id": id, "n": "pro-2025" })).await;
    assert_eq!(data(&renamed)["renameTag"]["tag"]["name"], "pro-2025");
    let upper = app.graphql(Some(&manager), rename, json!({ "id": id, "n": "Pro-2025" })).await;
    assert_eq!(error_code(&upper), Some("INVALID_INPUT"));
    let still = app.graphql(Some(&manager), TAG, json!({ "id": id })).await;
    assert_eq!(data(&still)["tag"]["name"], "pro-2025", "never silently lowered, never half-applied");

    let auto = entity::tag::auto_generated_id(Environment::Production);
    for system_id in [auto, "no-tag"] {
        let body = app.graphql(Some(&manager), rename, json!({ "id": system_id, "n": "mine" })).await;
        assert_eq!(error_code(&body), Some("INVALID_INPUT"), "{body:#}");
        assert!(body["errors"][0]["message"].as_str().unwrap_or_default().contains("system tag"));
        let body = app
            .graphql(
                Some(&manager),
                "mutation($id: ID!) { deleteTag(input: {id: $id}) { keysChanged } }",
                json!({ "id": system_id }),
            )
            .await;
        assert!(body["errors"][0]["message"].as_str().unwrap_or_default().contains("system tag"), "{body:#}");
    }
    let missing = app.graphql(Some(&manager), rename, json!({ "id": "01ZZZZZZZZZZZZZZZZZZZZZZZZ", "n": "x" })).await;
    assert_eq!(error_code(&missing), Some("NOT_FOUND"));

    let events: Vec<String> = audit_event::Entity::find()
        .filter(audit_event::Column::TargetId.eq(id.as_str()))
        .all(app.db())
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(events, ["tag.created", "tag.renamed"]);
}

async fn the_overview_counts_every_pool_in_the_database(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let support = app.staff_token(StaffRole::Support).await;
    let pro = create_tag(&app, &manager, "pro").await;
    let lite = create_tag(&app, &manager, "lite").await;
    create_tag(&app, &manager, "empty").await;
    let db = app.db();
    let p = Environment::Production;
    for (i, status) in [
        LicenseStatus::Available,
        LicenseStatus::Available,
        LicenseStatus::Available,
        LicenseStatus::Assigned,
        LicenseStatus::Active,
        LicenseStatus::Revoked,
    ]
    .into_iter()
    .enumerate()
    {
        seed::key(db, p, &format!("PRO-{i}"), status, &[&pro]).await;
    }
    seed::key(db, p, "BOTH-1", LicenseStatus::Available, &[&pro, &lite]).await;
    seed::key(db, p, "LOOSE-1", LicenseStatus::Available, &[]).await;
    seed::key(db, p, "LOOSE-2", LicenseStatus::Assigned, &[]).await;
    let auto = entity::tag::auto_generated_id(p);
    seed::key(db, p, "GEN-1", LicenseStatus::Active, &[auto]).await;
    seed::key(db, Environment::Staging, "STAGED-1", LicenseStatus::Available, &[]).await;

    let body = app
        .graphql(
            Some(&support),
            "{ tags { totalCount edges { node { name system total remaining assigned used usedPercentage } } } }",
            json!({}),
        )
        .await;
    insta::assert_json_snapshot!("tag_overview_by_name", data(&body));

    let by_remaining = app
        .graphql(
            Some(&support),
            "{ tags(orderBy: {field: REMAINING, direction: DESC}, first: 2) { edges { cursor node { name remaining } } pageInfo { hasNextPage } } }",
            json!({}),
        )
        .await;
    let conn = &data(&by_remaining)["tags"];
    let names: Vec<&str> =
        conn["edges"].as_array().expect("edges").iter().map(|e| e["node"]["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["pro", "lite"]);
    assert_eq!(conn["pageInfo"]["hasNextPage"], true);
    let after = conn["edges"][1]["cursor"].clone();
    let next = app
        .graphql(
            Some(&support),
            "query($a: String) { tags(orderBy: {field: REMAINING, direction: DESC}, first: 10, after: $a) { edges { node { name } } pageInfo { hasNextPage } } }",
            json!({ "a": after }),
        )
        .await;
    let rest: Vec<&str> = data(&next)["tags"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["name"].as_str().expect("name"))
        .collect();
    assert_eq!(rest, ["no tag", "auto-generated", "empty"]);

    let search = app.graphql(Some(&support), "{ tags(search: \"GEN\") { edges { node { name } } } }", json!({})).await;
    assert_eq!(data(&search)["tags"]["edges"][0]["node"]["name"], "auto-generated");
    let (_, staged) =
        app.graphql_in(Some(&support), Some("staging"), "{ tag(id: \"no-tag\") { total remaining } }", json!({})).await;
    assert_eq!(data(&staged)["tag"], json!({ "total": 1, "remaining": 1 }));
}

async fn deleting_a_tag_deletes_its_keys_and_counts_the_orders_that_lose_them(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let old = create_tag(&app, &manager, "old").await;
    let db = app.db();
    let p = Environment::Production;
    seed::key(db, p, "OLD-WAITING", LicenseStatus::Available, &[&old]).await;
    let sold = seed::key(db, p, "OLD-SOLD-12345", LicenseStatus::Available, &[&old]).await;
    seed::deliver(db, &sold, false).await;
    let used = seed::key(db, p, "OLD-USED-12345", LicenseStatus::Available, &[&old]).await;
    seed::deliver(db, &used, true).await;
    seed::key(db, p, "KEEP-ME", LicenseStatus::Available, &[]).await;

    let delete =
        "mutation($id: ID!, $f: Boolean) { deleteTag(input: {id: $id, force: $f}) { keysChanged ordersAffected } }";
    let refused = app.graphql(Some(&manager), delete, json!({ "id": old, "f": false })).await;
    assert_eq!(error_code(&refused), Some("INVALID_INPUT"), "{refused:#}");
    assert_eq!(error_field(&refused), Some("force"));
    assert_eq!(key_count(&app).await, 4, "a refused delete deletes nothing");

    let body = app.graphql(Some(&manager), delete, json!({ "id": old, "f": true })).await;
    assert_eq!(data(&body)["deleteTag"], json!({ "keysChanged": 3, "ordersAffected": 2 }));
    assert_eq!(key_count(&app).await, 1);
    let gone = app.graphql(Some(&manager), TAG, json!({ "id": old })).await;
    assert_eq!(error_code(&gone), Some("NOT_FOUND"));

    let events = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("license_key.deleted"))
        .all(app.db())
        .await
        .expect("audit");
    let mut prefixes: Vec<String> = events.iter().filter_map(|e| e.key_prefix.clone()).collect();
    prefixes.sort();
    assert_eq!(prefixes, ["OLD-SOLD", "OLD-USED", "OLD-WAIT"], "every key is audited by its first 8 characters only");
    let deleted = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("tag.deleted"))
        .one(app.db())
        .await
        .expect("audit")
        .expect("tag.deleted");
    assert_eq!(deleted.after.expect("after")["keysDeleted"], 3);
}

async fn keys_in_a_tag_are_searched_filtered_and_paged(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let pro = create_tag(&app, &manager, "pro").await;
    let beta = create_tag(&app, &manager, "beta").await;
    let db = app.db();
    let p = Environment::Production;
    seed::key(db, p, "ABCD-1111-WXYZ", LicenseStatus::Available, &[&pro]).await;
    seed::key(db, p, "abcd-2222-wxyz", LicenseStatus::Available, &[&pro, &beta]).await;
    let sold = seed::key(db, p, "EFGH-3333-WXYZ", LicenseStatus::Available, &[&pro]).await;
    let order_id = seed::deliver(db, &sold, false).await;
    seed::key(db, p, "50%_OFF-KEY", LicenseStatus::Available, &[&pro]).await;
    seed::key(db, p, "ABCD-9999-ELSEWHERE", LicenseStatus::Available, &[]).await;

    assert_eq!(keys_in(&app, &manager, &pro, json!({ "search": "cd-2" })).await, ["abcd-2222-wxyz"]);
    assert_eq!(
        keys_in(&app, &manager, &pro, json!({ "search": "BCD" })).await,
        ["ABCD-1111-WXYZ", "abcd-2222-wxyz"],
        "any part, any case"
    );
    assert_eq!(keys_in(&app, &manager, &pro, json!({ "search": "WXYZ" })).await.len(), 3);
    assert_eq!(
        keys_in(&app, &manager, &pro, json!({ "search": "ef" })).await,
        ["EFGH-3333-WXYZ"],
        "short terms match the start"
    );
    assert_eq!(keys_in(&app, &manager, &pro, json!({ "search": "gh" })).await, Vec::<String>::new());
    assert_eq!(
        keys_in(&app, &manager, &pro, json!({ "search": "%_O" })).await,
        ["50%_OFF-KEY"],
        "wildcards match themselves"
    );
    assert_eq!(keys_in(&app, &manager, &pro, json!({ "search": "0%" })).await, Vec::<String>::new());
    assert_eq!(keys_in(&app, &manager, &pro, json!({ "status": "ASSIGNED" })).await, ["EFGH-3333-WXYZ"]);
    assert_eq!(keys_in(&app, &manager, "no-tag", json!({})).await, ["ABCD-9999-ELSEWHERE"]);

    let body = app
        .graphql(
            Some(&manager),
            "query($id: ID!) { tag(id: $id) { keys(first: 2, orderBy: {field: KEY}) { totalCount edges { cursor node { key type status tags { name } orderId createdAt } } pageInfo { hasNextPage } } } }",
            json!({ "id": pro }),
        )
        .await;
    let conn = &data(&body)["tag"]["keys"];
    assert_eq!(conn["totalCount"], 4);
    assert_eq!(conn["pageInfo"]["hasNextPage"], true);
    assert_eq!(conn["edges"][0]["node"]["key"], "50%_OFF-KEY");
    assert_eq!(conn["edges"][0]["node"]["type"], "UPLOADED");
    let after = conn["edges"][1]["cursor"].clone();
    let next = app
        .graphql(
            Some(&manager),
            "query($id: ID!, $a: String) { tag(id: $id) { keys(first: 5, after: $a, orderBy: {field: KEY}) { edges { node { key status tags { name } orderId } } pageInfo { hasNextPage } } } }",
            json!({ "id": pro, "a": after }),
        )
        .await;
    let edges = &data(&next)["tag"]["keys"]["edges"];
    assert_eq!(edges[0]["node"]["key"], "EFGH-3333-WXYZ");
    assert_eq!(edges[0]["node"]["status"], "ASSIGNED");
    assert_eq!(edges[0]["node"]["orderId"], order_id);
    assert_eq!(edges[1]["node"]["key"], "abcd-2222-wxyz");
    assert_eq!(edges[1]["node"]["tags"], json!([{ "name": "beta" }, { "name": "pro" }]));
    assert_eq!(data(&next)["tag"]["keys"]["pageInfo"]["hasNextPage"], false);

    let customer = app.customer_token(&entity::new_id()).await;
    let body = app.graphql(Some(&customer), "{ licenseKeys { edges { node { key } } } }", json!({})).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"));
}

async fn keys_move_between_tags_and_carry_several(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let from = create_tag(&app, &manager, "from").await;
    let to = create_tag(&app, &manager, "to").await;
    let extra = create_tag(&app, &manager, "extra").await;
    let db = app.db();
    let p = Environment::Production;
    let a = seed::key(db, p, "MOVE-A", LicenseStatus::Available, &[&from]).await;
    let b = seed::key(db, p, "MOVE-B", LicenseStatus::Available, &[&from]).await;
    let c = seed::key(db, p, "MOVE-C", LicenseStatus::Available, &[&from, &to]).await;
    let loose = seed::key(db, p, "LOOSE", LicenseStatus::Available, &[]).await;

    let mv = "mutation($f: ID!, $t: ID!, $k: [ID!]) { moveLicenseKeys(input: {fromTagId: $f, toTagId: $t, keyIds: $k}) { keysChanged ordersAffected } }";
    let missing = app.graphql(Some(&manager), mv, json!({ "f": from, "t": "01ZZZZZZZZZZZZZZZZZZZZZZZZ" })).await;
    assert_eq!(error_code(&missing), Some("NOT_FOUND"));
    assert_eq!(error_field(&missing), Some("toTagId"));
    let into_system = app.graphql(Some(&manager), mv, json!({ "f": from, "t": "no-tag" })).await;
    assert_eq!(error_code(&into_system), Some("INVALID_INPUT"));
    assert_eq!(keys_in(&app, &manager, &from, json!({})).await.len(), 3, "refused moves change nothing");

    let one = app.graphql(Some(&manager), mv, json!({ "f": from, "t": to, "k": [a] })).await;
    assert_eq!(data(&one)["moveLicenseKeys"], json!({ "keysChanged": 1, "ordersAffected": 0 }));
    let rest = app.graphql(Some(&manager), mv, json!({ "f": from, "t": to })).await;
    assert_eq!(data(&rest)["moveLicenseKeys"]["keysChanged"], 2);
    assert!(keys_in(&app, &manager, &from, json!({})).await.is_empty());
    assert_eq!(keys_in(&app, &manager, &to, json!({})).await, ["MOVE-A", "MOVE-B", "MOVE-C"]);
    let adopt = app.graphql(Some(&manager), mv, json!({ "f": "no-tag", "t": to })).await;
    assert_eq!(data(&adopt)["moveLicenseKeys"]["keysChanged"], 1);
    assert!(keys_in(&app, &manager, "no-tag", json!({})).await.is_empty());

    let tag = "mutation($t: ID!, $k: [ID!]!) { tagLicenseKeys(input: {tagId: $t, keyIds: $k}) { keysChanged } }";
    let untag = "mutation($t: ID!, $k: [ID!]!) { untagLicenseKeys(input: {tagId: $t, keyIds: $k}) { keysChanged } }";
    let tagged = app.graphql(Some(&manager), tag, json!({ "t": extra, "k": [b, c, b] })).await;
    assert_eq!(data(&tagged)["tagLicenseKeys"]["keysChanged"], 2);
    let again = app.graphql(Some(&manager), tag, json!({ "t": extra, "k": [b] })).await;
    assert_eq!(data(&again)["tagLicenseKeys"]["keysChanged"], 0, "tagging twice changes nothing");
    assert_eq!(keys_in(&app, &manager, &extra, json!({})).await, ["MOVE-B", "MOVE-C"]);
    let unknown = app.graphql(Some(&manager), tag, json!({ "t": extra, "k": [b, "01ZZZZZZZZZZZZZZZZZZZZZZZZ"] })).await;
    assert_eq!(error_code(&unknown), Some("NOT_FOUND"));
    assert_eq!(error_field(&unknown), Some("keyIds"));
    let auto = entity::tag::auto_generated_id(p);
    let system = app.graphql(Some(&manager), tag, json!({ "t": auto, "k": [b] })).await;
    assert_eq!(error_code(&system), Some("INVALID_INPUT"));
    let untagged = app.graphql(Some(&manager), untag, json!({ "t": extra, "k": [c, loose] })).await;
    assert_eq!(data(&untagged)["untagLicenseKeys"]["keysChanged"], 1);
    assert_eq!(keys_in(&app, &manager, &extra, json!({})).await, ["MOVE-B"]);
}

async fn keys_are_deleted_by_id_or_by_filter(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let pro = create_tag(&app, &manager, "pro").await;
    let db = app.db();
    let p = Environment::Production;
    let a = seed::key(db, p, "DEL-A", LicenseStatus::Available, &[&pro]).await;
    seed::key(db, p, "DEL-B", LicenseStatus::Available, &[&pro]).await;
    let sold = seed::key(db, p, "DEL-SOLD", LicenseStatus::Available, &[&pro]).await;
    seed::deliver(db, &sold, false).await;
    seed::key(db, p, "KEEP", LicenseStatus::Available, &[]).await;

    let delete =
        "mutation($input: DeleteLicenseKeysInput!) { deleteLicenseKeys(input: $input) { keysChanged ordersAffected } }";
    let by_id = app.graphql(Some(&manager), delete, json!({ "input": { "keyIds": [a] } })).await;
    assert_eq!(data(&by_id)["deleteLicenseKeys"], json!({ "keysChanged": 1, "ordersAffected": 0 }));
    let everything = app.graphql(Some(&manager), delete, json!({ "input": { "filter": {} } })).await;
    assert_eq!(error_code(&everything), Some("INVALID_INPUT"));
    assert_eq!(error_field(&everything), Some("filter"));
    let both =
        app.graphql(Some(&manager), delete, json!({ "input": { "keyIds": [a], "filter": { "tagId": pro } } })).await;
    assert_eq!(error_code(&both), Some("INVALID_INPUT"));
    let unknown =
        app.graphql(Some(&manager), delete, json!({ "input": { "keyIds": ["01ZZZZZZZZZZZZZZZZZZZZZZZZ"] } })).await;
    assert_eq!(error_code(&unknown), Some("NOT_FOUND"));
    let by_filter =
        app.graphql(Some(&manager), delete, json!({ "input": { "filter": { "tagId": pro, "search": "DEL" } } })).await;
    assert_eq!(data(&by_filter)["deleteLicenseKeys"], json!({ "keysChanged": 2, "ordersAffected": 1 }));
    assert_eq!(key_count(&app).await, 1);
}

async fn duplicates_are_cleaned_up_keeping_the_oldest(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let pool = create_tag(&app, &manager, "pool").await;
    let db = app.db();
    let p = Environment::Production;
    let oldest = seed::key(db, p, "DUP-1", LicenseStatus::Available, &[&pool]).await;
    seed::key(db, p, "DUP-1", LicenseStatus::Available, &[&pool]).await;
    seed::key(db, p, "DUP-1", LicenseStatus::Available, &[&pool]).await;
    let sold = seed::key(db, p, "DUP-2", LicenseStatus::Available, &[&pool]).await;
    seed::deliver(db, &sold, false).await;
    seed::key(db, p, "DUP-2", LicenseStatus::Available, &[&pool]).await;
    seed::key(db, p, "UNIQUE", LicenseStatus::Available, &[&pool]).await;
    seed::key(db, p, "DUP-1", LicenseStatus::Available, &[]).await;

    let clean = "mutation($t: ID!) { cleanUpDuplicates(input: {tagId: $t}) { keysChanged ordersAffected } }";
    let body = app.graphql(Some(&manager), clean, json!({ "t": pool })).await;
    assert_eq!(data(&body)["cleanUpDuplicates"], json!({ "keysChanged": 3, "ordersAffected": 0 }));
    assert_eq!(keys_in(&app, &manager, &pool, json!({})).await, ["DUP-1", "DUP-2", "UNIQUE"]);
    let left = license_key::Entity::find().filter(license_key::Column::Key.eq("DUP-1")).all(db).await.expect("read");
    assert!(left.iter().any(|k| k.id == oldest), "the oldest copy stays");
    let dup2 = license_key::Entity::find()
        .filter(license_key::Column::Key.eq("DUP-2"))
        .one(db)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(dup2.status, LicenseStatus::Assigned, "the delivered copy stays");
    let again = app.graphql(Some(&manager), clean, json!({ "t": pool })).await;
    assert_eq!(data(&again)["cleanUpDuplicates"]["keysChanged"], 0);
    let untagged = app.graphql(Some(&manager), clean, json!({ "t": "no-tag" })).await;
    assert_eq!(data(&untagged)["cleanUpDuplicates"]["keysChanged"], 0, "one copy in the untagged pool is no duplicate");
}

/// `filter: {ids}` reads chosen keys again (what a list's bulk action
/// confirms), within the environment, and refuses an empty or huge list.
async fn keys_are_read_again_by_their_ids(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let mut ids = Vec::new();
    for key in ["IDS-0001", "IDS-0002", "IDS-0003"] {
        ids.push(seed::key(app.db(), Environment::Production, key, LicenseStatus::Available, &[]).await);
    }
    let staged = seed::key(app.db(), Environment::Staging, "IDS-STAGED", LicenseStatus::Available, &[]).await;
    let query = "query($ids: [ID!]) { licenseKeys(filter: {ids: $ids}, orderBy: {field: KEY, direction: ASC}) { totalCount edges { node { key } } } }";
    let body = app.graphql(Some(&admin), query, json!({ "ids": [ids[2], ids[0], ids[0]] })).await;
    let found: Vec<&str> = data(&body)["licenseKeys"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|e| e["node"]["key"].as_str())
        .collect();
    assert_eq!(found, ["IDS-0001", "IDS-0003"]);
    assert_eq!(data(&body)["licenseKeys"]["totalCount"], 2);
    let other = app.graphql(Some(&admin), query, json!({ "ids": [staged, ids[1]] })).await;
    assert_eq!(data(&other)["licenseKeys"]["totalCount"], 1, "another environment's keys match nothing");
    for wrong in [json!([]), json!((0..1001).map(|i| format!("id-{i}")).collect::<Vec<_>>())] {
        let refused = app.graphql(Some(&admin), query, json!({ "ids": wrong })).await;
        assert_eq!(
            (error_code(&refused), error_field(&refused)),
            (Some("INVALID_INPUT"), Some("filter.ids")),
            "{refused}"
        );
    }
}
