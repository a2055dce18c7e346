//! The kernel's cache of volatile files' attributes through a real mount: count.txt, the
//! logs and policy.txt are stat'ed without asking cerfs again until their content changes,
//! and every change cerfs commits (a close through the mount, a CER2 report or an admin
//! call in the same process) is seen by the very next stat: smbd sizes its reads by
//! `st_size`, so a size older than a change would cut a count.txt short.
//!
//! A test binary of its own: the getattr counts are the process's.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cerfs_e2e::client::{self, Subpath};
use cerfs_e2e::MountedShare;
use cerfs_fs_core::stats::{Adapter, STATS};
use cerfs_fs_core::SettingsTarget;

/// The getattr counts are the process's: the tests of this file take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Getattrs cerfs has answered through FUSE so far.
fn getattrs() -> u64 {
    STATS
        .latencies()
        .into_iter()
        .find(|(adapter, op, _)| *adapter == Adapter::Fuse && *op == "getattr")
        .map_or(0, |(_, _, l)| l.count)
}

fn size(path: &Path) -> u64 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .len()
}

fn content(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    bytes
}

/// A bucket's count.txt made through the mount with one report.
fn first_report(share: &MountedShare, sub: &Subpath) -> PathBuf {
    let dir = client::mkdir_levels(&share.root, "counts", sub).expect("mkdir counts levels");
    let path = dir.join("count.txt");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("create count.txt");
    f.write_all(b"Cabs Gathered=0\r\nTotal Hits=1\r\n")
        .expect("write count.txt");
    client::close(f).expect("close count.txt");
    path
}

#[test]
fn volatile_attributes_are_cached_and_taken_back_at_each_change() {
    let _turn = turn();
    for share in MountedShare::each() {
        let fs = share.fs().expect("a cerfs mount, not a plain directory");
        let sub = Subpath::app_bucket(0);
        let count = first_report(&share, &sub);
        let before = size(&count);

        // Cached: twenty stats in a row ask cerfs at most once.
        let asked = getattrs();
        for _ in 0..20 {
            assert_eq!(size(&count), before);
        }
        let asked = getattrs() - asked;
        assert!(asked <= 1, "20 stats of count.txt sent {asked} getattrs");

        // A CER2 report in this process: Total Hits 1 -> 10 is one byte more, at once.
        fs.count_report(&sub.backslashed(), 0, 9).expect("reports");
        assert_eq!(size(&count), before + 1, "the next stat sees the report");
        assert_eq!(size(&count), content(&count).len() as u64);

        // An admin call in this process: back to one digit.
        fs.set_counts(
            &sub.backslashed(),
            cerfs_db::Counts {
                cabs_gathered: 0,
                total_hits: 9,
            },
        )
        .expect("set counts");
        assert_eq!(
            size(&count),
            before,
            "the next stat sees the admin's counters"
        );

        // A client's close through the mount while the old size is cached: read, write 10
        // over 9, stat before the close (caches the stored size), close, stat.
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&count)
            .expect("open count.txt");
        let mut seen = String::new();
        f.read_to_string(&mut seen).expect("read count.txt");
        assert_eq!(seen, "Cabs Gathered=0\r\nTotal Hits=9\r\n");
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(0)).expect("seek");
        f.write_all(b"Cabs Gathered=0\r\nTotal Hits=10\r\n")
            .expect("write count.txt");
        assert_eq!(size(&count), before, "not applied before the close");
        client::close(f).expect("close count.txt");
        assert_eq!(size(&count), before + 1, "the next stat sees the close");
        assert_eq!(content(&count), b"Cabs Gathered=0\r\nTotal Hits=10\r\n");
    }
}

#[test]
fn a_log_line_and_a_setting_show_in_the_next_stat() {
    let _turn = turn();
    for share in MountedShare::each() {
        let fs = share.fs().expect("a cerfs mount, not a plain directory");
        let log = share.root.join("crash.log");
        let line = client::log_line("15:32:23  04-23-2007", "M1", "TestUser", "a.cab");
        client::append_line(&log, &line).expect("first line");
        let one = size(&log);
        assert_eq!(one, line.len() as u64);
        let mut f = OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open crash.log");
        f.write_all(line.as_bytes()).expect("write a line");
        assert_eq!(size(&log), one, "stored at the close");
        client::close(f).expect("close crash.log");
        assert_eq!(size(&log), 2 * one, "the next stat sees the stored line");

        let policy = share.root.join("policy.txt");
        let set = |value: &str| {
            fs.set_settings(
                &SettingsTarget::Policy,
                &[("Tracking".to_owned(), value.to_owned())],
            )
            .expect("set policy");
        };
        set("YES");
        let yes = size(&policy);
        assert_eq!(yes, content(&policy).len() as u64);
        set("NO");
        assert_eq!(
            size(&policy),
            yes - 1,
            "the next stat sees the admin's policy"
        );
    }
}
