//! Storage: one SQLite file (WAL) by default, PostgreSQL to share one database between several
//! instances. The same SQL text runs on both.
//!
//! Why an enum and a macro rather than `sqlx::Any` or generics: `Any` drops the types smsdesk
//! stores (timestamps, 64-bit money) to a lowest common denominator and hides which backend is
//! running; generics over `sqlx::Database` need a wall of trait bounds on every helper. With
//! [`Db`] each query is written once and compiled against both drivers by [`on_db!`], so a query
//! that one backend cannot bind or decode fails to compile, and the test suite runs on both.
//! The dialects differ only in DDL, so migrations are kept per backend (`migrations/sqlite`,
//! `migrations/postgres`), append-only, with the same numbering.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

/// Runs the same code against whichever pool (or transaction) is in use:
/// `on_db!(db, |pool| sqlx::query("...").execute(pool).await)`.
#[macro_export]
macro_rules! on_db {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($conn, _) => $body,
            $crate::db::Db::Postgres($conn) => $body,
        }
    };
}

/// Like [`on_db!`] for an open transaction.
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(t, _) => {
                let $conn = &mut **t;
                $body
            }
            $crate::db::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

/// The database smsdesk runs on.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool, WriteLock),
    Postgres(PgPool),
}

/// SQLite takes one writer at a time; writers that collide wait in SQLite's busy handler, which
/// sleeps in steps of milliseconds. smsdesk's transactions queue here instead (in order, woken at
/// once), so concurrent intake and the worker do not sleep on each other.
#[derive(Debug, Clone, Default)]
pub struct WriteLock(Arc<tokio::sync::Mutex<()>>);

/// An open transaction on either backend; the caller owns its boundary.
pub enum Tx {
    Sqlite(
        sqlx::Transaction<'static, sqlx::Sqlite>,
        tokio::sync::OwnedMutexGuard<()>,
    ),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Why the database could not be opened or prepared.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "DATABASE_URL {0:?} is not understood: use sqlite://data/smsdesk.db (a file) or postgres://user@host/database"
    )]
    UnsupportedUrl(String),
    #[error("could not create the folder {path} for the SQLite database")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not connect to the database ({backend})")]
    Connect {
        backend: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("the database migrations failed; smsdesk did not start")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Query(#[from] sqlx::Error),
    /// A stored value encrypted with another data key than this instance's `SMSDESK_DATA_KEY`.
    #[error("{what} cannot be decrypted with this SMSDESK_DATA_KEY")]
    Undecryptable { what: &'static str },
    /// A stored value this version cannot read (logged with the row's id where it was found).
    #[error("{table} row {id}: unreadable {column} {value:?}")]
    Unreadable {
        table: &'static str,
        id: i64,
        column: &'static str,
        value: String,
    },
}

impl Db {
    /// Opens the database a `DATABASE_URL` names. SQLite files (and their folder) are created
    /// when missing, in WAL mode with foreign keys on.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(|source| DbError::Connect {
                backend: "PostgreSQL",
                source,
            })?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
                .map_err(|source| DbError::Connect {
                    backend: "PostgreSQL",
                    source,
                })?;
            return Ok(Db::Postgres(pool));
        }
        if !url.starts_with("sqlite:") {
            return Err(DbError::UnsupportedUrl(url.to_owned()));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|source| DbError::Connect {
                backend: "SQLite",
                source,
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let path = options.get_filename();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|source| DbError::Connect {
                backend: "SQLite",
                source,
            })?;
        Ok(Db::Sqlite(pool, WriteLock::default()))
    }

    /// Brings the schema up to date; run at start-up, where a failure stops start-up.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Db::Sqlite(pool, _) => sqlx::migrate!("../migrations/sqlite").run(pool).await,
            Db::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await,
        }
        .map_err(DbError::Migrate)
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), DbError> {
        on_db!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Starts a transaction.
    /// The writer's turn for one statement outside a transaction: SQLite's single writer is
    /// taken in turns by this process (as [`Db::begin`] does); PostgreSQL needs none.
    pub async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self {
            Db::Sqlite(_, lock) => Some(lock.0.clone().lock_owned().await),
            Db::Postgres(_) => None,
        }
    }

    pub async fn begin(&self) -> Result<Tx, DbError> {
        Ok(match self {
            Db::Sqlite(pool, lock) => {
                let guard = lock.0.clone().lock_owned().await;
                Tx::Sqlite(pool.begin().await?, guard)
            }
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Db::Sqlite(..) => "SQLite",
            Db::Postgres(_) => "PostgreSQL",
        }
    }

    pub async fn close(&self) {
        on_db!(self, |pool| pool.close().await)
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(t, _guard) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// Now, in microseconds since the Unix epoch (UTC): how smsdesk stores every timestamp, the
/// same integer on both backends.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
