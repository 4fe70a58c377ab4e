//! Importing keys (pasted text, CSV uploads) and exporting them: the reports,
//! the all-or-nothing rule, hostile files, and streamed CSV/JSON.

use crate::pools::create_tag;
use entity::user::StaffRole;
use entity::{Environment, LicenseStatus, audit_event, license_key, tag};
use keysmith_tests::app::seed;
use keysmith_tests::{TestApp, data, error_code, on_both_databases};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

const IMPORT: &str = r#"
mutation($input: ImportLicenseKeysInput!) {
  importLicenseKeys(input: $input) {
    committed lines imported duplicatesInFile duplicatesInPool invalidCount invalidLines { line reason } createdTags
  }
}"#;

async fn import_text(app: &TestApp, token: &str, input: Value) -> Value {
    app.graphql(Some(token), IMPORT, json!({ "input": input })).await
}

/// Sends `file` as a GraphQL multipart upload (the `file` variable of the input).
async fn upload(app: &TestApp, token: Option<&str>, name: &str, file: Vec<u8>, input: Value) -> (u16, Value) {
    let mut input = input;
    input["file"] = Value::Null;
    let operations = json!({ "query": IMPORT, "variables": { "input": input } });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.input.file"] }).to_string())
        .part("0", reqwest::multipart::Part::bytes(file).file_name(name.to_string()));
    let mut req = app.http.post(app.url("/graphql")).multipart(form);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("answer");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

async fn keys(app: &TestApp) -> Vec<license_key::Model> {
    license_key::Entity::find().order_by_asc(license_key::Column::Key).all(app.db()).await.expect("keys")
}

on_both_databases!(
    pasted_keys_are_imported_with_a_report,
    one_invalid_line_imports_nothing_unless_invalid_lines_are_skipped,
    a_hostile_csv_upload_is_reported_line_by_line,
    an_import_failing_half_way_leaves_nothing_behind,
    exports_stream_csv_and_json_for_managers,
);

async fn pasted_keys_are_imported_with_a_report(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let pro = create_tag(&app, &manager, "pro").await;
    let body = import_text(
        &app,
        &manager,
        json!({ "text": "\u{feff}AAA-1\r\nAAA-2\r\n\r\nAAA-1\n   \nBBB-3\n", "tagIds": [pro] }),
    )
    .await;
    insta::assert_json_snapshot!("import_report", data(&body));

    let again = import_text(&app, &manager, json!({ "text": "AAA-1\nCCC-4", "tagIds": [pro] })).await;
    let report = &data(&again)["importLicenseKeys"];
    assert_eq!((report["imported"].as_u64(), report["duplicatesInPool"].as_u64()), (Some(1), Some(1)));

    let nothing_new = import_text(&app, &manager, json!({ "text": "AAA-1\nAAA-2", "tagIds": [pro] })).await;
    let report = &data(&nothing_new)["importLicenseKeys"];
    assert_eq!(
        (report["committed"].as_bool(), report["imported"].as_u64(), report["duplicatesInPool"].as_u64()),
        (Some(true), Some(0), Some(2)),
        "a list of known keys imports nothing, successfully"
    );

    let keep = import_text(&app, &manager, json!({ "text": "AAA-1\nAAA-1", "duplicates": "KEEP" })).await;
    assert_eq!(data(&keep)["importLicenseKeys"]["imported"], 2);

    let all = keys(&app).await;
    let strings: Vec<&str> = all.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(strings, ["AAA-1", "AAA-1", "AAA-1", "AAA-2", "BBB-3", "CCC-4"]);
    assert!(all.iter().all(|k| k.status == LicenseStatus::Available && k.activation_limit == 1));
    let stats =
        app.graphql(Some(&manager), "query($id: ID!) { tag(id: $id) { total remaining } }", json!({ "id": pro })).await;
    assert_eq!(data(&stats)["tag"], json!({ "total": 4, "remaining": 4 }));
    let untagged = app.graphql(Some(&manager), "{ tag(id: \"no-tag\") { total } }", json!({})).await;
    assert_eq!(data(&untagged)["tag"]["total"], 2);

    let imported = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("license_keys.imported"))
        .count(app.db())
        .await
        .expect("audit");
    assert_eq!(imported, 4);
}

async fn one_invalid_line_imports_nothing_unless_invalid_lines_are_skipped(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let text = format!("GOOD-1\nBAD\u{7}KEY\nGOOD-2\n{}\n", "L".repeat(300));
    let body = import_text(&app, &manager, json!({ "text": text })).await;
    let report = &data(&body)["importLicenseKeys"];
    assert_eq!(report["committed"], false);
    assert_eq!(report["imported"], 0);
    assert_eq!(report["invalidCount"], 2);
    assert_eq!(report["invalidLines"][0]["line"], 2);
    assert!(report["invalidLines"][0]["reason"].as_str().unwrap_or_default().contains("control characters"));
    assert_eq!(report["invalidLines"][1]["line"], 4);
    assert!(report["invalidLines"][1]["reason"].as_str().unwrap_or_default().contains("longer than 256"));
    assert!(keys(&app).await.is_empty(), "nothing imported");

    let body = import_text(&app, &manager, json!({ "text": text, "skipInvalid": true })).await;
    let report = &data(&body)["importLicenseKeys"];
    assert_eq!((report["committed"].as_bool(), report["imported"].as_u64()), (Some(true), Some(2)));
    assert_eq!(keys(&app).await.len(), 2);

    let unknown_tag =
        import_text(&app, &manager, json!({ "text": "X-1", "tagIds": ["01ZZZZZZZZZZZZZZZZZZZZZZZZ"] })).await;
    assert_eq!(error_code(&unknown_tag), Some("NOT_FOUND"));
    assert_eq!(unknown_tag["errors"][0]["extensions"]["field"], "tagIds");
    let auto = tag::auto_generated_id(Environment::Production);
    let system = import_text(&app, &manager, json!({ "text": "X-1", "tagIds": [auto] })).await;
    assert_eq!(error_code(&system), Some("INVALID_INPUT"));
    let nothing = import_text(&app, &manager, json!({})).await;
    assert_eq!(error_code(&nothing), Some("INVALID_INPUT"));
    assert_eq!(keys(&app).await.len(), 2);

    let support = app.staff_token(StaffRole::Support).await;
    let refused = import_text(&app, &support, json!({ "text": "X-1" })).await;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"));
}

async fn a_hostile_csv_upload_is_reported_line_by_line(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let pro = create_tag(&app, &manager, "pro").await;
    data(
        &app.graphql(
            Some(&manager),
            "mutation { createProduct(input: {name: \"Pro Suite\"}) { product { id } } }",
            json!({}),
        )
        .await,
    );
    let mut csv = Vec::new();
    csv.extend_from_slice(b"\xEF\xBB\xBFkey,tags,product,expiry,activation limit\r\n"); // 1: header behind a BOM
    csv.extend_from_slice(b"CSV-1,beta|pro,Pro Suite,2999-12-31,5\r\n"); // 2
    csv.extend_from_slice(b"\r\n"); // 3: blank
    csv.extend_from_slice(b"CSV-2\r\n"); // 4: key only
    csv.extend_from_slice(b"CSV-3,,,,,extra\r\n"); // 5: six columns
    csv.extend_from_slice(b"\"CSV,4\",beta\r\n"); // 6: a quoted comma
    csv.extend_from_slice(b"CSV-5,Bad Tag\r\n"); // 7: tag rule
    csv.extend_from_slice(b"CSV-6,,No Such Product\r\n"); // 8: unknown product
    csv.extend_from_slice(format!("{}\r\n", "Z".repeat(100 * 1024)).as_bytes()); // 9: a 100 KiB line
    csv.extend_from_slice(b"CSV-7,,,,\r\n"); // 10: empty cells
    csv.extend_from_slice(format!("CSV-8,\"{}\"\r\n", "C".repeat(3 * 1024 * 1024)).as_bytes()); // 11: a 3 MiB cell
    csv.extend_from_slice(b"CSV-9,,,2001-01-01\n"); // 12: expired already
    csv.extend_from_slice(b"CSV-10,,,,unlimited"); // 13: no final newline, bad limit

    let (status, body) = upload(&app, Some(&manager), "keys.csv", csv.clone(), json!({ "tagIds": [pro] })).await;
    assert_eq!(status, 200, "{body:#}");
    let report = &data(&body)["importLicenseKeys"];
    let lines: Vec<u64> =
        report["invalidLines"].as_array().expect("lines").iter().map(|l| l["line"].as_u64().expect("line")).collect();
    assert_eq!(lines, [5, 7, 8, 9, 11, 12, 13], "{report:#}");
    assert_eq!(report["committed"], false);
    assert!(keys(&app).await.is_empty());
    let beta = tag::Entity::find().filter(tag::Column::Name.eq("beta")).count(app.db()).await.expect("count");
    assert_eq!(beta, 0, "a failed import creates no tags either");

    let (_, body) =
        upload(&app, Some(&manager), "keys.csv", csv, json!({ "tagIds": [pro], "skipInvalid": true })).await;
    insta::assert_json_snapshot!("hostile_csv_report", data(&body));
    let imported = keys(&app).await;
    let strings: Vec<&str> = imported.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(strings, ["CSV,4", "CSV-1", "CSV-2", "CSV-7"]);
    let first = &imported[1];
    assert_eq!(first.activation_limit, 5);
    assert_eq!(first.expires_at.map(|t| t.to_rfc3339()), Some("2999-12-31T23:59:59+00:00".to_string()));
    assert!(first.product_id.is_some());
    let listed = app
        .graphql(
            Some(&manager),
            "{ licenseKeys(filter: {search: \"CSV-1\"}) { edges { node { tags { name } activationLimit } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&listed)["licenseKeys"]["edges"][0]["node"]["tags"],
        json!([{ "name": "beta" }, { "name": "pro" }])
    );

    let (status, body) = upload(&app, None, "keys.csv", b"K-1".to_vec(), json!({})).await;
    assert_eq!(status, 401, "uploads need a bearer token: {body:#}");
}

async fn an_import_failing_half_way_leaves_nothing_behind(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    // Five full batches go into the transaction before the bad last line is read.
    let mut text: String = (0..5000).map(|i| format!("HALF-{i:05}\n")).collect();
    text.push_str("BAD\u{1}\n");
    let body = import_text(&app, &manager, json!({ "text": text })).await;
    let report = &data(&body)["importLicenseKeys"];
    assert_eq!(report["committed"], false);
    assert_eq!(report["lines"], 5001);
    assert_eq!(report["invalidLines"][0]["line"], 5001);
    assert!(keys(&app).await.is_empty());

    // A failure of the database itself, after every key went in: the same.
    app.db().execute_unprepared("DROP TABLE audit_event").await.expect("drop");
    let text: String = (0..2500).map(|i| format!("LATE-{i:05}\n")).collect();
    let body = import_text(&app, &manager, json!({ "text": text })).await;
    assert_eq!(error_code(&body), Some("INTERNAL"), "{body:#}");
    assert!(keys(&app).await.is_empty());
}

async fn exports_stream_csv_and_json_for_managers(app: TestApp) {
    let manager = app.staff_token(StaffRole::Manager).await;
    let pro = create_tag(&app, &manager, "pro").await;
    let db = app.db();
    let p = Environment::Production;
    seed::key(db, p, "=HYPERLINK(\"http://evil\")", LicenseStatus::Available, &[&pro]).await;
    let sold = seed::key(db, p, "EXP-SOLD", LicenseStatus::Available, &[&pro]).await;
    seed::deliver(db, &sold, false).await;
    for i in 0..2100 {
        seed::key(db, p, &format!("BULK-{i:04}"), LicenseStatus::Available, &[]).await;
    }

    let get = |path: String, token: Option<String>| {
        let mut req = app.http.get(app.url(&path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    let csv = get(format!("/export/license-keys.csv?tagId={pro}"), Some(manager.clone())).await.expect("answer");
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/csv"));
    let text = csv.text().await.expect("body");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    assert_eq!(rows.len(), 2);
    let keys: Vec<&str> = rows.iter().map(|r| &r[1]).collect();
    assert!(keys.contains(&"'=HYPERLINK(\"http://evil\")"), "formulas are neutralised: {keys:?}");
    let sold_row = rows.iter().find(|r| &r[1] == "EXP-SOLD").expect("the sold key");
    assert_eq!(&sold_row[3], "ASSIGNED");
    assert_eq!(&sold_row[4], "pro");
    assert!(sold_row[7].ends_with("@example.com"), "the customer's email is exported");

    // More than one page, as JSON.
    let json =
        get("/export/license-keys.json?tagId=no-tag&search=BULK".into(), Some(manager.clone())).await.expect("answer");
    assert_eq!(json.status(), 200);
    let all: Vec<Value> = json.json().await.expect("a JSON array");
    assert_eq!(all.len(), 2100);
    assert_eq!(all[0]["status"], "AVAILABLE");
    let mut seen: Vec<&str> = all.iter().map(|r| r["key"].as_str().expect("key")).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 2100, "every key once");

    let filtered =
        get("/export/license-keys.json?status=assigned".into(), Some(manager.clone())).await.expect("answer");
    let assigned: Vec<Value> = filtered.json().await.expect("json");
    assert_eq!(assigned.len(), 1);

    let support = app.staff_token(StaffRole::Support).await;
    let refused = get("/export/license-keys.csv".into(), Some(support)).await.expect("answer");
    assert_eq!(refused.status(), 403);
    let anonymous = get("/export/license-keys.csv".into(), None).await.expect("answer");
    assert_eq!(anonymous.status(), 401);
    let bad = get("/export/license-keys.csv?status=sold".into(), Some(manager)).await.expect("answer");
    assert_eq!(bad.status(), 400);
}

/// On PostgreSQL a bulk import has the key tables analysed before it
/// answers, so the orders' key claim is planned for the pool as it now is
/// rather than as PostgreSQL's own analysis last saw it, up to a minute ago.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_import_leaves_the_key_statistics_current_on_postgres() {
    let Some(app) = TestApp::spawn(keysmith_tests::Backend::Postgres).await else {
        return;
    };
    let manager = app.staff_token(StaffRole::Manager).await;
    let analysed = || async {
        let row = app
            .db()
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT s.analyze_count, c.reltuples::bigint FROM pg_stat_user_tables s \
                 JOIN pg_class c ON c.oid = s.relid WHERE s.relname = 'license_key'",
            ))
            .await
            .expect("statistics")
            .expect("the key table");
        (row.try_get_by_index::<i64>(0).expect("count"), row.try_get_by_index::<i64>(1).expect("rows"))
    };
    assert_eq!(analysed().await.0, 0, "nothing has analysed the new database's keys yet");
    let keys: String = (0..keysmith::services::bulk::ANALYZE_AFTER).map(|i| format!("BULK-{i:05}\n")).collect();
    let body = import_text(&app, &manager, json!({ "text": keys })).await;
    assert_eq!(data(&body)["importLicenseKeys"]["imported"], keysmith::services::bulk::ANALYZE_AFTER, "{body:#}");
    let (count, rows) = analysed().await;
    assert_eq!(count, 1, "the import analysed the key table once");
    assert_eq!(rows, keysmith::services::bulk::ANALYZE_AFTER as i64, "the planner knows the pool's keys");
}
