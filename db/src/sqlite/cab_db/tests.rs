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
