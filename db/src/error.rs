//! Typed errors of the store, one enum per kind of caller: opening a database
//! ([`OpenError`]), the store's operations ([`StoreError`]), SQL typed by people
//! ([`QueryError`]).

use std::path::PathBuf;

use crate::store::{BucketId, Ino};

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// There is no database file at this path (only a server creates one).
    #[error("no database at {0}: give the path of the database that `cerfs mount --db` serves (--db PATH)")]
    NoDatabase(PathBuf),
    /// The database file was written by a newer cerfs.
    #[error("the database has schema version {found}, newer than this cerfs knows ({known}): upgrade cerfs")]
    TooNew {
        /// Version found in the file.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
    /// The database has not been migrated to a version this feature needs yet.
    #[error("the database has schema version {found}, this cerfs needs version {needed}: start `cerfs mount` (or `cerfs serve`) of this version on it once, which upgrades it")]
    SchemaTooOld {
        /// Version found in the file.
        found: i64,
        /// Version needed.
        needed: i64,
    },
    /// The file cannot be used as a cerfs database (not in WAL mode, a hand-edited
    /// version, a path that cannot be resolved, ...).
    #[error("{0}")]
    Unusable(String),
    /// Another server process holds the database.
    #[error("{} is already served by another cerfs process ({holder}): stop that one first (only one of serve, mount and http may use a database; the admin commands work beside it)", path.display())]
    Locked {
        /// The database.
        path: PathBuf,
        /// Who holds it: pid and command line, from the lock file.
        holder: String,
    },
    /// The cab database beside the database is missing, or belongs to another store (a
    /// restore that copied one of the two files).
    #[error("{} does not belong with {}: {reason}; a store is two files, `cer.db` and `cer.db-cabs`: restore both from the same backup (docs/operations.md, Restore)", cabs.display(), db.display())]
    CabFileMismatch {
        /// The database.
        db: PathBuf,
        /// Its cab database.
        cabs: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// The disk is full (the migration or the start-up recovery could not write).
    #[error("the disk holding the database is full")]
    Full,
    /// Any other SQLite error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused or failed the statement (its message, in one line).
    #[error("postgresql: {0}")]
    Postgres(String),
}

/// What can go wrong in an operation of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The node does not exist (any more).
    #[error("no node with inode {0}")]
    NotFound(Ino),
    /// A node with that name already exists in the directory.
    #[error("{0:?} already exists")]
    Exists(String),
    /// The directory still has children.
    #[error("directory inode {0} is not empty")]
    NotEmpty(Ino),
    /// The parent is not a directory.
    #[error("inode {0} is not a directory")]
    NotDir(Ino),
    /// The disk (or the database's size limit) is full.
    #[error("the database is full")]
    Full,
    /// No bucket with this id (counters, status settings or hits.log of an unknown bucket).
    #[error("no bucket with id {0}")]
    NoBucket(BucketId),
    /// The node is a directory where a file was needed (byte content of a directory, or a
    /// rename of a non-directory over a directory).
    #[error("inode {0} is a directory")]
    IsDir(Ino),
    /// The cab was committed (`commit_cab`) and is immutable: no write, truncate or second commit.
    #[error("cab inode {0} is complete and cannot change")]
    CabComplete(Ino),
    /// A request the store cannot honour: an empty name, an offset or size beyond 2^63 - 1,
    /// byte content of a synthesized node, a cab committed with a size that is not its
    /// stored size, moving a directory into itself, removing the root, ...
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The database's files could not be flushed to disk (fdatasync failed).
    #[error("cannot sync {} to disk: {source}", path.display())]
    Sync {
        /// The file that could not be synced.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The database file was replaced or deleted while open: nothing more is written to
    /// it, so that two files are never mixed through one WAL.
    #[error("the database file {} was replaced or deleted while in use ({why}): nothing more is written to it; put the right file back and start the server again", path.display())]
    Replaced {
        /// The database path.
        path: PathBuf,
        /// What was found at the path.
        why: String,
    },
    /// A connection (a reader, the indexer's) could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Any other SQLite error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Any other PostgreSQL error (the server's message and detail, or the client's).
    #[error("postgresql: {}", crate::pg::describe(.0))]
    Postgres(postgres::Error),
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        if e.code() == Some(&postgres::error::SqlState::DISK_FULL) {
            return StoreError::Full;
        }
        StoreError::Postgres(e)
    }
}

/// Why a statement typed by a person (`cerfs query`) was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The statement would change the database.
    #[error("refused: {0}")]
    WriteRefused(String),
    /// Not exactly one statement that returns rows.
    #[error("{0}")]
    NotAQuery(String),
    /// Writing the result failed (for example a closed pipe).
    #[error("writing the result: {0}")]
    Output(std::io::Error),
    /// The statement ran past its time limit and was interrupted.
    #[error("the query ran longer than {} s and was stopped: narrow it (a WHERE on an indexed column, a LIMIT), or give more time with --timeout", .0.as_secs_f64())]
    Timeout(std::time::Duration),
    /// The database could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// SQLite refused or failed the statement (a syntax error, an unknown column, ...).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused or failed the statement (its message, in one line).
    #[error("postgresql: {0}")]
    Postgres(String),
}
