//! Crash consistency: a child process writes continuously and is killed with SIGKILL; every
//! transaction it acknowledged must be in the reopened database, which must be sound.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use cerfs_db::prelude::*;
use cerfs_db::{
    BucketKey, LogFields, LogId, LogLine, NewNode, NodeRole, SqliteStore, CABS_INO, ROOT_INO,
};

/// Set (to the database path) in the child's environment to make `child_writer` run.
const CHILD_ENV: &str = "CERFS_DB_CRASH_CHILD";
/// How many acknowledged iterations the parent waits for before the kill.
const ACKNOWLEDGED: u64 = 300;

fn key() -> BucketKey {
    BucketKey {
        subpath: "blue".into(),
        kind: "blue".into(),
        app: None,
    }
}

fn log_line(n: u64) -> LogLine {
    let fields = LogFields {
        time: "12:00:00".into(),
        date: "01-02-2024".into(),
        machine: "CRASHER".into(),
        user: "unknown user".into(),
        item: format!("{n:08}.cab"),
        client_time: "2024-01-02T12:00:00".into(),
    };
    let bytes = format!(
        "{}  {}\t{}\t{}\t{}\r\n",
        fields.time, fields.date, fields.machine, fields.user, fields.item
    )
    .into_bytes();
    LogLine {
        bytes,
        fields: Some(fields),
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
        uid: 0,
        gid: 0,
        bucket,
    }
}

/// The child: runs only when the parent re-executes this test binary with [`CHILD_ENV`] set.
/// Each iteration commits a counter increment, a hits.log line and 8 bytes of a file, then
/// prints `committed <n>`. It also leaves a cab in state `writing`, as a dying upload would.
#[test]
#[ignore = "run by crash_keeps_acknowledged_commits in a child process"]
fn child_writer() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = SqliteStore::open(Path::new(&path)).unwrap();
    let key = key();
    let bucket = store.ensure_bucket(&key).unwrap();
    let file = store
        .create_node(&node(ROOT_INO, "seq.bin", NodeRole::File, None))
        .unwrap();
    let cab = store
        .create_node(&node(CABS_INO, "dying.cab", NodeRole::Cab, Some(&key)))
        .unwrap();
    store.write_at(cab.ino, 0, &[0xcc; 100_000]).unwrap();
    let mut out = std::io::stdout().lock();
    for n in 1..=1_000_000u64 {
        store.add_counts(bucket, 0, 1).unwrap();
        store
            .append_log(LogId::Hits(bucket), &[log_line(n)])
            .unwrap();
        store
            .write_at(file.ino, (n - 1) * 8, &n.to_le_bytes())
            .unwrap();
        // A closed pipe (the parent is gone) ends the child.
        if writeln!(out, "committed {n}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}

#[test]
fn crash_keeps_acknowledged_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--ignored", "--nocapture"])
        .env(CHILD_ENV, &path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acknowledged = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("committed ") {
            acknowledged = n.trim().parse().unwrap();
            if acknowledged >= ACKNOWLEDGED {
                break;
            }
        }
    }
    assert!(acknowledged >= ACKNOWLEDGED, "the child stopped early");
    child.kill().unwrap(); // SIGKILL, in the middle of its next transactions
    let status = child.wait().unwrap();
    assert!(!status.success());

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    // The unfinished upload is gone.
    assert_eq!(store.purged_at_open(), 1);
    assert_eq!(store.purged_cabs()[0].name, "dying.cab");
    assert_eq!(store.lookup(CABS_INO, "dying.cab").unwrap(), None);

    let bucket = store.ensure_bucket(&key()).unwrap();
    let hits = store.counts(bucket).unwrap().total_hits;
    assert!(hits >= acknowledged, "{hits} < {acknowledged}");

    let line_len = log_line(1).bytes.len() as u64;
    let log_len = store.log_len(LogId::Hits(bucket)).unwrap();
    assert_eq!(log_len % line_len, 0);
    let lines = log_len / line_len;
    assert!(
        lines >= acknowledged && lines <= hits,
        "{lines} lines, {hits} hits"
    );
    let log = store.read_log(LogId::Hits(bucket), 0, u32::MAX).unwrap();
    for (i, l) in log.chunks(line_len as usize).enumerate() {
        assert_eq!(l, log_line(i as u64 + 1).bytes.as_slice());
    }

    let file = store.lookup(ROOT_INO, "seq.bin").unwrap().unwrap();
    let words = file.size / 8;
    assert!(words >= acknowledged && words <= lines, "{words} words");
    let content = store.read_at(file.ino, 0, file.size as u32).unwrap();
    for (i, w) in content.chunks(8).enumerate() {
        assert_eq!(u64::from_le_bytes(w.try_into().unwrap()), i as u64 + 1);
    }
}
