//! Schema version 2: the documented views and their columns, the upgrade of a version-1
//! file with data in it, the indexes behind the documented queries, the read-only query
//! connection, the admin open, and the cab index rows.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use cerfs_db::prelude::*;
use cerfs_db::{
    BucketKey, CabIndex, CabReader, FactRow, IndexDb, IndexStatus, LogFields, LogId, LogLine,
    MemberRow, MinidumpRow, NewNode, NodeRole, OpenError, QueryDb, QueryError, ReindexFilter,
    RowSink, SettingsScope, SqliteStore, StoreError, TextRow, Value, CABS_INO,
};
use tempfile::TempDir;

fn temp_store() -> (TempDir, PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cer.db");
    let store = SqliteStore::open(&path).unwrap();
    (dir, path, store)
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

fn app_key() -> BucketKey {
    BucketKey {
        subpath: "App\\1.0\\mod.dll\\2.0\\0000abcd".into(),
        kind: "app".into(),
        app: Some([
            "App".into(),
            "1.0".into(),
            "mod.dll".into(),
            "2.0".into(),
            "0000abcd".into(),
        ]),
    }
}

/// A committed cab holding `bytes` in bucket `key`; returns its id.
fn cab(store: &SqliteStore, key: &BucketKey, name: &str, bytes: &[u8]) -> i64 {
    let dir = match store.lookup(CABS_INO, "d").unwrap() {
        Some(d) => d,
        None => store
            .create_node(&NewNode {
                parent: CABS_INO,
                name: "d",
                role: NodeRole::Dir,
                mode: 0o777,
                uid: 0,
                gid: 0,
                bucket: None,
            })
            .unwrap(),
    };
    let node = store
        .create_node(&NewNode {
            parent: dir.ino,
            name,
            role: NodeRole::Cab,
            mode: 0o666,
            uid: 0,
            gid: 0,
            bucket: Some(key),
        })
        .unwrap();
    store.write_at(node.ino, 0, bytes).unwrap();
    store
        .commit_cab(node.ino, bytes.len() as u64, &"ab".repeat(32))
        .unwrap();
    node.ino as i64
}

/// Collects a query's result as text cells.
#[derive(Default)]
struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

impl RowSink for Rows {
    fn columns(&mut self, names: &[String]) -> std::io::Result<()> {
        self.columns = names.to_vec();
        Ok(())
    }
    fn row(&mut self, values: &[Value]) -> std::io::Result<()> {
        self.rows.push(values.to_vec());
        Ok(())
    }
}

fn query(db: &QueryDb, sql: &str) -> Rows {
    let mut rows = Rows::default();
    db.query(sql, &[], &mut rows).unwrap();
    rows
}

fn columns(conn: &rusqlite::Connection, view: &str) -> Vec<String> {
    conn.prepare(&format!("SELECT name FROM pragma_table_info('{view}')"))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn views_have_the_documented_columns() {
    let (_dir, path, _store) = temp_store();
    let conn = raw(&path);
    let expect: &[(&str, &[&str])] = &[
        (
            "buckets",
            &[
                "bucket_id",
                "subpath",
                "kind",
                "app",
                "app_ver",
                "module",
                "mod_ver",
                "offset",
                "total_hits",
                "cabs_gathered",
                "cabs_stored",
                "cab_limit",
                "first_seen",
                "last_seen",
                "created_at",
            ],
        ),
        (
            "cabs",
            &[
                "cab_id",
                "bucket_id",
                "subpath",
                "name",
                "size",
                "sha256",
                "state",
                "started_at",
                "created_at",
                "index_status",
                "index_error",
                "indexed_at",
                "file_count",
                "removed_at",
                "verified_at",
                "corrupt",
            ],
        ),
        (
            "cab_files",
            &[
                "cab_id",
                "subpath",
                "cab",
                "position",
                "name",
                "size",
                "compression",
                "modified",
                "kind",
                "error",
            ],
        ),
        (
            "minidumps",
            &[
                "cab_id",
                "subpath",
                "cab",
                "member",
                "dump_time",
                "exception_code",
                "crash_reason",
                "crash_address",
                "crash_thread",
                "crash_module",
                "crash_module_version",
                "crash_offset",
                "os",
                "os_version",
                "cpu",
                "process_name",
                "thread_count",
                "module_count",
                "error",
            ],
        ),
        (
            "cab_texts",
            &[
                "text_id",
                "cab_id",
                "subpath",
                "cab",
                "member",
                "text",
                "truncated",
            ],
        ),
        (
            "cab_facts",
            &["cab_id", "subpath", "cab", "member", "key", "value"],
        ),
        (
            "hits",
            &[
                "hit_id",
                "bucket_id",
                "subpath",
                "machine",
                "user",
                "item",
                "client_time",
                "received_at",
                "flagged",
                "line",
            ],
        ),
        (
            "crashes",
            &[
                "crash_id",
                "bucket_id",
                "subpath",
                "machine",
                "user",
                "item",
                "client_time",
                "received_at",
                "flagged",
                "line",
            ],
        ),
        (
            "settings",
            &["scope", "bucket_id", "subpath", "position", "key", "value"],
        ),
        ("daily_hits", &["bucket_id", "day", "hits"]),
        (
            "deletions",
            &[
                "deletion_id",
                "deleted_at",
                "deleted_by",
                "kind",
                "subpath",
                "name",
                "reason",
                "detail",
            ],
        ),
        (
            "frames",
            &[
                "cab_id",
                "member",
                "thread",
                "crashed",
                "frame",
                "module",
                "module_offset",
                "function",
                "function_offset",
                "file",
                "line",
                "trust",
            ],
        ),
        (
            "stacks",
            &[
                "cab_id",
                "bucket_id",
                "subpath",
                "cab",
                "member",
                "crash_reason",
                "crash_address",
                "crashing_thread",
                "signature",
                "error",
                "walked_at",
                "received_at",
            ],
        ),
        (
            "signatures",
            &["signature", "crashes", "buckets", "first_seen", "last_seen"],
        ),
        (
            "bucket_signatures",
            &["bucket_id", "subpath", "signature", "crashes"],
        ),
        (
            "missing_symbols",
            &["module", "debug_file", "debug_id", "crashes", "last_seen"],
        ),
        (
            "symbol_fetches",
            &["url", "outcome", "detail", "at", "times"],
        ),
    ];
    for (view, cols) in expect {
        assert_eq!(columns(&conn, view), *cols, "view {view}");
        let kind: String = conn
            .query_row(
                "SELECT type FROM sqlite_schema WHERE name = ?1",
                [view],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kind, "view", "{view}");
    }
}

#[test]
fn a_version_1_file_with_data_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut conn = raw(&path);
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute_batch(include_str!("../src/migrations/0001_init.sql"))
            .unwrap();
        tx.execute_batch(
            "INSERT INTO buckets (subpath, kind, total_hits, cabs_gathered, first_seen, last_seen) \
             VALUES ('blue', 'blue', 7, 1, '2024-03-01T10:00:00.000Z', '2024-03-02T10:00:00.000Z');
             INSERT INTO nodes (parent, name, role, mode, uid, gid, mtime_ns, ctime_ns, crtime_ns) \
             VALUES (2, 'blue', 'dir', 511, 0, 0, 0, 0, 0);
             INSERT INTO nodes (parent, name, role, size, mode, uid, gid, mtime_ns, ctime_ns, \
             crtime_ns, bucket_id) VALUES (5, 'a.cab', 'cab', 3, 292, 0, 0, 0, 0, 0, 1);
             INSERT INTO chunks (ino, idx, data) VALUES (6, 0, x'616263');
             INSERT INTO cabs (ino, bucket_id, name, size, sha256, state, created_at) \
             VALUES (6, 1, 'a.cab', 3, \
             'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 'complete', \
             '2024-03-01T10:00:01.000Z');
             INSERT INTO settings (bucket_id, position, key, value) \
             VALUES (NULL, 0, 'Crashes per bucket', '3'), (1, 0, 'Bucket', '42');
             INSERT INTO logs (log_id, bucket_id) VALUES (1, 1);
             INSERT INTO log_lines (log_id, start_offset, bytes, time_text, date_text, machine, \
             user, item, client_time, flagged) VALUES (0, 0, \
             CAST('10:00:00  03-01-2024' || char(9) || 'M' || char(9) || 'U' || char(9) || '42' \
             || char(13, 10) AS BLOB), '10:00:00', '03-01-2024', 'M', 'U', '42', \
             '2024-03-01T10:00:00', 0);
             INSERT INTO log_lines (log_id, start_offset, bytes, time_text, date_text, machine, \
             user, item, client_time, flagged, received_at) VALUES (1, 0, \
             CAST('10:00:05  03-01-2024' || char(9) || 'M' || char(9) || 'U' || char(9) || \
             'a.cab' || char(13, 10) AS BLOB), '10:00:05', '03-01-2024', 'M', 'U', 'a.cab', \
             '2024-03-01T10:00:05', 0, '2024-03-01T10:00:06.000Z');
             PRAGMA user_version = 1;",
        )
        .unwrap();
        tx.commit().unwrap();
    }
    // Admin commands and queries do not migrate (a server of the old version may be
    // running on the file): they say what to do.
    for err in [
        SqliteStore::open_for_admin(&path).map(|_| ()).unwrap_err(),
        QueryDb::open(&path).map(|_| ()).unwrap_err(),
        IndexDb::open(&path).map(|_| ()).unwrap_err(),
    ] {
        assert!(
            matches!(err, OpenError::SchemaTooOld { found: 1, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("start `cerfs mount`"), "{err}");
    }
    let version: i64 = raw(&path)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1);
    // The server's open upgrades it.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let conn = raw(&path);
    let fk: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fk, 0);
    // References follow the renamed tables.
    let nodes_sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'nodes'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(nodes_sql.contains("bucket_rows"), "{nodes_sql}");
    let q = QueryDb::open(&path).unwrap();
    let b = query(
        &q,
        "SELECT subpath, total_hits, cabs_gathered, cabs_stored, cab_limit FROM buckets",
    );
    assert_eq!(
        b.rows,
        [vec![
            Value::Text("blue".into()),
            Value::Integer(7),
            Value::Integer(1),
            Value::Integer(1),
            Value::Integer(3)
        ]]
    );
    let c = query(&q, "SELECT name, index_status FROM cabs");
    assert_eq!(
        c.rows,
        [vec![
            Value::Text("a.cab".into()),
            Value::Text("pending".into())
        ]]
    );
    // crash.log wrote the status' Bucket= id: resolved to the bucket.
    let crash = query(&q, "SELECT subpath, item FROM crashes");
    assert_eq!(
        crash.rows,
        [vec![Value::Text("blue".into()), Value::Text("42".into())]]
    );
    // The store goes on working on the renamed tables.
    let bucket = store
        .ensure_bucket(&BucketKey {
            subpath: "blue".into(),
            kind: "blue".into(),
            app: None,
        })
        .unwrap();
    assert_eq!(bucket, 1);
    assert_eq!(store.add_counts(bucket, 0, 1).unwrap().total_hits, 8);
    assert_eq!(
        store.settings(SettingsScope::Status(bucket)).unwrap(),
        [("Bucket".to_owned(), "42".to_owned())]
    );
    // The hits already there are summed per day (migration 5).
    let days = query(&q, "SELECT bucket_id, day, hits FROM daily_hits");
    assert_eq!(
        days.rows,
        [vec![
            Value::Integer(1),
            Value::Text("2024-03-01".into()),
            Value::Integer(1)
        ]]
    );
    // The old cab is queued for the indexer.
    let mut idx = IndexDb::open(&path).unwrap();
    assert_eq!(idx.pending(10).unwrap().len(), 1);
}

#[test]
fn documented_queries_use_indexes() {
    let (_dir, path, _store) = temp_store();
    let conn = raw(&path);
    let plan = |sql: &str| -> String {
        conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .join("\n")
    };
    let cases: &[(&str, &[&str])] = &[
        (
            "SELECT subpath, count(*), count(DISTINCT machine) FROM hits \
             WHERE received_at >= date('now', '-7 days') GROUP BY subpath",
            &["COVERING INDEX log_lines_received"],
        ),
        (
            "SELECT bucket_id, sum(hits) FROM daily_hits \
             WHERE day >= date('now', '-7 days') GROUP BY bucket_id",
            &["daily_hit_rows USING PRIMARY KEY (day>?)"],
        ),
        (
            "SELECT machine, user, count(*) FROM hits WHERE subpath = 'blue' GROUP BY 1, 2",
            &["subpath=?", "log_id"],
        ),
        (
            "SELECT substr(client_time, 1, 10), count(*) FROM hits WHERE subpath = 'blue' \
             GROUP BY 1",
            &["subpath=?", "log_id"],
        ),
        (
            "SELECT subpath FROM buckets WHERE first_seen >= '2024-03-01'",
            &["bucket_rows_first_seen"],
        ),
        (
            "SELECT crash_module, count(*) FROM minidumps GROUP BY crash_module",
            &["minidump_rows_module"],
        ),
        (
            "SELECT c.ino FROM cab_rows c WHERE c.state = 'complete' AND c.index_status IS NULL \
             ORDER BY c.ino LIMIT 16",
            &["cab_rows_unindexed"],
        ),
        (
            "SELECT cabs_stored FROM buckets WHERE subpath = 'blue'",
            &["cab_rows_complete"],
        ),
    ];
    for (sql, needles) in cases {
        let p = plan(sql);
        for needle in *needles {
            assert!(p.contains(needle), "{sql}\nplan:\n{p}\nmissing {needle}");
        }
        assert!(!p.contains("SCAN l"), "{sql} scans log_lines:\n{p}");
    }
}

#[test]
fn query_db_reads_and_refuses_every_write() {
    let (dir, path, store) = temp_store();
    let key = app_key();
    let bucket = store.ensure_bucket(&key).unwrap();
    store.add_counts(bucket, 1, 3).unwrap();
    let q = QueryDb::open(&path).unwrap();
    let r = query(&q, "SELECT subpath, total_hits FROM buckets");
    assert_eq!(r.columns, ["subpath", "total_hits"]);
    assert_eq!(r.rows[0][1], Value::Integer(3));
    let mut params = Rows::default();
    q.query(
        "SELECT count(*) FROM buckets WHERE subpath = ?1 AND total_hits >= ?2",
        &[Value::Text(key.subpath.clone()), Value::Integer(3)],
        &mut params,
    )
    .unwrap();
    assert_eq!(params.rows, [vec![Value::Integer(1)]]);

    let other = dir.path().join("other.db");
    let writes = [
        "INSERT INTO bucket_rows (subpath, kind) VALUES ('x', 'generic')",
        "UPDATE bucket_rows SET total_hits = 0",
        "DELETE FROM log_lines",
        "DROP VIEW buckets",
        "CREATE TABLE t (x)",
        "PRAGMA user_version = 7",
        "REPLACE INTO setting_rows (bucket_id, position, key, value) VALUES (NULL, 9, 'a', 'b')",
        &format!("ATTACH '{}' AS o", other.display()),
        &format!("VACUUM INTO '{}'", other.display()),
    ];
    for sql in writes {
        let mut sink = Rows::default();
        let err = q.query(sql, &[], &mut sink).unwrap_err();
        assert!(
            matches!(
                err,
                QueryError::WriteRefused(_) | QueryError::Sqlite(_) | QueryError::NotAQuery(_)
            ),
            "{sql}: {err:?}"
        );
        assert!(sink.columns.is_empty(), "{sql} ran");
    }
    assert!(!other.exists(), "a query created {}", other.display());
    let mut sink = Rows::default();
    let err = q
        .query("DELETE FROM log_lines", &[], &mut sink)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`DELETE` would change the database"),
        "{err}"
    );
    let err = q.query("SELECT 1; SELECT 2", &[], &mut sink).unwrap_err();
    assert!(err.to_string().contains("one statement at a time"), "{err}");
    let err = q.query("  ", &[], &mut sink).unwrap_err();
    assert!(err.to_string().contains("no statement"), "{err}");
    let err = q.query("SELEC 1", &[], &mut sink).unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");
    // Nothing changed.
    assert_eq!(store.counts(bucket).unwrap().total_hits, 3);
    assert_eq!(
        query(&q, "PRAGMA user_version").rows,
        [vec![Value::Integer(cerfs_db::SCHEMA_VERSION)]]
    );

    // A missing file is not created.
    let missing = dir.path().join("missing.db");
    assert!(matches!(
        QueryDb::open(&missing),
        Err(OpenError::NoDatabase(_))
    ));
    assert!(!missing.exists());
}

#[test]
fn a_query_does_not_wait_for_an_open_write_transaction() {
    let (_dir, path, store) = temp_store();
    let bucket = store.ensure_bucket(&app_key()).unwrap();
    store.add_counts(bucket, 0, 1).unwrap();
    let mut writer = raw(&path);
    let tx = writer
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    tx.execute("UPDATE bucket_rows SET total_hits = 99", [])
        .unwrap();
    let q = QueryDb::open(&path).unwrap();
    let started = std::time::Instant::now();
    let r = query(&q, "SELECT total_hits FROM buckets");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(r.rows, [vec![Value::Integer(1)]], "saw uncommitted data");
    tx.commit().unwrap();
    assert_eq!(
        query(&q, "SELECT total_hits FROM buckets").rows,
        [vec![Value::Integer(99)]]
    );
}

#[test]
fn admin_open_leaves_uploads_in_progress_alone() {
    let (dir, path, store) = temp_store();
    let key = app_key();
    let done = cab(&store, &key, "done.cab", b"complete");
    let d = store.lookup(CABS_INO, "d").unwrap().unwrap();
    let writing = store
        .create_node(&NewNode {
            parent: d.ino,
            name: "uploading.cab",
            role: NodeRole::Cab,
            mode: 0o666,
            uid: 0,
            gid: 0,
            bucket: Some(&key),
        })
        .unwrap();
    store.write_at(writing.ino, 0, b"half").unwrap();
    // The server keeps running; an admin command opens the same file.
    let admin = SqliteStore::open_for_admin(&path).unwrap();
    assert_eq!(admin.purged_at_open(), 0);
    assert!(admin.node(writing.ino).unwrap().is_some());
    assert!(store.node(writing.ino).unwrap().is_some());
    store.write_at(writing.ino, 4, b" more").unwrap();
    store.commit_cab(writing.ino, 9, &"cd".repeat(32)).unwrap();
    assert!(admin.node(done as u64).unwrap().is_some());
    // Admin commands never create a database.
    let missing = dir.path().join("nope.db");
    assert!(matches!(
        SqliteStore::open_for_admin(&missing),
        Err(OpenError::NoDatabase(_))
    ));
    assert!(!missing.exists());
    // The server's own open still purges what was left writing by a dead process.
    let left = store
        .create_node(&NewNode {
            parent: d.ino,
            name: "dead.cab",
            role: NodeRole::Cab,
            mode: 0o666,
            uid: 0,
            gid: 0,
            bucket: Some(&key),
        })
        .unwrap();
    drop(store);
    drop(admin);
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.purged_at_open(), 1);
    assert!(reopened.node(left.ino).unwrap().is_none());
}

#[test]
fn cab_reader_streams_chunks_and_seeks() {
    let (_dir, path, store) = temp_store();
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let id = cab(&store, &app_key(), "big.cab", &bytes);
    let mut r = CabReader::open(&path, id).unwrap();
    assert_eq!(r.cab().size, 200_000);
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    assert_eq!(all, bytes);
    r.seek(SeekFrom::Start(65_530)).unwrap();
    let mut buf = [0u8; 20];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(&buf[..], &bytes[65_530..65_550]);
    assert_eq!(r.seek(SeekFrom::End(-10)).unwrap(), 199_990);
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, &bytes[199_990..]);
    assert!(r.seek(SeekFrom::Current(-300_000)).is_err());
    assert_eq!(r.seek(SeekFrom::Start(500_000)).unwrap(), 500_000);
    assert_eq!(r.read(&mut buf).unwrap(), 0);
    // Only complete cabs.
    assert!(matches!(
        CabReader::open(&path, 9999),
        Err(StoreError::NotFound(_))
    ));
    // The same reader on another cab reads that one from its start.
    let small: Vec<u8> = (0..70_000u32).map(|i| (i % 13) as u8).collect();
    let other = cab(&store, &app_key(), "small.cab", &small);
    let mut r = r.reopen(other).unwrap();
    assert_eq!(r.cab().size, 70_000);
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    assert_eq!(all, small);
    assert!(matches!(r.reopen(9999), Err(StoreError::NotFound(_))));
}

#[test]
fn index_rows_replace_and_follow_the_cab() {
    let (_dir, path, store) = temp_store();
    let key = app_key();
    let id = cab(&store, &key, "r.cab", b"MSCF....");
    let mut idx = IndexDb::open(&path).unwrap();
    assert_eq!(idx.pending(10).unwrap()[0].cab_id, id);
    let found = CabIndex {
        error: None,
        members: vec![
            MemberRow {
                name: "mini.dmp".into(),
                size: 100,
                compression: "mszip".into(),
                folder: 0,
                modified: Some("2007-02-14T19:13:55".into()),
                kind: "minidump".into(),
                error: None,
            },
            MemberRow {
                name: "version.txt".into(),
                size: 10,
                compression: "mszip".into(),
                folder: 0,
                modified: None,
                kind: "text".into(),
                error: None,
            },
        ],
        minidumps: vec![MinidumpRow {
            member: "mini.dmp".into(),
            crash_module: Some("mod.dll".into()),
            crash_offset: Some("0000abcd".into()),
            ..MinidumpRow::default()
        }],
        texts: vec![TextRow {
            member: "version.txt".into(),
            text: "Windows NT Version 5.1 quokka".into(),
            truncated: false,
        }],
        facts: vec![FactRow {
            member: "version.txt".into(),
            key: "Architecture".into(),
            value: "X86".into(),
        }],
        ..CabIndex::default()
    };
    assert_eq!(
        idx.store_index(id, &found).unwrap(),
        Some(IndexStatus::Indexed)
    );
    assert!(idx.pending(10).unwrap().is_empty());
    let q = QueryDb::open(&path).unwrap();
    let count = |sql: &str| match query(&q, sql).rows[0][0] {
        Value::Integer(n) => n,
        ref other => panic!("{other:?}"),
    };
    assert_eq!(count("SELECT file_count FROM cabs"), 2);
    assert_eq!(
        count(
            "SELECT count(*) FROM minidumps d JOIN buckets b USING (subpath) \
             WHERE d.crash_module = b.module AND d.crash_offset = b.offset"
        ),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM cab_text_search WHERE cab_text_search MATCH 'quokka'"),
        1
    );
    // Reindexing replaces, never duplicates.
    assert_eq!(idx.request_reindex(&ReindexFilter::default()).unwrap(), 1);
    assert_eq!(
        count("SELECT count(*) FROM cabs WHERE index_status = 'pending'"),
        1
    );
    idx.store_index(id, &found).unwrap();
    assert_eq!(count("SELECT count(*) FROM cab_files"), 2);
    assert_eq!(
        count("SELECT count(*) FROM cab_text_search WHERE cab_text_search MATCH 'quokka'"),
        1
    );
    // A failure drops the earlier rows and keeps the reason.
    assert!(idx
        .store_failure(id, "the indexer crashed (SIGSEGV)")
        .unwrap());
    assert_eq!(count("SELECT count(*) FROM cab_files"), 0);
    let r = query(&q, "SELECT index_status, index_error FROM cabs");
    assert_eq!(
        r.rows[0],
        [
            Value::Text("failed".into()),
            Value::Text("the indexer crashed (SIGSEGV)".into())
        ]
    );
    assert_eq!(
        idx.request_reindex(&ReindexFilter {
            bucket: None,
            failed_only: true,
            ..ReindexFilter::default()
        })
        .unwrap(),
        1
    );
    // The index rows go with their cab (a removed node cascades).
    idx.store_index(id, &found).unwrap();
    store.remove_node(id as u64).unwrap();
    assert_eq!(count("SELECT count(*) FROM cab_files"), 0);
    assert_eq!(count("SELECT count(*) FROM minidumps"), 0);
    assert_eq!(
        count("SELECT count(*) FROM cab_text_search WHERE cab_text_search MATCH 'quokka'"),
        0
    );
    // Storing for a cab that is gone does nothing.
    assert_eq!(idx.store_index(id, &found).unwrap(), None);
}

#[test]
fn hits_and_crashes_views_show_log_rows_with_their_bucket() {
    let (_dir, path, store) = temp_store();
    let key = app_key();
    let bucket = store.ensure_bucket(&key).unwrap();
    let line = |machine: &str, item: &str| LogLine {
        bytes: format!("10:00:00  03-01-2024\t{machine}\tuser\t{item}\r\n").into_bytes(),
        fields: Some(LogFields {
            time: "10:00:00".into(),
            date: "03-01-2024".into(),
            machine: machine.into(),
            user: "user".into(),
            item: item.into(),
            client_time: "2024-03-01T10:00:00".into(),
        }),
    };
    store
        .append_log(
            LogId::Hits(bucket),
            &[line("M1", "a.cab"), line("M2", "No CAB")],
        )
        .unwrap();
    store
        .append_log(
            LogId::Crash,
            &[
                line("M1", &key.subpath),
                line("M2", "unknown\\bucket"),
                LogLine {
                    bytes: b"garbage\r\n".to_vec(),
                    fields: None,
                },
            ],
        )
        .unwrap();
    let q = QueryDb::open(&path).unwrap();
    let hits = query(
        &q,
        "SELECT subpath, machine, item, client_time FROM hits ORDER BY hit_id",
    );
    assert_eq!(hits.rows.len(), 2);
    assert_eq!(hits.rows[0][0], Value::Text(key.subpath.clone()));
    assert_eq!(hits.rows[0][3], Value::Text("2024-03-01T10:00:00".into()));
    assert_eq!(hits.rows[1][2], Value::Text("No CAB".into()));
    let crashes = query(
        &q,
        "SELECT subpath, flagged, line FROM crashes ORDER BY crash_id",
    );
    assert_eq!(crashes.rows[0][0], Value::Text(key.subpath.clone()));
    assert_eq!(crashes.rows[1][0], Value::Null);
    assert_eq!(crashes.rows[2][1], Value::Integer(1));
    assert_eq!(crashes.rows[2][2], Value::Text("garbage".into()));
}

/// The per-day summary of hits follows every insert, delete and move of a hits.log line,
/// and leaves crash.log alone.
#[test]
fn daily_hits_sum_the_hits_of_each_day() {
    let (_dir, path, store) = temp_store();
    let a = store.ensure_bucket(&app_key()).unwrap();
    let b = store
        .ensure_bucket(&BucketKey {
            subpath: "blue".into(),
            kind: "blue".into(),
            app: None,
        })
        .unwrap();
    let line = |machine: &str| LogLine {
        bytes: format!("10:00:00  03-01-2024\t{machine}\tuser\tNo CAB\r\n").into_bytes(),
        fields: Some(LogFields {
            time: "10:00:00".into(),
            date: "03-01-2024".into(),
            machine: machine.into(),
            user: "user".into(),
            item: "No CAB".into(),
            client_time: "2024-03-01T10:00:00".into(),
        }),
    };
    store
        .append_log(LogId::Hits(a), &[line("M1"), line("M2"), line("M1")])
        .unwrap();
    store.append_log(LogId::Hits(b), &[line("M3")]).unwrap();
    store.append_log(LogId::Crash, &[line("M4")]).unwrap();
    let conn = raw(&path);
    // Spread a's hits over two days, by hand (received_at is the server's clock).
    conn.execute_batch(&format!(
        "UPDATE log_lines SET received_at = '2024-03-01T23:59:59.999Z' \
         WHERE seq = (SELECT min(seq) FROM log_lines WHERE log_id = {a})"
    ))
    .unwrap();
    let summary = "SELECT bucket_id, day, hits FROM daily_hits ORDER BY 1, 2";
    let recount = "SELECT bucket_id, substr(received_at, 1, 10), count(*) FROM hits \
                   GROUP BY 1, 2 ORDER BY 1, 2";
    let q = QueryDb::open(&path).unwrap();
    let days = query(&q, summary);
    assert_eq!(days.rows, query(&q, recount).rows);
    assert_eq!(days.rows.len(), 3, "{:?}", days.rows);
    assert_eq!(days.rows[0][1], Value::Text("2024-03-01".into()));
    assert_eq!(days.rows[0][2], Value::Integer(1));
    assert_eq!(days.rows[1][2], Value::Integer(2));
    // Deleting lines (only by hand) takes them out; a day without hits has no row.
    conn.execute_batch(&format!(
        "DELETE FROM log_lines WHERE log_id = {b}; \
         DELETE FROM log_lines WHERE seq = (SELECT max(seq) FROM log_lines WHERE log_id = {a})"
    ))
    .unwrap();
    let days = query(&q, summary);
    assert_eq!(days.rows, query(&q, recount).rows);
    assert_eq!(days.rows.len(), 2, "{:?}", days.rows);
    assert_eq!(days.rows[1][2], Value::Integer(1));
}
