//! A throwaway PostgreSQL for one test process: `initdb` into a temporary
//! directory, `postgres` on a free port, one database per test. A watchdog
//! shell stops the server and removes its files when the test process exits.
//!
//! PostgreSQL refuses to run as root; as root, the cluster runs as the
//! `postgres` user through `runuser`. When no PostgreSQL is installed the
//! PostgreSQL tests are skipped with a loud message — except under `CI=true`,
//! where that is a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The password in every test database URL (the cluster trusts local
/// connections, so it only has to be kept out of logs).
pub const PASSWORD_MARK: &str = "logscrub-db-password";

pub struct Cluster {
    pub port: u16,
    pub user: String,
}

impl Cluster {
    /// The URL of a database in this cluster.
    pub fn url(&self, database: &str) -> String {
        // The cluster trusts local connections; the password is there so that
        // tests see it handled (and kept out of logs) like a real one.
        format!("postgres://{}:pw-{}@127.0.0.1:{}/{database}", self.user, PASSWORD_MARK, self.port)
    }
}

/// The cluster of this test process, started on first use; `None` when no
/// PostgreSQL is installed (outside CI).
pub fn cluster() -> Option<&'static Cluster> {
    // A failed start is remembered too, so that it is reported once and not retried by every test.
    static CLUSTER: OnceLock<Result<Option<Cluster>, String>> = OnceLock::new();
    let outcome = CLUSTER.get_or_init(|| match find_bin_dir() {
        Some(bin) => start(&bin).map(Some).map_err(|e| format!("starting PostgreSQL from {}: {e}", bin.display())),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            Err("CI=true but no PostgreSQL found (initdb on PATH or in /usr/lib/postgresql/*/bin)".into())
        }
        None => {
            eprintln!(
                "\n*** WARNING: no PostgreSQL found (initdb on PATH or /usr/lib/postgresql/*/bin): \
                 SKIPPING every PostgreSQL test. Install postgresql to run them. ***\n"
            );
            Ok(None)
        }
    });
    match outcome {
        Ok(cluster) => cluster.as_ref(),
        Err(e) => panic!("{e}"),
    }
}

fn find_bin_dir() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
                // Distributions link initdb onto PATH; the real directory has the rest.
                let real = std::fs::canonicalize(dir.join("initdb")).ok()?;
                return real.parent().map(Path::to_path_buf);
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    found.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0)
    });
    found.pop()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// A command run as the cluster's owner.
fn as_owner(root: bool, program: &Path) -> Command {
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start(bin: &Path) -> Result<Cluster, String> {
    let root = is_root();
    let dir = std::env::temp_dir().join(format!("keysmith-pg-{}-{}", std::process::id(), ulid::Ulid::generate()));
    let data = dir.join("data");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if root {
        let status =
            Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("chown to the postgres user failed".into());
        }
    }
    let user = "keysmith".to_string();
    let output = as_owner(root, &bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", &user, "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"])
        .output()
        .map_err(|e| format!("running initdb: {e}"))?;
    if !output.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    let port = free_port().map_err(|e| e.to_string())?;

    // The server runs under a watchdog that stops it, and removes its files,
    // once this test process is gone.
    let script = r#"
        "$1/postgres" -D "$2/data" -p "$3" -k "$2" -c listen_addresses=127.0.0.1 \
            -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
            -c max_connections=400 -c shared_buffers=64MB >"$2/server.log" 2>&1 &
        pg=$!
        while [ -d "/proc/$4" ] && kill -0 "$pg" 2>/dev/null; do sleep 0.5; done
        kill -INT "$pg" 2>/dev/null
        wait "$pg"
        rm -rf "$2"
    "#;
    let mut watchdog = if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", "sh", "-c", script, "sh"]);
        cmd
    } else {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script, "sh"]);
        cmd
    };
    watchdog
        .arg(bin)
        .arg(&dir)
        .arg(port.to_string())
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting postgres: {e}"))?;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        if log.contains("ready to accept connections") {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("PostgreSQL did not become ready within 60 s:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Cluster { port, user })
}
