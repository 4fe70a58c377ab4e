//! The GraphQL schema: types, queries and mutations over the services.
//!
//! Two schemas are built from the same code: `staff` for staff tokens, and
//! `public` for anonymous callers and customers, which has introspection and
//! field suggestions turned off. Both have depth and complexity limits.

pub mod codes;
pub mod depth;
pub mod documents;
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
    /// Persisted queries, parsed documents and validation results.
    pub documents: std::sync::Arc<documents::Documents>,
}

impl Schemas {
    pub fn new(state: AppState) -> Self {
        let documents = std::sync::Arc::new(documents::Documents::default());
        Self {
            staff: builder().extension(documents.validation_cache("staff")).data(state.clone()).finish(),
            public: builder()
                .extension(documents.validation_cache("public"))
                .data(state)
                .disable_introspection()
                .disable_suggestions()
                .finish(),
            documents,
        }
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
    #[test]
    fn the_committed_schema_matches_the_code() {
        let committed = include_str!("../../schema.graphql");
        assert!(
            super::sdl() == committed,
            "schema.graphql is out of date: run `cargo run -q -p keysmith -- schema > schema.graphql` and commit it"
        );
    }
}
