//! Fresh databases for tests (feature `testing`, for this crate's and the server's tests): a
//! SQLite file in a temporary folder, and a PostgreSQL database created for the test and dropped
//! after it, even when the test panics.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::db::Db;
use sqlx::Connection;

/// The PostgreSQL server tests use: `SMSDESK_TEST_POSTGRES_URL`, or the local one.
pub fn postgres_admin_url() -> String {
    std::env::var("SMSDESK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A migrated database that is removed when dropped.
pub struct TestDb {
    pub db: Db,
    postgres_name: Option<String>,
    _dir: Option<tempfile_dir::TempDir>,
}

mod tempfile_dir {
    /// A folder under the system temp folder, removed on drop.
    pub struct TempDir(pub std::path::PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!("{prefix}_{}_{n}_{nanos}", std::process::id())
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => TestDb::sqlite().await,
            Backend::Postgres => TestDb::postgres().await,
        }
    }

    /// The URL smsdesk connects to (for a server under test).
    pub fn url(&self) -> String {
        match (&self.postgres_name, &self._dir) {
            (Some(name), _) => match postgres_admin_url().rsplit_once('/') {
                Some((base, _)) => format!("{base}/{name}"),
                None => unreachable!("checked when the database was created"),
            },
            (None, Some(dir)) => format!("sqlite://{}/smsdesk.db", dir.0.display()),
            (None, None) => unreachable!("a test database is SQLite or PostgreSQL"),
        }
    }

    pub async fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(unique("smsdesk_test"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = format!("sqlite://{}/smsdesk.db", dir.display());
        let db = Db::connect(&url).await.expect("SQLite opens");
        db.migrate().await.expect("migrations run");
        TestDb {
            db,
            postgres_name: None,
            _dir: Some(tempfile_dir::TempDir(dir)),
        }
    }

    pub async fn postgres() -> TestDb {
        let admin = postgres_admin_url();
        let name = unique("smsdesk_test");
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL must be running for the tests ({admin}): {e}; make test starts it"
                )
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("{admin} has no database part"),
        };
        let db = Db::connect(&url).await.expect("PostgreSQL opens");
        db.migrate().await.expect("migrations run");
        TestDb {
            db,
            postgres_name: Some(name),
            _dir: None,
        }
    }

    /// Closes the pool (the PostgreSQL database goes when the value is dropped).
    pub async fn cleanup(self) {
        self.db.close().await;
    }
}

impl Drop for TestDb {
    /// Drops the PostgreSQL database even when the test panicked: on a thread of its own, since
    /// drop cannot await.
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&postgres_admin_url()).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(_))) {
            tracing::warn!("could not drop a test database; drop smsdesk_test_* databases by hand");
        }
    }
}
