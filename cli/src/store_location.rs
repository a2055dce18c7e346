//! Where a store is (`cerfs_db::StoreLocation`), and what the commands that do not run on
//! a PostgreSQL store yet say instead.

pub use cerfs_db::StoreLocation;

/// Why the web console refuses a PostgreSQL store, and where to read more.
pub const NOT_ON_POSTGRES_YET: &str = "the web console does not run on a PostgreSQL store \
    yet (docs/scale-out.md, Status); the share, the CER V2 server, the cab index (stacks, \
    signatures, symbols, reindex), settings, counts, cabs, retention, deletions, alerts, \
    verify and `cerfs query` do";
