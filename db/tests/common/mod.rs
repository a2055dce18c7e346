//! What the store's integration tests share: a raw connection beside the store, bucket
//! keys, and a complete cab made through the store's own calls.

#![allow(clippy::unwrap_used, dead_code)]

use cerfs_db::prelude::*;
use cerfs_db::{BucketKey, LogFields, LogLine, NewNode, NodeRole, CABS_INO};
use sha2::{Digest, Sha256};

/// A connection of its own to the database at `path` (waits for the store's writer).
pub fn raw(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn
}

/// The key of a one-level bucket (`blue`, `shutdown`, or any other name: generic).
pub fn key(subpath: &str) -> BucketKey {
    let kind = match subpath {
        "blue" | "shutdown" => subpath,
        _ => "generic",
    };
    BucketKey {
        subpath: subpath.into(),
        kind: kind.into(),
        app: None,
    }
}

/// A new cab upload `name` in the one-level bucket `subpath` (folder and bucket made
/// when missing), nothing written yet; returns its inode.
pub fn new_cab(store: &(impl Store + ?Sized), subpath: &str, name: &str) -> u64 {
    let folder = match store.lookup(CABS_INO, subpath).unwrap() {
        Some(node) => node.ino,
        None => {
            store
                .create_node(&NewNode {
                    parent: CABS_INO,
                    name: subpath,
                    role: NodeRole::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    bucket: None,
                })
                .unwrap()
                .ino
        }
    };
    let k = key(subpath);
    store
        .create_node(&NewNode {
            parent: folder,
            name,
            role: NodeRole::Cab,
            mode: 0o644,
            uid: 0,
            gid: 0,
            bucket: Some(&k),
        })
        .unwrap()
        .ino
}

/// A complete cab `name` of `size` bytes in the one-level bucket `subpath`; returns its
/// inode.
pub fn store_cab(store: &(impl Store + ?Sized), subpath: &str, name: &str, size: usize) -> u64 {
    let ino = new_cab(store, subpath, name);
    let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    store.write_at(ino, 0, &bytes).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    store.commit_cab(ino, size as u64, &sha).unwrap();
    ino
}

/// A hits.log / crash.log line of `machine` naming `item`, as a client writes it.
pub fn line(item: &str, machine: &str) -> LogLine {
    let text = format!("10:00:00  01-02-2026\t{machine}\tuser\t{item}\r\n");
    LogLine {
        bytes: text.into_bytes(),
        fields: Some(LogFields {
            time: "10:00:00".into(),
            date: "01-02-2026".into(),
            machine: machine.into(),
            user: "user".into(),
            item: item.into(),
            client_time: "2026-01-02T10:00:00".into(),
        }),
    }
}

/// A fresh store of one backend, kept alive (its directory or its test database) with it.
pub struct Backend {
    pub name: &'static str,
    pub store: std::sync::Arc<dyn Store>,
    /// Where it is, for read-only SQL on its views.
    pub location: cerfs_db::StoreLocation,
    _keep: Box<dyn std::any::Any>,
}

impl Backend {
    /// The rows of `sql` on the store's views, each value as text.
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        cerfs_db::QueryDb::open_at(&self.location)
            .unwrap()
            .text_rows(sql, &[])
            .unwrap_or_else(|e| panic!("{}: {sql}: {e}", self.name))
    }

    /// Runs `sql` (statements both dialects take) on the store's own tables, as an admin's
    /// hand would.
    pub fn execute(&self, sql: &str) {
        match &self.location {
            cerfs_db::StoreLocation::Sqlite(path) => raw(path).execute_batch(sql).unwrap(),
            cerfs_db::StoreLocation::Postgres(url) => {
                postgres::Client::connect(url, postgres::NoTls)
                    .unwrap()
                    .batch_execute(sql)
                    .unwrap();
            }
        }
    }

    /// The rows of view `view`.
    pub fn count(&self, view: &str) -> i64 {
        self.rows(&format!("SELECT count(*) FROM {view}"))[0][0]
            .parse()
            .unwrap()
    }
}

/// A fresh store of each backend available: SQLite always, PostgreSQL on the test server
/// (`CERFS_TEST_POSTGRES`; without it that half skips by the one skip rule).
pub fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cer.db");
    let sqlite = cerfs_db::SqliteStore::open(&path).unwrap();
    let mut all = vec![Backend {
        name: "sqlite",
        store: std::sync::Arc::new(sqlite),
        location: cerfs_db::StoreLocation::Sqlite(path),
        _keep: Box::new(dir),
    }];
    if let Some(db) = cerfs_testkit::TestDatabase::create() {
        let store = cerfs_db::PgStore::open(&db.url).unwrap();
        all.push(Backend {
            name: "postgres",
            store: std::sync::Arc::new(store),
            location: cerfs_db::StoreLocation::Postgres(db.url.clone()),
            _keep: Box::new(db),
        });
    }
    all
}
