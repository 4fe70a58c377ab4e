//! Documents seen before: persisted queries, parsed documents and validation
//! results, kept so that the calls shipped software repeats all day skip the
//! parser and the validator.
//!
//! - **Automatic persisted queries** (the `extensions.persistedQuery`
//!   protocol of Apollo and urql clients, version 1): a request may carry only
//!   the SHA-256 of a document registered before. Registering sends the text
//!   with its hash, which must match; an unknown hash is
//!   `PERSISTED_QUERY_NOT_FOUND`, and the client sends the text again. A
//!   document comes back as the very text registered with that hash, so the
//!   request goes on exactly as if the client had sent it.
//! - **Parsed documents** by the SHA-256 of their text: the stored text is
//!   compared on every hit, so a document is never reused for another text.
//! - **Validation results** by the document's hash, the operation name and
//!   the variables (validation checks each variable's value against its
//!   type, and page sizes count towards the complexity limit): the same call
//!   again — the same document, the same values — skips validation and is
//!   held to the same limits, whose figures are part of the result.
//!
//! Only documents of at most [`LONGEST`] bytes are kept, in LRU caches of
//! bounded size.

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextValidation};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerError, ServerResult, ValidationResult};
use sha2::{Digest, Sha256};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

/// Longest document text kept (longer ones are parsed and validated each time).
pub const LONGEST: usize = 8 * 1024;
/// Documents kept.
const DOCUMENTS: usize = 1024;
/// Validation results kept.
const VALIDATED: usize = 16 * 1024;

use super::codes::{PERSISTED_QUERY_NOT_FOUND as NOT_FOUND, refusal};

type Hash = [u8; 32];

/// The node's documents, shared by both schemas.
pub struct Documents {
    parsed: Mutex<lru::LruCache<Hash, Arc<(String, ExecutableDocument)>>>,
    validated: Arc<Mutex<lru::LruCache<Hash, CachedValidation>>>,
}

impl Default for Documents {
    fn default() -> Self {
        let size = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        Self {
            parsed: Mutex::new(lru::LruCache::new(size(DOCUMENTS))),
            validated: Arc::new(Mutex::new(lru::LruCache::new(size(VALIDATED)))),
        }
    }
}

#[derive(Clone, Copy)]
struct CachedValidation {
    complexity: usize,
    depth: usize,
}

fn sha256(text: &str) -> Hash {
    Sha256::digest(text.as_bytes()).into()
}

impl Documents {
    /// Resolves a persisted query into its text, and hands `request` its
    /// parsed document when the text was seen before (parsing and keeping it
    /// otherwise). A text that does not parse is left for the executor to report.
    pub fn prepare(&self, request: &mut async_graphql::Request) -> Result<(), ServerError> {
        if let Some(persisted) = request.extensions.remove("persistedQuery") {
            let persisted = serde_json::to_value(&persisted).unwrap_or_default();
            if persisted.get("version").and_then(serde_json::Value::as_i64) != Some(1) {
                return Err(refusal("extensions.persistedQuery.version: must be 1", super::codes::BAD_USER_INPUT));
            }
            let hash = persisted
                .get("sha256Hash")
                .and_then(serde_json::Value::as_str)
                .and_then(|h| hex::decode(h).ok())
                .and_then(|h| Hash::try_from(h).ok())
                .ok_or_else(|| {
                    refusal("extensions.persistedQuery.sha256Hash: must be 64 hex digits", super::codes::BAD_USER_INPUT)
                })?;
            if request.query.is_empty() {
                let found = self.parsed.lock().ok().and_then(|mut cache| cache.get(&hash).cloned());
                let Some(found) = found else {
                    return Err(refusal("PersistedQueryNotFound", NOT_FOUND));
                };
                request.query = found.0.clone();
                request.set_parsed_query(found.1.clone());
                return Ok(());
            }
            if sha256(&request.query) != hash {
                return Err(refusal(
                    "extensions.persistedQuery.sha256Hash: is not the SHA-256 of the query",
                    super::codes::BAD_USER_INPUT,
                ));
            }
        }
        // Too long or too deep a document is never kept (the schema refuses the latter).
        if request.query.len() > LONGEST || super::nesting::refusal(&request.query).is_some() {
            return Ok(());
        }
        let hash = sha256(&request.query);
        if let Ok(mut cache) = self.parsed.lock()
            && let Some(found) = cache.get(&hash)
            && found.0 == request.query
        {
            request.set_parsed_query(found.1.clone());
            return Ok(());
        }
        let Ok(doc) = async_graphql::parser::parse_query(&request.query) else { return Ok(()) };
        if let Ok(mut cache) = self.parsed.lock() {
            cache.put(hash, Arc::new((request.query.clone(), doc.clone())));
        }
        request.set_parsed_query(doc);
        Ok(())
    }

    /// The extension that skips validation of a call validated before, for
    /// the schema named `schema`.
    pub fn validation_cache(&self, schema: &'static str) -> ValidationCache {
        ValidationCache { schema, validated: self.validated.clone() }
    }
}

/// See [`Documents::validation_cache`].
pub struct ValidationCache {
    schema: &'static str,
    validated: Arc<Mutex<lru::LruCache<Hash, CachedValidation>>>,
}

impl ExtensionFactory for ValidationCache {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ValidationCacheExtension {
            schema: self.schema,
            validated: self.validated.clone(),
            key: Mutex::new(None),
        })
    }
}

struct ValidationCacheExtension {
    schema: &'static str,
    validated: Arc<Mutex<lru::LruCache<Hash, CachedValidation>>>,
    /// This request's key, when it may be kept.
    key: Mutex<Option<Hash>>,
}

#[async_trait::async_trait]
impl Extension for ValidationCacheExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<async_graphql::Request> {
        let request = next.run(ctx, request).await?;
        // Uploads are never the same call twice.
        if request.query.len() <= LONGEST && request.uploads.is_empty() {
            let variables = serde_json::to_string(&request.variables).unwrap_or_default();
            if variables.len() <= LONGEST {
                let mut key = Sha256::new();
                for part in [self.schema, &request.query, request.operation_name.as_deref().unwrap_or(""), &variables] {
                    key.update((part.len() as u64).to_le_bytes());
                    key.update(part.as_bytes());
                }
                *self.key.lock().unwrap_or_else(|p| p.into_inner()) = Some(key.finalize().into());
            }
        }
        Ok(request)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let key = *self.key.lock().unwrap_or_else(|p| p.into_inner());
        let Some(key) = key else { return next.run(ctx).await };
        let cached = self.validated.lock().ok().and_then(|mut cache| cache.get(&key).copied());
        if let Some(known) = cached {
            return Ok(ValidationResult {
                cache_control: Default::default(),
                complexity: known.complexity,
                depth: known.depth,
            });
        }
        let result = next.run(ctx).await?;
        if let Ok(mut cache) = self.validated.lock() {
            cache.put(key, CachedValidation { complexity: result.complexity, depth: result.depth });
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, Variables};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Query;

    #[Object]
    impl Query {
        async fn echo(&self, text: String) -> String {
            text
        }
    }

    /// Counts the validations that really run.
    struct Counter(Arc<AtomicUsize>);

    impl ExtensionFactory for Counter {
        fn create(&self) -> Arc<dyn Extension> {
            Arc::new(Counting(self.0.clone()))
        }
    }

    struct Counting(Arc<AtomicUsize>);

    #[async_trait::async_trait]
    impl Extension for Counting {
        async fn validation(
            &self,
            ctx: &ExtensionContext<'_>,
            next: NextValidation<'_>,
        ) -> Result<ValidationResult, Vec<ServerError>> {
            self.0.fetch_add(1, Ordering::Relaxed);
            next.run(ctx).await
        }
    }

    fn call(text: &str, value: serde_json::Value) -> async_graphql::Request {
        async_graphql::Request::new(text).variables(Variables::from_json(serde_json::json!({ "t": value })))
    }

    #[tokio::test]
    async fn the_same_call_is_validated_once_and_a_bad_one_every_time() {
        let documents = Documents::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .extension(documents.validation_cache("test"))
            .extension(Counter(runs.clone()))
            .finish();
        let text = "query($t: String!) { echo(text: $t) }";
        for _ in 0..3 {
            let answer = schema.execute(call(text, "a".into())).await;
            assert!(answer.errors.is_empty(), "{:?}", answer.errors);
            assert_eq!(answer.data.to_string(), r#"{echo: "a"}"#);
        }
        assert_eq!(runs.load(Ordering::Relaxed), 1, "validated once");
        schema.execute(call(text, "b".into())).await;
        assert_eq!(runs.load(Ordering::Relaxed), 2, "other variables: validated again");
        // A value that is not of its type is refused every time, never kept.
        for _ in 0..2 {
            let refused = schema.execute(call(text, 7.into())).await;
            assert!(!refused.errors.is_empty());
        }
        assert_eq!(runs.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn persisted_queries_are_registered_by_their_hash_and_only_for_their_text() {
        let documents = Documents::default();
        let text = "{ echo(text: \"x\") }";
        let hash = hex::encode(sha256(text));
        let persisted = |query: &str, hash: &str| {
            let mut request = async_graphql::Request::new(query);
            request.extensions.insert(
                "persistedQuery".into(),
                async_graphql::Value::from_json(serde_json::json!({ "version": 1, "sha256Hash": hash })).unwrap(),
            );
            request
        };
        // Unknown: the client is asked for the text.
        let mut unknown = persisted("", &hash);
        let refused = documents.prepare(&mut unknown).unwrap_err();
        assert_eq!(refused.extensions.unwrap().get("code"), Some(&async_graphql::Value::from(NOT_FOUND)));
        // Another text with this hash is refused, not registered.
        let mut forged = persisted("{ other }", &hash);
        assert!(documents.prepare(&mut forged).is_err());
        let mut unknown = persisted("", &hash);
        assert!(documents.prepare(&mut unknown).is_err(), "nothing was registered");
        // The text with its hash registers it; then the hash alone is the text.
        let mut register = persisted(text, &hash);
        documents.prepare(&mut register).unwrap();
        let mut again = persisted("", &hash);
        documents.prepare(&mut again).unwrap();
        assert_eq!(again.query, text);
        assert!(again.parsed_query().is_ok());
        let mut bad = persisted("", "zz");
        assert!(documents.prepare(&mut bad).is_err());
    }

    #[test]
    fn documents_are_reused_by_text_and_bounded() {
        let documents = Documents::default();
        for _ in 0..3 {
            let mut request = async_graphql::Request::new("{ echo(text: \"y\") }");
            documents.prepare(&mut request).unwrap();
            assert!(request.parsed_query().is_ok());
        }
        assert_eq!(documents.parsed.lock().unwrap().len(), 1);
        let mut broken = async_graphql::Request::new("query {");
        documents.prepare(&mut broken).unwrap();
        assert!(broken.parsed_query().is_err(), "left for the executor to report");
        for i in 0..(DOCUMENTS + 100) {
            documents.prepare(&mut async_graphql::Request::new(format!("{{ a{i}: __typename }}"))).unwrap();
        }
        assert_eq!(documents.parsed.lock().unwrap().len(), DOCUMENTS);
    }
}
