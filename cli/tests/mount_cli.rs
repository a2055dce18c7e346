//! Runs the real `cerfs` binary: mount a fresh database, list the share, stop it with
//! SIGTERM, and check that it unmounted cleanly and left a sound database.
//!
//! Where FUSE cannot be used (no /dev/fuse, mounting not permitted) the mount test prints
//! "skipping: ..." and passes, unless CERFS_REQUIRE_FUSE=1, where it fails.

mod running_mount;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;

use cerfs_db::prelude::*;
use cerfs_db::SqliteStore;
use running_mount::{is_mounted, Running, CERFS};

/// `cerfs mount` of a new database in a temporary directory (kept alive by the first item).
fn mount_fresh() -> Option<(tempfile::TempDir, PathBuf, PathBuf, Running)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical temp dir");
    let db = root.join("cer.db");
    let mountpoint = root.join("mnt");
    std::fs::create_dir(&mountpoint).expect("mkdir mountpoint");
    let running = Running::mounted(&db, &mountpoint)?;
    Some((dir, db, mountpoint, running))
}

#[test]
fn mount_list_sigterm_unmounts_cleanly() {
    let Some((_dir, db, mountpoint, mut running)) = mount_fresh() else {
        return;
    };
    assert!(
        is_mounted(&mountpoint),
        "{} not in mountinfo",
        mountpoint.display()
    );

    let mut names: Vec<String> = std::fs::read_dir(&mountpoint)
        .expect("read_dir on the mount")
        .map(|entry| {
            entry
                .expect("dir entry")
                .file_name()
                .into_string()
                .expect("ASCII")
        })
        .collect();
    names.sort();
    for wanted in ["cabs", "counts", "status"] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} missing in {names:?}"
        );
    }

    running.signal(libc::SIGTERM);
    let status = running.wait();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status; stderr:\n{}",
        running.stderr()
    );
    assert!(!is_mounted(&mountpoint), "still mounted after SIGTERM");
    running.logged("received SIGTERM");

    let store = SqliteStore::open(&db).expect("reopen the database");
    assert_eq!(store.integrity_check().expect("integrity_check"), "ok");
}

#[test]
fn missing_mountpoint_exits_1_with_advice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mountpoint = dir.path().join("nowhere");
    let out = Command::new(CERFS)
        .args(["mount", "--db"])
        .arg(dir.path().join("cer.db"))
        .arg(&mountpoint)
        .output()
        .expect("run cerfs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not exist: create it"), "{stderr}");
    assert!(stderr.contains(&*mountpoint.to_string_lossy()), "{stderr}");
    assert!(
        !dir.path().join("cer.db").exists(),
        "no database created on failure"
    );
}

#[test]
fn bad_flag_exits_2() {
    let out = Command::new(CERFS)
        .args(["mount", "--no-such-flag"])
        .output()
        .expect("run cerfs");
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(CERFS).output().expect("run cerfs");
    assert_eq!(out.status.code(), Some(2), "a subcommand is required");
}

#[test]
fn help_exits_0() {
    for args in [&["--help"][..], &["mount", "--help"][..]] {
        let out = Command::new(CERFS).args(args).output().expect("run cerfs");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("Usage: cerfs"), "{stdout}");
    }
}

#[test]
fn sigterm_while_a_file_is_open_detaches_and_serves_it_until_closed() {
    let Some((_dir, db, mountpoint, mut running)) = mount_fresh() else {
        return;
    };
    let path = mountpoint.join("notes.txt");
    std::fs::write(&path, b"written before the signal").expect("write a plain file");
    let mut held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open the file and keep it");

    running.signal(libc::SIGTERM);
    // The mount leaves the namespace at once although the file is open...
    let start = std::time::Instant::now();
    while is_mounted(&mountpoint) {
        assert!(
            start.elapsed() < running_mount::DEADLINE,
            "still mounted: {}",
            running.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        running.child.try_wait().expect("try_wait").is_none(),
        "cerfs exited while a file was still open: {}",
        running.stderr()
    );
    // ... and the open file is still served, for reading and writing.
    let mut text = String::new();
    held.read_to_string(&mut text).expect("read the held file");
    assert_eq!(text, "written before the signal");
    held.write_all(b", and after")
        .expect("write through the held file");
    drop(held);

    let status = running.wait();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status; stderr:\n{}",
        running.stderr()
    );
    running.logged("still in use: detached");
    let store = SqliteStore::open(&db).expect("reopen the database");
    assert_eq!(store.integrity_check().expect("integrity_check"), "ok");
    let node = store
        .lookup(cerfs_db::ROOT_INO, "notes.txt")
        .expect("lookup")
        .expect("notes.txt is stored");
    let stored = store.read_at(node.ino, 0, 100).expect("read notes.txt");
    assert_eq!(stored, b"written before the signal, and after");
}
