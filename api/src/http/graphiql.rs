//! GraphiQL, served by Keysmith itself: the vendored production builds of
//! GraphiQL and React (`api/assets/graphiql`, refreshed by its `vendor.sh`)
//! are compiled into the binary and served under names that carry a hash of
//! their content, so browsers keep them for a year and a new build is a new
//! name. Nothing is fetched from anywhere else: the page's
//! Content-Security-Policy allows only Keysmith's own address (and the fonts
//! the stylesheet carries inline as `data:`).

use bytes::Bytes;
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Path;
use poem::{IntoResponse, Request, Response, handler};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::{LazyLock, OnceLock};

/// Where the files are served.
pub const PREFIX: &str = "/graphiql";

/// The page's policy: scripts, styles and requests only to Keysmith (a
/// subscription's WebSocket included), fonts only from the stylesheet.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; font-src data:; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Each file: its name before the hash, its extension, its type and content.
const FILES: &[(&str, &str, &str, &[u8])] = &[
    ("keysmith-graphiql", "js", JS, include_bytes!("../../assets/keysmith-graphiql.js")),
    ("keysmith-graphiql", "css", CSS, include_bytes!("../../assets/keysmith-graphiql.css")),
    ("react", "js", JS, include_bytes!("../../assets/graphiql/react.production.min.js")),
    ("react-dom", "js", JS, include_bytes!("../../assets/graphiql/react-dom.production.min.js")),
    ("graphiql", "js", JS, include_bytes!("../../assets/graphiql/graphiql.min.js")),
    ("graphiql", "css", CSS, include_bytes!("../../assets/graphiql/graphiql.min.css")),
];

/// The licences of the vendored files, served beside them.
const LICENCES: &str = concat!(
    "GraphiQL and React as served by Keysmith at /graphql.\n\n== graphiql ==\n",
    include_str!("../../assets/graphiql/LICENSE.graphiql"),
    "\n== react ==\n",
    include_str!("../../assets/graphiql/LICENSE.react"),
    "\n== react-dom ==\n",
    include_str!("../../assets/graphiql/LICENSE.react-dom"),
    "\n== the npm packages the builds come from ==\n",
    include_str!("../../assets/graphiql/BUNDLED.txt"),
);

struct Asset {
    /// `graphiql.3f9a0c1b2d.js`
    name: String,
    content_type: &'static str,
    plain: &'static [u8],
    /// Compressed on first request, then kept.
    gzip: OnceLock<Bytes>,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(stem, ext, content_type, plain)| {
            let hash = hex::encode(&Sha256::digest(plain)[..5]);
            Asset { name: format!("{stem}.{hash}.{ext}"), content_type, plain, gzip: OnceLock::new() }
        })
        .collect()
});

/// The address of the file first named `stem.ext`.
fn href(stem: &str, ext: &str) -> String {
    let name = ASSETS
        .iter()
        .find(|a| a.name.starts_with(&format!("{stem}.")) && a.name.ends_with(&format!(".{ext}")))
        .map(|a| a.name.as_str())
        .unwrap_or_default();
    format!("{PREFIX}/{name}")
}

/// The IDE's page, talking to `endpoint`.
pub fn page(endpoint: &str) -> Response {
    let script = |stem| format!("<script defer src=\"{}\"></script>", href(stem, "js"));
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Keysmith GraphiQL</title>\n\
         <link rel=\"stylesheet\" href=\"{graphiql_css}\">\n<link rel=\"stylesheet\" href=\"{own_css}\">\n\
         {own}\n{react}\n{react_dom}\n{graphiql}\n</head>\n<body>\n\
         <div id=\"graphiql\" data-endpoint=\"{endpoint}\">Loading GraphiQL…</div>\n\
         <noscript><p>GraphiQL needs JavaScript. Without it, POST GraphQL requests to {endpoint}.</p></noscript>\n\
         <p class=\"licences\"><a href=\"{PREFIX}/licences.txt\">Licences of GraphiQL and React</a></p>\n\
         </body>\n</html>\n",
        graphiql_css = href("graphiql", "css"),
        own_css = href("keysmith-graphiql", "css"),
        own = script("keysmith-graphiql"),
        react = script("react"),
        react_dom = script("react-dom"),
        graphiql = script("graphiql"),
    );
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header(header::CONTENT_SECURITY_POLICY, PAGE_POLICY)
        .header(header::X_FRAME_OPTIONS, "DENY")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(html)
}

/// Does the client take gzip (`Accept-Encoding`, a zero quality refusing it)?
fn takes_gzip(req: &Request) -> bool {
    let accepted = req.header(header::ACCEPT_ENCODING).unwrap_or_default();
    accepted.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let refused = parts.any(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()) == Some(0.0));
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

fn gzip(plain: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(plain);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// A vendored file by its hashed name; the licences as text.
#[handler]
pub async fn asset(req: &Request, Path(name): Path<String>) -> Response {
    if name == "licences.txt" {
        return Response::builder()
            .content_type("text/plain; charset=utf-8")
            .header(header::CACHE_CONTROL, "public, max-age=86400")
            .body(LICENCES);
    }
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut resp = Response::builder()
        .content_type(asset.content_type)
        .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
        .header(header::VARY, "Accept-Encoding");
    let body = if takes_gzip(req) {
        resp = resp.header(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        match asset.gzip.get() {
            Some(compressed) => compressed.clone(),
            None => {
                let plain = asset.plain;
                let compressed = tokio::task::spawn_blocking(move || gzip(plain)).await.unwrap_or_default();
                asset.gzip.get_or_init(|| compressed).clone()
            }
        }
    } else {
        Bytes::from_static(asset.plain)
    };
    resp.body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_hashed_name_and_the_page_names_them_all() {
        let page = String::from_utf8(body_of(page("/graphql"))).unwrap();
        for file in ASSETS.iter() {
            let parts: Vec<&str> = file.name.split('.').collect();
            assert_eq!(parts.len(), 3, "{}", file.name);
            assert_eq!(parts[1].len(), 10, "{}", file.name);
            assert!(page.contains(&format!("{PREFIX}/{}", file.name)), "{} is not on the page", file.name);
        }
        assert!(!page.contains("http://") && !page.contains("https://"), "the page names no other site");
    }

    fn body_of(resp: Response) -> Vec<u8> {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(resp.into_body().into_vec()).unwrap()
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        let with = |value: &str| Request::builder().header(header::ACCEPT_ENCODING, value).finish();
        assert!(takes_gzip(&with("gzip, deflate, br")));
        assert!(takes_gzip(&with("br;q=1.0, gzip;q=0.8")));
        assert!(!takes_gzip(&with("gzip;q=0")));
        assert!(!takes_gzip(&with("br")));
        assert!(!takes_gzip(&Request::builder().finish()));
    }
}
