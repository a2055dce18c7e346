//! Behaviour tests of the store through the `Store` trait: the namespace, contents,
//! counters and settings on every backend (SQLite; PostgreSQL on the test server), and what
//! only a SQLite file has (its chunks, WAL, schema version, a full disk, a replaced file).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use cerfs_db::prelude::*;
use cerfs_db::{
    AttrChange, BucketKey, CabState, Counts, LogFields, LogId, LogLine, NewNode, Node, NodeRole,
    OpenError, SettingsScope, SqliteStore, StoreError, CABS_INO, CHUNK_SIZE, COUNTS_INO, ROOT_INO,
    STATUS_INO,
};
use tempfile::TempDir;

// ---- helpers ----

fn temp_store() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("cerfs.db")).unwrap();
    (dir, store)
}

fn reopen(dir: &TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("cerfs.db")).unwrap()
}

fn raw(dir: &TempDir) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.path().join("cerfs.db")).unwrap()
}

fn app_key(n: u32) -> BucketKey {
    let parts = [
        "TestApplication".to_string(),
        "1.0.0.0".to_string(),
        "TestModule".to_string(),
        "1.0.0.0".to_string(),
        format!("{n:08x}"),
    ];
    BucketKey {
        subpath: parts.join("\\"),
        kind: "app".into(),
        app: Some(parts),
    }
}

fn blue_key() -> BucketKey {
    BucketKey {
        subpath: "blue".into(),
        kind: "blue".into(),
        app: None,
    }
}

fn mk(store: &dyn Store, parent: u64, name: &str, role: NodeRole) -> Node {
    mk_in(store, parent, name, role, None)
}

fn mk_in(
    store: &dyn Store,
    parent: u64,
    name: &str,
    role: NodeRole,
    bucket: Option<&BucketKey>,
) -> Node {
    store
        .create_node(&NewNode {
            parent,
            name,
            role,
            mode: if role == NodeRole::Dir { 0o755 } else { 0o644 },
            uid: 1000,
            gid: 1000,
            bucket,
        })
        .unwrap()
}

fn names(nodes: &[Node]) -> Vec<&str> {
    nodes.iter().map(|n| n.name.as_str()).collect()
}

/// A small deterministic pseudo-random sequence (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }
}

/// FNV-1a, 64 bits.
fn fnv(hash: u64, data: &[u8]) -> u64 {
    data.iter().fold(hash, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn read_all(store: &dyn Store, ino: u64) -> Vec<u8> {
    let size = store.node(ino).unwrap().unwrap().size;
    let mut out = Vec::new();
    while (out.len() as u64) < size {
        let part = store.read_at(ino, out.len() as u64, 100_000).unwrap();
        assert!(!part.is_empty());
        out.extend_from_slice(&part);
    }
    out
}

fn chunk_count(dir: &TempDir, ino: u64) -> i64 {
    raw(dir)
        .query_row(
            "SELECT count(*) FROM chunks WHERE ino = ?1",
            [ino as i64],
            |r| r.get(0),
        )
        .unwrap()
}

// ---- namespace ----

#[test]
fn fixed_directories_exist() {
    for backend in common::backends() {
        let store = &*backend.store;
        let root = store.node(ROOT_INO).unwrap().unwrap();
        assert_eq!(
            (root.parent, root.name.as_str(), root.role),
            (ROOT_INO, "", NodeRole::Dir)
        );
        assert_eq!(root.mode, 0o755);
        let kids = store.children(ROOT_INO).unwrap();
        assert_eq!(names(&kids), ["cabs", "counts", "status"]);
        let inos: Vec<u64> = kids.iter().map(|n| n.ino).collect();
        assert_eq!(inos, [CABS_INO, COUNTS_INO, STATUS_INO]);
        assert!(kids
            .iter()
            .all(|n| n.role == NodeRole::Dir && n.parent == ROOT_INO));
        // The root is not its own child.
        assert_eq!(store.lookup(ROOT_INO, "").unwrap(), None);
        assert_eq!(
            store.lookup(ROOT_INO, "cabs").unwrap().unwrap().ino,
            CABS_INO
        );
        assert_eq!(store.node(999).unwrap(), None);
        assert_eq!(store.node(u64::MAX).unwrap(), None);
    }
}

#[test]
fn create_lookup_children() {
    for backend in common::backends() {
        let store = &*backend.store;
        let d = mk(store, CABS_INO, "App", NodeRole::Dir);
        assert_eq!(d.parent, CABS_INO);
        assert!(d.ino > COUNTS_INO);
        for name in ["b.txt", "a.txt", "B.txt", "c"] {
            mk(store, d.ino, name, NodeRole::File);
        }
        let kids = store.children(d.ino).unwrap();
        assert_eq!(names(&kids), ["B.txt", "a.txt", "b.txt", "c"]); // byte order
        let a = store.lookup(d.ino, "a.txt").unwrap().unwrap();
        assert_eq!(a.role, NodeRole::File);
        assert_eq!((a.mode, a.uid, a.gid, a.size), (0o644, 1000, 1000, 0));
        assert_eq!(a.bucket, None);
        assert_eq!(a.cab_state, None);
        assert_eq!(store.node(a.ino).unwrap().unwrap(), a);
        assert_eq!(store.lookup(d.ino, "nope").unwrap(), None);

        // Exists, NotDir, NotFound, bad names.
        let err = store
            .create_node(&NewNode {
                parent: d.ino,
                name: "a.txt",
                role: NodeRole::File,
                mode: 0o644,
                uid: 0,
                gid: 0,
                bucket: None,
            })
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Exists(ref n) if n == "a.txt"),
            "{err:?}"
        );
        let new = |parent, name| NewNode {
            parent,
            name,
            role: NodeRole::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            bucket: None,
        };
        assert!(
            matches!(store.create_node(&new(a.ino, "x")), Err(StoreError::NotDir(i)) if i == a.ino)
        );
        assert!(matches!(
            store.create_node(&new(12345, "x")),
            Err(StoreError::NotFound(12345))
        ));
        assert!(matches!(
            store.create_node(&new(d.ino, "")),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store.create_node(&new(d.ino, "a/b")),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(store.children(a.ino), Err(StoreError::NotDir(_))));
        assert!(matches!(
            store.children(777),
            Err(StoreError::NotFound(777))
        ));
        // Bucket-bound roles need a bucket.
        let mut count = new(d.ino, "count.txt");
        count.role = NodeRole::Count;
        assert!(matches!(
            store.create_node(&count),
            Err(StoreError::Invalid(_))
        ));
    }
}

#[test]
fn create_with_bucket_and_cab_state() {
    for backend in common::backends() {
        let store = &*backend.store;
        let key = app_key(1);
        let dir = mk(store, COUNTS_INO, "TestApplication", NodeRole::Dir);
        let count = mk_in(store, dir.ino, "count.txt", NodeRole::Count, Some(&key));
        let bucket = count.bucket.unwrap();
        assert_eq!(store.ensure_bucket(&key).unwrap(), bucket);
        assert_eq!(store.counts(bucket).unwrap(), Counts::default());
        let cab = mk_in(store, dir.ino, "r1.cab", NodeRole::Cab, Some(&key));
        assert_eq!(cab.bucket, Some(bucket));
        assert_eq!(cab.cab_state, Some(CabState::Writing));
        assert_eq!(store.node(cab.ino).unwrap().unwrap(), cab);
        let hits = mk_in(store, dir.ino, "hits.log", NodeRole::HitsLog, Some(&key));
        assert_eq!(hits.bucket, Some(bucket));
        assert_eq!(hits.cab_state, None);
    }
}

#[test]
fn rename_and_remove() {
    for backend in common::backends() {
        let store = &*backend.store;
        let a = mk(store, ROOT_INO, "a", NodeRole::Dir);
        let b = mk(store, ROOT_INO, "b", NodeRole::Dir);
        let f = mk(store, a.ino, "f", NodeRole::File);
        store.write_at(f.ino, 0, b"hello").unwrap();

        // Within a directory.
        store.rename_node(f.ino, a.ino, "g", false).unwrap();
        assert_eq!(store.lookup(a.ino, "f").unwrap(), None);
        let g = store.lookup(a.ino, "g").unwrap().unwrap();
        assert_eq!(g.ino, f.ino);
        // Between directories; the content follows.
        store.rename_node(f.ino, b.ino, "h", false).unwrap();
        assert!(store.children(a.ino).unwrap().is_empty());
        let h = store.node(f.ino).unwrap().unwrap();
        assert_eq!((h.parent, h.name.as_str()), (b.ino, "h"));
        assert_eq!(store.read_at(f.ino, 0, 100).unwrap(), b"hello");
        // Onto itself: nothing happens.
        store.rename_node(f.ino, b.ino, "h", false).unwrap();

        // Target exists.
        let other = mk(store, b.ino, "other", NodeRole::File);
        store.write_at(other.ino, 0, b"old").unwrap();
        let err = store.rename_node(f.ino, b.ino, "other", false).unwrap_err();
        assert!(matches!(err, StoreError::Exists(_)), "{err:?}");
        store.rename_node(f.ino, b.ino, "other", true).unwrap();
        assert_eq!(store.node(other.ino).unwrap(), None);
        assert_eq!(store.lookup(b.ino, "other").unwrap().unwrap().ino, f.ino);
        assert_eq!(
            store.read_at(other.ino, 0, 10).unwrap_err().to_string(),
            StoreError::NotFound(other.ino).to_string()
        );

        // Directories: non-empty target, empty target, type mismatches, into itself.
        let c = mk(store, ROOT_INO, "c", NodeRole::Dir);
        let err = store.rename_node(c.ino, ROOT_INO, "b", true).unwrap_err();
        assert!(
            matches!(err, StoreError::NotEmpty(i) if i == b.ino),
            "{err:?}"
        );
        store.rename_node(c.ino, ROOT_INO, "a", true).unwrap(); // a is empty
        assert_eq!(store.node(a.ino).unwrap(), None);
        assert!(matches!(
            store.rename_node(c.ino, b.ino, "other", true),
            Err(StoreError::NotDir(_))
        ));
        assert!(
            matches!(store.rename_node(f.ino, ROOT_INO, "cabs", true), Err(StoreError::IsDir(i)) if i == CABS_INO)
        );
        let sub = mk(store, c.ino, "sub", NodeRole::Dir);
        assert!(matches!(
            store.rename_node(c.ino, sub.ino, "x", false),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store.rename_node(c.ino, c.ino, "x", false),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store.rename_node(ROOT_INO, c.ino, "x", false),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store.rename_node(sub.ino, f.ino, "x", false),
            Err(StoreError::NotDir(_))
        ));
        store.rename_node(sub.ino, ROOT_INO, "sub2", false).unwrap();

        // Remove.
        assert!(matches!(store.remove_node(b.ino), Err(StoreError::NotEmpty(i)) if i == b.ino));
        store.remove_node(f.ino).unwrap();
        store.remove_node(b.ino).unwrap();
        assert!(matches!(
            store.remove_node(b.ino),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.remove_node(ROOT_INO),
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(
            names(&store.children(ROOT_INO).unwrap()),
            ["a", "cabs", "counts", "status", "sub2"]
        );
    }
}

#[test]
fn set_attr_changes_and_bumps_ctime() {
    for backend in common::backends() {
        let store = &*backend.store;
        let f = mk(store, ROOT_INO, "f", NodeRole::File);
        let when = std::time::UNIX_EPOCH + std::time::Duration::new(1_000_000, 123);
        let n = store
            .set_attr(
                f.ino,
                &AttrChange {
                    mode: Some(0o600),
                    uid: None,
                    gid: Some(7),
                    mtime: Some(when),
                },
            )
            .unwrap();
        assert_eq!((n.mode, n.uid, n.gid, n.mtime), (0o600, 1000, 7, when));
        assert!(n.ctime >= f.ctime);
        assert_eq!(store.node(f.ino).unwrap().unwrap(), n);
        let before_epoch = std::time::UNIX_EPOCH - std::time::Duration::from_secs(86_400);
        let n = store
            .set_attr(
                f.ino,
                &AttrChange {
                    mtime: Some(before_epoch),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(n.mtime, before_epoch);
        assert!(matches!(
            store.set_attr(4242, &AttrChange::default()),
            Err(StoreError::NotFound(4242))
        ));
    }
}

#[test]
fn inode_numbers_are_never_reused() {
    let (dir, store) = temp_store();
    let a = mk(&store, ROOT_INO, "a", NodeRole::File);
    store.remove_node(a.ino).unwrap();
    let b = mk(&store, ROOT_INO, "a", NodeRole::File);
    assert!(b.ino > a.ino);
    store.remove_node(b.ino).unwrap(); // the highest number is gone...
    drop(store);
    let store = reopen(&dir);
    let c = mk(&store, ROOT_INO, "a", NodeRole::File); // ...and still not handed out again
    assert!(c.ino > b.ino);
}

// ---- byte content ----

#[test]
fn random_writes_match_a_vec_model() {
    let (dir, store) = temp_store();
    let f = mk(&store, ROOT_INO, "f", NodeRole::File);
    let mut model: Vec<u8> = Vec::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let max = 5 * CHUNK_SIZE as u64 + 1234;
    for round in 0..300 {
        match rng.below(10) {
            0 => {
                let size = rng.below(max) as usize;
                store.truncate(f.ino, size as u64).unwrap();
                model.resize(size, 0);
            }
            _ => {
                let offset = rng.below(max) as usize;
                let len = match rng.below(4) {
                    0 => rng.below(16),
                    1 => rng.below(CHUNK_SIZE as u64 * 2 + 3),
                    _ => rng.below(4096),
                } as usize;
                let data = rng.bytes(len);
                let new_size = store.write_at(f.ino, offset as u64, &data).unwrap();
                if len > 0 {
                    if model.len() < offset + len {
                        model.resize(offset + len, 0);
                    }
                    model[offset..offset + len].copy_from_slice(&data);
                }
                assert_eq!(new_size, model.len() as u64, "round {round}");
            }
        }
        assert_eq!(store.node(f.ino).unwrap().unwrap().size, model.len() as u64);
        // A few random reads, some crossing the end.
        for _ in 0..3 {
            let offset = rng.below(max + 100);
            let len = rng.below(3 * CHUNK_SIZE as u64) as u32;
            let got = store.read_at(f.ino, offset, len).unwrap();
            let lo = (offset as usize).min(model.len());
            let hi = (offset as usize + len as usize).min(model.len());
            assert_eq!(got, &model[lo..hi], "round {round} read {offset}+{len}");
        }
    }
    assert_eq!(read_all(&store, f.ino), model);
    // No chunk lies past the end.
    let max_idx: Option<i64> = raw(&dir)
        .query_row(
            "SELECT max(idx) FROM chunks WHERE ino = ?1",
            [f.ino as i64],
            |r| r.get(0),
        )
        .unwrap();
    if let Some(max_idx) = max_idx {
        assert!((max_idx as usize) * CHUNK_SIZE < model.len());
    }
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn sparse_gaps_read_as_zeros() {
    let (dir, store) = temp_store();
    let f = mk(&store, ROOT_INO, "f", NodeRole::File);
    let far = 3 * CHUNK_SIZE as u64 + 17;
    assert_eq!(store.write_at(f.ino, far, b"xyz").unwrap(), far + 3);
    assert_eq!(chunk_count(&dir, f.ino), 1); // the gap takes no space
    let all = read_all(&store, f.ino);
    assert_eq!(all.len() as u64, far + 3);
    assert!(all[..far as usize].iter().all(|b| *b == 0));
    assert_eq!(&all[far as usize..], b"xyz");
    // Inside a short chunk, past its stored bytes.
    let g = mk(&store, ROOT_INO, "g", NodeRole::File);
    store.write_at(g.ino, 0, b"ab").unwrap();
    store.write_at(g.ino, 10, b"cd").unwrap();
    assert_eq!(
        store.read_at(g.ino, 0, 100).unwrap(),
        b"ab\0\0\0\0\0\0\0\0cd"
    );
    // Reads at or past the end are empty; a zero-length write changes nothing.
    assert!(store.read_at(g.ino, 12, 10).unwrap().is_empty());
    assert!(store.read_at(g.ino, 1 << 62, 10).unwrap().is_empty());
    assert!(store.read_at(g.ino, 0, 0).unwrap().is_empty());
    assert_eq!(store.write_at(g.ino, 1000, b"").unwrap(), 12);
    // Offsets past 2^63 are refused, not panicked on.
    assert!(matches!(
        store.write_at(g.ino, u64::MAX - 1, b"zz"),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.truncate(g.ino, u64::MAX),
        Err(StoreError::Invalid(_))
    ));
    // Content of something that has none.
    assert!(matches!(
        store.read_at(ROOT_INO, 0, 1),
        Err(StoreError::IsDir(ROOT_INO))
    ));
    assert!(matches!(
        store.write_at(ROOT_INO, 0, b"x"),
        Err(StoreError::IsDir(ROOT_INO))
    ));
    assert!(matches!(
        store.read_at(999, 0, 1),
        Err(StoreError::NotFound(999))
    ));
}

#[test]
fn truncate_shrinks_and_extends() {
    let (dir, store) = temp_store();
    let f = mk(&store, ROOT_INO, "f", NodeRole::File);
    let mut rng = Rng(42);
    let data = rng.bytes(4 * CHUNK_SIZE + 100);
    store.write_at(f.ino, 0, &data).unwrap();
    assert_eq!(chunk_count(&dir, f.ino), 5);

    let cut = CHUNK_SIZE + 10;
    store.truncate(f.ino, cut as u64).unwrap();
    assert_eq!(store.node(f.ino).unwrap().unwrap().size, cut as u64);
    assert_eq!(chunk_count(&dir, f.ino), 2);
    let stored: i64 = raw(&dir)
        .query_row(
            "SELECT sum(length(data)) FROM chunks WHERE ino = ?1",
            [f.ino as i64],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored as usize, cut);
    assert_eq!(read_all(&store, f.ino), &data[..cut]);

    // Extending shows zeros, not the old bytes.
    store.truncate(f.ino, 3 * CHUNK_SIZE as u64).unwrap();
    let all = read_all(&store, f.ino);
    assert_eq!(&all[..cut], &data[..cut]);
    assert!(all[cut..].iter().all(|b| *b == 0));
    assert_eq!(all.len(), 3 * CHUNK_SIZE);

    // A cut on a chunk boundary, then to zero.
    store.truncate(f.ino, CHUNK_SIZE as u64).unwrap();
    assert_eq!(chunk_count(&dir, f.ino), 1);
    assert_eq!(read_all(&store, f.ino), &data[..CHUNK_SIZE]);
    store.truncate(f.ino, 0).unwrap();
    assert_eq!(chunk_count(&dir, f.ino), 0);
    assert!(store.read_at(f.ino, 0, 10).unwrap().is_empty());
    // Writing again after a shrink does not resurrect old bytes.
    store.write_at(f.ino, 5, b"new").unwrap();
    assert_eq!(store.read_at(f.ino, 0, 100).unwrap(), b"\0\0\0\0\0new");
}

#[test]
fn sixty_four_mib_sequential_round_trip() {
    for backend in common::backends() {
        let store = &*backend.store;
        let f = mk(store, ROOT_INO, "big", NodeRole::File);
        const MIB: usize = 1 << 20;
        let mut rng = Rng(7);
        let mut buf = vec![0u8; MIB];
        let mut written = FNV_START;
        for i in 0..64u64 {
            rng.fill(&mut buf);
            written = fnv(written, &buf);
            store.write_at(f.ino, i * MIB as u64, &buf).unwrap();
        }
        assert_eq!(store.node(f.ino).unwrap().unwrap().size, 64 * MIB as u64);
        let mut read = FNV_START;
        let mut offset = 0u64;
        loop {
            let part = store.read_at(f.ino, offset, 128 * 1024).unwrap();
            if part.is_empty() {
                break;
            }
            read = fnv(read, &part);
            offset += part.len() as u64;
        }
        assert_eq!(offset, 64 * MIB as u64);
        assert_eq!(read, written);
    }
}

// ---- cabs ----

#[test]
fn cab_commit_and_removal() {
    let (dir, store) = temp_store();
    let key = app_key(2);
    let d = mk(&store, CABS_INO, "sub", NodeRole::Dir);
    let cab = mk_in(&store, d.ino, "abc.cab", NodeRole::Cab, Some(&key));
    store.write_at(cab.ino, 0, &[7u8; 100_000]).unwrap();
    let sha = "AB".repeat(32);
    assert!(matches!(
        store.commit_cab(cab.ino, 99, &sha),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.commit_cab(cab.ino, 100_000, "xyz"),
        Err(StoreError::Invalid(_))
    ));
    let f = mk(&store, d.ino, "plain", NodeRole::File);
    assert!(matches!(
        store.commit_cab(f.ino, 0, &sha),
        Err(StoreError::Invalid(_))
    ));
    store.commit_cab(cab.ino, 100_000, &sha).unwrap();
    let n = store.node(cab.ino).unwrap().unwrap();
    assert_eq!(n.cab_state, Some(CabState::Complete));
    assert_eq!(n.size, 100_000);
    // Immutable now.
    assert!(matches!(
        store.write_at(cab.ino, 0, b"x"),
        Err(StoreError::CabComplete(_))
    ));
    assert!(matches!(
        store.truncate(cab.ino, 0),
        Err(StoreError::CabComplete(_))
    ));
    assert!(matches!(
        store.commit_cab(cab.ino, 100_000, &sha),
        Err(StoreError::CabComplete(_))
    ));
    assert_eq!(store.read_at(cab.ino, 99_990, 100).unwrap(), [7u8; 10]);

    let conn = raw(&dir);
    let (state, size, hash, created, name): (String, i64, String, Option<String>, String) = conn
        .query_row(
            "SELECT state, size, sha256, created_at, name FROM cab_rows WHERE ino = ?1",
            [cab.ino as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        (state.as_str(), size, name.as_str()),
        ("complete", 100_000, "abc.cab")
    );
    assert_eq!(hash, "ab".repeat(32));
    assert!(created.unwrap().ends_with('Z'));

    // A rename keeps cabs.name in step; removal takes chunks and the cabs row.
    store.rename_node(cab.ino, d.ino, "def.cab", false).unwrap();
    let name: String = conn
        .query_row(
            "SELECT name FROM cab_rows WHERE ino = ?1",
            [cab.ino as i64],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(name, "def.cab");
    store.remove_node(cab.ino).unwrap();
    assert_eq!(chunk_count(&dir, cab.ino), 0);
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM cab_rows", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
}

#[test]
fn unfinished_cab_is_purged_at_reopen() {
    let (dir, store) = temp_store();
    let key = app_key(3);
    let d = mk(&store, CABS_INO, "sub", NodeRole::Dir);
    let done = mk_in(&store, d.ino, "done.cab", NodeRole::Cab, Some(&key));
    store.write_at(done.ino, 0, b"complete").unwrap();
    store.commit_cab(done.ino, 8, &"0".repeat(64)).unwrap();
    let half = mk_in(&store, d.ino, "half.cab", NodeRole::Cab, Some(&key));
    store.write_at(half.ino, 0, &[1u8; 3 * CHUNK_SIZE]).unwrap();
    assert_eq!(store.purged_at_open(), 0);
    drop(store);

    let store = reopen(&dir);
    assert_eq!(store.purged_at_open(), 1);
    let purged = &store.purged_cabs()[0];
    assert_eq!((purged.ino, purged.name.as_str()), (half.ino, "half.cab"));
    assert_eq!(purged.subpath, key.subpath);
    assert_eq!(purged.bytes, 3 * CHUNK_SIZE as u64);
    assert_eq!(store.node(half.ino).unwrap(), None);
    assert_eq!(chunk_count(&dir, half.ino), 0);
    assert_eq!(store.read_at(done.ino, 0, 100).unwrap(), b"complete");
    assert_eq!(names(&store.children(d.ino).unwrap()), ["done.cab"]);
    drop(store);
    assert_eq!(reopen(&dir).purged_at_open(), 0);
}

// ---- buckets and counters ----

#[test]
fn buckets_and_counters() {
    let (dir, store) = temp_store();
    let k1 = app_key(1);
    let b1 = store.ensure_bucket(&k1).unwrap();
    assert_eq!(store.ensure_bucket(&k1).unwrap(), b1);
    let blue = store.ensure_bucket(&blue_key()).unwrap();
    assert_ne!(blue, b1);
    assert_eq!(store.counts(b1).unwrap(), Counts::default());
    assert_eq!(
        store.add_counts(b1, 1, 1).unwrap(),
        Counts {
            cabs_gathered: 1,
            total_hits: 1
        }
    );
    assert_eq!(
        store.add_counts(b1, 0, 5).unwrap(),
        Counts {
            cabs_gathered: 1,
            total_hits: 6
        }
    );
    assert_eq!(
        store.counts(b1).unwrap(),
        Counts {
            cabs_gathered: 1,
            total_hits: 6
        }
    );
    assert_eq!(store.counts(blue).unwrap(), Counts::default());
    assert!(matches!(
        store.counts(9999),
        Err(StoreError::NoBucket(9999))
    ));
    assert!(matches!(
        store.add_counts(9999, 1, 1),
        Err(StoreError::NoBucket(9999))
    ));
    // A counter stops at 2^63 - 1 instead of failing (no state may refuse a report).
    let top = store.add_counts(b1, u64::MAX, 0).unwrap();
    assert_eq!(top.cabs_gathered, i64::MAX as u64);
    assert_eq!(
        store.add_counts(b1, 1, 1).unwrap().cabs_gathered,
        i64::MAX as u64
    );
    assert!(matches!(
        store.set_counts(
            b1,
            Counts {
                cabs_gathered: u64::MAX,
                total_hits: 0
            }
        ),
        Err(StoreError::Invalid(_))
    ));
    store.set_counts(b1, Counts::default()).unwrap();
    // A kind/app mismatch is refused.
    let bad = BucketKey {
        subpath: "x".into(),
        kind: "app".into(),
        app: None,
    };
    assert!(matches!(
        store.ensure_bucket(&bad),
        Err(StoreError::Invalid(_))
    ));

    let conn = raw(&dir);
    let row: (
        String,
        String,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
    ) = conn
        .query_row(
            "SELECT kind, app, first_seen, last_seen, fault_offset, \
             (SELECT first_seen FROM bucket_rows WHERE subpath = 'blue') \
             FROM bucket_rows WHERE bucket_id = ?1",
            [b1],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(
        (row.0.as_str(), row.1.as_str(), row.4.as_str()),
        ("app", "TestApplication", "00000001")
    );
    assert!(row.2.is_some() && row.3.is_some() && row.2 <= row.3);
    assert_eq!(row.5, None); // never counted
}

#[test]
fn concurrent_add_counts_sum_exactly() {
    for backend in common::backends() {
        let store = Arc::clone(&backend.store);
        let bucket = store.ensure_bucket(&app_key(9)).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..500u64 {
                        store.add_counts(bucket, (i + t) % 2, 1).unwrap();
                        // Readers work alongside the writer.
                        let c = store.counts(bucket).unwrap();
                        assert!(c.total_hits > i);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            store.counts(bucket).unwrap(),
            Counts {
                cabs_gathered: 2000,
                total_hits: 4000
            }
        );
    }
}

#[test]
fn removing_a_count_node_keeps_the_counters() {
    for backend in common::backends() {
        let store = &*backend.store;
        let key = app_key(4);
        let count = mk_in(store, COUNTS_INO, "count.txt", NodeRole::Count, Some(&key));
        let bucket = count.bucket.unwrap();
        store.add_counts(bucket, 1, 3).unwrap();
        store.remove_node(count.ino).unwrap();
        assert_eq!(
            store.counts(bucket).unwrap(),
            Counts {
                cabs_gathered: 1,
                total_hits: 3
            }
        );
    }
}

// ---- settings ----

#[test]
fn settings_replace_and_clear() {
    for backend in common::backends() {
        let store = &*backend.store;
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(store.settings(SettingsScope::Policy).unwrap().is_empty());
        let policy = pairs(&[
            ("Tracking", "YES"),
            ("Crashes per bucket", "10"),
            ("Tracking", "NO"),
        ]);
        store
            .replace_settings(SettingsScope::Policy, &policy)
            .unwrap();
        assert_eq!(store.settings(SettingsScope::Policy).unwrap(), policy);

        let key = app_key(5);
        let status = mk_in(
            store,
            STATUS_INO,
            "status.txt",
            NodeRole::Status,
            Some(&key),
        );
        let scope = SettingsScope::Status(status.bucket.unwrap());
        let st = pairs(&[("iData", "1"), ("Bucket", "42"), ("Response", "1")]);
        store.replace_settings(scope, &st).unwrap();
        assert_eq!(store.settings(scope).unwrap(), st);
        let st2 = pairs(&[("Response", "http://x/"), ("iData", "0")]);
        store.replace_settings(scope, &st2).unwrap();
        assert_eq!(store.settings(scope).unwrap(), st2);
        assert_eq!(store.settings(SettingsScope::Policy).unwrap(), policy);
        assert!(matches!(
            store.settings(SettingsScope::Status(777)),
            Err(StoreError::NoBucket(777))
        ));
        assert!(matches!(
            store.replace_settings(SettingsScope::Status(777), &st),
            Err(StoreError::NoBucket(777))
        ));

        // Removing status.txt clears its settings, not the policy; removing policy.txt clears those.
        store.remove_node(status.ino).unwrap();
        assert!(store.settings(scope).unwrap().is_empty());
        assert_eq!(store.settings(SettingsScope::Policy).unwrap(), policy);
        let pol = mk(store, ROOT_INO, "policy.txt", NodeRole::Policy);
        store.remove_node(pol.ino).unwrap();
        assert!(store.settings(SettingsScope::Policy).unwrap().is_empty());
        store.replace_settings(SettingsScope::Policy, &[]).unwrap();
    }
}

// ---- logs ----

fn line(rng: &mut Rng, i: usize) -> LogLine {
    if rng.below(5) == 0 {
        let junk = format!(
            "garbage line {i} {}\r\n",
            "x".repeat(rng.below(300) as usize)
        );
        return LogLine {
            bytes: junk.into_bytes(),
            fields: None,
        };
    }
    let fields = LogFields {
        time: format!("{:02}:{:02}:{:02}", i % 24, i % 60, (i * 7) % 60),
        date: format!("{:02}-{:02}-2024", 1 + i % 12, 1 + i % 28),
        machine: format!("PC{i}"),
        user: "unknown user".into(),
        item: format!("report{i}.cab"),
        client_time: format!(
            "2024-{:02}-{:02}T{:02}:{:02}:{:02}",
            1 + i % 12,
            1 + i % 28,
            i % 24,
            i % 60,
            (i * 7) % 60
        ),
    };
    let text = format!(
        "{}  {}\t{}\t{}\t{}\r\n",
        fields.time, fields.date, fields.machine, fields.user, fields.item
    );
    LogLine {
        bytes: text.into_bytes(),
        fields: Some(fields),
    }
}

#[test]
fn logs_append_and_read_anywhere() {
    let (dir, store) = temp_store();
    let bucket = store.ensure_bucket(&app_key(6)).unwrap();
    let hits = LogId::Hits(bucket);
    assert_eq!(store.log_len(LogId::Crash).unwrap(), 0);
    assert_eq!(store.log_len(hits).unwrap(), 0);
    assert!(store.read_log(hits, 0, 100).unwrap().is_empty());
    assert!(matches!(
        store.log_len(LogId::Hits(555)),
        Err(StoreError::NoBucket(555))
    ));
    assert!(matches!(
        store.append_log(LogId::Hits(555), &[]),
        Err(StoreError::NoBucket(555))
    ));

    let mut rng = Rng(99);
    let mut model = Vec::new();
    let mut i = 0;
    for _ in 0..40 {
        let batch: Vec<LogLine> = (0..rng.below(8))
            .map(|_| {
                i += 1;
                line(&mut rng, i)
            })
            .collect();
        for l in &batch {
            model.extend_from_slice(&l.bytes);
        }
        assert_eq!(store.append_log(hits, &batch).unwrap(), model.len() as u64);
    }
    // An empty line is no line.
    let empty = LogLine {
        bytes: Vec::new(),
        fields: None,
    };
    assert_eq!(
        store.append_log(hits, &[empty]).unwrap(),
        model.len() as u64
    );
    assert_eq!(store.log_len(hits).unwrap(), model.len() as u64);
    assert_eq!(store.log_len(LogId::Crash).unwrap(), 0);
    assert_eq!(store.read_log(hits, 0, u32::MAX).unwrap(), model);
    for _ in 0..500 {
        let offset = rng.below(model.len() as u64 + 50);
        let len = rng.below(2000) as u32;
        let lo = (offset as usize).min(model.len());
        let hi = (offset as usize + len as usize).min(model.len());
        assert_eq!(
            store.read_log(hits, offset, len).unwrap(),
            &model[lo..hi],
            "{offset}+{len}"
        );
    }

    // crash.log is separate.
    let c = line(&mut rng, 1);
    assert_eq!(
        store
            .append_log(LogId::Crash, std::slice::from_ref(&c))
            .unwrap(),
        c.bytes.len() as u64
    );
    assert_eq!(store.read_log(LogId::Crash, 0, 1000).unwrap(), c.bytes);

    // The rows: offsets, parsed columns, flags.
    let conn = raw(&dir);
    let (lines, flagged, parsed, bad_offsets): (i64, i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), sum(flagged), count(client_time), \
             sum(start_offset + length(bytes) <> coalesce((SELECT min(n.start_offset) FROM log_lines n \
                 WHERE n.log_id = l.log_id AND n.start_offset > l.start_offset), ?2)) \
             FROM log_lines l WHERE log_id = ?1",
            [bucket, model.len() as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(lines as usize, i);
    assert_eq!(flagged + parsed, lines);
    assert!(flagged > 0 && parsed > 0);
    assert_eq!(bad_offsets, 0);
    let (machine, ct): (String, String) = conn
        .query_row(
            "SELECT machine, client_time FROM log_lines WHERE flagged = 0 ORDER BY seq LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let n: usize = machine.trim_start_matches("PC").parse().unwrap();
    let expected = format!(
        "2024-{:02}-{:02}T{:02}:{:02}:{:02}",
        1 + n % 12,
        1 + n % 28,
        n % 24,
        n % 60,
        (n * 7) % 60
    );
    assert_eq!(ct, expected);
}

#[test]
fn read_log_seeks_by_index() {
    let (dir, store) = temp_store();
    store
        .append_log(LogId::Crash, &[line(&mut Rng(1), 1)])
        .unwrap();
    drop(store);
    let conn = raw(&dir);
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT start_offset, bytes FROM log_lines \
             WHERE log_id = ?1 AND start_offset < ?3 AND start_offset >= coalesce(( \
                 SELECT start_offset FROM log_lines WHERE log_id = ?1 AND start_offset <= ?2 \
                 ORDER BY start_offset DESC LIMIT 1), 0) \
             ORDER BY start_offset",
        )
        .unwrap()
        .query_map([0, 0, 10], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(plan.iter().all(|p| !p.contains("SCAN")), "{plan:?}");
    assert!(
        plan.iter().any(|p| p.contains("log_lines_offset")),
        "{plan:?}"
    );
}

// ---- the file ----

#[test]
fn reopen_keeps_everything() {
    let (dir, store) = temp_store();
    let key = app_key(8);
    let d = mk(&store, CABS_INO, "TestApplication", NodeRole::Dir);
    let f = mk(&store, d.ino, "notes", NodeRole::File);
    store.write_at(f.ino, 100, b"persisted").unwrap();
    let cab = mk_in(&store, d.ino, "r.cab", NodeRole::Cab, Some(&key));
    store.write_at(cab.ino, 0, b"MSCF").unwrap();
    store.commit_cab(cab.ino, 4, &"f".repeat(64)).unwrap();
    let bucket = cab.bucket.unwrap();
    store.add_counts(bucket, 1, 2).unwrap();
    let pairs = vec![("iData".to_string(), "1".to_string())];
    store
        .replace_settings(SettingsScope::Status(bucket), &pairs)
        .unwrap();
    let l = line(&mut Rng(5), 5);
    store
        .append_log(LogId::Hits(bucket), std::slice::from_ref(&l))
        .unwrap();
    let before: Vec<Node> = store.children(d.ino).unwrap();
    drop(store);

    let store = reopen(&dir);
    assert_eq!(store.purged_at_open(), 0);
    assert_eq!(store.children(d.ino).unwrap(), before);
    assert_eq!(
        store.read_at(f.ino, 95, 100).unwrap(),
        b"\0\0\0\0\0persisted"
    );
    assert_eq!(store.read_at(cab.ino, 0, 100).unwrap(), b"MSCF");
    assert_eq!(store.ensure_bucket(&key).unwrap(), bucket);
    assert_eq!(
        store.counts(bucket).unwrap(),
        Counts {
            cabs_gathered: 1,
            total_hits: 2
        }
    );
    assert_eq!(
        store.settings(SettingsScope::Status(bucket)).unwrap(),
        pairs
    );
    assert_eq!(
        store.read_log(LogId::Hits(bucket), 0, 1000).unwrap(),
        l.bytes
    );
    assert_eq!(store.integrity_check().unwrap(), "ok");
    assert!(store.path().is_absolute());
    assert!(store.path().ends_with("cerfs.db"));
}

#[test]
fn wal_mode_and_schema_version() {
    let (dir, store) = temp_store();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let conn = raw(&dir);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, cerfs_db::SCHEMA_VERSION);
    let fk: Vec<String> = conn
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(fk.is_empty(), "{fk:?}");
}

#[test]
fn a_newer_schema_is_refused() {
    let (dir, store) = temp_store();
    drop(store);
    raw(&dir).pragma_update(None, "user_version", 99).unwrap();
    let err = SqliteStore::open(&dir.path().join("cerfs.db")).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::TooNew {
                found: 99,
                known: cerfs_db::SCHEMA_VERSION
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_full_database_reports_full_and_stays_usable() {
    let (_dir, store) = temp_store();
    let f = mk(&store, ROOT_INO, "f", NodeRole::File);
    let limit = store.set_size_limit(2 << 20).unwrap();
    assert!(limit <= 2 << 20);
    let data = vec![0x5a; 256 * 1024];
    let mut offset = 0u64;
    let err = loop {
        match store.write_at(f.ino, offset, &data) {
            Ok(_) => offset += data.len() as u64,
            Err(e) => break e,
        }
        assert!(offset < 64 << 20, "never got full");
    };
    assert!(matches!(err, StoreError::Full), "{err:?}");
    // The failed write left nothing behind, and the store still works.
    assert_eq!(store.node(f.ino).unwrap().unwrap().size, offset);
    assert_eq!(read_all(&store, f.ino).len() as u64, offset);
    store.truncate(f.ino, 0).unwrap();
    store.write_at(f.ino, 0, b"ok").unwrap();
    assert_eq!(store.read_at(f.ino, 0, 10).unwrap(), b"ok");
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn open_creates_missing_file_only_in_existing_dir() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/cerfs.db");
    assert!(SqliteStore::open(Path::new(&missing)).is_err());
}

/// A database file replaced (mv) or deleted under an open store: nothing more is written to
/// the old file, the caller is told, and new reader connections are not opened on the
/// new file either.
#[test]
fn a_replaced_database_file_is_refused() {
    let (dir, store) = temp_store();
    let path = dir.path().join("cerfs.db");
    mk(&store, ROOT_INO, "before", NodeRole::Dir);
    store.check_identity().expect("still the same file");
    let other = dir.path().join("other.db");
    std::fs::copy(&path, &other).unwrap();
    std::fs::rename(&other, &path).unwrap();
    for err in [
        store.check_identity().unwrap_err(),
        store
            .create_node(&NewNode {
                parent: ROOT_INO,
                name: "after",
                role: NodeRole::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                bucket: None,
            })
            .unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::Replaced { .. }), "{err}");
        assert!(err.to_string().contains("replaced or deleted"), "{err}");
    }
    std::fs::remove_file(&path).unwrap();
    let gone = store.check_identity().unwrap_err();
    assert!(gone.to_string().contains("it was deleted"), "{gone}");
}

/// The database, its -wal and -shm are created private to the server (mode 0600), and an
/// existing database readable by others is made private at open.
#[cfg(unix)]
#[test]
fn database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cer.db");
    let mode = |suffix: &str| {
        let file = dir.path().join(format!("cer.db{suffix}"));
        std::fs::metadata(file).unwrap().permissions().mode() & 0o777
    };
    let store = SqliteStore::open(&path).unwrap();
    mk(&store, ROOT_INO, "d", NodeRole::Dir);
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(mode(suffix), 0o600, "cer.db{suffix}");
    }
    drop(store);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _store = SqliteStore::open(&path).unwrap();
    assert_eq!(mode(""), 0o600);
}
