//! The store's lifecycle methods: retention rules, prune/delete/sweep and the audit on every
//! backend (SQLite; PostgreSQL on the test server); and on a real SQLite file, one server
//! per database, the scrub of its cab database, backups and compaction.

#![allow(clippy::unwrap_used)]

mod common;

use cerfs_db::prelude::*;
use cerfs_db::{
    Audit, CabCheck, LogId, OpenError, PruneReason, Removal, RetentionPolicy, SettingsScope,
    SqliteStore, StoreError, CABS_INO,
};

fn temp_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("cer.db")).unwrap();
    (dir, store)
}

fn raw(dir: &tempfile::TempDir) -> rusqlite::Connection {
    common::raw(&dir.path().join("cer.db"))
}

/// A connection to the cab database, where cabs' bytes are.
fn raw_cabs(dir: &tempfile::TempDir) -> rusqlite::Connection {
    common::raw(&dir.path().join("cer.db-cabs"))
}

/// A complete cab `name` of `size` bytes in bucket `subpath`, completed at `created_at`.
fn cab(backend: &common::Backend, subpath: &str, name: &str, size: usize, created_at: &str) -> u64 {
    let ino = common::store_cab(&*backend.store, subpath, name, size);
    backend.execute(&format!(
        "UPDATE cab_rows SET created_at = '{created_at}' WHERE ino = {ino}"
    ));
    ino
}

/// [`cab`] on the SQLite store of `dir`.
fn sqlite_cab(
    dir: &tempfile::TempDir,
    store: &SqliteStore,
    subpath: &str,
    name: &str,
    size: usize,
    created_at: &str,
) -> u64 {
    let ino = common::store_cab(store, subpath, name, size);
    raw(dir)
        .execute(
            "UPDATE cab_rows SET created_at = ?2 WHERE ino = ?1",
            rusqlite::params![ino as i64, created_at],
        )
        .unwrap();
    ino
}

fn day(n: u32) -> String {
    format!("2026-01-{n:02}T00:00:00.000Z")
}

fn names(store: &dyn Store, policy: &RetentionPolicy) -> Vec<(String, PruneReason)> {
    store
        .prune_candidates(policy, None, 1000)
        .unwrap()
        .into_iter()
        .map(|c| (c.cab.name, c.reason))
        .collect()
}

fn sweep_all(store: &dyn Store) {
    while store.sweep(3).unwrap().more {}
}

#[test]
fn only_one_server_opens_a_database_and_it_is_named() {
    let (dir, first) = temp_store();
    let path = dir.path().join("cer.db");
    let err = SqliteStore::open(&path).unwrap_err();
    let OpenError::Locked { holder, .. } = &err else {
        panic!("{err}");
    };
    assert!(
        holder.contains(&format!("pid {}", std::process::id())),
        "{holder}"
    );
    assert!(err.to_string().contains("stop that one first"), "{err}");
    // Admin commands work beside it; a full compaction does not.
    SqliteStore::open_for_admin(&path).unwrap();
    assert!(matches!(
        SqliteStore::open_exclusive(&path),
        Err(OpenError::Locked { .. })
    ));
    drop(first);
    SqliteStore::open(&path).unwrap();
}

#[test]
fn retention_rules_pick_what_they_should() {
    for backend in common::backends() {
        retention_rules_on(&backend);
    }
}

fn retention_rules_on(backend: &common::Backend) {
    let store = &*backend.store;
    for n in 1..=6 {
        cab(backend, "many", &format!("m{n}.cab"), 1000, &day(n));
    }
    cab(backend, "few", "f1.cab", 1000, &day(10));
    cab(backend, "few", "f2.cab", 1000, &day(11));
    assert!(names(store, &RetentionPolicy::default()).is_empty());

    // The first and the last two of each bucket are kept.
    let per_bucket = RetentionPolicy {
        keep_first: Some(1),
        keep_last: Some(2),
        ..RetentionPolicy::default()
    };
    let picked = names(store, &per_bucket);
    assert_eq!(
        picked,
        [
            ("m2.cab".to_owned(), PruneReason::PerBucket),
            ("m3.cab".to_owned(), PruneReason::PerBucket),
            ("m4.cab".to_owned(), PruneReason::PerBucket),
        ]
    );

    // Age prunes whatever is older, kept or not.
    let age = RetentionPolicy {
        max_age_days: Some(30),
        ..per_bucket
    };
    assert_eq!(
        names(store, &age).len(),
        8,
        "every cab is from January 2026"
    );

    // Total size: the oldest the per-bucket rule does not keep go first.
    let size = RetentionPolicy {
        max_cab_bytes: Some(4500),
        ..per_bucket
    };
    let picked = names(store, &size);
    // After m2..m4 (per bucket), 5000 bytes stay, all kept by the per-bucket rule: nothing
    // more can go.
    assert_eq!(picked.len(), 3, "{picked:?}");
    let size_only = RetentionPolicy {
        max_cab_bytes: Some(2500),
        ..RetentionPolicy::default()
    };
    let picked = names(store, &size_only);
    assert_eq!(picked.len(), 6, "{picked:?}");
    assert!(picked.iter().all(|(_, r)| *r == PruneReason::TotalSize));
    assert_eq!(picked[0].0, "m1.cab", "oldest first");

    // Paging through the list gives the same cabs.
    let first = store.prune_candidates(&size_only, None, 4).unwrap();
    let rest = store
        .prune_candidates(&size_only, Some(&first[3].cab), 10)
        .unwrap();
    assert_eq!(first.len() + rest.len(), 6);
}

#[test]
fn a_pruned_cab_keeps_its_row_and_loses_its_bytes_and_a_deleted_one_loses_all() {
    for backend in common::backends() {
        pruned_and_deleted_on(&backend);
    }
}

fn pruned_and_deleted_on(backend: &common::Backend) {
    let store = &*backend.store;
    let ino = cab(backend, "blue", "r.cab", 300_000, &day(1));
    assert!(store.remove_cab(ino, Removal::Pruned, None).unwrap());
    assert!(
        !store.remove_cab(ino, Removal::Pruned, None).unwrap(),
        "once"
    );
    // Off the share at once: the name is free, the node says so.
    let folder = store.lookup(CABS_INO, "blue").unwrap().unwrap().ino;
    assert!(store.lookup(folder, "r.cab").unwrap().is_none());
    assert_eq!(
        store.node(ino).unwrap().unwrap().cab_state,
        Some(cerfs_db::CabState::Removed)
    );
    sweep_all(store);
    assert_eq!(
        backend.rows(&format!("SELECT count(*) FROM chunks WHERE ino = {ino}")),
        [["0"]]
    );
    let row = backend.rows(&format!(
        "SELECT state, size, sha256 FROM cabs WHERE cab_id = {ino}"
    ));
    assert_eq!(row[0][..2], ["pruned", "300000"]);
    assert_eq!(row[0][2].len(), 64);
    let (_, removal) = store.find_cab("blue", "r.cab").unwrap().unwrap();
    assert_eq!(removal, Some(Removal::Pruned));

    // A deletion of the pruned cab takes its row too, and is recorded.
    let audit = Audit {
        by: "admin (uid 0)".into(),
        reason: "PII request 1".into(),
    };
    assert!(store
        .remove_cab(ino, Removal::Deleted, Some(&audit))
        .unwrap());
    sweep_all(store);
    assert_eq!(
        backend.rows(&format!("SELECT count(*) FROM cab_rows WHERE ino = {ino}")),
        [["0"]]
    );
    assert!(store.node(ino).unwrap().is_none());
    assert_eq!(
        backend.rows("SELECT kind, name, reason FROM deletions"),
        [["cab", "r.cab", "PII request 1"]]
    );
}

#[test]
fn a_flipped_byte_in_a_stored_cab_is_found() {
    let (dir, store) = temp_store();
    // Three chunks of the cab database.
    let ino = sqlite_cab(&dir, &store, "blue", "r.cab", 2_500_000, &day(1));
    assert_eq!(store.check_cab(ino).unwrap(), CabCheck::Sound);
    raw_cabs(&dir)
        .execute(
            "UPDATE cab_chunks SET data = CAST(zeroblob(length(data)) AS BLOB) \
             WHERE ino = ?1 AND idx = 0",
            [ino as i64],
        )
        .unwrap();
    let CabCheck::Corrupt(why) = store.check_cab(ino).unwrap() else {
        panic!("a changed chunk went unnoticed");
    };
    assert!(why.contains("sha256"), "{why}");
    let corrupt: Option<String> = raw(&dir)
        .query_row(
            "SELECT corrupt FROM cabs WHERE cab_id = ?1",
            [ino as i64],
            |r| r.get(0),
        )
        .unwrap();
    assert!(corrupt.is_some());
    raw_cabs(&dir)
        .execute(
            "DELETE FROM cab_chunks WHERE ino = ?1 AND idx = 0",
            [ino as i64],
        )
        .unwrap();
    let CabCheck::Corrupt(why) = store.check_cab(ino).unwrap() else {
        panic!("a missing chunk went unnoticed");
    };
    assert!(why.contains("missing"), "{why}");
}

use common::line;

#[test]
fn a_deleted_bucket_leaves_only_the_audit_and_blanked_crash_lines() {
    for backend in common::backends() {
        deleted_bucket_on(&backend);
    }
}

fn deleted_bucket_on(backend: &common::Backend) {
    let store = &*backend.store;
    let ino = cab(backend, "blue", "r.cab", 70_000, &day(1));
    cab(backend, "other", "o.cab", 10, &day(1));
    let bucket = store.find_bucket("blue").unwrap().unwrap();
    store.add_counts(bucket, 1, 3).unwrap();
    store
        .append_log(LogId::Hits(bucket), &[line("r.cab", "PC1")])
        .unwrap();
    store
        .append_log(
            LogId::Crash,
            &[line("other", "PC2"), line("blue", "SECRET-PC")],
        )
        .unwrap();
    let before = store.log_len(LogId::Crash).unwrap();
    store
        .replace_settings(
            SettingsScope::Status(bucket),
            &[("Tracking".into(), "YES".into())],
        )
        .unwrap();
    let audit = Audit {
        by: "admin".into(),
        reason: "ticket 7".into(),
    };
    let contents = store.bucket_contents("blue").unwrap().unwrap();
    assert_eq!(
        (contents.cabs, contents.hits_lines, contents.crash_lines),
        (1, 1, 1)
    );
    store.delete_bucket("blue", &audit).unwrap().unwrap();
    sweep_all(store);
    assert!(
        store.find_bucket("blue").unwrap().is_none(),
        "the bucket row went"
    );
    assert!(store.node(ino).unwrap().is_none());
    assert!(store.find_bucket("other").unwrap().is_some(), "others stay");
    // crash.log keeps its length; the line naming the bucket no longer names anyone.
    assert_eq!(store.log_len(LogId::Crash).unwrap(), before);
    let crash = store.read_log(LogId::Crash, 0, 4096).unwrap();
    let text = String::from_utf8_lossy(&crash);
    assert!(!text.contains("SECRET-PC"), "{text}");
    assert!(text.contains("PC2"), "{text}");
    assert!(text.contains("[deleted]"), "{text}");
    let detail = backend.rows("SELECT detail FROM deletions WHERE kind = 'bucket'");
    assert!(detail[0][0].contains("1 cabs"), "{detail:?}");
    assert!(store.bucket_contents("blue").unwrap().is_none());
}

#[test]
fn a_backup_is_a_consistent_copy_and_never_overwrites() {
    let (dir, store) = temp_store();
    sqlite_cab(&dir, &store, "blue", "r.cab", 100_000, &day(1));
    let dest = dir.path().join("copy.db");
    store.backup_to(&dest).unwrap();
    assert!(!cerfs_db::backup_partial_path(&dest).exists());
    let copy = SqliteStore::open(&dest).unwrap();
    assert_eq!(copy.integrity_check().unwrap(), "ok");
    let (entry, _) = copy.find_cab("blue", "r.cab").unwrap().unwrap();
    assert_eq!(copy.check_cab(entry.ino).unwrap(), CabCheck::Sound);
    assert!(matches!(
        store.backup_to(&dest),
        Err(StoreError::Invalid(_))
    ));
}

/// A TRUNCATE checkpoint that ran to the end: it reports busy (and leaves the file as it
/// was) while the store's own background checkpointer holds the checkpoint lock.
fn full_checkpoint(dir: &tempfile::TempDir) {
    let conn = raw(dir);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        if busy == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no full checkpoint in 30 s"
        );
        std::thread::yield_now();
    }
}

#[test]
fn free_pages_go_back_to_the_filesystem_in_steps() {
    let (dir, store) = temp_store();
    // Free pages in both files: a big cab's bytes (cab database) and many crash lines
    // (metadata database).
    let ino = sqlite_cab(&dir, &store, "blue", "big.cab", 8 << 20, &day(1));
    let bucket = store.find_bucket("blue").unwrap().unwrap();
    let lines: Vec<_> = (0..2000)
        .map(|i| line(&format!("r{i}.cab"), "PC1"))
        .collect();
    store.append_log(LogId::Hits(bucket), &lines).unwrap();
    let cabs = dir.path().join("cer.db-cabs");
    let cabs_before = std::fs::metadata(&cabs).unwrap().len();
    assert!(
        cabs_before > 8 << 20,
        "the cab database is {cabs_before} bytes"
    );
    store.remove_cab(ino, Removal::Pruned, None).unwrap();
    let audit = Audit {
        by: "test".into(),
        reason: "free pages".into(),
    };
    store.delete_bucket("blue", &audit).unwrap();
    sweep_all(&store);
    store.sync().unwrap();
    // Checkpoint so that the file reflects the freed pages.
    full_checkpoint(&dir);
    let free = store.usage().unwrap().free_bytes;
    assert!(free > 8 << 20, "{free} bytes free");
    let mut freed = 0;
    let mut steps = 0;
    while let Some(n) = store.release_free_space(1 << 20).unwrap() {
        if n == 0 {
            break;
        }
        assert!(n <= 1 << 20, "a step gave {n} bytes");
        freed += n;
        steps += 1;
    }
    assert!(freed > 8 << 20, "{freed} bytes given back");
    assert!(steps >= 8, "{steps} steps");
    assert!(store.usage().unwrap().free_bytes < 1 << 20);
    full_checkpoint(&dir);
    let size = std::fs::metadata(dir.path().join("cer.db")).unwrap().len();
    assert!(
        size < 1 << 20,
        "the database is {size} bytes after compaction"
    );
    let size = std::fs::metadata(&cabs).unwrap().len();
    assert!(
        size < 1 << 20,
        "the cab database is {size} bytes after compaction"
    );
}

#[test]
fn a_cab_database_made_without_incremental_vacuum_is_converted_by_a_full_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cer.db");
    let store = SqliteStore::open(&path).unwrap();
    let ino = common::store_cab(&store, "blue", "r.cab", 3 << 20);
    store.remove_cab(ino, Removal::Pruned, None).unwrap();
    sweep_all(&store);
    drop(store);
    // The cab database as the first versions made it.
    raw_cabs(&dir)
        .execute_batch("PRAGMA auto_vacuum = NONE; VACUUM;")
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    // Nothing to give back in the metadata database, and no steps in the cab database.
    let mut answer = Some(1);
    for _ in 0..100 {
        answer = store.release_free_space(1 << 20).unwrap();
        if matches!(answer, None | Some(0)) {
            break;
        }
    }
    assert_eq!(answer, None, "the cab database is said to compact in steps");
    drop(store);
    let store = SqliteStore::open_exclusive(&path).unwrap();
    store.vacuum_full().unwrap();
    let mode: i64 = raw_cabs(&dir)
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, 2, "incremental");
    assert_eq!(store.release_free_space(1 << 20).unwrap(), Some(0));
}
