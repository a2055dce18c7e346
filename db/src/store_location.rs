//! Where a store is, as `--db` gives it: a SQLite file (a path; the default) or a
//! PostgreSQL database (a `postgres://` or `postgresql://` URL, docs/scale-out.md).

use std::fmt;
use std::path::{Path, PathBuf};

/// A SQLite database file or a PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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

    /// Where minidump symbols fetched from symbol servers are cached unless the admin
    /// stored a directory (`cerfs symbols set --cache`): beside a SQLite file
    /// (`FILE.symbols`); for a PostgreSQL store, on each head, under the user's cache
    /// directory (`$XDG_CACHE_HOME/cerfs/symbols`, else `~/.cache/cerfs/symbols`).
    pub fn default_symbol_cache(&self) -> PathBuf {
        match self {
            StoreLocation::Sqlite(path) => {
                let mut cache = path.as_os_str().to_owned();
                cache.push(".symbols");
                cache.into()
            }
            StoreLocation::Postgres(_) => {
                let base = std::env::var_os("XDG_CACHE_HOME")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME")
                            .filter(|v| !v.is_empty())
                            .map(|home| PathBuf::from(home).join(".cache"))
                    })
                    .unwrap_or_else(std::env::temp_dir);
                base.join("cerfs").join("symbols")
            }
        }
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "{}", path.display()),
            StoreLocation::Postgres(url) => f.write_str(&crate::pg::shown_url(url)),
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

    #[test]
    fn a_sqlite_store_caches_symbols_beside_its_file() {
        assert_eq!(
            StoreLocation::parse("/srv/cer.db")
                .unwrap()
                .default_symbol_cache(),
            std::path::Path::new("/srv/cer.db.symbols")
        );
        assert!(StoreLocation::parse("postgres://db/cer")
            .unwrap()
            .default_symbol_cache()
            .ends_with("cerfs/symbols"));
    }
}
