//! The cerfs SQLite store: schema, versioned migrations and queries behind the narrow
//! [`Store`] trait that fs-core talks to. One writer connection, a pool of WAL readers.

mod error;
mod sqlite;
mod store;

pub use error::StoreError;
pub use sqlite::{PurgedCab, SqliteStore, CHUNK_SIZE};
pub use store::*;
