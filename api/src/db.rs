//! Opening the database (SQLite by default, PostgreSQL by URL), migrating it,
//! and starting write transactions the way each engine needs (on SQLite, in
//! turn and on the node's one writing connection: see [`WriteTxn`] and
//! [`Writer`]).

use crate::error::{AppError, AppResult};
use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// How long a SQLite writer waits for the write lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a SQLite file is read through a memory map (address space, not memory).
const SQLITE_MMAP_BYTES: u64 = 1 << 30;

pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// The file a SQLite URL points at, or `None` for in-memory and other databases.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<DatabaseConnection> {
    // The password goes to the driver apart from the URL: the ORM records its
    // connection options (the URL included) in debug-level log spans.
    let (bare, password) = split_password(url);
    let mut options = ConnectOptions::new(bare);
    if let Some(password) = password {
        options.map_sqlx_postgres_opts(move |o| o.password(&password));
    }
    options
        .max_connections(max_connections.max(1))
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    if is_sqlite(url) {
        options.map_sqlx_sqlite_opts(|o| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
                // Pages read through a memory map: a page another connection
                // read is not read again, and reading one is no system call.
                .pragma("mmap_size", SQLITE_MMAP_BYTES.to_string())
        });
    }
    Database::connect(options).await.with_context(|| format!("cannot open the database at {}", redact_url(url)))
}

pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await.context("migrating the database")
}

/// A write transaction. On SQLite it is also this process's turn at the
/// database file's write lock: writers queue for their turn in arrival order
/// and start `BEGIN IMMEDIATE` only when it comes, so none of them sleeps in
/// SQLite's busy handler, whose back-off (1, 2, 5, 10 … ms) is what made the
/// write paths' long tails. The turn ends when the transaction does.
pub struct WriteTxn {
    // Declared first so it ends (commit, or a rollback on drop) before the turn is handed on.
    txn: DatabaseTransaction,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl WriteTxn {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }
}

impl std::ops::Deref for WriteTxn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.txn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.txn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.txn.query_all_raw(stmt).await
    }
}

/// The queue for a SQLite file's write lock in this process. SQLite's lock
/// belongs to the file, whichever connection or pool takes it, so the queue
/// does too: two pools on one file (two nodes in one process) share it.
fn write_queue(db: &DatabaseConnection) -> Option<Arc<Mutex<()>>> {
    static QUEUES: LazyLock<std::sync::Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = LazyLock::new(Default::default);
    if db.get_database_backend() != DbBackend::Sqlite {
        return None;
    }
    let file = db.get_sqlite_connection_pool().connect_options().get_filename().to_path_buf();
    let mut queues = QUEUES.lock().unwrap_or_else(|p| p.into_inner());
    Some(queues.entry(file).or_default().clone())
}

/// Waits for this process's turn at a SQLite database's write lock (nothing
/// on PostgreSQL). For writing outside a transaction: hold the turn across
/// the statement.
pub async fn write_turn(db: &DatabaseConnection) -> Option<OwnedMutexGuard<()>> {
    match write_queue(db) {
        Some(queue) => Some(queue.lock_owned().await),
        None => None,
    }
}

/// Starts a transaction that will write. On SQLite it waits for this
/// process's turn (see [`WriteTxn`]) and then takes the write lock up front
/// (`BEGIN IMMEDIATE`): a transaction that reads first and upgrades later
/// fails at once with "database is locked" when another writer got in
/// between, busy timeout or not. Another process writing to the same file is
/// still waited for in the busy handler. When the pool has a [`Writer`], the
/// transaction runs on the writer's connection.
pub async fn begin_write(db: &DatabaseConnection) -> Result<WriteTxn, DbErr> {
    let turn = write_turn(db).await;
    let options = TransactionOptions {
        sqlite_transaction_mode: turn.is_some().then_some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    let txn = match turn.as_ref().and_then(|_| Writer::of(db)) {
        Some(writer) => writer.db.begin_with_options(options).await?,
        None => db.begin_with_options(options).await?,
    };
    Ok(WriteTxn { txn, _turn: turn })
}

/// A SQLite pool's one writing connection, on which [`begin_write`] runs
/// every write transaction of the pool (reads stay on the pool). SQLite lets
/// one transaction write at a time anyway; on one connection, what the
/// writes read stays in that connection's page cache and its statements stay
/// prepared. Spread over the pool, each write transaction began on a
/// connection whose cache another's commit had emptied (and whose memory map
/// it dropped), and read its pages again.
///
/// The node keeps its writer (in `AppState`) for as long as it runs; the
/// pool finds it through a registry of weak references, keyed by the pool.
/// A pool without one (a command-line tool's, a test's own) writes on its
/// own connections, in the same turn.
pub struct Writer {
    db: DatabaseConnection,
    pool: usize,
    /// Work for [`grouped`]: run in batches by the writer's own task.
    group: Option<tokio::sync::mpsc::UnboundedSender<Job>>,
}

/// What a grouped write says once its batch has committed (or not).
type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A grouped write: run in its batch's transaction, in a savepoint of its
/// own; `false` beside its answer when its savepoint could not be undone, so
/// the batch must not commit.
type Job =
    Box<dyn for<'a> FnOnce(&'a DatabaseTransaction) -> futures_util::future::BoxFuture<'a, (Finish, bool)> + Send>;

/// Writes grouped into one transaction at most.
const GROUP: usize = 64;

/// Runs `work` in a write transaction and answers once that has committed.
/// On SQLite, with the pool's [`Writer`], the writes of every request
/// waiting at once share one transaction (group commit): the writer's task
/// takes the waiting work (at most [`GROUP`]), runs each piece in a
/// savepoint of its own — a piece that fails is rolled back alone and
/// answers its error — commits once, and only then answers them all; a
/// failed commit fails them all. A batch saves each request a `BEGIN`, a
/// `COMMIT` and its own write of the pages they share. Elsewhere `work` runs
/// in a transaction of its own.
pub async fn grouped<T, F>(db: &DatabaseConnection, work: F) -> AppResult<T>
where
    T: Send + 'static,
    F: for<'a> FnOnce(&'a DatabaseTransaction) -> futures_util::future::BoxFuture<'a, AppResult<T>> + Send + 'static,
{
    let group = if db.get_database_backend() == DbBackend::Sqlite { Writer::of(db) } else { None };
    // A writer whose task has ended (it never should) leaves the work to a transaction of its own.
    let Some(queue) = group.as_ref().and_then(|w| w.group.clone()).filter(|q| !q.is_closed()) else {
        let txn = begin_write(db).await?;
        let done = work(&txn).await?;
        txn.commit().await?;
        return Ok(done);
    };
    let (answer, answered) = tokio::sync::oneshot::channel::<AppResult<T>>();
    let job: Job = Box::new(move |txn| {
        Box::pin(async move {
            let mut clean = true;
            let outcome = match txn.begin().await {
                Ok(savepoint) => match work(&savepoint).await {
                    Ok(done) => savepoint.commit().await.map(|()| done).map_err(AppError::from),
                    Err(e) => {
                        if let Err(undone) = savepoint.rollback().await {
                            tracing::warn!(error = %undone, "rolling a grouped write back to its savepoint failed");
                            clean = false;
                        }
                        Err(e)
                    }
                },
                Err(e) => Err(e.into()),
            };
            let finish = Box::new(move |committed: Result<(), String>| {
                let answer_now = match (committed, outcome) {
                    (Ok(()), outcome) => outcome,
                    (Err(e), _) => Err(AppError::internal(format!("the grouped write did not commit: {e}"))),
                };
                let _ = answer.send(answer_now);
            }) as Finish;
            (finish, clean)
        })
    });
    if queue.send(job).is_err() {
        return Err(AppError::internal("the writer has stopped"));
    }
    answered.await.map_err(|_| AppError::internal("the writer stopped before answering"))?
}

/// The writer's task: runs the grouped writes waiting, a batch at a time.
async fn run_groups(db: DatabaseConnection, mut queue: tokio::sync::mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < GROUP {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let turn = write_turn(&db).await;
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        // Without a transaction the batch's work is dropped unrun, and each
        // waiting request answers that the writer stopped before answering.
        let txn = match db.begin_with_options(options).await {
            Ok(txn) => txn,
            Err(e) => {
                tracing::warn!(error = %e, "a grouped write transaction did not begin");
                continue;
            }
        };
        let mut finished = Vec::with_capacity(batch.len());
        let mut clean = true;
        for job in batch {
            let (finish, undone) = job(&txn).await;
            finished.push(finish);
            clean &= undone;
        }
        let committed = match clean {
            true => txn.commit().await.map_err(|e| e.to_string()),
            false => {
                let _ = txn.rollback().await;
                Err("a failed write could not be undone alone, so the batch was rolled back".to_string())
            }
        };
        drop(turn);
        for finish in finished {
            finish(committed.clone());
        }
    }
}

type Writers = std::sync::Mutex<HashMap<usize, Weak<Writer>>>;
static WRITERS: LazyLock<Writers> = LazyLock::new(Default::default);

impl Writer {
    /// A writer for `db`'s pool, registered as its writer: `None` for
    /// PostgreSQL, where each transaction takes its own row locks. Its one
    /// connection opens at the first write. `prepare` sets it up like the
    /// pool's connection (e.g. the same statement counter).
    pub fn new(db: &DatabaseConnection, prepare: impl FnOnce(&mut DatabaseConnection)) -> Option<Arc<Self>> {
        if db.get_database_backend() != DbBackend::Sqlite {
            return None;
        }
        let options = db.get_sqlite_connection_pool().connect_options();
        let pool = sea_orm::sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(30))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with((*options).clone());
        let mut writer = sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool);
        prepare(&mut writer);
        // The grouped writes' task, when there is a runtime to run it on.
        let group = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let (queue, jobs) = tokio::sync::mpsc::unbounded_channel();
            runtime.spawn(run_groups(writer.clone(), jobs));
            queue
        });
        let writer = Arc::new(Self { db: writer, pool: pool_id(db), group });
        WRITERS.lock().unwrap_or_else(|p| p.into_inner()).insert(writer.pool, Arc::downgrade(&writer));
        Some(writer)
    }

    /// The writer registered for `db`'s pool, while it lives.
    fn of(db: &DatabaseConnection) -> Option<Arc<Self>> {
        WRITERS.lock().unwrap_or_else(|p| p.into_inner()).get(&pool_id(db))?.upgrade()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let mut writers = WRITERS.lock().unwrap_or_else(|p| p.into_inner());
        if writers.get(&self.pool).is_some_and(|w| w.strong_count() == 0) {
            writers.remove(&self.pool);
        }
    }
}

/// A SQLite pool's identity, shared by every clone of its connection: the
/// address of its connection options, which the pool holds for its life.
fn pool_id(db: &DatabaseConnection) -> usize {
    Arc::as_ptr(&db.get_sqlite_connection_pool().connect_options()) as usize
}

/// How often a transaction that lost a race is run again before giving up.
const ATTEMPTS: u32 = 12;

/// Runs `attempt` again while it loses races to concurrent transactions
/// ([`AppError::Contended`]: each attempt was rolled back whole), with a
/// short random pause between tries.
pub async fn retrying<T, F, Fut>(mut attempt: F) -> AppResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = AppResult<T>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(AppError::Contended(detail)) if tries + 1 < ATTEMPTS => {
                tries += 1;
                tracing::debug!(%detail, tries, "transaction lost a race; running it again");
                let pause = rand::random_range(1..=5u64 * u64::from(tries));
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            other => return other,
        }
    }
}

/// The URL without its password, and the password (percent-decoded).
fn split_password(url: &str) -> (String, Option<String>) {
    let (Some(scheme), Some(at)) = (url.find("://"), url.rfind('@')) else {
        return (url.to_string(), None);
    };
    if at < scheme + 3 {
        return (url.to_string(), None);
    }
    match url[scheme + 3..at].split_once(':') {
        Some((user, password)) if !password.is_empty() => {
            let decoded = percent_encoding::percent_decode_str(password).decode_utf8_lossy().into_owned();
            (format!("{}{user}{}", &url[..scheme + 3], &url[at..]), Some(decoded))
        }
        _ => (url.to_string(), None),
    }
}

/// A database URL fit for logs: any password replaced.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_found_in_urls() {
        assert_eq!(sqlite_file("sqlite://keysmith.db"), Some(PathBuf::from("keysmith.db")));
        assert_eq!(sqlite_file("sqlite:///var/lib/k.db?mode=rwc"), Some(PathBuf::from("/var/lib/k.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u:p@h/db"), None);
    }

    #[test]
    fn passwords_are_handed_to_the_driver_apart_from_the_url() {
        assert_eq!(
            split_password("postgres://ks:p%40ss%3Aword@db:5432/ks"),
            ("postgres://ks@db:5432/ks".to_string(), Some("p@ss:word".to_string()))
        );
        assert_eq!(split_password("postgres://ks@db/ks"), ("postgres://ks@db/ks".to_string(), None));
        assert_eq!(split_password("sqlite://keysmith.db"), ("sqlite://keysmith.db".to_string(), None));
    }

    /// A pool with a writer writes on the writer's connection, each clone of
    /// the pool alike; once the writer is gone, on the pool's own.
    #[tokio::test]
    async fn write_transactions_run_on_the_pools_writer_while_it_lives() {
        use std::sync::atomic::{AtomicU64, Ordering};
        // Counted: the statements a connection runs (its transactions' BEGIN and COMMIT are not).
        let dir = std::env::temp_dir().join(format!("keysmith-writer-{}", entity::new_id()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let url = format!("sqlite://{}", dir.join("w.db").display());
        let mut db = connect(&url, 4).await.expect("the database");
        let counter = |db: &mut DatabaseConnection| {
            let count = Arc::new(AtomicU64::new(0));
            let c = count.clone();
            db.set_metric_callback(move |_| {
                c.fetch_add(1, Ordering::Relaxed);
            });
            count
        };
        let on_pool = counter(&mut db);
        db.execute_unprepared("CREATE TABLE t (n INTEGER)").await.expect("a table");
        let mut on_writer = None;
        let writer = Writer::new(&db, |w| on_writer = Some(counter(w))).expect("SQLite has a writer");
        let on_writer = on_writer.expect("the writer was prepared");
        let write = |db: DatabaseConnection| async move {
            let txn = begin_write(&db).await.expect("begin");
            txn.execute_raw(Statement::from_string(DbBackend::Sqlite, "INSERT INTO t VALUES (1)"))
                .await
                .expect("insert");
            txn.commit().await.expect("commit");
        };
        let before = on_pool.load(Ordering::Relaxed);
        write(db.clone()).await;
        assert_eq!(on_writer.load(Ordering::Relaxed), 1, "the insert ran on the writer");
        assert_eq!(on_pool.load(Ordering::Relaxed), before, "nothing ran on the pool");
        drop(writer);
        write(db.clone()).await;
        assert_eq!(on_pool.load(Ordering::Relaxed), before + 1, "without a writer, the pool writes");
        let rows = db.query_one_raw(Statement::from_string(DbBackend::Sqlite, "SELECT COUNT(*) AS n FROM t")).await;
        let n: i64 = rows.expect("count").expect("a row").try_get("", "n").expect("n");
        assert_eq!(n, 2, "both inserts committed");
        db.close().await.expect("closed");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Writes grouped into shared transactions: each failing piece is undone
    /// alone and answers its own error; the others are committed when they answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grouped_writes_commit_together_and_fail_alone() {
        let dir = std::env::temp_dir().join(format!("keysmith-group-{}", entity::new_id()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let url = format!("sqlite://{}", dir.join("g.db").display());
        let db = connect(&url, 4).await.expect("the database");
        db.execute_unprepared("CREATE TABLE t (n INTEGER)").await.expect("a table");
        let _writer = Writer::new(&db, |_| {}).expect("SQLite has a writer");
        let mut running = tokio::task::JoinSet::new();
        for n in 0..40i64 {
            let db = db.clone();
            running.spawn(async move {
                let done = grouped(&db, move |txn| {
                    Box::pin(async move {
                        let insert =
                            Statement::from_sql_and_values(DbBackend::Sqlite, "INSERT INTO t VALUES (?)", [n.into()]);
                        txn.execute_raw(insert).await?;
                        match n % 5 {
                            0 => Err(AppError::invalid("n", "is a multiple of five")),
                            _ => Ok(n),
                        }
                    })
                })
                .await;
                // Answered only once committed: what it wrote is there.
                if done.is_ok() {
                    let read =
                        Statement::from_sql_and_values(DbBackend::Sqlite, "SELECT n FROM t WHERE n = ?", [n.into()]);
                    assert!(db.query_one_raw(read).await.expect("read").is_some(), "{n} answered before its commit");
                }
                (n, done.is_ok())
            });
        }
        let mut answered = Vec::new();
        while let Some(done) = running.join_next().await {
            answered.push(done.expect("a writer"));
        }
        answered.sort();
        assert!(answered.iter().all(|(n, ok)| *ok == (n % 5 != 0)), "{answered:?}");
        let rows = db.query_all_raw(Statement::from_string(DbBackend::Sqlite, "SELECT n FROM t ORDER BY n")).await;
        let kept: Vec<i64> = rows.expect("rows").iter().map(|r| r.try_get("", "n").expect("n")).collect();
        assert_eq!(kept, (0..40).filter(|n| n % 5 != 0).collect::<Vec<i64>>(), "only the failed pieces were undone");
        db.close().await.expect("closed");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(redact_url("postgres://ks:hunter2@db:5432/ks"), "postgres://ks:***@db:5432/ks");
        assert_eq!(redact_url("sqlite://keysmith.db"), "sqlite://keysmith.db");
    }
}
