//! What the indexer's tests share: a fresh store of each backend (SQLite; PostgreSQL on the
//! test server of `CERFS_TEST_POSTGRES`), its share, and its views read as text.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use cerfs_db::{IndexDb, LifecycleStore, PgStore, QueryDb, SqliteStore, StoreLocation};
use cerfs_fs_core::CerFs;

/// What keeps a test's store alive: its directory, or its database on the test server.
enum Keep {
    Dir(tempfile::TempDir),
    Postgres(cerfs_testkit::TestDatabase),
}

/// A fresh store with its file system; the indexer opens the same store on its own.
pub struct Store {
    keep: Keep,
    /// Where it is, for the indexer.
    pub db: StoreLocation,
    /// The share over it.
    pub fs: CerFs,
    /// The store itself, for its server settings.
    pub store: Arc<dyn LifecycleStore>,
}

/// A fresh SQLite store.
pub fn store() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cer.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    Store {
        keep: Keep::Dir(dir),
        db: StoreLocation::Sqlite(path),
        fs: CerFs::new(store.clone()),
        store,
    }
}

/// A fresh store of each backend there is.
pub fn stores() -> Vec<Store> {
    let mut all = vec![store()];
    if let Some(pg) = cerfs_testkit::TestDatabase::create() {
        let store = Arc::new(PgStore::open(&pg.url).unwrap());
        all.push(Store {
            db: StoreLocation::Postgres(pg.url.clone()),
            keep: Keep::Postgres(pg),
            fs: CerFs::new(store.clone()),
            store,
        });
    }
    all
}

impl Store {
    pub fn upload(&self, sub: &str, name: &str, bytes: &[u8]) {
        self.fs
            .upload_cab(sub, name, &mut std::io::Cursor::new(bytes))
            .unwrap();
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.keep, Keep::Postgres(_))
    }

    /// The directory of a SQLite store (a PostgreSQL store has none: a temporary one).
    pub fn dir(&self) -> &std::path::Path {
        match &self.keep {
            Keep::Dir(dir) => dir.path(),
            Keep::Postgres(_) => panic!("a PostgreSQL store has no directory"),
        }
    }

    pub fn index_db(&self) -> IndexDb {
        IndexDb::open_at(&self.db).unwrap()
    }

    /// The rows of `sql`, values as text (NULL for a null).
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        QueryDb::open_at(&self.db)
            .unwrap()
            .text_rows(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn one(&self, sql: &str) -> String {
        let rows = self.rows(sql);
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows[0][0].clone()
    }

    /// (index_status, index_error) of a cab, from the `cabs` view.
    pub fn status(&self, name: &str) -> (String, Option<String>) {
        let rows = self.rows(&format!(
            "SELECT index_status, index_error FROM cabs WHERE name = '{name}'"
        ));
        let [row] = &rows[..] else {
            panic!("{name}: {rows:?}")
        };
        (row[0].clone(), Some(row[1].clone()).filter(|e| e != "NULL"))
    }

    pub fn sha256(&self, name: &str) -> String {
        self.one(&format!("SELECT sha256 FROM cabs WHERE name = '{name}'"))
    }
}
