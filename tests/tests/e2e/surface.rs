//! A property test of the whole request surface: random GraphQL documents,
//! variables and bodies — deep nesting, long and unicode strings, NUL bytes,
//! broken UTF-8, huge numbers, duplicate keys, random bytes — sent to the real
//! server as nobody, a customer and a staff member. Every one is answered
//! (a 4xx, or a 200 with data or errors), none says `INTERNAL`, and the
//! server still answers `/healthz` afterwards.
//!
//! `KEYSMITH_SURFACE_CASES=20000 cargo test -p keysmith-tests --test e2e surface`
//! runs a longer search than the default.

use entity::user::StaffRole;
use keysmith_tests::{TestApp, on_both_databases};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

on_both_databases!(every_request_is_answered_and_none_is_internal);

/// Cases per database in the README's test command.
const DEFAULT_CASES: u32 = 192;

/// Real operations with holes: `@S` takes a string literal, `@N` a number
/// literal, `@V` any value literal.
const TEMPLATES: &[&str] = &[
    "mutation { validateLicense(input: {key: @S, fingerprint: @V}) { code valid } }",
    "mutation { activateLicense(input: {key: @S, fingerprint: @S, name: @S}) { code } }",
    "mutation { login(input: {email: @S, password: @S}) { token } }",
    "mutation { requestPortalLink(input: {email: @S}) { sent } }",
    "{ licenseKeys(first: @N, filter: {search: @S}) { totalCount edges { node { id } } } }",
    "{ customers(first: @N, after: @S, filter: {search: @S}) { totalCount } }",
    "{ products(first: @N, filter: {search: @S}) { totalCount } }",
    "{ orders(first: @N, filter: {search: @S}) { totalCount } }",
    "{ tags(first: @N) { edges { node { name keys(first: @N, filter: {search: @S}) { totalCount } } } } }",
    "mutation { createProduct(input: {name: @S, description: @S, metadata: @V}) { product { id } } }",
    "mutation { createCustomer(input: {email: @S, name: @S}) { customer { id } } }",
    "mutation { createTag(input: {name: @S}) { tag { id } } }",
    "{ licenseKey(id: @S) { id key } }",
    "{ me { role } auditEvents(first: @N, filter: {action: @S}) { totalCount } }",
    "query Q($a: String, $b: Int) { me { role } }",
];

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[\\x00-\\x1f\"\\\\%_*'`{}\\[\\]()#$!@:|&]{0,40}",
        prop::collection::vec(any::<char>(), 0..60).prop_map(|c| c.into_iter().collect()),
        (1usize..60_000).prop_map(|n| "é".repeat(n / 2)),
        Just(String::from("\u{0}")),
    ]
}

/// A GraphQL string literal holding `text`, escaped or (sometimes) raw.
fn string_literal() -> impl Strategy<Value = String> {
    (any_text(), any::<u8>()).prop_map(|(text, how)| match how % 4 {
        0 => format!("\"{text}\""),
        1 => format!("\"\"\"{text}\"\"\""),
        _ => serde_json::to_string(&text).unwrap_or_default(),
    })
}

fn number_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:e}")),
        "-?[0-9]{1,400}",
        "-?[0-9]{1,30}\\.[0-9]{1,30}[eE][+-]?[0-9]{1,8}",
        Just("1e99999".to_string()),
        Just("0x1F".to_string()),
    ]
}

fn value_literal() -> impl Strategy<Value = String> {
    let leaf =
        prop_oneof![string_literal(), number_literal(), Just("null".into()), Just("true".into()), "[A-Z_]{1,12}"];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec(("[a-z]{1,8}", inner), 0..6).prop_map(|v| {
                let fields: Vec<String> = v.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", fields.join(", "))
            }),
        ]
    })
}

/// A template with its holes filled.
fn filled_template() -> impl Strategy<Value = String> {
    (
        prop::sample::select(TEMPLATES),
        prop::collection::vec(string_literal(), 6),
        prop::collection::vec(number_literal(), 3),
        prop::collection::vec(value_literal(), 2),
    )
        .prop_map(|(template, strings, numbers, values)| {
            let mut out = String::new();
            let (mut s, mut n, mut v) = (0, 0, 0);
            let mut rest = template;
            while let Some(at) = rest.find('@') {
                out.push_str(&rest[..at]);
                let hole = rest.as_bytes().get(at + 1).copied();
                match hole {
                    Some(b'S') => out.push_str(&strings[s % strings.len()]),
                    Some(b'N') => out.push_str(&numbers[n % numbers.len()]),
                    _ => out.push_str(&values[v % values.len()]),
                }
                match hole {
                    Some(b'S') => s += 1,
                    Some(b'N') => n += 1,
                    _ => v += 1,
                }
                rest = &rest[(at + 2).min(rest.len())..];
            }
            out.push_str(rest);
            out
        })
}

/// Tokens of GraphQL in a random order.
fn token_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            "(",
            ")",
            ":",
            "!",
            "$",
            "@",
            "...",
            "=",
            "|",
            "&",
            "query",
            "mutation",
            "subscription",
            "fragment",
            "on",
            "me",
            "role",
            "__schema",
            "__typename",
            "#",
            "\n",
            "\"",
            "\"\"\"",
        ])
        .prop_map(str::to_string),
        string_literal(),
        number_literal(),
        "[A-Za-z_][A-Za-z0-9_]{0,10}",
    ];
    prop::collection::vec(token, 0..80).prop_map(|t| t.join(" "))
}

/// Brackets nested to a random depth, around a random inside.
fn deep() -> impl Strategy<Value = String> {
    (
        0usize..4000,
        prop::sample::select(vec![("[", "]"), ("{", "}"), ("(", ")"), ("{a: ", "}"), ("{ me ", "}")]),
        any::<bool>(),
    )
        .prop_map(|(depth, (open, close), as_argument)| {
            let nested = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            if as_argument {
                format!("mutation {{ validateLicense(input: {{key: \"k\", fingerprint: {nested}}}) {{ code }} }}")
            } else {
                nested
            }
        })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 128, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(any_text(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A request body and its content type.
#[derive(Debug, Clone)]
enum Body {
    Json(Vec<u8>),
    Other { content_type: String, bytes: Vec<u8> },
}

fn graphql_body() -> impl Strategy<Value = Body> {
    let document = prop_oneof![4 => filled_template(), 2 => token_soup(), 1 => deep()];
    (document, prop::option::of(json_value()), prop::option::of(any_text()), 0u8..8).prop_map(
        |(query, variables, operation, shape)| {
            let mut object = serde_json::Map::new();
            object.insert("query".into(), Value::String(query.clone()));
            if let Some(v) = variables {
                object.insert("variables".into(), v);
            }
            if let Some(op) = operation {
                object.insert("operationName".into(), Value::String(op));
            }
            let text = Value::Object(object).to_string();
            let bytes = match shape {
                // Duplicate keys: the query twice, the second one different.
                0 => format!("{{\"query\": {}, {}", serde_json::to_string(&query).unwrap_or_default(), &text[1..])
                    .into_bytes(),
                // Broken UTF-8 inside the document's string.
                1 => {
                    let mut b = text.into_bytes();
                    let at = b.len() / 2;
                    b.splice(at..at, [0xff, 0xc3, 0x28, 0xed, 0xa0, 0x80]);
                    b
                }
                // Cut short.
                2 => {
                    let mut b = text.into_bytes();
                    b.truncate(b.len() / 2);
                    b
                }
                _ => text.into_bytes(),
            };
            Body::Json(bytes)
        },
    )
}

fn any_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        8 => graphql_body(),
        1 => prop::collection::vec(any::<u8>(), 0..4096).prop_map(Body::Json),
        1 => json_value().prop_map(|v| Body::Json(v.to_string().into_bytes())),
        1 => (
            prop::sample::select(vec![
                "multipart/form-data; boundary=X",
                "multipart/form-data",
                "text/plain",
                "application/graphql",
                "application/json; charset=latin1",
                "",
            ]),
            prop::collection::vec(any::<u8>(), 0..2048),
        )
            .prop_map(|(content_type, bytes)| Body::Other { content_type: content_type.to_string(), bytes }),
        1 => (filled_template(), any_text()).prop_map(|(query, junk)| {
            let operations = serde_json::json!({ "query": query, "variables": { "input": { "file": null } } });
            let bytes = format!(
                "--X\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{operations}\r\n\
                 --X\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{{\"0\": [\"variables.input.file\"]}}\r\n\
                 --X\r\nContent-Disposition: form-data; name=\"0\"; filename=\"{junk}\"\r\n\r\n{junk}\r\n--X--\r\n"
            );
            Body::Other { content_type: "multipart/form-data; boundary=X".into(), bytes: bytes.into_bytes() }
        }),
    ]
}

/// What the server answered, or why the answer is wrong.
async fn send(app: &TestApp, token: Option<&str>, body: &Body) -> Result<(), String> {
    let (content_type, bytes) = match body {
        Body::Json(bytes) => ("application/json".to_string(), bytes.clone()),
        Body::Other { content_type, bytes } => (content_type.clone(), bytes.clone()),
    };
    let mut req = app.http.post(app.url("/graphql")).body(bytes);
    if !content_type.is_empty() {
        req = req.header("Content-Type", content_type);
    }
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.map_err(|e| format!("no answer: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| format!("a broken answer ({status}): {e}"))?;
    if status >= 500 || !(status == 200 || (400..500).contains(&status)) {
        return Err(format!("status {status}: {text}"));
    }
    let json: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON ({status}): {e}: {text}"))?;
    let errors = json.get("errors").and_then(Value::as_array).cloned().unwrap_or_default();
    if errors.iter().any(|e| e["extensions"]["code"] == "INTERNAL" || e["message"] == "internal error") {
        return Err(format!("INTERNAL ({status}): {text}"));
    }
    if status == 200 && json.get("data").is_none() && json.get("errors").is_none() {
        return Err(format!("neither data nor errors: {text}"));
    }
    Ok(())
}

async fn every_request_is_answered_and_none_is_internal(app: TestApp) {
    let cases = std::env::var("KEYSMITH_SURFACE_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(DEFAULT_CASES);
    let staff = app.staff_token(StaffRole::Admin).await;
    let customer = app.customer_token(&entity::new_id()).await;
    let app = std::sync::Arc::new(app);
    let handle = tokio::runtime::Handle::current();
    let run = {
        let app = app.clone();
        tokio::task::spawn_blocking(move || {
            let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
            let callers = prop::sample::select(vec![None, Some(customer), Some(staff)]);
            let started = std::time::Instant::now();
            let outcome = runner.run(&(any_body(), callers), |(body, token)| {
                handle.block_on(send(&app, token.as_deref(), &body)).map_err(TestCaseError::fail)
            });
            eprintln!("surface: {cases} cases in {:.1} s", started.elapsed().as_secs_f64());
            outcome.map_err(|e| e.to_string())
        })
    };
    let outcome = run.await.expect("the property test ran");
    assert!(outcome.is_ok(), "{}", outcome.err().unwrap_or_default());
    let health = app.http.get(app.url("/healthz")).send().await.expect("still answering");
    assert_eq!(health.status(), 200);
}
