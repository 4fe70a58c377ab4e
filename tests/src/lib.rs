//! The harness for Keysmith's end-to-end tests: a throwaway PostgreSQL
//! cluster started by the tests themselves, a fresh database per test on
//! SQLite or PostgreSQL, and the real server on a free port spoken to over HTTP.

pub mod app;
pub mod bench;
pub mod npm;
pub mod postgres;
pub mod smtp;

use std::future::Future;

pub use app::{Backend, TestApp, data, error_code, error_field, refusal};

/// Writes one test per database for each named `async fn(TestApp)`:
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(app) = $crate::TestApp::spawn($crate::Backend::Sqlite).await {
                        super::$name(app).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = $crate::TestApp::spawn($crate::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            }
        )*
    };
}

/// Waits until `check` gives a value (a job finished, a page changed) and
/// returns it: asked again every 100 ms, for at most five minutes, after
/// which the test fails naming `what`. The one place tests wait for work
/// they cannot be told about.
pub async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let mut asking = tokio::time::interval(std::time::Duration::from_millis(100));
    asking.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        asking.tick().await;
        if let Some(found) = check().await {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "waited five minutes for {what}");
    }
}

/// A command-line tool some tests drive (`curl`, `python3`), found on `PATH`.
/// Missing, the test is skipped with a loud message — except under
/// `CI=true`, where that is a failure (`.ci/run` installs them).
pub fn tool(name: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    if found.is_none() {
        assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "{name} is not installed, and CI needs it");
        eprintln!("\n!!! {name} is not installed: skipping the test that runs it\n");
    }
    found
}
