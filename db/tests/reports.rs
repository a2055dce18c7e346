//! CER V2 reports in the store: recording, the cap decision (also under concurrent
//! reports), DumpFile lookup, the link to the uploaded cab, and the SQL views; on every
//! backend (SQLite; PostgreSQL on the test server), SQLite's schema and reopening too.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use cerfs_db::prelude::*;
use cerfs_db::{
    BucketKey, DumpRequest, DumpState, NewNode, NewReport, NodeRole, ParamKind, ReportFile,
    ReportParam, SqliteStore, StoreError, CABS_INO,
};
use tempfile::TempDir;

fn temp_store() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("cerfs.db")).unwrap();
    (dir, store)
}

fn raw(dir: &TempDir) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.path().join("cerfs.db")).unwrap()
}

fn blue_key() -> BucketKey {
    BucketKey {
        subpath: "blue".into(),
        kind: "blue".into(),
        app: None,
    }
}

fn kernel_report() -> NewReport {
    let secondary = |name: &str, value: &str| ReportParam {
        kind: ParamKind::Secondary,
        id: None,
        name: name.into(),
        value: value.into(),
    };
    NewReport {
        machine: "client-machine.corp.cliendomain.com".into(),
        os_version: "6.1.6561.2.0.0.256.1".into(),
        lcid: 1033,
        user: "Username".into(),
        app_name: "Windows".into(),
        app_path: r"C:\Windows\System32\WerFault.exe".into(),
        company: Some("Test Corporation".into()),
        report_type: 4,
        event_type: "BlueScreen".into(),
        friendly_event_name: Some("Shut down unexpectedly".into()),
        event_time: "2008-03-11T16:53:37.904Z".into(),
        event_filetime: 128_496_996_179_046_077,
        params: vec![
            secondary("BCCode", "f4"),
            secondary("BCP1", "00000003"),
            ReportParam {
                kind: ParamKind::Primary,
                id: Some("0".into()),
                name: "Problem Signature 01".into(),
                value: "x".into(),
            },
        ],
        files: vec![
            ReportFile {
                name: "Mini031108-01.dmp".into(),
                file_type: Some(2),
            },
            ReportFile {
                name: "sysdata.xml".into(),
                file_type: None,
            },
        ],
    }
}

fn request<'a>(cap: u64, path: &'a str, cab: &'a str) -> DumpRequest<'a> {
    DumpRequest {
        cap,
        pending_window: Duration::from_secs(3600),
        dump_path: path,
        cab_name: cab,
    }
}

/// Creates `cabs/blue/<name>` with `data` and commits it; returns its inode.
fn store_cab(store: &dyn Store, name: &str, data: &[u8]) -> u64 {
    let dir = match store.lookup(CABS_INO, "blue").unwrap() {
        Some(d) => d,
        None => store
            .create_node(&NewNode {
                parent: CABS_INO,
                name: "blue",
                role: NodeRole::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                bucket: None,
            })
            .unwrap(),
    };
    let key = blue_key();
    let cab = store
        .create_node(&NewNode {
            parent: dir.ino,
            name,
            role: NodeRole::Cab,
            mode: 0o644,
            uid: 0,
            gid: 0,
            bucket: Some(&key),
        })
        .unwrap();
    store.write_at(cab.ino, 0, data).unwrap();
    store
        .commit_cab(cab.ino, data.len() as u64, &"ab".repeat(32))
        .unwrap();
    cab.ino
}

#[test]
fn schema_version_three_has_tables_and_views() {
    let (dir, _store) = temp_store();
    let conn = raw(&dir);
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert!(version >= 3, "user_version {version}");
    for (name, kind) in [
        ("cer2_report_rows", "table"),
        ("cer2_report_param_rows", "table"),
        ("cer2_report_file_rows", "table"),
        ("cer2_reports", "view"),
        ("cer2_report_params", "view"),
        ("cer2_report_files", "view"),
    ] {
        let found: String = conn
            .query_row(
                "SELECT type FROM sqlite_master WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(found, kind, "{name}");
    }
}

#[test]
fn a_report_round_trips_with_params_and_files() {
    for backend in common::backends() {
        let store = &*backend.store;
        let bucket = store.ensure_bucket(&blue_key()).unwrap();
        let report = kernel_report();
        let rec = store.record_report(bucket, &report, None).unwrap();
        assert_eq!(rec.bucket_id, bucket);
        assert!(!rec.dump_issued);
        let stored = store.report(rec.report_id).unwrap().unwrap();
        assert_eq!(stored.report, report);
        assert_eq!(stored.subpath, "blue");
        assert_eq!(stored.dump_state, DumpState::None);
        assert_eq!(stored.dump_path, None);
        assert_eq!(stored.cab_name, None);
        assert!(stored.received_at.ends_with('Z'), "{}", stored.received_at);
        assert_eq!(store.report(rec.report_id + 1).unwrap(), None);

        // What an admin sees with SQL.
        let id = rec.report_id;
        assert_eq!(
            backend.rows(&format!(
                "SELECT subpath, machine, event_time, dump_state FROM cer2_reports \
                 WHERE report_id = {id}"
            )),
            [[
                "blue",
                "client-machine.corp.cliendomain.com",
                "2008-03-11T16:53:37.904Z",
                "none"
            ]]
        );
        assert_eq!(
            backend.rows(&format!(
                "SELECT position, kind, name, value FROM cer2_report_params \
                 WHERE report_id = {id} ORDER BY position"
            )),
            [
                ["0", "secondary", "BCCode", "f4"],
                ["1", "secondary", "BCP1", "00000003"],
                ["2", "primary", "Problem Signature 01", "x"],
            ]
        );
        assert_eq!(backend.count("cer2_report_files"), 2);
    }
}

#[test]
fn unknown_bucket_is_refused_and_nothing_is_stored() {
    for backend in common::backends() {
        let store = &*backend.store;
        let err = store
            .record_report(4242, &kernel_report(), None)
            .unwrap_err();
        assert!(matches!(err, StoreError::NoBucket(4242)), "{err:?}");
        assert_eq!(backend.count("cer2_reports"), 0);
        assert_eq!(backend.count("cer2_report_params"), 0);
    }
}

#[test]
fn a_duplicate_dump_path_rolls_back_the_whole_report() {
    for backend in common::backends() {
        let store = &*backend.store;
        let bucket = store.ensure_bucket(&blue_key()).unwrap();
        let req = request(10, r"\PersistedCabs\Blue\a.cab", "a.cab");
        assert!(
            store
                .record_report(bucket, &kernel_report(), Some(&req))
                .unwrap()
                .dump_issued
        );
        let again = store.record_report(bucket, &kernel_report(), Some(&req));
        assert!(again.is_err(), "{again:?}");
        assert_eq!(backend.count("cer2_reports"), 1);
        assert_eq!(backend.count("cer2_report_params"), 3);
        assert_eq!(backend.count("cer2_report_files"), 2);
    }
}

#[test]
fn the_cap_counts_gathered_cabs_and_pending_dumps() {
    for backend in common::backends() {
        let store = &*backend.store;
        let bucket = store.ensure_bucket(&blue_key()).unwrap();
        let issue = |i: u32, cap: u64| {
            let path = format!(r"\PersistedCabs\Blue\{i}.cab");
            let cab = format!("{i}.cab");
            store
                .record_report(bucket, &kernel_report(), Some(&request(cap, &path, &cab)))
                .unwrap()
        };
        // Two pending DumpFiles fill a cap of 2.
        assert!(issue(1, 2).dump_issued);
        assert!(issue(2, 2).dump_issued);
        let third = issue(3, 2);
        assert!(!third.dump_issued);
        let stored = store.report(third.report_id).unwrap().unwrap();
        assert_eq!(stored.dump_state, DumpState::None);
        assert_eq!(stored.dump_path, None);
        // A bigger cap leaves room for one more.
        assert!(issue(4, 3).dump_issued);
        // Gathered cabs count too (share uploads included).
        store.add_counts(bucket, 2, 2).unwrap();
        assert!(!issue(5, 4).dump_issued);
        assert!(issue(6, 6).dump_issued);
        // A cap of 0 never asks.
        assert!(!issue(7, 0).dump_issued);
        // Pending DumpFiles older than the window no longer count.
        let window_zero = DumpRequest {
            pending_window: Duration::ZERO,
            ..request(3, r"\PersistedCabs\Blue\8.cab", "8.cab")
        };
        assert!(
            store
                .record_report(bucket, &kernel_report(), Some(&window_zero))
                .unwrap()
                .dump_issued
        );
    }
}

#[test]
fn upload_links_the_cab_once_and_survives_its_deletion() {
    for backend in common::backends() {
        let store = &*backend.store;
        let bucket = store.ensure_bucket(&blue_key()).unwrap();
        let path = r"\PersistedCabs\Blue\c2428d43-b50a-4622-9d55-cce4602834b3.cab";
        let cab_name = "c2428d43-b50a-4622-9d55-cce4602834b3.cab";
        let rec = store
            .record_report(bucket, &kernel_report(), Some(&request(5, path, cab_name)))
            .unwrap();
        let issued = store.dump_by_path(path).unwrap().unwrap();
        assert_eq!(issued.report_id, rec.report_id);
        assert_eq!(issued.bucket_id, bucket);
        assert_eq!(issued.subpath, "blue");
        assert_eq!(issued.cab_name, cab_name);
        assert_eq!(issued.state, DumpState::Issued);
        assert_eq!(store.dump_by_path(&path.to_lowercase()).unwrap(), None);
        assert_eq!(store.dump_by_path("/PersistedCabs/Blue/x").unwrap(), None);

        // No cab yet: refused, nothing changes.
        let early = store.mark_uploaded(rec.report_id);
        assert!(matches!(early, Err(StoreError::Invalid(_))), "{early:?}");
        assert_eq!(
            store.dump_by_path(path).unwrap().unwrap().state,
            DumpState::Issued
        );

        let ino = store_cab(store, cab_name, b"MSCF cab bytes");
        assert_eq!(store.mark_uploaded(rec.report_id).unwrap(), ino);
        let twice = store.mark_uploaded(rec.report_id);
        assert!(matches!(twice, Err(StoreError::Invalid(_))), "{twice:?}");
        let stored = store.report(rec.report_id).unwrap().unwrap();
        assert_eq!(stored.dump_state, DumpState::Uploaded);
        assert_eq!(stored.cab_ino, Some(ino));
        assert!(stored.uploaded_at.is_some());
        assert_eq!(
            store.dump_by_path(path).unwrap().unwrap().state,
            DumpState::Uploaded
        );
        assert_eq!(
            backend.rows(&format!(
                "SELECT cab_size, cab_sha256 FROM cer2_reports WHERE report_id = {}",
                rec.report_id
            )),
            [["14".to_owned(), "ab".repeat(32)]]
        );

        // An admin deletes the cab on the share: the report stays, unlinked.
        store.remove_node(ino).unwrap();
        let stored = store.report(rec.report_id).unwrap().unwrap();
        assert_eq!(stored.dump_state, DumpState::Uploaded);
        assert_eq!(stored.cab_ino, None);

        // A report that was issued no DumpFile cannot be marked.
        let none = store.record_report(bucket, &kernel_report(), None).unwrap();
        assert!(matches!(
            store.mark_uploaded(none.report_id),
            Err(StoreError::Invalid(_))
        ));
    }
}

#[test]
fn reports_survive_a_reopen() {
    let (dir, store) = temp_store();
    let bucket = store.ensure_bucket(&blue_key()).unwrap();
    let rec = store
        .record_report(
            bucket,
            &kernel_report(),
            Some(&request(5, r"\PersistedCabs\Blue\r.cab", "r.cab")),
        )
        .unwrap();
    drop(store);
    let store = SqliteStore::open(&dir.path().join("cerfs.db")).unwrap();
    let stored = store.report(rec.report_id).unwrap().unwrap();
    assert_eq!(stored.report, kernel_report());
    assert_eq!(stored.dump_state, DumpState::Issued);
    assert_eq!(store.ensure_bucket(&blue_key()).unwrap(), bucket);
}

#[test]
fn concurrent_reports_never_overshoot_the_cap() {
    for backend in common::backends() {
        let store = Arc::clone(&backend.store);
        let bucket = store.ensure_bucket(&blue_key()).unwrap();
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let path = format!(r"\PersistedCabs\Blue\{i}.cab");
                    let cab = format!("{i}.cab");
                    store
                        .record_report(bucket, &kernel_report(), Some(&request(5, &path, &cab)))
                        .unwrap()
                        .dump_issued
                })
            })
            .collect();
        let issued = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|i| *i)
            .count();
        assert_eq!(issued, 5);
        assert_eq!(backend.count("cer2_reports"), 16);
        assert_eq!(
            backend.rows("SELECT count(*) FROM cer2_reports WHERE dump_state = 'issued'"),
            [["5"]]
        );
    }
}
