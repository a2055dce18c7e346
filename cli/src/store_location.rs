//! Where a store is, as `--db` gives it: a SQLite file (a path; the default) or a
//! PostgreSQL database (a `postgres://` or `postgresql://` URL, docs/scale-out.md).

use std::fmt;
use std::path::{Path, PathBuf};

/// A SQLite database file or a PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The SQLite database file (its cab database beside it).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl StoreLocation {
    /// `--db`'s value: a URL of PostgreSQL, else a path.
    pub fn parse(text: &str) -> Result<StoreLocation, String> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Ok(StoreLocation::Postgres(text.to_owned()))
        } else if text.is_empty() {
            Err("give the database file (or a postgres:// URL)".to_owned())
        } else {
            Ok(StoreLocation::Sqlite(PathBuf::from(text)))
        }
    }

    /// The SQLite file, if it is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            StoreLocation::Sqlite(path) => Some(path),
            StoreLocation::Postgres(_) => None,
        }
    }
}

/// Why a command of the cab index or the web console refuses a PostgreSQL
/// store, and where to read more.
pub const NOT_ON_POSTGRES_YET: &str = "the cab index (stacks, signatures, symbols) and the \
    web console do not run on a PostgreSQL store yet (docs/scale-out.md, Status); the share, \
    the CER V2 server, settings, counts, cabs, retention, deletions, alerts, verify and \
    `cerfs query` do";

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "{}", path.display()),
            StoreLocation::Postgres(url) => f.write_str(&cerfs_db::shown_postgres_url(url)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::StoreLocation;

    #[test]
    fn urls_are_postgres_and_everything_else_a_file() {
        assert_eq!(
            StoreLocation::parse("postgres://cerfs:pw@db/cer")
                .unwrap()
                .to_string(),
            "postgres://cerfs:***@db/cer"
        );
        assert!(StoreLocation::parse("postgresql://db/cer")
            .unwrap()
            .sqlite_path()
            .is_none());
        assert_eq!(
            StoreLocation::parse("./postgres.db").unwrap().sqlite_path(),
            Some(std::path::Path::new("./postgres.db"))
        );
        assert!(StoreLocation::parse("").is_err());
    }
}
