//! The repository layer: one set of runtime-checked queries on sqlx's Any
//! driver, run on SQLite (the embedded default) or PostgreSQL.
//!
//! Rules every query here keeps, so both databases accept it:
//! - placeholders are `$1`, `$2`, … (SQLite reads `$N` as parameter N);
//! - only basic types cross the driver: TEXT ids, BIGINT unix-millisecond
//!   times, REAL/DOUBLE PRECISION decibels, JSON as TEXT;
//! - booleans are BOOLEAN on PostgreSQL and INTEGER 0/1 on SQLite, so they
//!   are bound as `bool` and read with [`get_bool`];
//! - upserts use `INSERT … ON CONFLICT (…) DO UPDATE SET … = excluded.…`.
//!
//! The two schemas live in separate migration sets (`migrations/sqlite`,
//! `migrations/postgres`), chosen by the URL scheme.

pub(crate) mod catalog;
pub(crate) mod cdns;
pub(crate) mod events;
pub(crate) mod ingest;
pub(crate) mod library;
pub(crate) mod playlists;
pub(crate) mod search;
pub(crate) mod users;
pub(crate) mod warm;

use std::time::Duration;

use cadenza_config::service::DatabaseConfig;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

use cadenza_config::service::redact_url_password as redact_url;

use crate::error::ControlError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a query waits for a free pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Run on every new SQLite connection: write-ahead log (readers never block
/// the writer), `synchronous = NORMAL` (durable at checkpoints, safe with
/// WAL), foreign keys on, and a 5 s wait for a lock held by another
/// connection. `journal_mode = WAL` persists in the file; repeating it is a
/// no-op.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;";

/// Run on every new PostgreSQL connection: the spelling dictionary's
/// neighbours need pg_trgm similarity down to 0.2 (its default `%` bound
/// is 0.3; `osacr` → `oscar` is 0.2); an edit-distance test then keeps
/// the real typos (`crate::search::is_typo_of`).
const POSTGRES_SETTINGS: &str = "SET pg_trgm.similarity_threshold = 0.2";

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub(crate) fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }
}

/// A connection pool and the backend it talks to.
#[derive(Clone, Debug)]
pub(crate) struct Db {
    pool: AnyPool,
    backend: Backend,
    /// The URL with its password redacted, for errors.
    url: String,
    /// How common the indexed words are (PostgreSQL's search planning).
    word_stats: std::sync::Arc<search::WordStats>,
    /// SQLite: event batches take turns here (see [`events::record`]).
    event_writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Db {
    /// Open a pool. SQLite files (and their directory) are created if
    /// missing, and every SQLite connection gets WAL, foreign keys and a
    /// busy timeout.
    pub(crate) async fn connect(config: &DatabaseConfig) -> Result<Self, ControlError> {
        sqlx::any::install_default_drivers();
        let redacted = redact_url(&config.url);
        let backend = Backend::of_url(&config.url).ok_or_else(|| {
            ControlError::Config(cadenza_config::ConfigError::invalid(
                "database.url",
                &redacted,
                "must start with sqlite:, postgres:// or postgresql://",
            ))
        })?;
        let url = match backend {
            Backend::Sqlite => sqlite_url(&config.url),
            Backend::Postgres => config.url.clone(),
        };
        let mut options =
            AnyPoolOptions::new().max_connections(config.max_connections).acquire_timeout(ACQUIRE_TIMEOUT);
        let setup = match backend {
            Backend::Sqlite => SQLITE_PRAGMAS,
            Backend::Postgres => POSTGRES_SETTINGS,
        };
        options = options.after_connect(move |conn, _meta| {
            Box::pin(async move {
                conn.execute(setup).await?;
                Ok(())
            })
        });
        let pool = options
            .connect(&url)
            .await
            .map_err(|source| ControlError::Database { url: redacted.clone(), source })?;
        Ok(Self {
            pool,
            backend,
            url: redacted,
            word_stats: Default::default(),
            event_writer: Default::default(),
        })
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn event_writer(&self) -> &tokio::sync::Mutex<()> {
        &self.event_writer
    }

    pub(crate) fn word_stats(&self) -> &search::WordStats {
        &self.word_stats
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// Apply the backend's pending migrations (idempotent).
    pub(crate) async fn migrate(&self) -> Result<(), ControlError> {
        self.backend
            .migrator()
            .run(&self.pool)
            .await
            .map_err(|source| ControlError::Migrate { url: self.url.clone(), source })
    }

    /// `SELECT 1`: is the database reachable?
    pub(crate) async fn ping(&self) -> Result<(), sqlx::Error> {
        let row = sqlx::query("SELECT 1 AS one").fetch_one(&self.pool).await?;
        row.try_get::<i64, _>("one").map(drop)
    }

    /// A transaction that will write. On SQLite it takes the write lock up
    /// front (`BEGIN IMMEDIATE`), so it waits on the busy timeout instead of
    /// failing when a read would later need upgrading.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

/// A `sqlite:` URL with `mode=rwc` (create if missing) unless it names a
/// mode, and with the file's directory created.
fn sqlite_url(url: &str) -> String {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let in_memory = path.is_empty() || path == ":memory:";
    if !in_memory
        && let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        // Best effort: a failure shows up as the connect error.
        let _ = std::fs::create_dir_all(parent);
    }
    let has_mode = query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("mode=")));
    match (has_mode || in_memory, query) {
        (true, _) => url.to_owned(),
        (false, None) => format!("{url}?mode=rwc"),
        (false, Some(_)) => format!("{url}&mode=rwc"),
    }
}

/// Read a boolean column: BOOLEAN on PostgreSQL, INTEGER 0/1 on SQLite.
pub(crate) fn get_bool(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    match row.try_get::<bool, _>(column) {
        Ok(b) => Ok(b),
        Err(_) => row.try_get::<i64, _>(column).map(|v| v != 0),
    }
}

/// Read a non-negative integer column as `u64`/`u32`, refusing values the
/// schema's CHECKs should have kept out.
pub(crate) fn get_unsigned<T: TryFrom<i64>>(row: &AnyRow, column: &str) -> Result<T, sqlx::Error> {
    let v: i64 = row.try_get(column)?;
    T::try_from(v).map_err(|_| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("{v} is out of range").into(),
    })
}

/// Is this the unique/primary-key violation of an insert?
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                // Any wraps driver errors; fall back to the SQLSTATE / text.
                || db.code().as_deref() == Some("23505")
                || db.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

/// Wall-clock unix milliseconds, the unit of every `*_at` column.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_the_file() {
        assert_eq!(sqlite_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(sqlite_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db?mode=rwc");
        assert_eq!(sqlite_url("sqlite://a.db"), "sqlite://a.db?mode=rwc");
        assert_eq!(sqlite_url("sqlite://a.db?cache=shared"), "sqlite://a.db?cache=shared&mode=rwc");
        assert_eq!(sqlite_url("sqlite://a.db?mode=ro"), "sqlite://a.db?mode=ro");
    }

    #[test]
    fn backend_from_scheme() {
        assert_eq!(Backend::of_url("sqlite://x.db"), Some(Backend::Sqlite));
        assert_eq!(Backend::of_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(Backend::of_url("postgres://u@h/d"), Some(Backend::Postgres));
        assert_eq!(Backend::of_url("postgresql://u@h/d"), Some(Backend::Postgres));
        assert_eq!(Backend::of_url("mysql://u@h/d"), None);
    }
}
