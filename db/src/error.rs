//! Typed errors of the store.

use crate::store::{BucketId, Ino};

/// What can go wrong in the store.
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
    /// The database file was written by a newer cerfs.
    #[error("the database has schema version {found}, newer than this cerfs knows ({known}): upgrade cerfs")]
    TooNew {
        /// Version found in the file.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
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
    /// There is no database file at this path (admin commands never create one).
    #[error("no database at {0}: give the path of the database that `cerfs mount --db` serves (--db PATH)")]
    NoDatabase(std::path::PathBuf),
    /// A query given to the read-only query interface would change the database.
    #[error("refused: {0}")]
    WriteRefused(String),
    /// The database has not been migrated to a version this feature needs yet.
    #[error("the database has schema version {found}, this cerfs needs version {needed}: start `cerfs mount` (or `cerfs serve`) of this version on it once, which upgrades it")]
    SchemaTooOld {
        /// Version found in the file.
        found: i64,
        /// Version needed.
        needed: i64,
    },
    /// The database's files could not be flushed to disk (fdatasync failed).
    #[error("cannot sync {} to disk: {source}", path.display())]
    Sync {
        /// The file that could not be synced.
        path: std::path::PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// Writing a query's result failed (for example a closed pipe).
    #[error("writing the result: {0}")]
    Output(std::io::Error),
    /// Any other SQLite error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}
