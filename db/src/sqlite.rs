//! SQLite implementation of the store (being written).

/// The SQLite store.
pub struct SqliteStore;
