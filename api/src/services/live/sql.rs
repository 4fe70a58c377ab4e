//! The live feed's SQL. Each database carries events to the nodes its own
//! way (see `live.rs`), so each statement here is for one database only:
//! PostgreSQL announces events with `pg_notify`; SQLite has no notifications,
//! and its reader follows the `event` table by `rowid`, the order in which
//! SQLite committed the rows (the table's own ids are ULIDs, made before
//! commit).
//!
//! The events themselves and their facets are read with the query builder
//! (`live::load`), alike on both databases.

use super::CHANNEL;
use sea_orm::{DbBackend, Statement};

/// PostgreSQL: sends `payload` (event ids, comma-separated) on the live
/// channel; the notification goes out when the transaction commits.
pub(super) fn notify(payload: String) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, "SELECT pg_notify($1, $2)", [CHANNEL.into(), payload.into()])
}

/// SQLite: the last event committed, in commit order (`seq`; 0 when none).
pub(super) fn last_rowid() -> Statement {
    Statement::from_string(DbBackend::Sqlite, "SELECT COALESCE(MAX(rowid), 0) AS seq FROM event")
}

/// SQLite: up to `batch` events committed after `cursor` (a `seq` of
/// [`last_rowid`] or of this statement), in commit order.
pub(super) fn events_after(cursor: i64, batch: i64) -> Statement {
    Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "SELECT rowid AS seq, id FROM event WHERE rowid > ? ORDER BY rowid LIMIT ?",
        [cursor.into(), batch.into()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_statement_is_for_its_database() {
        let notify = notify("a,b".into());
        assert_eq!((notify.db_backend, notify.sql.as_str()), (DbBackend::Postgres, "SELECT pg_notify($1, $2)"));
        assert_eq!(last_rowid().sql, "SELECT COALESCE(MAX(rowid), 0) AS seq FROM event");
        let read = events_after(7, 100);
        assert_eq!(read.db_backend, DbBackend::Sqlite);
        assert_eq!(read.sql, "SELECT rowid AS seq, id FROM event WHERE rowid > ? ORDER BY rowid LIMIT ?");
    }
}
