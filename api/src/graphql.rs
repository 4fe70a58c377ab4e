//! The GraphQL schema: types, queries and mutations over the services.
//!
//! Two schemas are built from the same code: `staff` for staff tokens, and
//! `public` for anonymous callers and customers, which has introspection and
//! field suggestions turned off. Both have depth and complexity limits.

pub mod codes;
pub mod depth;
pub mod guard;
pub mod loaders;
mod mutation;
pub mod nesting;
mod query;
pub mod subscription;
pub mod types;

use crate::AppState;
use crate::auth::RequestContext;
use crate::error::AppError;
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Context, Schema, SchemaBuilder};

pub use mutation::Mutation;
pub use query::Query;
pub use subscription::Subscription;

pub type KeysmithSchema = Schema<Query, Mutation, Subscription>;

/// Deepest nesting of fields an operation may have (introspection counts as one; see [`depth`]).
pub const MAX_DEPTH: usize = 12;
/// Most fields (each counted once, connections by their page size) one query may ask for.
pub const MAX_COMPLEXITY: usize = 2_000;

fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query::default(), Mutation::default(), Subscription)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(nesting::NestingLimit)
        .extension(depth::DepthLimit)
        .extension(codes::ErrorCodes)
}

/// The schema as SDL: what `keysmith schema` prints and `schema.graphql` holds.
pub fn sdl() -> String {
    builder().finish().sdl()
}

/// The staff schema and the locked-down public one, sharing the app state.
#[derive(Clone)]
pub struct Schemas {
    pub staff: KeysmithSchema,
    pub public: KeysmithSchema,
    pub parsed: std::sync::Arc<ParsedQueries>,
}

impl Schemas {
    pub fn new(state: AppState) -> Self {
        Self {
            staff: builder().data(state.clone()).finish(),
            public: builder().data(state).disable_introspection().disable_suggestions().finish(),
            parsed: std::sync::Arc::default(),
        }
    }
}

/// Queries parsed before, by their text. Shipped software sends the same few
/// query texts thousands of times a second, and parsing is a large share of
/// a validation's cost; validation against the schema still runs every time.
#[derive(Default)]
pub struct ParsedQueries(std::sync::Mutex<std::collections::HashMap<String, ExecutableDocument>>);

impl ParsedQueries {
    /// Most query texts kept; when full, the cache starts again empty.
    const ENTRIES: usize = 512;
    /// Longer query texts are parsed every time.
    const LONGEST: usize = 8 * 1024;

    /// Hands `request` its parsed query when the text was seen before; parses
    /// and keeps it otherwise. A text that does not parse is left for the
    /// executor to report.
    pub fn prepare(&self, request: &mut async_graphql::Request) {
        // Too deep a document is never parsed: the schema refuses it.
        if request.query.len() > Self::LONGEST || nesting::refusal(&request.query).is_some() {
            return;
        }
        if let Ok(cache) = self.0.lock()
            && let Some(doc) = cache.get(&request.query)
        {
            request.set_parsed_query(doc.clone());
            return;
        }
        let Ok(doc) = async_graphql::parser::parse_query(&request.query) else { return };
        if let Ok(mut cache) = self.0.lock() {
            if cache.len() >= Self::ENTRIES {
                cache.clear();
            }
            cache.insert(request.query.clone(), doc.clone());
        }
        request.set_parsed_query(doc);
    }
}

/// The app state and the request context every resolver works with.
pub(crate) fn request<'a>(ctx: &Context<'a>) -> Result<(&'a AppState, &'a RequestContext), AppError> {
    let state = ctx.data::<AppState>().map_err(|_| AppError::internal("the schema was built without app state"))?;
    let request = ctx.data::<RequestContext>().map_err(|_| AppError::internal("the request carries no context"))?;
    Ok((state, request))
}

#[cfg(test)]
mod tests {
    use super::ParsedQueries;

    #[test]
    fn parsed_queries_are_reused_and_bounded() {
        let cache = ParsedQueries::default();
        let text = "mutation($k: String!) { validateLicense(input: {key: $k}) { code } }";
        for _ in 0..3 {
            let mut request = async_graphql::Request::new(text);
            cache.prepare(&mut request);
            assert!(request.parsed_query().is_ok());
        }
        assert_eq!(cache.0.lock().unwrap().len(), 1);
        // A text that does not parse is left for the executor and not kept.
        let mut broken = async_graphql::Request::new("mutation {");
        cache.prepare(&mut broken);
        assert!(broken.parsed_query().is_err());
        for i in 0..600 {
            cache.prepare(&mut async_graphql::Request::new(format!("{{ a{i}: __typename }}")));
        }
        assert!(cache.0.lock().unwrap().len() <= ParsedQueries::ENTRIES);
    }

    #[test]
    fn the_committed_schema_matches_the_code() {
        let committed = include_str!("../../schema.graphql");
        assert!(
            super::sdl() == committed,
            "schema.graphql is out of date: run `cargo run -q -p keysmith -- schema > schema.graphql` and commit it"
        );
    }
}
