//! The customer portal, mounted by `api` at `/portal`. It renders pages from
//! the results of the GraphQL schema executed in-process with the customer's
//! identity, and knows nothing of `api` itself.
//!
//! For now it serves the landing page only; signing in and the key pages come
//! with the portal's own work.

use poem::web::Html;
use poem::{Endpoint, EndpointExt, Route, get, handler};

const LANDING: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Your licences — Keysmith</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem; color: #1a1a1a; }
h1 { font-size: 1.5rem; }
</style>
</head>
<body>
<main>
<h1>Your licences</h1>
<p>Open the link from your order email to see your licence keys.</p>
</main>
</body>
</html>
"#;

#[handler]
fn landing() -> Html<&'static str> {
    Html(LANDING)
}

/// The portal's routes, to be nested under `/portal`.
pub fn routes() -> impl Endpoint {
    Route::new().at("/", get(landing)).map_to_response()
}
