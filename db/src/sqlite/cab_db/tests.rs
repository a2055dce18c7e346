//! The cab database's failures: a full disk mid-group, a panic in the writer thread.

use super::*;

/// A full disk in the middle of a group (SQLite rolls the group back by itself when a
/// spilled page cannot be written): every cab of the group fails, and the next group
/// works once there is room again.
#[test]
fn a_group_lost_to_a_full_disk_fails_all_its_cabs_and_the_next_one_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = CabDb::open(&dir.path().join("cer.db")).expect("open");
    let chunk = vec![7u8; CAB_CHUNK as usize];
    db.write(1, 0, &chunk).expect("first cab");
    db.commit_cab(1).expect("first cab durable");
    let pages: i64 = guard(&db.writer)
        .conn
        .pragma_query_value(None, "page_count", |r| r.get(0))
        .expect("page_count");
    // Room for about three more chunks: 17 pages each, the cache spills after four.
    guard(&db.writer)
        .conn
        .pragma_update(None, "max_page_count", pages + 3 * 17)
        .expect("cap");
    db.write(2, 0, &chunk).expect("queued");
    for i in 0..8 {
        // The writer may have lost the group already: this cab's next write says so.
        if let Err(e) = db.write(3, i * CAB_CHUNK, &chunk) {
            assert!(matches!(e, StoreError::Full), "cab 3: {e:?}");
            break;
        }
    }
    // Room again before anything commits: a new cab starts a new group. The lost
    // cabs say the disk was full (ENOSPC), not some invalid request.
    guard(&db.writer)
        .conn
        .pragma_update(None, "max_page_count", i64::from(u32::MAX))
        .expect("uncap");
    db.write(4, 0, &chunk).expect("room again");
    db.commit_cab(4).expect("a new cab commits");
    assert!(
        db.commit_cab(2).is_err(),
        "cab 2's bytes went with the group"
    );
    assert!(db.commit_cab(3).is_err(), "cab 3 did not fit");
    let mut back = vec![0u8; CAB_CHUNK as usize];
    db.read_into(4, 0, &mut back).expect("read back");
    assert_eq!(back, chunk);
    db.read_into(1, 0, &mut back).expect("read back");
    assert_eq!(back, chunk, "the committed cab is intact");
}

/// A panic in the writer thread (here an offset overflow, which the store's own
/// callers never pass: debug builds check it) fails that cab and nothing hangs.
#[cfg(debug_assertions)]
#[test]
fn a_panic_storing_a_chunk_fails_its_cab_and_the_queue_drains() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = CabDb::open(&dir.path().join("cer.db")).expect("open");
    let chunk = vec![3u8; CAB_CHUNK as usize];
    let last = u64::MAX / CAB_CHUNK * CAB_CHUNK;
    db.write(1, last, &chunk).expect("queued");
    assert!(
        db.commit_cab(1).is_err(),
        "the cab whose chunk panicked fails"
    );
    db.write(2, 0, &chunk).expect("the next cab is taken");
    db.commit_cab(2).expect("and commits");
}

/// The cabs another connection sees committed in the file at `path`.
fn committed_cabs(path: &Path) -> Vec<i64> {
    let conn = Connection::open_with_flags(
        cab_db_path(path),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open read-only");
    conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
    let mut stmt = conn
        .prepare("SELECT DISTINCT ino FROM cab_chunks ORDER BY ino")
        .expect("prepare");
    let rows = stmt.query_map([], |r| r.get(0)).expect("query");
    rows.collect::<rusqlite::Result<_>>().expect("rows")
}

/// Group commit: a close whose bytes were in the group another close committed returns
/// without a commit of its own (which would also commit what others wrote since).
#[test]
fn a_close_finds_its_bytes_committed_by_the_close_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cer.db");
    let db = CabDb::open(&path).expect("open");
    db.write(1, 0, b"first cab").expect("write");
    db.write(2, 0, b"second cab").expect("write");
    assert!(committed_cabs(&path).is_empty(), "nothing committed yet");
    db.commit_cab(1).expect("commit");
    assert_eq!(
        committed_cabs(&path),
        [1, 2],
        "one commit made both durable"
    );
    db.write(3, 0, b"third cab, still being written")
        .expect("write");
    db.commit_cab(2).expect("already durable");
    assert_eq!(
        committed_cabs(&path),
        [1, 2],
        "the second close committed nothing: cab 3 is still in the open group"
    );
    db.commit_cab(3).expect("commit");
    assert_eq!(committed_cabs(&path), [1, 2, 3]);
}

/// Many closes at once: every one returns once its own bytes are durable, and they all
/// read back.
#[test]
fn concurrent_closes_all_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cer.db");
    let db = CabDb::open(&path).expect("open");
    std::thread::scope(|s| {
        for ino in 1..=16u64 {
            let db = &db;
            s.spawn(move || {
                for round in 0..8u64 {
                    let cab = ino * 100 + round;
                    db.write(cab, 0, &cab.to_le_bytes()).expect("write");
                    db.commit_cab(cab).expect("commit");
                }
            });
        }
    });
    let committed = committed_cabs(&path);
    assert_eq!(committed.len(), 16 * 8, "every close's cab is committed");
    let mut back = [0u8; 8];
    db.read_into(1607, 0, &mut back).expect("read");
    assert_eq!(u64::from_le_bytes(back), 1607);
}
