//! Typed errors of the store.

use crate::store::Ino;

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
    /// Any other SQLite error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}
