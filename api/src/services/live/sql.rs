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

/// PostgreSQL: `writes` (statements built for PostgreSQL, `$n`
/// placeholders) chained in one `WITH … SELECT pg_notify(…)` that sends each
/// of `payloads` on the live channel. PostgreSQL runs every data-modifying
/// `WITH` part once, to completion, whether or not the query reads it.
/// `None` when there is nothing to run.
pub(super) fn with_notify(writes: Vec<Statement>, payloads: Vec<String>) -> Option<Statement> {
    if writes.is_empty() && payloads.is_empty() {
        return None;
    }
    let mut text = String::new();
    let mut values: Vec<sea_orm::Value> = Vec::new();
    for (i, write) in writes.into_iter().enumerate() {
        text.push_str(if i == 0 { "WITH " } else { ", " });
        text.push_str(&format!("w{i} AS ("));
        text.push_str(&renumbered(&write.sql, values.len()));
        text.push(')');
        values.extend(write.values.map(|v| v.0).unwrap_or_default());
    }
    if !text.is_empty() {
        text.push(' ');
    }
    if payloads.is_empty() {
        text.push_str("SELECT 1");
    } else {
        text.push_str("SELECT pg_notify(n.c, n.p) FROM (VALUES ");
        for (i, payload) in payloads.into_iter().enumerate() {
            let at = values.len();
            text.push_str(&format!("{}(${}, ${})", if i == 0 { "" } else { ", " }, at + 1, at + 2));
            values.extend([CHANNEL.into(), payload.into()]);
        }
        text.push_str(") AS n(c, p)");
    }
    Some(Statement::from_sql_and_values(DbBackend::Postgres, text, values))
}

/// `sql`'s placeholders `$1, $2, …` moved up by `offset`. The statements
/// chained are the query builder's, whose values are all bound: no literal
/// in their text holds a `$` and a digit.
fn renumbered(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut n = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                n.push(d);
                chars.next();
            }
            out.push_str(&format!("${}", n.parse::<usize>().unwrap_or(0) + offset));
        } else {
            out.push(c);
        }
    }
    out
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
    fn writes_are_chained_before_their_notifications() {
        let write =
            |sql: &str, values: Vec<sea_orm::Value>| Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
        let chained = with_notify(
            vec![
                write(r#"INSERT INTO "a" ("x", "y") VALUES ($1, $2)"#, vec![1.into(), 2.into()]),
                write(r#"INSERT INTO "b" ("z") VALUES ($1), ($2)"#, vec![3.into(), 4.into()]),
            ],
            vec!["E1,E2".into(), "E3".into()],
        )
        .expect("a statement");
        assert_eq!(
            chained.sql,
            r#"WITH w0 AS (INSERT INTO "a" ("x", "y") VALUES ($1, $2)), w1 AS (INSERT INTO "b" ("z") VALUES ($3), ($4)) SELECT pg_notify(n.c, n.p) FROM (VALUES ($5, $6), ($7, $8)) AS n(c, p)"#
        );
        let values = chained.values.expect("values").0;
        assert_eq!(values.len(), 8);
        assert_eq!(values[4], sea_orm::Value::from(CHANNEL));
        assert_eq!(values[7], sea_orm::Value::from("E3"));
        let quiet = with_notify(vec![write("INSERT INTO t VALUES ($1)", vec![1.into()])], vec![]).expect("a statement");
        assert_eq!(quiet.sql, "WITH w0 AS (INSERT INTO t VALUES ($1)) SELECT 1");
        assert!(with_notify(vec![], vec![]).is_none());
        assert_eq!(renumbered("$1 + $12 = '$x'", 10), "$11 + $22 = '$x'");
    }

    #[test]
    fn each_statement_is_for_its_database() {
        let notify = with_notify(vec![], vec!["a,b".into()]).expect("a statement");
        assert_eq!(
            (notify.db_backend, notify.sql.as_str()),
            (DbBackend::Postgres, "SELECT pg_notify(n.c, n.p) FROM (VALUES ($1, $2)) AS n(c, p)")
        );
        assert_eq!(last_rowid().sql, "SELECT COALESCE(MAX(rowid), 0) AS seq FROM event");
        let read = events_after(7, 100);
        assert_eq!(read.db_backend, DbBackend::Sqlite);
        assert_eq!(read.sql, "SELECT rowid AS seq, id FROM event WHERE rowid > ? ORDER BY rowid LIMIT ?");
    }
}
