//! The PostgreSQL store: the SQLite store's families of methods on a PostgreSQL database,
//! so that several cerfs heads can serve one share (docs/scale-out.md).
//!
//! Every method is one transaction. Concurrent changes from any head are ordered by
//! PostgreSQL's row locks (a bucket's counters, a log's length, a node's size) and, for the
//! namespace, by one transaction-scoped advisory lock: what SQLite's single writer gives,
//! across machines. A commit is durable when it returns (`synchronous_commit`, the
//! server's default), so [`ContentStore::sync`] has nothing left to do.
//!
//! [`ContentStore::sync`]: crate::ContentStore::sync

mod alerts;
pub(crate) mod console;
mod console_detail;
mod content;
mod counters;
mod heads;
pub(crate) mod index;
mod lifecycle;
mod logs;
mod namespace;
mod pool;
pub(crate) mod query;
mod reports;
mod rows;
mod schema;
mod settings;

use crate::{OpenError, StoreError};

pub use schema::PG_SCHEMA_VERSION;

/// Bytes per stored chunk of a file or cab (`chunks.data`).
pub(crate) const PG_CHUNK: u64 = 256 << 10;

/// Keys of the advisory locks cerfs takes (`pg_advisory_xact_lock`): 'cerf' in the high
/// half, what is locked in the low half.
pub(crate) mod lock_key {
    /// Schema migrations (session lock, held while a head migrates).
    pub const SCHEMA: i64 = 0x6365_7266_0000_0001;
    /// Changes of the namespace (creating, renaming, removing nodes).
    pub const NAMESPACE: i64 = 0x6365_7266_0000_0002;
    /// policy.txt's settings; a bucket's status.txt locks its bucket row instead.
    pub const POLICY: i64 = 0x6365_7266_0000_0003;
    /// The background jobs (session lock, held by the head that runs them).
    pub const BACKGROUND: i64 = 0x6365_7266_0000_0004;
    /// The cab indexer (session lock, held by the head whose indexer runs).
    pub const INDEXER: i64 = 0x6365_7266_0000_0005;
}

/// The PostgreSQL store; see the module documentation.
pub struct PgStore {
    pool: pool::Pool,
    /// What connections are opened with (a head registering again needs it).
    config: postgres::Config,
    /// The connection string, without its password (for messages).
    shown: String,
    /// This process's place among the heads.
    head: heads::Head,
    /// The uploads of gone heads removed at open.
    purged: Vec<crate::PurgedCab>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("db", &self.shown)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database `url` (`postgres://user@host:port/dbname`, or libpq's
    /// `key=value` form), brings its schema up to date, registers as a head and removes
    /// the unfinished uploads of heads that are gone. Several heads may call this at once:
    /// one migrates, the others wait for it.
    pub fn open(url: &str) -> Result<PgStore, OpenError> {
        PgStore::open_with(url, true)
    }

    /// [`PgStore::open`] for an admin's command beside running heads: the store must exist
    /// and be of this build's schema, which an admin command never changes (heads of an
    /// older build may be serving it). It still takes part as a head while it runs.
    pub fn open_for_admin(url: &str) -> Result<PgStore, OpenError> {
        PgStore::open_with(url, false)
    }

    fn open_with(url: &str, migrate: bool) -> Result<PgStore, OpenError> {
        let config = parse_config(url)?;
        let shown = shown_url(url);
        let pool = pool::Pool::new(config.clone());
        {
            let mut conn = pool.get().map_err(|e| match e {
                StoreError::Postgres(e) => connect_error(&shown, &e),
                other => OpenError::Unusable(other.to_string()),
            })?;
            if migrate {
                schema::migrate(&mut conn.client, &shown)?;
            } else {
                schema::require(&mut conn.client, &shown, PG_SCHEMA_VERSION)?;
            }
        }
        let head = heads::register(&config, &shown)?;
        let mut store = PgStore {
            pool,
            config,
            shown,
            head,
            purged: Vec::new(),
        };
        store.purged = store
            .recover_dead_heads()
            .map_err(|e| OpenError::Unusable(format!("PostgreSQL at {}: {e}", store.shown)))?;
        Ok(store)
    }

    /// How many unfinished uploads of gone heads [`PgStore::open`] removed.
    pub fn purged_at_open(&self) -> usize {
        self.purged.len()
    }

    /// The unfinished uploads of gone heads [`PgStore::open`] removed.
    pub fn purged_cabs(&self) -> &[crate::PurgedCab] {
        &self.purged
    }

    /// Runs `f` in a read-write transaction; again, up to a few times, when PostgreSQL
    /// aborts it to break a deadlock or a serialization conflict with another head.
    pub(crate) fn write<T>(
        &self,
        mut f: impl FnMut(&mut pool::Tx<'_>) -> crate::Result<T>,
    ) -> crate::Result<T> {
        let mut conn = self.pool.get()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let pool::Conn { client, stmts } = &mut *conn;
            let mut tx = pool::Tx::new(client.transaction()?, stmts);
            let done = f(&mut tx).and_then(|v| tx.commit().map(|()| v));
            match done {
                Err(StoreError::Postgres(e)) if attempt < 5 && retryable(&e) => {
                    tracing::debug!(attempt, "transaction retried: {}", describe(&e));
                }
                other => return other,
            }
        }
    }

    /// Runs `f` in a read-only transaction that sees one snapshot throughout.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&mut pool::Tx<'_>) -> crate::Result<T>,
    ) -> crate::Result<T> {
        let mut conn = self.pool.get()?;
        let pool::Conn { client, stmts } = &mut *conn;
        let tx = client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let mut tx = pool::Tx::new(tx, stmts);
        let v = f(&mut tx)?;
        tx.commit()?;
        Ok(v)
    }
}

/// A deadlock or a serialization failure: the transaction may simply run again.
fn retryable(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// The connection string `url`, parsed.
pub(crate) fn parse_config(url: &str) -> Result<postgres::Config, OpenError> {
    url.parse().map_err(|e| {
        OpenError::Unusable(format!(
            "{}: not a PostgreSQL connection string ({e}); give postgres://USER@HOST:PORT/DBNAME",
            shown_url(url)
        ))
    })
}

/// `config` for a session that holds a lock other heads wait on (a head's life, the
/// background jobs', the indexer's): the server probes its client every few seconds, so
/// the locks of a head that lost power or its network are free within ~25 s, instead of
/// the hours the operating system's defaults take to notice. The client probes the
/// server likewise.
pub(crate) fn lock_holder(config: &postgres::Config) -> postgres::Config {
    let mut config = config.clone();
    let options = format!(
        "{} -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3",
        config.get_options().unwrap_or_default()
    );
    config
        .options(options.trim_start())
        .keepalives(true)
        .keepalives_idle(std::time::Duration::from_secs(10));
    config
}

/// Why connecting to the server at `shown` failed, and what to check.
pub(crate) fn connect_error(shown: &str, e: &postgres::Error) -> OpenError {
    OpenError::Unusable(format!(
        "cannot connect to PostgreSQL at {shown}: {}; check that the server runs there, that \
         the database exists and that it lets this user in (pg_hba.conf)",
        describe(e)
    ))
}

/// A PostgreSQL error in one line: the server's message and detail, or the client's.
pub(crate) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        None => {
            // The client's errors say what failed; their sources say why.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

/// `url` (a PostgreSQL connection string) with any password replaced, for messages and
/// logs.
pub fn shown_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((auth, host)) = rest.split_once('@') {
            if let Some((user, _)) = auth.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
        return url.to_owned();
    }
    url.split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some(("password", _)) => "password=***".to_owned(),
            _ => kv.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn lock_sessions_are_probed_and_keep_the_users_options() {
        let config: postgres::Config = "postgres://db/cer?options=-c%20search_path%3Dcer"
            .parse()
            .unwrap();
        let held = super::lock_holder(&config);
        assert_eq!(
            held.get_options(),
            Some(
                "-c search_path=cer -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 \
                 -c tcp_keepalives_count=3"
            )
        );
        assert!(held.get_keepalives());
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            super::shown_url("postgres://cerfs:s3cret@db:5432/cer"),
            "postgres://cerfs:***@db:5432/cer"
        );
        assert_eq!(
            super::shown_url("host=db password=s3cret dbname=cer"),
            "host=db password=*** dbname=cer"
        );
        assert_eq!(super::shown_url("postgres://db/cer"), "postgres://db/cer");
    }
}
