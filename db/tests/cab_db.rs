//! Cab bytes live in the cab database (`<db>-cabs`), and every path that reads, checks,
//! removes, recovers or backs up a cab's bytes finds them there; cabs under 1 MiB, and
//! cabs of older stores with their first 4 MiB (or all) in the metadata database's
//! `chunks`, read in place.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;

use cerfs_db::prelude::*;
use cerfs_db::{CabCheck, CabReader, Removal, SqliteStore};
use sha2::{Digest, Sha256};

const MIB: usize = 1 << 20;

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn cab_db(dir: &tempfile::TempDir) -> rusqlite::Connection {
    common::raw(&dir.path().join("cer.db-cabs"))
}

fn high_chunks(dir: &tempfile::TempDir, ino: u64) -> i64 {
    cab_db(dir)
        .query_row(
            "SELECT count(*) FROM cab_chunks WHERE ino = ?1",
            [ino as i64],
            |r| r.get(0),
        )
        .unwrap()
}

fn low_chunks(dir: &tempfile::TempDir, ino: u64) -> i64 {
    common::raw(&dir.path().join("cer.db"))
        .query_row(
            "SELECT count(*) FROM chunks WHERE ino = ?1",
            [ino as i64],
            |r| r.get(0),
        )
        .unwrap()
}

/// A cab upload in bucket `blue`, written in `piece`-byte writes; committed when asked.
fn upload(store: &SqliteStore, name: &str, data: &[u8], piece: usize, commit: bool) -> u64 {
    let ino = common::new_cab(store, "blue", name);
    for (i, part) in data.chunks(piece).enumerate() {
        store.write_at(ino, (i * piece) as u64, part).unwrap();
    }
    if commit {
        let sha = hex::encode(Sha256::digest(data));
        store.commit_cab(ino, data.len() as u64, &sha).unwrap();
    }
    ino
}

fn read_back(store: &SqliteStore, ino: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < len {
        let piece = store.read_at(ino, out.len() as u64, 300_000).unwrap();
        assert!(!piece.is_empty(), "short read at {}", out.len());
        out.extend(piece);
    }
    out
}

/// Rewrites cab `ino` the way stores from before all cab bytes went to the cab database
/// kept it: its first `split` bytes (a multiple of 1 MiB) as 64 KiB chunks of `chunks`,
/// the rest in the cab database counted from there.
fn to_older_layout(dir: &tempfile::TempDir, ino: u64, split: usize) {
    let meta = common::raw(&dir.path().join("cer.db"));
    let cabs = cab_db(dir);
    let ino = ino as i64;
    let low = (split / MIB) as i64;
    let mut stmt = cabs
        .prepare("SELECT idx, data FROM cab_chunks WHERE ino = ?1 AND idx < ?2")
        .unwrap();
    let moved: Vec<(i64, Vec<u8>)> = stmt
        .query_map([ino, low], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (idx, data) in moved {
        for (k, piece) in data.chunks(64 << 10).enumerate() {
            meta.execute(
                "INSERT INTO chunks (ino, idx, data) VALUES (?1, ?2, ?3)",
                rusqlite::params![ino, idx * 16 + k as i64, piece],
            )
            .unwrap();
        }
    }
    cabs.execute(
        "DELETE FROM cab_chunks WHERE ino = ?1 AND idx < ?2",
        [ino, low],
    )
    .unwrap();
    cabs.execute(
        "UPDATE cab_chunks SET idx = idx - ?2 WHERE ino = ?1",
        [ino, low],
    )
    .unwrap();
    meta.execute(
        "UPDATE cab_rows SET bytes_from = ?2 WHERE ino = ?1",
        [ino, split as i64],
    )
    .unwrap();
}

#[test]
fn a_cab_lives_in_the_cab_database_and_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("cer.db")).unwrap();
    // 6.5 MiB in writes that do not line up with the chunks.
    let data = bytes(6 * MIB + MIB / 2, 7);
    let ino = upload(&store, "big.cab", &data, 61_440, true);
    assert_eq!(low_chunks(&dir, ino), 0, "nothing in the metadata database");
    assert_eq!(high_chunks(&dir, ino), 7, "6.5 MiB in 1 MiB chunks");
    assert_eq!(read_back(&store, ino, data.len()), data);
    // A read across two chunks.
    let across = store.read_at(ino, MIB as u64 - 10, 20).unwrap();
    assert_eq!(across, data[MIB - 10..MIB + 10]);
    assert_eq!(store.check_cab(ino).unwrap(), CabCheck::Sound);
    // The indexer's reader sees the same bytes.
    let mut reader = CabReader::open(&dir.path().join("cer.db"), ino as i64).unwrap();
    let mut all = Vec::new();
    reader.read_to_end(&mut all).unwrap();
    assert_eq!(all, data);
    drop(store);
    // After a restart too, and a damaged byte in the cab database is found.
    let store = SqliteStore::open(&dir.path().join("cer.db")).unwrap();
    assert_eq!(read_back(&store, ino, data.len()), data);
    cab_db(&dir)
        .execute(
            "UPDATE cab_chunks SET data = CAST(zeroblob(length(data)) AS BLOB) \
             WHERE ino = ?1 AND idx = 1",
            [ino as i64],
        )
        .unwrap();
    assert!(matches!(
        store.check_cab(ino).unwrap(),
        CabCheck::Corrupt(_)
    ));
    // The file is the server's alone, like the database.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("cer.db-cabs"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
}

/// Cab `ino`'s `bytes_from` (NULL: all its bytes in `chunks`).
fn bytes_from(dir: &tempfile::TempDir, ino: u64) -> Option<i64> {
    common::raw(&dir.path().join("cer.db"))
        .query_row(
            "SELECT bytes_from FROM cab_rows WHERE ino = ?1",
            [ino as i64],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn a_cab_under_one_chunk_is_stored_whole_in_the_transaction_that_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cer.db");
    let store = SqliteStore::open(&path).unwrap();
    let data = bytes(300_000, 11);
    let sha = hex::encode(Sha256::digest(&data));
    // A refused commit (a bad hash) leaves nothing: the bytes went with it.
    let ino = common::new_cab(&store, "blue", "small.cab");
    assert!(store.commit_whole_cab(ino, &data, "not a hash").is_err());
    assert_eq!(store.node(ino).unwrap().unwrap().size, 0);
    assert_eq!(low_chunks(&dir, ino), 0, "no bytes without the commit");
    assert_eq!(bytes_from(&dir, ino), Some(0), "nor a changed split");
    store.commit_whole_cab(ino, &data, &sha).unwrap();
    assert_eq!(low_chunks(&dir, ino), 5, "300,000 bytes in 64 KiB chunks");
    assert_eq!(high_chunks(&dir, ino), 0, "nothing in the cab database");
    assert_eq!(bytes_from(&dir, ino), None);
    assert_eq!(read_back(&store, ino, data.len()), data);
    assert_eq!(store.check_cab(ino).unwrap(), CabCheck::Sound);
    let mut all = Vec::new();
    CabReader::open(&path, ino as i64)
        .unwrap()
        .read_to_end(&mut all)
        .unwrap();
    assert_eq!(all, data);
    // Complete and read-only, like any cab.
    assert!(store.write_at(ino, 0, b"x").is_err());
    // 1 MiB and more go to the cab database, stored once.
    let big = bytes(MIB, 12);
    let big_ino = common::new_cab(&store, "blue", "big.cab");
    store
        .commit_whole_cab(big_ino, &big, &hex::encode(Sha256::digest(&big)))
        .unwrap();
    assert_eq!(
        (low_chunks(&dir, big_ino), high_chunks(&dir, big_ino)),
        (0, 1)
    );
    assert_eq!(bytes_from(&dir, big_ino), Some(0));
    // A cab that has bytes stored already keeps its split.
    let had = common::new_cab(&store, "blue", "had.cab");
    store.write_at(had, 0, b"first").unwrap();
    store.commit_whole_cab(had, &data, &sha).unwrap();
    assert_eq!(bytes_from(&dir, had), Some(0));
    assert_eq!(high_chunks(&dir, had), 1);
    assert_eq!(read_back(&store, had, data.len()), data);
    // A backup carries it, and removal takes its chunks.
    let dest = dir.path().join("copy.db");
    store.backup_to(&dest).unwrap();
    assert!(store.remove_cab(ino, Removal::Pruned, None).unwrap());
    while store.sweep(1000).unwrap().more {}
    assert_eq!(low_chunks(&dir, ino), 0);
    drop(store);
    let copy = SqliteStore::open_for_admin(&dest).unwrap();
    assert_eq!(copy.check_cab(ino).unwrap(), CabCheck::Sound);
    assert_eq!(read_back(&copy, ino, data.len()), data);
}

#[test]
fn a_cab_of_an_older_store_split_at_4_mib_is_read_checked_and_removed_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cer.db");
    let store = SqliteStore::open(&path).unwrap();
    let data = bytes(6 * MIB + MIB / 2, 3);
    let ino = upload(&store, "old.cab", &data, MIB, true);
    drop(store);
    to_older_layout(&dir, ino, 4 * MIB);
    assert_eq!(low_chunks(&dir, ino), 64, "4 MiB in 64 KiB chunks");
    assert_eq!(high_chunks(&dir, ino), 3, "2.5 MiB in 1 MiB chunks");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(read_back(&store, ino, data.len()), data);
    // A read across the line between the files.
    let across = store.read_at(ino, 4 * MIB as u64 - 10, 20).unwrap();
    assert_eq!(across, data[4 * MIB - 10..4 * MIB + 10]);
    assert_eq!(store.check_cab(ino).unwrap(), CabCheck::Sound);
    let mut reader = CabReader::open(&path, ino as i64).unwrap();
    let mut all = Vec::new();
    reader.read_to_end(&mut all).unwrap();
    assert_eq!(all, data);
    // A backup carries both parts.
    let dest = dir.path().join("copy.db");
    store.backup_to(&dest).unwrap();
    // Removed: both parts go.
    assert!(store.remove_cab(ino, Removal::Pruned, None).unwrap());
    while store.sweep(1000).unwrap().more {}
    store.sync().unwrap();
    assert_eq!(low_chunks(&dir, ino), 0);
    assert_eq!(high_chunks(&dir, ino), 0);
    drop(store);
    let copy = SqliteStore::open_for_admin(&dest).unwrap();
    assert_eq!(copy.check_cab(ino).unwrap(), CabCheck::Sound);
    assert_eq!(read_back(&copy, ino, data.len()), data);
}

#[test]
fn removed_purged_and_orphaned_bytes_leave_the_cab_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cer.db");
    let store = SqliteStore::open(&path).unwrap();
    let pruned = upload(&store, "pruned.cab", &bytes(5 * MIB, 1), MIB, true);
    let unlinked = upload(&store, "unlinked.cab", &bytes(5 * MIB, 2), MIB, false);
    let kept = upload(&store, "kept.cab", &bytes(5 * MIB, 3), MIB, true);
    let unfinished = upload(&store, "unfinished.cab", &bytes(6 * MIB, 4), MIB, false);
    store.sync().unwrap();
    assert!(store.remove_cab(pruned, Removal::Pruned, None).unwrap());
    while store.sweep(1000).unwrap().more {}
    store.remove_node(unlinked).unwrap();
    store.sync().unwrap();
    assert_eq!(high_chunks(&dir, pruned), 0);
    assert_eq!(high_chunks(&dir, unlinked), 0);
    assert_eq!(high_chunks(&dir, unfinished), 6);
    // A truncation drops what lies past the new size.
    let cut = upload(&store, "cut.cab", &bytes(7 * MIB, 5), MIB, false);
    store.truncate(cut, 5 * MIB as u64 + 100).unwrap();
    store.sync().unwrap();
    assert_eq!(high_chunks(&dir, cut), 6);
    assert_eq!(
        read_back(&store, cut, 5 * MIB + 100),
        bytes(7 * MIB, 5)[..5 * MIB + 100]
    );
    drop(store);
    // Bytes whose cab row a crash lost.
    cab_db(&dir)
        .execute(
            "INSERT INTO cab_chunks (ino, idx, data) VALUES (999999, 0, x'00')",
            [],
        )
        .unwrap();
    // The restart purges the unfinished uploads and drops their bytes and the orphan's.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.purged_at_open(), 2);
    assert_eq!(high_chunks(&dir, unfinished), 0);
    assert_eq!(high_chunks(&dir, cut), 0);
    assert_eq!(high_chunks(&dir, 999999), 0);
    assert_eq!(high_chunks(&dir, kept), 5);
    assert_eq!(store.check_cab(kept).unwrap(), CabCheck::Sound);
}

#[test]
fn a_backup_holds_the_cab_database_bytes_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("cer.db")).unwrap();
    let data = bytes(5 * MIB + 12_345, 9);
    let ino = upload(&store, "big.cab", &data, MIB, true);
    let dest = dir.path().join("copy.db");
    store.backup_to(&dest).unwrap();
    assert!(dir.path().join("copy.db-cabs").is_file());
    drop(store);
    let copy = SqliteStore::open_for_admin(&dest).unwrap();
    assert_eq!(copy.check_cab(ino).unwrap(), CabCheck::Sound);
    assert_eq!(read_back(&copy, ino, data.len()), data);
    // The store counts both files.
    assert!(copy.usage().unwrap().used_bytes >= data.len() as u64);
}

#[test]
fn an_upload_that_stalls_does_not_hold_the_cab_database_for_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("cer.db")).unwrap();
    // 5 MiB written and then nothing: a client that stalls mid-upload.
    let data = bytes(5 * MIB, 6);
    let ino = upload(&store, "stalled.cab", &data, MIB, false);
    // A read through the store sees the last megabyte: it is in the open group (whole
    // chunks are queued for the cab database's writer thread; reads wait for the queue).
    assert_eq!(
        store.read_at(ino, 5 * MIB as u64 - 1, 1).unwrap(),
        &data[5 * MIB - 1..]
    );
    // An admin's command writing to the cab database (a prune's sweep) gets the file's
    // write lock: the store commits a group left open within a fraction of a second.
    let other = cab_db(&dir);
    other
        .busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    other.execute_batch("BEGIN IMMEDIATE; COMMIT").unwrap();
    // And what the upload wrote is there for anyone to read.
    assert_eq!(high_chunks(&dir, ino), 5);
}

#[test]
fn a_half_restore_is_refused_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cer.db");
    let store = SqliteStore::open(&db).unwrap();
    upload(&store, "big.cab", &bytes(5 * MIB, 8), MIB, true);
    let backup = dir.path().join("backup.db");
    store.backup_to(&backup).unwrap();
    drop(store);
    // Another store's cab database beside this database.
    let other = dir.path().join("other.db");
    drop(SqliteStore::open(&other).unwrap());
    std::fs::rename(
        dir.path().join("other.db-cabs"),
        dir.path().join("cer.db-cabs"),
    )
    .unwrap();
    let refused = SqliteStore::open(&db).unwrap_err().to_string();
    assert!(
        refused.contains("does not belong") && refused.contains("restore both"),
        "{refused}"
    );
    // The database of a backup without its cab database.
    std::fs::remove_file(dir.path().join("cer.db-cabs")).unwrap();
    std::fs::copy(&backup, &db).unwrap();
    let refused = SqliteStore::open_for_admin(&db).unwrap_err().to_string();
    assert!(refused.contains("1 cabs"), "{refused}");
    // Both files of the backup: served as they were.
    std::fs::copy(
        dir.path().join("backup.db-cabs"),
        dir.path().join("cer.db-cabs"),
    )
    .unwrap();
    let store = SqliteStore::open(&db).unwrap();
    let (entry, _) = store.find_cab("blue", "big.cab").unwrap().unwrap();
    assert_eq!(store.check_cab(entry.ino).unwrap(), CabCheck::Sound);
}

#[test]
fn the_cab_files_structure_is_checked_unless_a_server_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cer.db");
    let server = SqliteStore::open(&db).unwrap();
    upload(&server, "big.cab", &bytes(6 * MIB, 9), MIB, true);
    assert_eq!(server.cab_file_integrity().unwrap().as_deref(), Some("ok"));
    // An admin's check beside the server is skipped: it would hold up its uploads.
    let admin = SqliteStore::open_for_admin(&db).unwrap();
    assert_eq!(admin.cab_file_integrity().unwrap(), None);
    drop(admin);
    drop(server);
    let admin = SqliteStore::open_for_admin(&db).unwrap();
    assert_eq!(admin.cab_file_integrity().unwrap().as_deref(), Some("ok"));
    drop(admin);
    // Garbage over the table's root page (page 2 of 64 KiB): found, as findings or an error.
    let path = dir.path().join("cer.db-cabs");
    let mut file = std::fs::read(&path).unwrap();
    file[65536..65536 + 4096].fill(0xA5);
    std::fs::write(&path, file).unwrap();
    let admin = SqliteStore::open_for_admin(&db).unwrap();
    match admin.cab_file_integrity() {
        Ok(found) => assert_ne!(found.as_deref(), Some("ok"), "{found:?}"),
        Err(e) => assert!(e.to_string().contains("malformed"), "{e}"),
    }
}
