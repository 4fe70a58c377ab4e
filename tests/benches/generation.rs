//! Bulk generation benchmark: `generateLicenses` of N keys (100,000 by
//! default) as a background job, against a baseline measured in the same
//! run on the same server: importing N ready-made keys of the same length
//! through `importLicenseKeys` (a file upload). Both end as N AVAILABLE keys
//! with one tag; generation also draws every key, checks it against the pool
//! and retries collisions. Reported per database: wall time from the request
//! until the job has finished, keys per second, and the ratio.
//!
//! Run: `cargo bench -p keysmith-tests --bench generation`
//! (`KEYSMITH_BENCH_KEYS=20000` for a shorter run).

use entity::user::StaffRole;
use keysmith_tests::{Backend, TestApp, data};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const GENERATE: &str = "mutation($g: ID!, $p: ID!, $n: Int!) { generateLicenses(input: {generatorId: $g, productId: $p, \
                        count: $n}) { job { id } } }";
const JOB: &str = "query($id: ID!) { job(id: $id) { status progress error } }";
const IMPORT: &str =
    "mutation($input: ImportLicenseKeysInput!) { importLicenseKeys(input: $input) { committed imported } }";

/// Distinct keys shaped like the generator's (`BK-` and 16 characters).
fn ready_made(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 20);
    for i in 0..n {
        out.extend_from_slice(format!("BI-{:016X}\n", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).as_bytes());
    }
    out
}

async fn wait_for_job(app: &TestApp, token: &str, id: &Value) {
    loop {
        let body = app.graphql(Some(token), JOB, json!({ "id": id })).await;
        let job = &data(&body)["job"];
        match job["status"].as_str() {
            Some("SUCCEEDED") => return,
            Some("FAILED") => panic!("the generation job failed: {job:#}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

struct Run {
    generation: Duration,
    import: Duration,
}

async fn run(backend: Backend, n: usize) -> Option<Run> {
    let app = TestApp::spawn(backend).await?;
    let token = app.staff_token(StaffRole::Manager).await;
    let t = Some(token.as_str());
    let product =
        app.graphql(t, "mutation { createProduct(input: {name: \"Bulk\"}) { product { id } } }", json!({})).await;
    let generator = app
        .graphql(
            t,
            "mutation { createGenerator(input: {name: \"Bulk keys\", format: PATTERN, pattern: \"BK-{X:16}\"}) \
             { generator { id } } }",
            json!({}),
        )
        .await;
    let tag = app.graphql(t, "mutation { createTag(input: {name: \"imported\"}) { tag { id } } }", json!({})).await;

    eprintln!("{backend:?}: generateLicenses of {n} keys …");
    let started = Instant::now();
    let body = app
        .graphql(
            t,
            GENERATE,
            json!({
                "g": data(&generator)["createGenerator"]["generator"]["id"],
                "p": data(&product)["createProduct"]["product"]["id"],
                "n": n,
            }),
        )
        .await;
    wait_for_job(&app, &token, &data(&body)["generateLicenses"]["job"]["id"]).await;
    let generation = started.elapsed();
    eprintln!("{backend:?}: importLicenseKeys of {n} keys …");
    let operations = json!({ "query": IMPORT, "variables": { "input": {
        "file": null, "tagIds": [data(&tag)["createTag"]["tag"]["id"]]
    } } });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.input.file"] }).to_string())
        .part("0", reqwest::multipart::Part::bytes(ready_made(n)).file_name("keys.txt"));
    let started = Instant::now();
    let resp = app.http.post(app.url("/graphql")).bearer_auth(&token).multipart(form).send().await.expect("answer");
    let body: Value = resp.json().await.expect("json");
    let import = started.elapsed();
    assert_eq!(data(&body)["importLicenseKeys"]["imported"], json!(n), "{body:#}");

    let counts = app.graphql(t, "{ tags { edges { node { name remaining } } } }", json!({})).await;
    for edge in data(&counts)["tags"]["edges"].as_array().expect("tags") {
        let node = &edge["node"];
        if node["name"] == "auto-generated" || node["name"] == "imported" {
            assert_eq!(node["remaining"], json!(n), "every key is in its pool: {node}");
        }
    }
    app.stop().await;
    Some(Run { generation, import })
}

fn rate(n: usize, d: Duration) -> String {
    format!("{:.0} keys/s", n as f64 / d.as_secs_f64())
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("KEYSMITH_BENCH_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let mut table = vec![
        format!("Bulk generation of {n} keys (a background job), against importing {n} ready-made keys:"),
        String::new(),
        "| database | generateLicenses | rate | importLicenseKeys (baseline) | rate | ratio (import time / generation time) |"
            .to_string(),
        "|---|---|---|---|---|---|".to_string(),
    ];
    for backend in [Backend::Sqlite, Backend::Postgres] {
        match run(backend, n).await {
            Some(r) => table.push(format!(
                "| {backend:?} | {:.1} s | {} | {:.1} s | {} | {:.2} |",
                r.generation.as_secs_f64(),
                rate(n, r.generation),
                r.import.as_secs_f64(),
                rate(n, r.import),
                r.import.as_secs_f64() / r.generation.as_secs_f64()
            )),
            None => table.push(format!("| {backend:?} | skipped: not available | | | | |")),
        }
    }
    println!("{}", table.join("\n"));
}
