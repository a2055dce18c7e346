//! The background WAL checkpointer: commits reach the database file without the writer
//! checkpointing (its own threshold is a 64 MiB backstop), and the WAL stays bounded.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use cerfs_db::prelude::*;
use cerfs_db::{NewNode, NodeRole, SqliteStore, ROOT_INO};

/// Bytes written: well below the writer's 64 MiB backstop.
const WRITTEN: usize = 16 << 20;

#[test]
fn commits_are_checkpointed_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cerfs.db");
    let store = SqliteStore::open(&db).unwrap();
    let node = store
        .create_node(&NewNode {
            parent: ROOT_INO,
            name: "big.bin",
            role: NodeRole::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            bucket: None,
        })
        .unwrap();
    let piece = vec![0x5a_u8; 1 << 20];
    for i in 0..WRITTEN / piece.len() {
        store
            .write_at(node.ino, (i * piece.len()) as u64, &piece)
            .unwrap();
    }
    // Only a checkpoint moves the pages from the -wal file into the database file.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let main = std::fs::metadata(&db).unwrap().len();
        if main >= WRITTEN as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the database file holds {main} bytes after 60 s: nothing checkpointed the WAL"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let back = store.read_at(node.ino, (WRITTEN - 10) as u64, 10).unwrap();
    assert_eq!(back, vec![0x5a_u8; 10]);
    drop(store);
    let wal = dir.path().join("cerfs.db-wal");
    assert!(
        !wal.exists(),
        "closing the store checkpoints and removes the WAL"
    );
}
