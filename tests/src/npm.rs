//! The npm clients the tests drive Keysmith with (`tests/audit`: the
//! graphql-http audit suite, the graphql-ws client and urql), installed once per
//! run with `npm ci` from the lock file when they are missing, and a
//! subscriber: the graphql-ws client in a Node process, what it receives
//! read back line by line.

use crate::{TestApp, tool};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

static INSTALLED: tokio::sync::OnceCell<bool> = tokio::sync::OnceCell::const_new();

/// Node and the directory of the installed clients; `None` (loudly) outside
/// CI when node or npm is missing.
pub async fn clients() -> Option<(PathBuf, PathBuf)> {
    let node = tool("node")?;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("audit");
    let installed = INSTALLED
        .get_or_init(|| async {
            let modules = dir.join("node_modules");
            if ["graphql-http", "graphql-ws", "ws", "@urql/core", "@urql/exchange-persisted"]
                .iter()
                .all(|p| modules.join(p).is_dir())
            {
                return true;
            }
            let Some(npm) = tool("npm") else { return false };
            let status = tokio::process::Command::new(npm)
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .status()
                .await
                .expect("npm runs");
            assert!(status.success(), "npm ci in tests/audit failed");
            true
        })
        .await;
    installed.then_some((node, dir))
}

/// One WebSocket connection of the npm graphql-ws client, running `count`
/// subscriptions of one operation.
pub struct Subscriber {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Everything received so far, in order.
    pub seen: Vec<Value>,
}

impl Subscriber {
    /// Connects to `app` with `token` (none: an empty `connection_init`).
    pub async fn start(
        app: &TestApp,
        token: Option<&str>,
        count: usize,
        query: &str,
        variables: Value,
    ) -> Option<Self> {
        let (node, dir) = clients().await?;
        let url = app.url("/graphql").replacen("http", "ws", 1);
        let mut child = tokio::process::Command::new(node)
            .arg("subscribe.js")
            .args([url.as_str(), token.unwrap_or("-"), &count.to_string(), query, &variables.to_string()])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Some(Self { child, stdin, lines, seen: Vec::new() })
    }

    /// Waits (up to 20 s) for a line that `wanted` accepts, and returns it.
    pub async fn until(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        self.until_within(what, Duration::from_secs(20), wanted).await
    }

    /// Waits (up to `patience`) for a line that `wanted` accepts, and returns it.
    pub async fn until_within(&mut self, what: &str, patience: Duration, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(found) = self.seen.iter().find(|v| wanted(v)) {
            return found.clone();
        }
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Ok(None) => panic!("the subscriber ended before {what}; it saw {:#?}", self.seen),
                Err(_) => panic!("no {what} within {patience:?}; the subscriber saw {:#?}", self.seen),
            }
        }
    }

    /// The events subscription `id` received so far (`data.events`).
    pub fn events(&self, id: u64) -> Vec<Value> {
        self.seen
            .iter()
            .filter(|line| line["id"] == id)
            .filter_map(|line| line["next"]["data"]["events"].as_object().map(|e| Value::Object(e.clone())))
            .collect()
    }

    /// Completes subscription `id` from the client's side.
    pub async fn stop(&mut self, id: usize) {
        self.stdin.write_all(format!("stop {id}\n").as_bytes()).await.expect("write to the subscriber");
    }

    /// Waits (up to 20 s, again after each line) until `count` lines that
    /// `counted` accepts have arrived.
    pub async fn until_count(&mut self, count: usize, counted: impl Fn(&Value) -> bool) {
        let mut have = self.seen.iter().filter(|v| counted(v)).count();
        while have < count {
            match tokio::time::timeout(Duration::from_secs(20), self.lines.recv()).await {
                Ok(Some(line)) => {
                    have += usize::from(counted(&line));
                    self.seen.push(line);
                }
                _ => panic!("only {have} of {count} lines arrived"),
            }
        }
    }

    /// Waits for the socket to close; its close code.
    pub async fn closed(&mut self) -> i64 {
        let line = self.until("the socket's close", |line| line.get("closed").is_some()).await;
        line["closed"].as_i64().unwrap_or_default()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
