//! The harness for Keysmith's end-to-end tests: a throwaway PostgreSQL
//! cluster started by the tests themselves, a fresh database per test on
//! SQLite or PostgreSQL, and the real server on a free port spoken to over HTTP.

pub mod app;
pub mod bench;
pub mod postgres;
pub mod smtp;

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
