//! Pool benchmarks, each next to a baseline measured in the same run:
//!
//! - importing N keys (1,000,000 by default) with `keysmith keys import`
//!   against `sqlite3 .import` (SQLite) and `psql \copy` (PostgreSQL) into the
//!   same table, with its indexes and search index: wall time, keys per
//!   second, peak memory;
//! - substring search over those keys: the trigram index against the same
//!   search without it (SQL), and through the API over HTTP (median of many).
//!
//! Run: `cargo bench -p keysmith-tests --bench pools` (needs `sqlite3`,
//! `psql` and GNU `time`; `KEYSMITH_BENCH_KEYS=200000` for a shorter run).

use keysmith_tests::app::fresh_database;
use keysmith_tests::{Backend, postgres};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_keysmith-e2e");
const SECRET: &str = "a-benchmark-signing-secret-0123456789";
const SEARCHES: usize = 101;

/// Deterministic keys like `7KQ2M-XH3PA-0C9ZD-R4T1B`.
fn keys(n: usize) -> Vec<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            let mut key = String::with_capacity(23);
            for group in 0..4 {
                if group > 0 {
                    key.push('-');
                }
                for _ in 0..5 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    key.push(ALPHABET[(state % 32) as usize] as char);
                }
            }
            key
        })
        .collect()
}

/// Runs `command` under GNU time: (wall seconds, peak resident KiB).
fn timed(command: &mut Command) -> (f64, u64) {
    let report = tempfile::NamedTempFile::new().expect("temp file");
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped.arg("-f").arg("%e %M").arg("-o").arg(report.path()).arg(program).args(args);
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    let out = wrapped.output().expect("run under /usr/bin/time");
    assert!(
        out.status.success(),
        "{:?} failed:\n{}\n{}",
        command,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(report.path()).expect("time report");
    let last = text.lines().last().unwrap_or_default();
    let mut parts = last.split_whitespace();
    let seconds: f64 = parts.next().and_then(|s| s.parse().ok()).expect("seconds");
    let kib: u64 = parts.next().and_then(|s| s.parse().ok()).expect("KiB");
    (seconds, kib)
}

fn keysmith(dir: &Path, url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env("DATABASE_URL", url).env("KEYSMITH_JWT_SECRET", SECRET).env("KEYSMITH_LOG", "warn");
    cmd
}

fn migrate(dir: &Path, url: &str) {
    let out = keysmith(dir, url).arg("migrate").output().expect("migrate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The same keys as rows of `license_key`, for the baselines.
fn rows_csv(path: &Path, keys: &[String]) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("csv"));
    writeln!(out, "id,environment,key,source,status,activation_limit,feature_flags,metadata,created_at,updated_at")
        .expect("write");
    // Microseconds, as Keysmith writes its own timestamps: the same bytes per row.
    let now = "2026-11-25T00:00:00.123456+00:00";
    for (i, key) in keys.iter().enumerate() {
        writeln!(out, "B{i:025},production,{key},UPLOADED,AVAILABLE,1,{{}},{{}},{now},{now}").expect("write");
    }
}

struct Import {
    seconds: f64,
    kib: u64,
}

fn row(name: &str, n: usize, i: &Import) -> String {
    format!("| {name} | {:.1} s | {:.0} keys/s | {:.1} MB |", i.seconds, n as f64 / i.seconds, i.kib as f64 / 1024.0)
}

async fn count(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), "SELECT COUNT(*) FROM license_key"))
        .await
        .expect("count")
        .expect("row");
    row.try_get_by_index(0).expect("count")
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Median time of `sql` (with one `?`/`$1` bound to each term) over the terms.
async fn sql_median(
    db: &DatabaseConnection,
    sql: &str,
    terms: &[String],
    pattern: impl Fn(&str) -> String,
) -> Duration {
    let mut samples = Vec::new();
    for term in terms {
        let started = Instant::now();
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(db.get_database_backend(), sql, [pattern(term).into()]))
            .await
            .expect("search");
        samples.push(started.elapsed());
        assert!(!rows.is_empty(), "{term} is in the data");
    }
    median(samples)
}

async fn api_median(base: &str, token: &str, terms: &[String]) -> Duration {
    let client = reqwest::Client::new();
    let mut samples = Vec::new();
    for term in terms {
        let started = Instant::now();
        let body: serde_json::Value = client
            .post(format!("{base}/graphql"))
            .bearer_auth(token)
            .json(&serde_json::json!({
                "query": "query($s: String) { licenseKeys(first: 20, filter: {search: $s}) { edges { node { key } } } }",
                "variables": { "s": term }
            }))
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("json");
        samples.push(started.elapsed());
        let edges = body["data"]["licenseKeys"]["edges"].as_array().unwrap_or_else(|| panic!("{body}"));
        assert!(!edges.is_empty(), "{term} found through the API");
    }
    median(samples)
}

/// Median of 11 requests for the tag overview (figures aggregated over every key).
async fn overview_median(base: &str, token: &str) -> Duration {
    let client = reqwest::Client::new();
    let mut samples = Vec::new();
    for _ in 0..11 {
        let started = Instant::now();
        let body: serde_json::Value = client
            .post(format!("{base}/graphql"))
            .bearer_auth(token)
            .json(
                &serde_json::json!({ "query": "{ tags { edges { node { name total remaining usedPercentage } } } }" }),
            )
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("json");
        samples.push(started.elapsed());
        assert!(body["data"]["tags"]["edges"].is_array(), "{body}");
    }
    median(samples)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("KEYSMITH_BENCH_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let work = tempfile::tempdir().expect("dir");
    let dir = work.path();
    eprintln!("generating {n} keys …");
    let all = keys(n);
    std::fs::write(dir.join("keys.txt"), all.join("\n")).expect("keys file");
    rows_csv(&dir.join("rows.csv"), &all);
    // Terms from keys spread over the data set: 4 characters from the middle of a key.
    let terms: Vec<String> = (0..SEARCHES).map(|i| all[(i * 7919 * 97) % n][6..10].to_string()).collect();
    let mut table = vec![
        format!("Import of {n} keys (one per line) into `license_key`, fresh database each:"),
        String::new(),
        "| run | wall | rate | peak memory |".into(),
        "|---|---|---|---|".into(),
    ];

    // SQLite: keysmith keys import, then sqlite3 .import (staged, then INSERT … SELECT into the same table).
    let sqlite_dir = dir.join("sqlite");
    std::fs::create_dir_all(&sqlite_dir).expect("dir");
    let sqlite_url = format!("sqlite://{}", sqlite_dir.join("keysmith.db").display());
    migrate(dir, &sqlite_url);
    eprintln!("SQLite: keysmith keys import …");
    let (seconds, kib) = timed(keysmith(dir, &sqlite_url).args(["keys", "import", "keys.txt"]));
    let ours_sqlite = Import { seconds, kib };
    let baseline_dir = dir.join("sqlite-baseline");
    std::fs::create_dir_all(&baseline_dir).expect("dir");
    let baseline_file = baseline_dir.join("keysmith.db");
    migrate(dir, &format!("sqlite://{}", baseline_file.display()));
    eprintln!("SQLite: sqlite3 .import …");
    let script = format!(
        ".mode csv\n.import {} staged\nINSERT INTO license_key (id, environment, key, source, status, activation_limit, \
         feature_flags, metadata, created_at, updated_at) SELECT id, environment, key, source, status, \
         CAST(activation_limit AS INTEGER), feature_flags, metadata, created_at, updated_at FROM staged;\nDROP TABLE staged;\n",
        dir.join("rows.csv").display()
    );
    std::fs::write(dir.join("import.sql"), script).expect("script");
    let (seconds, kib) =
        timed(Command::new("sqlite3").arg(&baseline_file).arg(format!(".read {}", dir.join("import.sql").display())));
    let sqlite3 = Import { seconds, kib };
    table.push(row("SQLite — `keysmith keys import`", n, &ours_sqlite));
    table.push(row("SQLite — `sqlite3 .import` (baseline)", n, &sqlite3));
    table.push(format!(
        "| SQLite ratio (baseline time / keysmith time) | {:.2} | | |",
        sqlite3.seconds / ours_sqlite.seconds
    ));

    // PostgreSQL: keysmith keys import, then psql \copy into the same table.
    let pg = fresh_database(Backend::Postgres, dir).await;
    let mut pg_url_for_search = None;
    if let (Some(url), Some(cluster)) = (pg, postgres::cluster()) {
        migrate(dir, &url);
        eprintln!("PostgreSQL: keysmith keys import …");
        let (seconds, kib) = timed(keysmith(dir, &url).args(["keys", "import", "keys.txt"]));
        let ours_pg = Import { seconds, kib };
        let baseline_url = fresh_database(Backend::Postgres, dir).await.expect("database");
        migrate(dir, &baseline_url);
        eprintln!("PostgreSQL: psql \\copy …");
        let copy = format!(
            "\\copy license_key (id, environment, key, source, status, activation_limit, feature_flags, metadata, \
             created_at, updated_at) FROM '{}' WITH (FORMAT csv, HEADER true)",
            dir.join("rows.csv").display()
        );
        let (seconds, kib) =
            timed(Command::new("psql").arg(&baseline_url).args(["-q", "-v", "ON_ERROR_STOP=1", "-c", &copy]));
        let psql = Import { seconds, kib };
        table.push(row("PostgreSQL — `keysmith keys import`", n, &ours_pg));
        table.push(row("PostgreSQL — `psql \\copy` (baseline)", n, &psql));
        table.push(format!(
            "| PostgreSQL ratio (baseline time / keysmith time) | {:.2} | | |",
            psql.seconds / ours_pg.seconds
        ));
        let _ = cluster;
        pg_url_for_search = Some(url);
    } else {
        table.push("| PostgreSQL | skipped: no PostgreSQL installed | | |".into());
    }

    // Substring search over the imported keys.
    table.push(String::new());
    table.push(format!("Substring search of a 4-character term over {n} keys, median of {SEARCHES} terms:"));
    table.push(String::new());
    table.push(
        "| database | trigram index (SQL) | no index (SQL) | ratio | through the API (HTTP) | tag overview (API) |"
            .into(),
    );
    table.push("|---|---|---|---|---|---|".into());
    let searches: Vec<(&str, String, String, String)> = {
        let mut v = vec![(
            "SQLite",
            sqlite_url.clone(),
            "SELECT k.key FROM license_key k WHERE k.rowid IN (SELECT rowid FROM license_key_search WHERE \
             license_key_search MATCH ?) ORDER BY k.created_at DESC, k.id DESC LIMIT 21"
                .to_string(),
            "SELECT k.key FROM license_key k WHERE k.key LIKE ? ORDER BY k.created_at DESC, k.id DESC LIMIT 21"
                .to_string(),
        )];
        if let Some(url) = &pg_url_for_search {
            v.push((
                "PostgreSQL",
                url.clone(),
                "SELECT k.key FROM license_key k WHERE k.key ILIKE $1 ORDER BY k.created_at DESC, k.id DESC LIMIT 21"
                    .to_string(),
                "SELECT k.key FROM license_key k WHERE (k.key || '') ILIKE $1 ORDER BY k.created_at DESC, k.id DESC LIMIT 21"
                    .to_string(),
            ));
        }
        v
    };
    for (name, url, indexed, unindexed) in searches {
        let db = keysmith::db::connect(&url, 4).await.expect("connect");
        assert_eq!(count(&db).await as usize, n, "{name} holds every key");
        let fts = db.get_database_backend() == DbBackend::Sqlite;
        let with_index =
            sql_median(&db, &indexed, &terms, |t| if fts { format!("\"{t}\"") } else { format!("%{t}%") }).await;
        let without = sql_median(&db, &unindexed, &terms[..21], |t| format!("%{t}%")).await;

        // The API: the real server over HTTP, a staff token from the command line.
        let created = {
            let mut child = keysmith(dir, &url)
                .args(["user", "create", "--email", "bench@example.com", "--role", "support"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("user create");
            child.stdin.take().expect("stdin").write_all(b"a benchmark password\n").expect("password");
            child.wait().expect("user create")
        };
        assert!(created.success());
        let token = String::from_utf8(
            keysmith(dir, &url).args(["token", "--email", "bench@example.com"]).output().expect("token").stdout,
        )
        .expect("utf8")
        .trim()
        .to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let mut server = keysmith(dir, &url)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("serve");
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if reqwest::get(format!("{base}/healthz")).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        api_median(&base, &token, &terms[..5]).await; // warm-up
        let api = api_median(&base, &token, &terms).await;
        let overview = overview_median(&base, &token).await;
        server.kill().ok();
        server.wait().ok();
        table.push(format!(
            "| {name} | {} | {} | {:.0}× | {} | {} |",
            ms(with_index),
            ms(without),
            without.as_secs_f64() / with_index.as_secs_f64(),
            ms(api),
            ms(overview)
        ));
        db.close().await.ok();
    }
    println!("{}", table.join("\n"));
}
