//! The real `cerfs mount` under load and under kill -9: a 1 GiB cab streams through in
//! bounded memory, and a crash mid-upload loses nothing that was acknowledged.

mod running_mount;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use cerfs_db::SqliteStore;
use running_mount::{is_mounted, Running};
use sha2::{Digest, Sha256};

/// Deterministic bytes that do not compress (xorshift64).
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Writes `size` noise bytes to `path` in 1 MiB pieces; returns their sha256 (hex).
fn write_noise(path: &Path, size: u64, seed: u64) -> String {
    let mut f = File::create(path).expect("create cab");
    let mut noise = Noise(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut hash = Sha256::new();
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        noise.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).expect("write cab");
        hash.update(&buf[..n]);
        left -= n as u64;
    }
    drop(f);
    hex::encode(hash.finalize())
}

fn sha256_of(path: &Path) -> String {
    let mut f = File::open(path).expect("open for hashing");
    let mut buf = vec![0u8; 1 << 20];
    let mut hash = Sha256::new();
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            return hex::encode(hash.finalize());
        }
        hash.update(&buf[..n]);
    }
}

fn fresh() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical temp dir");
    let mountpoint = root.join("mnt");
    fs::create_dir(&mountpoint).expect("mkdir mountpoint");
    (dir, root.join("cer.db"), mountpoint)
}

#[test]
fn one_gib_cab_streams_in_bounded_memory() {
    let (_dir, db, mnt) = fresh();
    let Some(mut running) = Running::mounted(&db, &mnt) else {
        return;
    };
    fs::create_dir_all(mnt.join("cabs/blue")).expect("mkdir bucket");
    let cab = mnt.join("cabs/blue/huge.cab");
    let written = write_noise(&cab, 1 << 30, 0x5eed);
    let peak_kib = running.peak_rss_kib();
    eprintln!(
        "peak RSS of cerfs after a 1 GiB upload: {} MiB",
        peak_kib / 1024
    );
    assert!(
        peak_kib < 100 * 1024,
        "cerfs used {peak_kib} KiB for a 1 GiB upload"
    );
    assert_eq!(fs::metadata(&cab).expect("stat").len(), 1 << 30);
    assert_eq!(sha256_of(&cab), written, "the cab reads back byte-for-byte");
    running.signal(libc::SIGTERM);
    assert_eq!(running.wait().code(), Some(0), "{}", running.stderr());
}

#[test]
fn kill_9_mid_upload_keeps_everything_acknowledged() {
    let (_dir, db, mnt) = fresh();
    let Some(mut running) = Running::mounted(&db, &mnt) else {
        return;
    };
    let counts = mnt.join("counts/blue");
    fs::create_dir_all(&counts).expect("mkdir counts/blue");
    fs::create_dir_all(mnt.join("cabs/blue")).expect("mkdir cabs/blue");
    // Acknowledged work: 20 increments (each close returned success) and one cab.
    for n in 1..=20u32 {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(counts.join("count.txt"))
            .expect("open count.txt");
        f.write_all(format!("Cabs Gathered={n}\r\nTotal Hits={n}\r\n").as_bytes())
            .expect("write count.txt");
        f.sync_all().expect("fsync");
        drop(f);
        let text = fs::read_to_string(counts.join("count.txt")).expect("read back");
        assert_eq!(text, format!("Cabs Gathered={n}\r\nTotal Hits={n}\r\n"));
    }
    let done_sha = write_noise(&mnt.join("cabs/blue/done.cab"), 3 << 20, 1);
    // An upload in flight when cerfs dies.
    let mut partial = File::create(mnt.join("cabs/blue/partial.cab")).expect("create");
    let mut buf = vec![0u8; 1 << 20];
    Noise(2).fill(&mut buf);
    for _ in 0..5 {
        partial.write_all(&buf).expect("write partial");
    }
    running.signal(libc::SIGKILL);
    running.wait();
    drop(partial);
    // The kernel keeps a dead FUSE mount until it is unmounted.
    let _ = Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(&mnt)
        .status();
    assert!(!is_mounted(&mnt), "dead mount removed");

    let store = SqliteStore::open(&db).expect("reopen after kill -9");
    assert_eq!(store.integrity_check().expect("integrity_check"), "ok");
    assert_eq!(
        store.purged_at_open(),
        1,
        "the unfinished cab is purged at start"
    );
    drop(store);

    let Some(mut running) = Running::mounted(&db, &mnt) else {
        return;
    };
    assert_eq!(
        fs::read_to_string(counts.join("count.txt")).expect("count.txt"),
        "Cabs Gathered=20\r\nTotal Hits=20\r\n"
    );
    assert_eq!(sha256_of(&mnt.join("cabs/blue/done.cab")), done_sha);
    assert!(
        !mnt.join("cabs/blue/partial.cab").exists(),
        "no partial cab"
    );
    let names: Vec<_> = fs::read_dir(mnt.join("cabs/blue"))
        .expect("list bucket")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["done.cab"]);
    running.signal(libc::SIGTERM);
    assert_eq!(running.wait().code(), Some(0), "{}", running.stderr());
}
