//! Search conditions: where a search term becomes SQL, with what differs
//! between the databases.
//!
//! - Case: [`like`] is `ILIKE` on PostgreSQL and `LIKE` on SQLite.
//! - A key's substring: on SQLite the FTS5 trigram table `license_key_search`
//!   finds candidates ([`key_search`]) and the unary `+` of
//!   [`key_environment`] keeps the planner on it; on PostgreSQL a pg_trgm GIN
//!   index serves `ILIKE` itself. Both indexes are made in
//!   `migration/src/key_search.rs`.
//!
//! The filters around a search (a key's tag, status, product, ids) are
//! portable and sit in `keys.rs` (`selection`).

use super::{Sql, like};
use crate::services::keys::MIN_SUBSTRING;
use entity::Environment;
use sea_orm::{DbBackend, Value};

/// Escapes LIKE wildcards so that a search term matches itself.
pub fn escape_like(term: &str) -> String {
    let mut out = String::with_capacity(term.len());
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Any of `columns` contains `term`, every character of it taken literally.
/// Case is ignored as each database can: `LIKE` on SQLite (ASCII letters),
/// `ILIKE` on PostgreSQL (any letter). The term is never lowered on this side,
/// so a name with non-ASCII capitals (`Ünal`) always finds itself; lowering it
/// here while SQLite's `lower()` leaves `Ü` alone would lose it.
pub fn contains(backend: DbBackend, columns: &[&str], term: &str) -> Sql {
    let like = like(backend);
    let pattern = format!("%{}%", escape_like(term));
    let mut sql = Sql::new("(");
    for (i, column) in columns.iter().enumerate() {
        let or = if i == 0 { "" } else { " OR " };
        sql.push(&format!("{or}{column} {like} ? ESCAPE '\\'"), [Value::from(pattern.clone())]);
    }
    sql.push(")", []);
    sql
}

/// Keys `k` of `environment`. With a substring search (`substring`) on
/// SQLite it is written `+k.environment = ?`: the trigram index must drive
/// the query, and the unary `+` keeps the planner from walking the
/// environment's index instead. PostgreSQL plans it without the hint.
pub(crate) fn key_environment(backend: DbBackend, environment: Environment, k: &str, substring: bool) -> Sql {
    let plus = if substring && backend == DbBackend::Sqlite { "+" } else { "" };
    let mut sql = Sql::new("");
    sql.push(&format!("{plus}{k}.environment = ?"), [Value::from(environment.as_str())]);
    sql
}

/// The search condition on keys `k`: the term matches any part of the key,
/// of the customer's email or name, or of the product's name (for terms
/// shorter than three characters: their beginning). Each part is looked up
/// through its own index and the parts are united, so no part turns the
/// search into a scan of every key. On SQLite a substring of the key is found
/// through the FTS5 trigram table and re-checked against the key itself, so a
/// stale index can never return a wrong row; elsewhere (PostgreSQL, or a
/// short term) the key is matched with `ILIKE`/`LIKE` directly.
pub(crate) fn key_search(backend: DbBackend, environment: Environment, term: &str, k: &str) -> Sql {
    let escaped = escape_like(term);
    let like = like(backend);
    let short = term.chars().count() < MIN_SUBSTRING;
    let pattern = || Value::from(if short { format!("{escaped}%") } else { format!("%{escaped}%") });
    let env = || Value::from(environment.as_str());
    let mut sql = Sql::new(format!("{k}.id IN ("));
    if !short && backend == DbBackend::Sqlite {
        let phrase = format!("\"{}\"", term.replace('"', "\"\""));
        sql.push(
            "SELECT s.id FROM license_key s \
             WHERE s.rowid IN (SELECT rowid FROM license_key_search WHERE license_key_search MATCH ?) \
             AND s.key LIKE ? ESCAPE '\\'",
            [Value::from(phrase), pattern()],
        );
    } else {
        sql.push(&format!("SELECT s.id FROM license_key s WHERE s.key {like} ? ESCAPE '\\'"), [pattern()]);
    }
    sql.push(
        &format!(
            " UNION ALL SELECT s.id FROM license_key s WHERE s.customer_id IN \
             (SELECT c.id FROM customer c WHERE c.environment = ? \
             AND (c.email {like} ? ESCAPE '\\' OR c.name {like} ? ESCAPE '\\'))"
        ),
        [env(), pattern(), pattern()],
    );
    sql.push(
        &format!(
            " UNION ALL SELECT s.id FROM license_key s WHERE s.product_id IN \
             (SELECT p.id FROM product p WHERE p.environment = ? AND p.name {like} ? ESCAPE '\\'))"
        ),
        [env(), pattern()],
    );
    sql
}

/// Orders (table `orders`) whose external id, or whose customer's email,
/// contains `term`; the dialect difference is [`contains`]'s.
pub(crate) fn order_search(backend: DbBackend, environment: Environment, term: &str) -> Sql {
    let customers = "orders.customer_id IN (SELECT c.id FROM customer c WHERE c.environment = ? AND ";
    let mut matching = Sql::new("(");
    matching
        .append(&contains(backend, &["orders.external_id"], term))
        .push(&format!(" OR {customers}"), [Value::from(environment.as_str())])
        .append(&contains(backend, &["c.email"], term))
        .push("))", []);
    matching
}

#[cfg(test)]
mod tests {
    use super::super::numbered;
    use super::*;

    #[test]
    fn like_wildcards_match_themselves() {
        assert_eq!(escape_like(r"50%_off\x"), r"50\%\_off\\x");
    }

    #[test]
    fn contains_takes_the_term_literally_on_either_database() {
        let sqlite = contains(DbBackend::Sqlite, &["c.email", "c.name"], r"a%b");
        assert_eq!(sqlite.text, r"(c.email LIKE ? ESCAPE '\' OR c.name LIKE ? ESCAPE '\')");
        assert_eq!(sqlite.values, vec![Value::from(r"%a\%b%"), Value::from(r"%a\%b%")]);
        let postgres = contains(DbBackend::Postgres, &["p.name"], "Ünal");
        assert_eq!(numbered(&postgres.text), r"(p.name ILIKE $1 ESCAPE '\')");
        assert_eq!(postgres.values, vec![Value::from("%Ünal%")]);
    }

    #[test]
    fn the_environment_hint_is_for_sqlite_substring_searches() {
        let env = Environment::Production;
        assert_eq!(key_environment(DbBackend::Sqlite, env, "k", true).text, "+k.environment = ?");
        assert_eq!(key_environment(DbBackend::Sqlite, env, "k", false).text, "k.environment = ?");
        assert_eq!(key_environment(DbBackend::Postgres, env, "k", true).text, "k.environment = ?");
        assert_eq!(key_environment(DbBackend::Postgres, env, "k", true).values, vec![Value::from(env.as_str())]);
    }

    #[test]
    fn a_key_search_unites_keys_customers_and_products() {
        let env = Environment::Production;
        let people = " UNION ALL SELECT s.id FROM license_key s WHERE s.customer_id IN (SELECT c.id FROM customer c \
                      WHERE c.environment = ? AND (c.email LIKE ? ESCAPE '\\' OR c.name LIKE ? ESCAPE '\\')) \
                      UNION ALL SELECT s.id FROM license_key s WHERE s.product_id IN (SELECT p.id FROM product p \
                      WHERE p.environment = ? AND p.name LIKE ? ESCAPE '\\'))";
        let sqlite = key_search(DbBackend::Sqlite, env, "ab\"c", "k");
        assert_eq!(
            sqlite.text,
            format!(
                "k.id IN (SELECT s.id FROM license_key s WHERE s.rowid IN (SELECT rowid FROM license_key_search \
                 WHERE license_key_search MATCH ?) AND s.key LIKE ? ESCAPE '\\'{people}"
            )
        );
        assert_eq!(sqlite.values[..2], [Value::from("\"ab\"\"c\""), Value::from("%ab\"c%")]);
        let short = key_search(DbBackend::Sqlite, env, "a_", "k");
        assert_eq!(
            short.text,
            format!("k.id IN (SELECT s.id FROM license_key s WHERE s.key LIKE ? ESCAPE '\\'{people}")
        );
        assert_eq!(short.values[0], Value::from("a\\_%"));
        let postgres = key_search(DbBackend::Postgres, env, "abc", "k");
        assert_eq!(
            postgres.text,
            format!(
                "k.id IN (SELECT s.id FROM license_key s WHERE s.key ILIKE ? ESCAPE '\\'{}",
                people.replace(" LIKE ", " ILIKE ")
            )
        );
        assert_eq!(postgres.values.len(), 6);
    }

    #[test]
    fn an_order_search_reads_the_external_id_and_the_customers_email() {
        let sqlite = order_search(DbBackend::Sqlite, Environment::Staging, "x");
        assert_eq!(
            sqlite.text,
            "((orders.external_id LIKE ? ESCAPE '\\') OR orders.customer_id IN (SELECT c.id FROM customer c \
             WHERE c.environment = ? AND (c.email LIKE ? ESCAPE '\\')))"
        );
        assert_eq!(sqlite.values[1], Value::from(Environment::Staging.as_str()));
        let postgres = order_search(DbBackend::Postgres, Environment::Staging, "x");
        assert_eq!(postgres.text, sqlite.text.replace(" LIKE ", " ILIKE "));
    }
}
