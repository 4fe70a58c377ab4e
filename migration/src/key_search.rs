//! Pools: the system tag `auto-generated` in each environment, and a substring
//! index over key strings that stays fast at millions of keys — FTS5 with the
//! trigram tokenizer on SQLite, a pg_trgm GIN index on PostgreSQL.
//!
//! The SQLite index is an external-content FTS5 table over `license_key`'s
//! rowid, kept in step by triggers. (A `VACUUM` may renumber the rowids of a
//! table without an INTEGER PRIMARY KEY; searches re-check the key itself, so a
//! stale index can only miss rows, and
//! `INSERT INTO license_key_search(license_key_search) VALUES ('rebuild')` mends it.)

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000002_key_search"
    }
}

const SYSTEM_TAGS: &str = "INSERT INTO tag (id, environment, name, exhausting_notified_at, created_at) VALUES \
    ('00000000000000000000AUTOPR', 'production', 'auto-generated', NULL, '2026-01-01T00:00:00+00:00'), \
    ('00000000000000000000AUTOST', 'staging', 'auto-generated', NULL, '2026-01-01T00:00:00+00:00')";

const SQLITE_UP: &[&str] = &[
    "CREATE VIRTUAL TABLE license_key_search USING fts5(key, content='license_key', content_rowid='rowid', tokenize='trigram')",
    "CREATE TRIGGER license_key_search_insert AFTER INSERT ON license_key BEGIN \
       INSERT INTO license_key_search (rowid, key) VALUES (new.rowid, new.key); END",
    "CREATE TRIGGER license_key_search_delete AFTER DELETE ON license_key BEGIN \
       INSERT INTO license_key_search (license_key_search, rowid, key) VALUES ('delete', old.rowid, old.key); END",
    "CREATE TRIGGER license_key_search_update AFTER UPDATE OF key ON license_key BEGIN \
       INSERT INTO license_key_search (license_key_search, rowid, key) VALUES ('delete', old.rowid, old.key); \
       INSERT INTO license_key_search (rowid, key) VALUES (new.rowid, new.key); END",
    "INSERT INTO license_key_search (license_key_search) VALUES ('rebuild')",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER license_key_search_update",
    "DROP TRIGGER license_key_search_delete",
    "DROP TRIGGER license_key_search_insert",
    "DROP TABLE license_key_search",
];

const POSTGRES_UP: &[&str] = &[
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_license_key_key_trgm ON license_key USING gin (key gin_trgm_ops)",
];

const POSTGRES_DOWN: &[&str] = &["DROP INDEX ix_license_key_key_trgm"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(SYSTEM_TAGS).await?;
        let statements = match manager.get_database_backend() {
            DbBackend::Sqlite => SQLITE_UP,
            _ => POSTGRES_UP,
        };
        for sql in statements {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let statements = match manager.get_database_backend() {
            DbBackend::Sqlite => SQLITE_DOWN,
            _ => POSTGRES_DOWN,
        };
        for sql in statements {
            db.execute_unprepared(sql).await?;
        }
        db.execute_unprepared("DELETE FROM tag WHERE name = 'auto-generated'").await?;
        Ok(())
    }
}
