//! Several heads on one PostgreSQL database: what a head that dies leaves, and who removes
//! it. Runs on the test PostgreSQL server only (`CERFS_TEST_POSTGRES`; see backends.rs).

#![allow(clippy::unwrap_used)]

mod common;

use cerfs_db::prelude::*;
use cerfs_db::{BucketKey, CabState, LogId, LogLine, PgStore, SettingsScope, StoreError};

fn key() -> BucketKey {
    BucketKey {
        subpath: "blue".into(),
        kind: "blue".into(),
        app: None,
    }
}

/// Waits until the server has ended the session of a head that was dropped: its lock
/// goes with its backend process, which exits a moment after the client said goodbye.
fn gone(url: &str, head_id: i64) {
    let mut admin = postgres::Client::connect(url, postgres::NoTls).unwrap();
    cerfs_testkit::poll_until(
        std::time::Duration::from_secs(10),
        "the dropped head's session ends",
        || {
            let held: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                     AND classid::bigint = 1667592808 AND objid::bigint = $1",
                    &[&head_id],
                )
                .unwrap()
                .get(0);
            (held == 0).then_some(())
        },
    );
}

/// A new upload `name` in cabs/blue (made when missing) with `bytes` written.
fn upload(store: &PgStore, name: &str, bytes: &[u8]) -> u64 {
    let ino = common::new_cab(store, "blue", name);
    store.write_at(ino, 0, bytes).unwrap();
    ino
}

#[test]
fn a_gone_heads_uploads_are_removed_by_another_and_a_live_heads_never() {
    let Some(db) = cerfs_testkit::TestDatabase::create() else {
        return;
    };
    let a = PgStore::open(&db.url).unwrap();
    let b = PgStore::open(&db.url).unwrap();
    assert_ne!(a.head_id(), b.head_id());
    let done = upload(&a, "done.cab", b"MSCF complete");
    a.commit_cab(done, 13, &"0".repeat(64)).unwrap();
    let open = upload(&a, "open.cab", &[1u8; 300_000]);
    // A lives: its upload is not B's to remove.
    assert!(b.recover_dead_heads().unwrap().is_empty());
    assert_eq!(
        b.node(open).unwrap().unwrap().cab_state,
        Some(CabState::Writing)
    );
    // A dies (its connections close): the next head to look removes what A left.
    let a_id = a.head_id();
    drop(a);
    gone(&db.url, a_id);
    let removed = b.recover_dead_heads().unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(
        (removed[0].name.as_str(), removed[0].bytes),
        ("open.cab", 300_000)
    );
    assert!(b.node(open).unwrap().is_none());
    assert_eq!(
        b.node(done).unwrap().unwrap().cab_state,
        Some(CabState::Complete)
    );
    assert!(b.recover_dead_heads().unwrap().is_empty());
    // A head that starts later does the same at open.
    let c = PgStore::open(&db.url).unwrap();
    let left = upload(&c, "left.cab", b"MSCF");
    let c_id = c.head_id();
    drop(c);
    gone(&db.url, c_id);
    let d = PgStore::open(&db.url).unwrap();
    assert_eq!(d.purged_at_open(), 1);
    assert_eq!(d.purged_cabs()[0].ino, left);
}

#[test]
fn a_head_cut_off_from_the_database_cannot_complete_an_upload_given_up() {
    let Some(db) = cerfs_testkit::TestDatabase::create() else {
        return;
    };
    let a = PgStore::open(&db.url).unwrap();
    let b = PgStore::open(&db.url).unwrap();
    let cab = upload(&a, "cut.cab", b"MSCF part");
    // A's lock connection ends (the network, a DBA's pg_terminate_backend): A looks gone.
    let killer = postgres::Client::connect(&db.url, postgres::NoTls);
    let mut killer = killer.unwrap();
    let killed: i64 = killer
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks \
             WHERE locktype = 'advisory' AND objsubid = 1 \
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND classid::bigint = 1667592808 AND objid::bigint = $1",
            &[&a.head_id()],
        )
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    // B can take A's lock once the server has ended that backend.
    let removed = cerfs_testkit::poll_until(
        std::time::Duration::from_secs(10),
        "B removes the upload of A, which looks gone",
        || Some(b.recover_dead_heads().unwrap()).filter(|r| !r.is_empty()),
    );
    assert_eq!(removed.len(), 1);
    // A, still running, may not write into or complete the upload B gave up.
    assert!(matches!(
        a.write_at(cab, 9, b"more"),
        Err(StoreError::NotFound(_) | StoreError::Invalid(_))
    ));
    assert!(matches!(
        a.commit_cab(cab, 9, &"0".repeat(64)),
        Err(StoreError::NotFound(_) | StoreError::Invalid(_))
    ));
    // A's next upload registers A again, under a new id, and completes.
    let old = a.head_id();
    let again = upload(&a, "again.cab", b"MSCF");
    assert_ne!(a.head_id(), old);
    a.commit_cab(again, 4, &"0".repeat(64)).unwrap();
    // And B leaves the new A alone.
    let next = upload(&a, "next.cab", b"MSCF");
    assert!(b.recover_dead_heads().unwrap().is_empty());
    assert_eq!(
        a.node(next).unwrap().unwrap().cab_state,
        Some(CabState::Writing)
    );
}

#[test]
fn a_head_hears_of_every_other_heads_changes_and_not_of_its_own() {
    let Some(db) = cerfs_testkit::TestDatabase::create() else {
        return;
    };
    let a = PgStore::open(&db.url).unwrap();
    let b = PgStore::open(&db.url).unwrap();
    let bucket = a.ensure_bucket(&key()).unwrap();
    let (a0, b0) = (a.outside_changes().unwrap(), b.outside_changes().unwrap());
    // A's change first, then B's: when A hears of B's, its own came before it.
    a.add_counts(bucket, 1, 1).unwrap();
    let heard = |store: &PgStore, from: u64| {
        cerfs_testkit::poll_until(
            std::time::Duration::from_secs(10),
            "a notification from the other head",
            || Some(store.outside_changes().unwrap()).filter(|n| *n > from),
        )
    };
    assert_eq!(heard(&b, b0), b0 + 1, "B hears of A's increment");
    b.replace_settings(
        SettingsScope::Status(bucket),
        &[("Bucket".into(), "7".into())],
    )
    .unwrap();
    assert_eq!(
        heard(&a, a0),
        a0 + 1,
        "A hears of B's settings, not of its own increment"
    );
    a.append_log(
        LogId::Hits(bucket),
        &[LogLine {
            bytes: b"x\r\n".to_vec(),
            fields: None,
        }],
    )
    .unwrap();
    assert_eq!(heard(&b, b0 + 1), b0 + 2, "B hears of A's log line");
}

#[test]
fn one_head_at_a_time_runs_the_background_jobs_and_another_takes_over() {
    let Some(db) = cerfs_testkit::TestDatabase::create() else {
        return;
    };
    let a = PgStore::open(&db.url).unwrap();
    let b = PgStore::open(&db.url).unwrap();
    let leads = |s: &PgStore| LifecycleStore::leads_background(s).unwrap();
    assert!(leads(&a));
    assert!(!leads(&b), "A leads: B waits");
    assert!(leads(&a), "A keeps leading, asked again");
    assert!(!leads(&b));
    // A goes (its lock connection ends with it): the next head that asks takes over.
    drop(a);
    poll_until_b_leads(&b);
    let c = PgStore::open(&db.url).unwrap();
    assert!(!leads(&c), "B leads now: C waits");
}

/// A's session ends on the server shortly after its connection closes.
fn poll_until_b_leads(b: &PgStore) {
    cerfs_testkit::poll_until(
        std::time::Duration::from_secs(10),
        "B takes over the background jobs",
        || LifecycleStore::leads_background(b).unwrap().then_some(()),
    );
}

#[test]
fn one_indexer_at_a_time_indexes_and_another_takes_over() {
    let Some(db) = cerfs_testkit::TestDatabase::create() else {
        return;
    };
    let store = PgStore::open(&db.url).unwrap();
    let ino = upload(&store, "a.cab", b"MSCF not really");
    store.commit_cab(ino, 15, &"0".repeat(64)).unwrap();
    let location = cerfs_db::StoreLocation::Postgres(db.url.clone());
    let mut a = cerfs_db::IndexDb::open_at(&location).unwrap();
    let mut b = cerfs_db::IndexDb::open_at(&location).unwrap();
    assert!(a.lead().unwrap());
    assert!(!b.lead().unwrap(), "A's indexer indexes: B's waits");
    assert!(a.lead().unwrap(), "A keeps the queue, asked again");
    assert_eq!(a.pending(10).unwrap().len(), 1);
    // A goes (its connection ends with it): the next indexer that asks takes over.
    drop(a);
    cerfs_testkit::poll_until(
        std::time::Duration::from_secs(10),
        "B's indexer takes over",
        || b.lead().unwrap().then_some(()),
    );
    let mut c = cerfs_db::IndexDb::open_at(&location).unwrap();
    assert!(!c.lead().unwrap(), "B indexes now: C waits");
}
