//! Types shared by many lists: enums mirrored from the domain, ordering, and
//! the connection shape with `totalCount`.

use crate::services::pagination::Page;
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Enum, OutputType, SimpleObject};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "entity::Environment")]
pub enum Environment {
    Production,
    Staging,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "crate::auth::Role")]
pub enum Role {
    Admin,
    Manager,
    Support,
    Customer,
    Anonymous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "entity::user::StaffRole")]
pub enum StaffRole {
    Admin,
    Manager,
    Support,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Enum)]
pub enum OrderDirection {
    #[default]
    Asc,
    Desc,
}

impl OrderDirection {
    pub fn descending(self) -> bool {
        self == OrderDirection::Desc
    }
}

/// Fields every connection has besides its edges.
#[derive(Debug, SimpleObject)]
pub struct ConnectionTotals {
    /// How many items match the filter, on all pages.
    pub total_count: u64,
}

pub type ListConnection<N> = Connection<String, N, ConnectionTotals>;

/// A service page as a Relay connection of `N`.
pub fn connection<M, N: OutputType>(page: Page<M>, node: impl Fn(M) -> N) -> ListConnection<N> {
    let mut conn = Connection::with_additional_fields(
        page.has_previous_page,
        page.has_next_page,
        ConnectionTotals { total_count: page.total_count.unwrap_or_default() },
    );
    conn.edges = page.items.into_iter().map(|(cursor, item)| Edge::new(cursor, node(item))).collect();
    conn
}
