//! The harness for Keysmith's end-to-end tests: a throwaway PostgreSQL
//! cluster started by the tests themselves, a fresh database per test on
//! SQLite or PostgreSQL, and the real server on a free port spoken to over HTTP.

pub mod app;
pub mod postgres;

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
