//! The store's semantics, checked on every backend the same way: SQLite always, PostgreSQL
//! on the test server (`CERFS_TEST_POSTGRES`, which `.ci/run` sets; without it the
//! PostgreSQL half skips by the one skip rule, and fails under `CERFS_REQUIRE_FUSE=1`).
//! Concurrency here is threads of one process: on PostgreSQL each call has a connection of
//! its own, as each head has.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use cerfs_db::{
    BucketKey, CabState, Counts, DumpRequest, DumpState, LogFields, LogId, LogLine, NewNode,
    NewReport, Node, NodeRole, ParamKind, ReportFile, ReportParam, SettingsScope, Store,
    StoreError, CABS_INO, ROOT_INO,
};

use common::backends;

fn key(subpath: &str) -> BucketKey {
    BucketKey {
        subpath: subpath.into(),
        kind: "generic".into(),
        app: None,
    }
}

fn node<'a>(
    parent: u64,
    name: &'a str,
    role: NodeRole,
    bucket: Option<&'a BucketKey>,
) -> NewNode<'a> {
    NewNode {
        parent,
        name,
        role,
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        bucket,
    }
}

/// A bucket folder `bucket` under cabs/ and a cab upload `name` in it (state writing).
fn new_cab(s: &dyn Store, bucket: &str, name: &str) -> (Node, Node) {
    let k = key(bucket);
    let dir = s
        .create_node(&node(CABS_INO, bucket, NodeRole::Dir, None))
        .unwrap();
    let cab = s
        .create_node(&node(dir.ino, name, NodeRole::Cab, Some(&k)))
        .unwrap();
    (dir, cab)
}

#[test]
fn increments_from_many_connections_compose_exactly() {
    for b in backends() {
        let bucket = b.store.ensure_bucket(&key("blue")).unwrap();
        assert_eq!(b.store.ensure_bucket(&key("blue")).unwrap(), bucket);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&b.store);
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        store.add_counts(bucket, 1, 2).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let want = Counts {
            cabs_gathered: 400,
            total_hits: 800,
        };
        assert_eq!(b.store.counts(bucket).unwrap(), want, "{}", b.name);
        // A reset returns what it replaced; counters stop at 2^63 - 1 instead of failing.
        let reset = Counts {
            cabs_gathered: i64::MAX as u64 - 1,
            total_hits: 5,
        };
        assert_eq!(
            b.store.set_counts(bucket, reset).unwrap(),
            want,
            "{}",
            b.name
        );
        let top = b.store.add_counts(bucket, 10, 1).unwrap();
        assert_eq!(top.cabs_gathered, i64::MAX as u64, "{}", b.name);
        assert_eq!(top.total_hits, 6, "{}", b.name);
        assert!(matches!(
            b.store.add_counts(999_999, 1, 1),
            Err(StoreError::NoBucket(999_999))
        ));
    }
}

fn line(text: &str) -> LogLine {
    LogLine {
        bytes: format!("{text}\r\n").into_bytes(),
        fields: Some(LogFields {
            time: "10:00:00".into(),
            date: "03-01-2024".into(),
            machine: "PC".into(),
            user: "U".into(),
            item: text.into(),
            client_time: "2024-03-01T10:00:00".into(),
        }),
    }
}

#[test]
fn appends_from_many_connections_keep_every_line_in_order() {
    for b in backends() {
        let bucket = b.store.ensure_bucket(&key("blue")).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = Arc::clone(&b.store);
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let lines = [
                            line(&format!("t{t} n{i:02} a")),
                            line(&format!("t{t} n{i:02} b")),
                        ];
                        store.append_log(LogId::Hits(bucket), &lines).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let len = b.store.log_len(LogId::Hits(bucket)).unwrap();
        // Read back in pieces that cut lines anywhere.
        let mut text = Vec::new();
        while (text.len() as u64) < len {
            let piece = b
                .store
                .read_log(LogId::Hits(bucket), text.len() as u64, 1000)
                .unwrap();
            assert!(!piece.is_empty(), "{}: short read", b.name);
            text.extend(piece);
        }
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), 200, "{}", b.name);
        for t in 0..4 {
            let mine: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&format!("t{t} ")))
                .collect();
            let want: Vec<String> = (0..25)
                .flat_map(|i| [format!("t{t} n{i:02} a"), format!("t{t} n{i:02} b")])
                .collect();
            assert_eq!(mine, want, "{}: thread {t}'s lines", b.name);
        }
        // An append's two lines stay together.
        for pair in lines.chunks(2) {
            assert_eq!(
                pair[0].trim_end_matches(" a"),
                pair[1].trim_end_matches(" b"),
                "{}",
                b.name
            );
        }
        assert_eq!(b.store.log_len(LogId::Crash).unwrap(), 0);
        assert_eq!(b.store.read_log(LogId::Hits(bucket), len, 10).unwrap(), b"");
        assert!(matches!(
            b.store.log_len(LogId::Hits(424_242)),
            Err(StoreError::NoBucket(_))
        ));
    }
}

#[test]
fn the_namespace_names_moves_and_removes_nodes() {
    for b in backends() {
        let s = &b.store;
        let dir = s
            .create_node(&node(ROOT_INO, "d", NodeRole::Dir, None))
            .unwrap();
        let sub = s
            .create_node(&node(dir.ino, "sub", NodeRole::Dir, None))
            .unwrap();
        let f = s
            .create_node(&node(dir.ino, "f.txt", NodeRole::File, None))
            .unwrap();
        assert!(f.ino > sub.ino && sub.ino > dir.ino, "{}", b.name);
        assert!(matches!(
            s.create_node(&node(dir.ino, "f.txt", NodeRole::File, None)),
            Err(StoreError::Exists(_))
        ));
        assert!(matches!(
            s.create_node(&node(f.ino, "x", NodeRole::File, None)),
            Err(StoreError::NotDir(_))
        ));
        assert!(matches!(
            s.create_node(&node(dir.ino, "a/b", NodeRole::File, None)),
            Err(StoreError::Invalid(_))
        ));
        let names: Vec<String> = s
            .children(dir.ino)
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(names, ["f.txt", "sub"], "{}", b.name);
        assert_eq!(s.lookup(dir.ino, "f.txt").unwrap().unwrap().ino, f.ino);
        assert!(
            s.lookup(ROOT_INO, "").unwrap().is_none(),
            "{}: the root is not its own child",
            b.name
        );
        // Moves: into a subdirectory; not a directory into itself; replace only when asked.
        s.rename_node(f.ino, sub.ino, "g.txt", false).unwrap();
        assert!(s.lookup(dir.ino, "f.txt").unwrap().is_none());
        assert_eq!(s.node(f.ino).unwrap().unwrap().parent, sub.ino);
        assert!(matches!(
            s.rename_node(dir.ino, sub.ino, "loop", false),
            Err(StoreError::Invalid(_))
        ));
        let other = s
            .create_node(&node(sub.ino, "h.txt", NodeRole::File, None))
            .unwrap();
        assert!(matches!(
            s.rename_node(other.ino, sub.ino, "g.txt", false),
            Err(StoreError::Exists(_))
        ));
        s.rename_node(other.ino, sub.ino, "g.txt", true).unwrap();
        assert!(
            s.node(f.ino).unwrap().is_none(),
            "{}: the replaced file is gone",
            b.name
        );
        // Removal: not a directory with children, never the root.
        assert!(matches!(
            s.remove_node(sub.ino),
            Err(StoreError::NotEmpty(_))
        ));
        assert!(matches!(
            s.remove_node(ROOT_INO),
            Err(StoreError::Invalid(_))
        ));
        s.remove_node(other.ino).unwrap();
        s.remove_node(sub.ino).unwrap();
        assert!(s.node(sub.ino).unwrap().is_none());
        // Attributes.
        let changed = s
            .set_attr(
                dir.ino,
                &cerfs_db::AttrChange {
                    mode: Some(0o700),
                    uid: Some(u32::MAX),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            (changed.mode, changed.uid, changed.gid),
            (0o700, u32::MAX, 1000),
            "{}",
            b.name
        );
        // A new node never reuses a number.
        let again = s
            .create_node(&node(dir.ino, "sub", NodeRole::Dir, None))
            .unwrap();
        assert!(again.ino > other.ino, "{}", b.name);
    }
}

#[test]
fn bytes_read_back_as_written_and_a_committed_cab_never_changes() {
    for b in backends() {
        let s = &b.store;
        let f = s
            .create_node(&node(ROOT_INO, "f.bin", NodeRole::File, None))
            .unwrap();
        // A write past a gap: the gap reads as zeros.
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(s.write_at(f.ino, 100_000, &data).unwrap(), 800_000);
        let back = s.read_at(f.ino, 0, 800_000).unwrap();
        assert_eq!(back.len(), 800_000, "{}", b.name);
        assert!(back[..100_000].iter().all(|&b| b == 0));
        assert_eq!(&back[100_000..], &data[..], "{}", b.name);
        // A small overwrite inside, a read across it.
        s.write_at(f.ino, 300_000, b"hello").unwrap();
        assert_eq!(
            s.read_at(f.ino, 299_998, 9).unwrap(),
            [
                data[199_998],
                data[199_999],
                b'h',
                b'e',
                b'l',
                b'l',
                b'o',
                data[200_005],
                data[200_006]
            ]
        );
        // Truncation drops bytes; growing again reads zeros where they were.
        s.truncate(f.ino, 300_002).unwrap();
        s.truncate(f.ino, 300_010).unwrap();
        assert_eq!(
            s.read_at(f.ino, 300_000, 100).unwrap(),
            b"he\0\0\0\0\0\0\0\0",
            "{}",
            b.name
        );
        assert_eq!(s.read_at(f.ino, 400_000, 10).unwrap(), b"", "{}", b.name);
        // A cab: bytes, then a commit that checks size and hash form; then immutable.
        let (bucket_dir, cab) = new_cab(s.as_ref(), "blue", "r.cab");
        assert_eq!(cab.cab_state, Some(CabState::Writing));
        s.write_at(cab.ino, 0, &[7u8; 300_000]).unwrap();
        let sha = "AB".repeat(32);
        assert!(matches!(
            s.commit_cab(cab.ino, 299_999, &sha),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            s.commit_cab(cab.ino, 300_000, "xyz"),
            Err(StoreError::Invalid(_))
        ));
        s.commit_cab(cab.ino, 300_000, &sha).unwrap();
        assert_eq!(
            s.node(cab.ino).unwrap().unwrap().cab_state,
            Some(CabState::Complete)
        );
        assert!(matches!(
            s.write_at(cab.ino, 0, b"x"),
            Err(StoreError::CabComplete(_))
        ));
        assert!(matches!(
            s.truncate(cab.ino, 0),
            Err(StoreError::CabComplete(_))
        ));
        assert!(matches!(
            s.commit_cab(cab.ino, 300_000, &sha),
            Err(StoreError::CabComplete(_))
        ));
        assert_eq!(
            s.read_at(cab.ino, 299_990, 100).unwrap(),
            [7u8; 10],
            "{}",
            b.name
        );
        s.sync().unwrap();
        // Bytes of nodes that have none.
        assert!(matches!(
            s.read_at(bucket_dir.ino, 0, 1),
            Err(StoreError::IsDir(_))
        ));
    }
}

#[test]
fn a_cab_handed_over_whole_is_stored_and_committed_at_once() {
    for b in backends() {
        let s = &b.store;
        let (_, cab) = new_cab(s.as_ref(), "green", "w.cab");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 249) as u8).collect();
        // Refused (not a hash): nothing of it stays, the upload can still be committed.
        assert!(matches!(
            s.commit_whole_cab(cab.ino, &data, "xyz"),
            Err(StoreError::Invalid(_))
        ));
        let after = s.node(cab.ino).unwrap().unwrap();
        assert_eq!(
            (after.size, after.cab_state),
            (0, Some(CabState::Writing)),
            "{}",
            b.name
        );
        s.commit_whole_cab(cab.ino, &data, &"cd".repeat(32))
            .unwrap();
        let done = s.node(cab.ino).unwrap().unwrap();
        assert_eq!(
            (done.size, done.cab_state),
            (100_000, Some(CabState::Complete)),
            "{}",
            b.name
        );
        assert_eq!(s.read_at(cab.ino, 0, 200_000).unwrap(), data, "{}", b.name);
        assert!(matches!(
            s.commit_whole_cab(cab.ino, &data, &"cd".repeat(32)),
            Err(StoreError::CabComplete(_))
        ));
    }
}

#[test]
fn settings_come_back_in_the_order_written() {
    for b in backends() {
        let s = &b.store;
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let policy = pairs(&[
            ("Tracking", "1"),
            ("Crashes per bucket", "5"),
            ("Tracking", "0"),
        ]);
        s.replace_settings(SettingsScope::Policy, &policy).unwrap();
        assert_eq!(
            s.settings(SettingsScope::Policy).unwrap(),
            policy,
            "{}",
            b.name
        );
        let bucket = s.ensure_bucket(&key("blue")).unwrap();
        assert!(s
            .settings(SettingsScope::Status(bucket))
            .unwrap()
            .is_empty());
        let status = pairs(&[("Bucket", "42"), ("Response", "http://example/")]);
        s.replace_settings(SettingsScope::Status(bucket), &status)
            .unwrap();
        s.replace_settings(SettingsScope::Policy, &pairs(&[("Tracking", "1")]))
            .unwrap();
        assert_eq!(
            s.settings(SettingsScope::Status(bucket)).unwrap(),
            status,
            "{}",
            b.name
        );
        assert_eq!(
            s.settings(SettingsScope::Policy).unwrap(),
            pairs(&[("Tracking", "1")])
        );
        assert!(matches!(
            s.replace_settings(SettingsScope::Status(777_777), &status),
            Err(StoreError::NoBucket(777_777))
        ));
    }
}

fn report(n: u32) -> NewReport {
    NewReport {
        machine: format!("PC{n}"),
        os_version: "6.1.6561.2.0.0.256.1".into(),
        lcid: 1033,
        user: "U".into(),
        app_name: "app.exe".into(),
        app_path: r"C:\app.exe".into(),
        company: None,
        report_type: 2,
        event_type: "APPCRASH".into(),
        friendly_event_name: Some("Stopped working".into()),
        event_time: "2026-12-03T07:00:00.000Z".into(),
        event_filetime: 134_000_000_000_000_000,
        params: vec![
            ReportParam {
                kind: ParamKind::Primary,
                id: Some("0".into()),
                name: "Application Name".into(),
                value: "app.exe".into(),
            },
            ReportParam {
                kind: ParamKind::Secondary,
                id: None,
                name: "LCID".into(),
                value: "1033".into(),
            },
        ],
        files: vec![ReportFile {
            name: "mini.dmp".into(),
            file_type: Some(1),
        }],
    }
}

#[test]
fn reports_from_many_connections_never_issue_more_dumps_than_the_cap() {
    for b in backends() {
        let bucket = b.store.ensure_bucket(&key("app")).unwrap();
        let threads: Vec<_> = (0..6u32)
            .map(|t| {
                let store = Arc::clone(&b.store);
                std::thread::spawn(move || {
                    (0..4u32)
                        .filter(|i| {
                            let n = t * 4 + i;
                            let (path, cab) =
                                (format!("\\PersistedCabs\\{n}.cab"), format!("{n}.cab"));
                            let dump = DumpRequest {
                                cap: 3,
                                pending_window: std::time::Duration::from_secs(3600),
                                dump_path: &path,
                                cab_name: &cab,
                            };
                            store
                                .record_report(bucket, &report(n), Some(&dump))
                                .unwrap()
                                .dump_issued
                        })
                        .count()
                })
            })
            .collect();
        let issued: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(issued, 3, "{}", b.name);
        // The first issued DumpFile, uploaded: the report links to its cab.
        let (found, n) = (0..24u32)
            .find_map(|n| {
                b.store
                    .dump_by_path(&format!("\\PersistedCabs\\{n}.cab"))
                    .unwrap()
                    .map(|d| (d, n))
            })
            .unwrap();
        assert_eq!(
            (found.state, found.subpath.as_str()),
            (DumpState::Issued, "app")
        );
        assert!(
            matches!(
                b.store.mark_uploaded(found.report_id),
                Err(StoreError::Invalid(_))
            ),
            "{}: no cab yet",
            b.name
        );
        let (_, cab) = new_cab(b.store.as_ref(), "app", &format!("{n}.cab"));
        b.store.write_at(cab.ino, 0, b"MSCF").unwrap();
        b.store.commit_cab(cab.ino, 4, &"0".repeat(64)).unwrap();
        assert_eq!(
            b.store.mark_uploaded(found.report_id).unwrap(),
            cab.ino,
            "{}",
            b.name
        );
        assert!(matches!(
            b.store.mark_uploaded(found.report_id),
            Err(StoreError::Invalid(_))
        ));
        let stored = b.store.report(found.report_id).unwrap().unwrap();
        assert_eq!(stored.report, report(n), "{}", b.name);
        assert_eq!(
            (stored.dump_state, stored.cab_ino),
            (DumpState::Uploaded, Some(cab.ino))
        );
        assert!(
            stored.received_at.ends_with('Z')
                && stored
                    .uploaded_at
                    .as_deref()
                    .is_some_and(|t| t.ends_with('Z')),
            "{}: {stored:?}",
            b.name
        );
        assert!(b.store.report(999_999).unwrap().is_none());
        assert!(matches!(
            b.store.record_report(888_888, &report(0), None),
            Err(StoreError::NoBucket(_))
        ));
    }
}

#[test]
fn retention_prunes_in_steps_and_a_bucket_deletion_takes_everything() {
    use cerfs_db::{Audit, CabCheck, PruneReason, Removal, RetentionPolicy};
    for b in backends() {
        let s = &*b.store;
        let old = common::store_cab(s, "blue", "a.cab", 600_000);
        let mid = common::store_cab(s, "blue", "b.cab", 70_000);
        let new = common::store_cab(s, "blue", "c.cab", 10);
        let red = common::store_cab(s, "red", "r.cab", 10);
        let policy = RetentionPolicy {
            keep_last: Some(1),
            ..Default::default()
        };
        s.set_retention(&policy).unwrap();
        assert_eq!(s.retention().unwrap(), policy, "{}", b.name);
        // The two oldest of blue, one page at a time.
        let first = s.prune_candidates(&policy, None, 1).unwrap();
        assert_eq!(first.len(), 1, "{}", b.name);
        assert_eq!(
            (first[0].cab.ino, first[0].reason),
            (old, PruneReason::PerBucket)
        );
        let second = s
            .prune_candidates(&policy, Some(&first[0].cab), 10)
            .unwrap();
        let inos: Vec<u64> = second.iter().map(|c| c.cab.ino).collect();
        assert_eq!(inos, [mid], "{}", b.name);
        assert_eq!(s.prune_cabs(&[old, mid, red + 1_000]).unwrap(), [old, mid]);
        assert!(s
            .lookup(s.lookup(CABS_INO, "blue").unwrap().unwrap().ino, "a.cab")
            .unwrap()
            .is_none());
        let (found, removal) = s.find_cab("blue", "a.cab").unwrap().unwrap();
        assert_eq!(
            (found.ino, removal),
            (old, Some(Removal::Pruned)),
            "{}",
            b.name
        );
        // Swept in steps of two chunks at most (SQLite drops the cab database's bytes whole).
        let mut steps = 0;
        loop {
            let step = s.sweep(2).unwrap();
            assert!(step.chunks <= 2, "{}", b.name);
            steps += 1;
            if !step.more {
                break;
            }
            assert!(steps < 100, "{}: the sweep does not end", b.name);
        }
        assert_eq!(s.node(old).unwrap().unwrap().size, 0, "{}", b.name);
        assert_eq!(s.check_cab(new).unwrap(), CabCheck::Sound, "{}", b.name);
        let listed: Vec<u64> = s.cabs_after(0, 10).unwrap().iter().map(|c| c.ino).collect();
        assert_eq!(listed, [new, red], "{}", b.name);
        // A deletion: its cabs, counters, logs go; crash.log lines naming it are blanked.
        let blue = s.find_bucket("blue").unwrap().unwrap();
        s.add_counts(blue, 3, 5).unwrap();
        let crash = LogLine {
            bytes: b"10:00:00 03-01-2024\tPC\tU\tblue\r\n".to_vec(),
            fields: Some(LogFields {
                time: "10:00:00".into(),
                date: "03-01-2024".into(),
                machine: "PC".into(),
                user: "U".into(),
                item: "blue".into(),
                client_time: "2024-03-01T10:00:00".into(),
            }),
        };
        s.append_log(LogId::Crash, std::slice::from_ref(&crash))
            .unwrap();
        let audit = Audit {
            by: "root".into(),
            reason: "PII request 7".into(),
        };
        let contents = s.delete_bucket("blue", &audit).unwrap().unwrap();
        assert_eq!(
            (contents.cabs, contents.total_hits, contents.crash_lines),
            (1, 5, 1),
            "{}",
            b.name
        );
        while s.sweep(100).unwrap().more {}
        assert!(
            s.find_bucket("blue").unwrap().is_none(),
            "{}: the bucket row went",
            b.name
        );
        let log = s.read_log(LogId::Crash, 0, 1000).unwrap();
        assert_eq!(
            log.len(),
            crash.bytes.len(),
            "{}: crash.log keeps its length",
            b.name
        );
        assert!(
            log.starts_with(b"[deleted]") && log.ends_with(b"\r\n"),
            "{}: {log:?}",
            b.name
        );
        assert_eq!(s.check_cab(red).unwrap(), CabCheck::Sound, "{}", b.name);
        assert!(s.find_cab("red", "r.cab").unwrap().is_some());
    }
}
