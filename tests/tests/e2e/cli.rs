//! The `keysmith` command line as a real process: serving with nothing
//! configured, staff accounts and tokens, migrations, the schema, SIGTERM.

use keysmith_tests::app::fresh_database;
use keysmith_tests::{Backend, data};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_keysmith-e2e");

/// The command in `dir`, with none of the developer's Keysmith settings.
pub(crate) fn keysmith(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (name, _) in std::env::vars() {
        if name == "DATABASE_URL" || name.starts_with("KEYSMITH_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

pub(crate) struct Served {
    child: Child,
    pub(crate) base: String,
    log: std::path::PathBuf,
}

impl Served {
    /// Starts `keysmith serve` (the default command) and waits until it answers.
    pub(crate) async fn start(mut cmd: Command, dir: &Path) -> Served {
        let port = free_port();
        let log = dir.join(format!("serve-{port}.log"));
        let child = cmd
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start keysmith");
        let served = Served { child, base: format!("http://127.0.0.1:{port}"), log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(resp) = reqwest::get(format!("{}/healthz", served.base)).await
                && resp.status() == 200
            {
                return served;
            }
            assert!(Instant::now() < deadline, "keysmith did not start:\n{}", served.log_text());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server process's id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn graphql(&self, token: &str, query: &str) -> serde_json::Value {
        reqwest::Client::new()
            .post(format!("{}/graphql", self.base))
            .bearer_auth(token)
            .json(&json!({ "query": query }))
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("json")
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub(crate) fn terminate(self) -> (ExitStatus, String) {
        self.signal("-TERM")
    }

    /// Kills the process outright (SIGKILL), as a crash or an OOM kill would.
    pub(crate) fn kill(self) -> (ExitStatus, String) {
        self.signal("-KILL")
    }

    /// Sends `signal` (as `kill` spells it) and waits for the process to exit.
    fn signal(mut self, signal: &str) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args([signal, &pid]).status().expect("kill");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, self.log_text());
            }
            if Instant::now() > deadline {
                self.child.kill().ok();
                panic!("keysmith ignored SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub(crate) fn create_admin(
    dir: &Path,
    email: &str,
    password: &str,
    extra_env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = keysmith(dir);
    cmd.args(["user", "create", "--email", email, "--role", "admin"]);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start");
    child.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes()).expect("write the password");
    child.wait_with_output().expect("finish")
}

#[tokio::test]
async fn serving_with_nothing_configured_creates_the_database_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("dir");
    let served = Served::start(keysmith(dir.path()), dir.path()).await;

    let db_file = dir.path().join("keysmith.db");
    assert!(db_file.is_file(), "keysmith.db is created in the working directory");
    let secret = dir.path().join("keysmith.db.jwt-secret");
    assert!(secret.is_file(), "a signing secret is kept beside the database");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).expect("secret").permissions().mode();
        assert_eq!(mode & 0o077, 0, "the secret file is private");
    }
    assert!(served.log_text().contains("KEYSMITH_JWT_SECRET"), "the generated secret is warned about");

    let page = reqwest::get(format!("{}/graphql", served.base)).await.expect("answer");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").to_lowercase().contains("graphiql"));

    let db = keysmith::db::connect(&format!("sqlite://{}", db_file.display()), 1).await.expect("open");
    let mode = sea_orm::ConnectionTrait::query_one_raw(
        &db,
        sea_orm::Statement::from_string(sea_orm::DbBackend::Sqlite, "PRAGMA journal_mode"),
    )
    .await
    .expect("pragma")
    .expect("row");
    assert_eq!(mode.try_get_by_index::<String>(0).expect("mode"), "wal");
    db.close().await.ok();

    let (status, log) = served.terminate();
    assert!(status.success(), "a clean exit on SIGTERM: {status:?}\n{log}");
    assert!(log.contains("shutting down"), "{log}");
}

#[tokio::test]
async fn staff_accounts_and_tokens_from_the_command_line_survive_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let short = create_admin(dir.path(), "owner@example.com", "short", &[]);
    assert!(!short.status.success());
    let err = String::from_utf8_lossy(&short.stderr);
    assert!(err.contains("password: must be at least 12 characters"), "{err}");

    let created = create_admin(dir.path(), "owner@example.com", "a long enough password", &[]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));

    let out = keysmith(dir.path()).args(["token", "--email", "OWNER@example.com"]).output().expect("token");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).expect("utf8").trim().to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT on stdout and nothing else");

    let unknown = keysmith(dir.path()).args(["token", "--email", "nobody@example.com"]).output().expect("token");
    assert!(!unknown.status.success());

    let served = Served::start(keysmith(dir.path()), dir.path()).await;
    let body = served.graphql(&token, "mutation { createProduct(input: {name: \"Pro\"}) { product { name } } }").await;
    assert_eq!(data(&body)["createProduct"]["product"]["name"], "Pro");
    served.terminate();

    let served = Served::start(keysmith(dir.path()), dir.path()).await;
    let body = served.graphql(&token, "{ me { role user { email } } products { totalCount } }").await;
    assert_eq!(data(&body)["me"]["role"], "ADMIN");
    assert_eq!(data(&body)["me"]["user"]["email"], "owner@example.com");
    assert_eq!(data(&body)["products"]["totalCount"], 1);
    // Ctrl-C stops it as cleanly as SIGTERM.
    let (status, log) = served.signal("-INT");
    assert!(status.success(), "{log}");
}

#[test]
fn the_schema_command_prints_the_committed_schema() {
    let dir = tempfile::tempdir().expect("dir");
    let out = keysmith(dir.path()).arg("schema").output().expect("schema");
    assert!(out.status.success());
    let committed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema.graphql"))
        .expect("schema.graphql");
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "schema.graphql is out of date: run `cargo run -q -p keysmith -- schema > schema.graphql`"
    );
    assert!(!dir.path().join("keysmith.db").exists(), "printing the schema touches no database");
}

#[tokio::test]
async fn postgres_is_migrated_and_served_by_url_with_a_configured_secret() {
    let dir = tempfile::tempdir().expect("dir");
    let Some(url) = fresh_database(Backend::Postgres, dir.path()).await else {
        return;
    };

    let migrate = keysmith(dir.path()).arg("migrate").env("DATABASE_URL", &url).output().expect("migrate");
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    let db = keysmith::db::connect(&url, 1).await.expect("connect");
    let tables = sea_orm::ConnectionTrait::query_all_raw(
        &db,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
        ),
    )
    .await
    .expect("tables");
    let names: Vec<String> = tables.iter().map(|r| r.try_get_by_index::<String>(0).expect("name")).collect();
    for table in ["license_key", "orders", "product", "users", "audit_event", "webhook_delivery", "job", "setting"] {
        assert!(names.iter().any(|n| n == table), "{table} missing from {names:?}");
    }
    db.close().await.ok();
    assert!(!dir.path().join("keysmith.db").exists(), "no SQLite file when PostgreSQL is configured");

    let no_secret = keysmith(dir.path()).env("DATABASE_URL", &url).output().expect("serve");
    assert!(!no_secret.status.success());
    assert!(String::from_utf8_lossy(&no_secret.stderr).contains("KEYSMITH_JWT_SECRET must be set"));

    let secret = "a-postgres-deployment-secret-0123456789";
    let created = create_admin(
        dir.path(),
        "pg@example.com",
        "a long enough password",
        &[("DATABASE_URL", &url), ("KEYSMITH_JWT_SECRET", secret)],
    );
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let mut cmd = keysmith(dir.path());
    cmd.env("DATABASE_URL", &url).env("KEYSMITH_JWT_SECRET", secret).args(["--log-format", "json"]);
    let served = Served::start(cmd, dir.path()).await;
    let ready = reqwest::get(format!("{}/readyz", served.base)).await.expect("answer");
    assert_eq!(ready.status(), 200);
    let out = keysmith(dir.path())
        .args(["token", "--email", "pg@example.com"])
        .env("DATABASE_URL", &url)
        .env("KEYSMITH_JWT_SECRET", secret)
        .output()
        .expect("token");
    let token = String::from_utf8(out.stdout).expect("utf8").trim().to_string();
    let body = served.graphql(&token, "{ me { role } }").await;
    assert_eq!(data(&body)["me"]["role"], "ADMIN");

    let (status, log) = served.terminate();
    assert!(status.success(), "{log}");
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(parsed["level"].is_string(), "{line}");
    }
    assert!(!log.contains(secret), "the secret is never logged");
    assert!(!log.contains(&token), "tokens are never logged");
}

#[tokio::test]
async fn keys_are_imported_and_exported_from_the_command_line() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let dir = tempfile::tempdir().expect("dir");
        let Some(url) = fresh_database(backend, dir.path()).await else {
            continue;
        };
        let run = |args: &[&str]| {
            keysmith(dir.path())
                .env("DATABASE_URL", &url)
                .env("KEYSMITH_JWT_SECRET", "a-command-line-test-secret-0123456789")
                .args(args)
                .output()
                .expect("run keysmith")
        };
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).to_string();
        std::fs::write(dir.path().join("keys.csv"), "key,tags\nCLI-1,beta\nCLI-2\nCLI-1\nCLI-3\n").expect("write");

        let first = run(&["keys", "import", "keys.csv", "--tag", "pro"]);
        assert!(first.status.success(), "{backend:?}: {}", text(&first.stderr));
        let report = text(&first.stdout);
        assert!(report.contains("4 line(s) with a key; imported 3"), "{report}");
        assert!(report.contains("1 within the file, 0 already in the pool"), "{report}");
        assert!(report.contains("created tag pro") && report.contains("created tag beta"), "{report}");

        let again = run(&["keys", "import", "keys.csv", "--tag", "pro"]);
        assert!(text(&again.stdout).contains("imported 0"), "{}", text(&again.stdout));
        assert!(text(&again.stdout).contains("3 already in the pool"));

        std::fs::write(dir.path().join("bad.txt"), "GOOD-1\n\u{1}BAD\n").expect("write");
        let bad = run(&["keys", "import", "bad.txt"]);
        assert!(!bad.status.success());
        assert!(text(&bad.stdout).contains("line 2: the key contains control characters"), "{}", text(&bad.stdout));
        assert!(text(&bad.stderr).contains("nothing was imported"), "{}", text(&bad.stderr));

        let export = run(&["keys", "export", "--tag", "pro", "--format", "json", "--output", "out.json"]);
        assert!(export.status.success(), "{}", text(&export.stderr));
        let rows: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(dir.path().join("out.json")).expect("read")).expect("json");
        let mut keys: Vec<&str> = rows.iter().map(|r| r["key"].as_str().expect("key")).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["CLI-1", "CLI-2", "CLI-3"], "{backend:?}");

        let csv = run(&["keys", "export", "--status", "available", "--search", "CLI-2"]);
        let out = text(&csv.stdout);
        assert_eq!(out.lines().count(), 2, "a header and one key: {out}");
        assert!(out.lines().nth(1).is_some_and(|l| l.contains("CLI-2") && l.contains("pro")), "{out}");
    }
}
