//! The depth limit: no operation may nest its fields deeper than
//! [`super::MAX_DEPTH`], fragments counted where they are spread.
//!
//! Introspection (`__schema`, `__type`, `__typename`) counts as one level
//! whatever it selects: the standard introspection query that GraphiQL, code
//! generators and client libraries send nests `ofType` eight levels under
//! `__schema { types { fields { args { type …`, it reads only the schema held
//! in memory, and the complexity limit still bounds its size. The public
//! schema has no introspection at all.

use super::MAX_DEPTH;
use super::codes::TOO_DEEP;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerResult, Variables};
use std::collections::HashMap;
use std::sync::Arc;

/// The message a refusal carries (the words the rest of the API uses).
const REFUSAL: &str = "Query is nested too deep.";

/// The deepest field nesting among `document`'s operations.
pub fn depth(document: &ExecutableDocument) -> usize {
    let mut fragments = HashMap::new();
    document
        .operations
        .iter()
        .map(|(_, op)| set_depth(&op.node.selection_set.node, document, &mut fragments))
        .max()
        .unwrap_or(0)
}

/// A fragment's depth, once computed; `None` while it is being computed (a
/// cycle, which validation refuses anyway, counts as nothing more).
type Fragments<'a> = HashMap<&'a str, Option<usize>>;

fn set_depth<'a>(set: &'a SelectionSet, document: &'a ExecutableDocument, fragments: &mut Fragments<'a>) -> usize {
    set.items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(field) if field.node.name.node.starts_with("__") => 1,
            Selection::Field(field) => 1 + set_depth(&field.node.selection_set.node, document, fragments),
            Selection::InlineFragment(inline) => set_depth(&inline.node.selection_set.node, document, fragments),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match fragments.get(name) {
                    Some(known) => known.unwrap_or(0),
                    None => match document.fragments.get(&spread.node.fragment_name.node) {
                        None => 0,
                        Some(fragment) => {
                            fragments.insert(name, None);
                            let depth = set_depth(&fragment.node.selection_set.node, document, fragments);
                            fragments.insert(name, Some(depth));
                            depth
                        }
                    },
                }
            }
        })
        .max()
        .unwrap_or(0)
}

/// The extension that refuses documents past the limit, once parsed.
pub struct DepthLimit;

impl ExtensionFactory for DepthLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DepthLimitExtension)
    }
}

struct DepthLimitExtension;

#[async_trait::async_trait]
impl Extension for DepthLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if depth(&document) > MAX_DEPTH {
            return Err(super::codes::refusal(REFUSAL, TOO_DEEP));
        }
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn of(text: &str) -> usize {
        depth(&parse_query(text).expect("parses"))
    }

    /// The introspection query GraphiQL and code generators send, in part:
    /// its type references nest eight levels under `__schema`.
    const INTROSPECTION: &str = "query IntrospectionQuery { __schema { queryType { name } types { ...FullType } } }
        fragment FullType on __Type { kind name fields(includeDeprecated: true) { name args { name type { ...TypeRef } } type { ...TypeRef } } }
        fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType {
          kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }";

    #[test]
    fn fields_count_where_fragments_are_spread() {
        assert_eq!(of("{ a }"), 1);
        assert_eq!(of("{ a { b { c } } d }"), 3);
        assert_eq!(of("{ a { ...F } } fragment F on T { b { c } }"), 3);
        assert_eq!(of("{ a { ... on T { b } } }"), 2);
        assert_eq!(of("query A { a } query B { a { b { c { d } } } }"), 4);
        // The same fragment spread twice is measured once; a cycle ends.
        assert_eq!(of("{ a { ...F } b { c { ...F } } } fragment F on T { x { y } }"), 4);
        assert_eq!(of("{ a { ...F } } fragment F on T { b { ...G } } fragment G on T { ...F }"), 2);
        assert_eq!(of("{ a { ...Missing } }"), 1);
    }

    #[test]
    fn introspection_is_one_level_whatever_it_selects() {
        assert_eq!(of(INTROSPECTION), 1);
        assert_eq!(of("{ a { __typename b { __type(name: \"X\") { fields { type { ofType { name } } } } } } }"), 3);
        let deep = format!("{{ {}x{} }}", "a { ".repeat(MAX_DEPTH), " }".repeat(MAX_DEPTH));
        assert_eq!(of(&deep), MAX_DEPTH + 1);
    }
}
