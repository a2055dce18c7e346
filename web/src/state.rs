//! What every request shares: the share (for settings and downloads, through fs-core) and
//! a small pool of read-only console connections, used off the async threads.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cerfs_db::{ConsoleDb, StoreLocation};
use cerfs_fs_core::CerFs;

/// Connections kept for later requests; more are opened when requests overlap.
const POOL: usize = 4;

/// The console's accounts and who is logged in.
#[derive(Debug)]
pub struct Accounts {
    /// The users file's accounts.
    pub users: crate::accounts::Users,
    /// Live sessions.
    pub sessions: crate::accounts::Sessions,
    /// Failed logins per address.
    pub throttle: crate::accounts::Throttle,
}

/// The console's shared state.
pub struct ConsoleState {
    /// The share, for what fs-core decides (effective settings, changes, cab bytes).
    pub fs: Arc<CerFs>,
    /// `None`: no accounts, loopback only, read-only.
    pub accounts: Option<Arc<Accounts>>,
    db: StoreLocation,
    pool: Mutex<Vec<ConsoleDb>>,
    /// Served over TLS: session cookies are marked Secure.
    pub secure: bool,
}

impl std::fmt::Debug for ConsoleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleState")
            .field("db", &self.db.to_string())
            .finish_non_exhaustive()
    }
}

/// A request the console could not answer, with its HTTP status.
#[derive(Debug)]
pub struct Failure {
    /// 4xx for the caller's mistakes, 5xx for ours.
    pub status: StatusCode,
    /// What to tell the caller.
    pub message: String,
}

impl Failure {
    /// A 404 with `what` named.
    pub fn not_found(what: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::NOT_FOUND,
            message: what.into(),
        }
    }

    /// A 400 saying what is wrong with the request.
    pub fn bad_request(why: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::BAD_REQUEST,
            message: why.into(),
        }
    }

    /// What fs-core refused or failed, as the HTTP status `cerfs_http::status_of` gives it:
    /// the caller's mistakes say what was wrong; failures of ours are logged.
    pub fn from_fs(what: &str, e: &cerfs_fs_core::FsError) -> Failure {
        let status = cerfs_http::status_of(e);
        if status.is_server_error() {
            tracing::error!("web console: {what}: {e}");
            let message = if status == StatusCode::INSUFFICIENT_STORAGE {
                format!("{what}: the server's store is full")
            } else {
                format!("{what}: failed (see the server's log)")
            };
            return Failure { status, message };
        }
        Failure {
            status,
            message: format!("{what}: {e}"),
        }
    }

    /// A 500: logged with `why`, the caller told to look at the log.
    pub fn internal(why: impl std::fmt::Display) -> Failure {
        tracing::error!("web console: {why}");
        Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "the console could not read the database (see the server's log)".into(),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message, "status": self.status.as_u16() });
        (self.status, axum::Json(body)).into_response()
    }
}

impl ConsoleState {
    /// State for the store at `db`, served by `fs`, with these accounts.
    pub fn new(
        fs: Arc<CerFs>,
        db: StoreLocation,
        users: Option<crate::accounts::Users>,
        secure: bool,
    ) -> ConsoleState {
        ConsoleState {
            fs,
            accounts: users.map(|users| {
                Arc::new(Accounts {
                    users,
                    sessions: Default::default(),
                    throttle: Default::default(),
                })
            }),
            db,
            pool: Mutex::new(Vec::new()),
            secure,
        }
    }

    /// The path of a SQLite store's database file (`None` for a PostgreSQL store).
    pub fn db_path(&self) -> Option<&std::path::Path> {
        self.db.sqlite_path()
    }

    /// Runs `read` on a console connection, on tokio's blocking pool.
    pub async fn read<T, F>(self: &Arc<Self>, read: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(&ConsoleDb) -> Result<T, Failure> + Send + 'static,
    {
        let state = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let taken = state.pool.lock().map_err(Failure::internal)?.pop();
            let conn = match taken {
                Some(conn) => conn,
                None => ConsoleDb::open_at(&state.db).map_err(Failure::internal)?,
            };
            let result = read(&conn);
            // A connection that failed may be broken (a restarted server): a new one next.
            if result.is_ok() {
                let mut pool = state.pool.lock().map_err(Failure::internal)?;
                if pool.len() < POOL {
                    pool.push(conn);
                }
            }
            result
        })
        .await
        .map_err(Failure::internal)?
    }
}

/// A database error as a 500 (logged).
pub fn db_failure(e: cerfs_db::QueryError) -> Failure {
    Failure::internal(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cerfs_fs_core::FsError;

    #[test]
    fn fs_refusals_keep_their_status_and_failures_stay_in_the_log() {
        let bad = Failure::from_fs("refused", &FsError::InvalidContent("not a number".into()));
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.message.contains("not a number"), "{}", bad.message);
        let gone = Failure::from_fs("cannot open cabs\\a\\b.cab", &FsError::NotFound);
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        let full = Failure::from_fs("refused", &FsError::NoSpace);
        assert_eq!(full.status, StatusCode::INSUFFICIENT_STORAGE);
        assert!(full.message.contains("full"), "{}", full.message);
        let ours = Failure::from_fs(
            "refused",
            &FsError::Store(cerfs_db::StoreError::Invalid("secret detail".into())),
        );
        assert_eq!(ours.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!ours.message.contains("secret"), "{}", ours.message);
    }
}
