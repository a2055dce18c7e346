//! crash.log and hits.log through a cerfs mount: concurrent appends at the same end are
//! both kept, malformed lines are kept verbatim, stored bytes cannot be rewritten or
//! removed, and stat tells the size a read returns.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use cerfs_e2e::client::{self, Subpath};
use cerfs_e2e::{assert_errno, parse_log_line, split_lines, MountedShare};

/// A well-formed entry with `item`.
fn entry(machine: &str, item: &str) -> String {
    client::log_line("15:32:23  04-23-2007", machine, "TestUser", item)
}

/// The two logs of a share: crash.log and the hits.log of one bucket (its folder made).
fn log_paths(share: &MountedShare) -> [PathBuf; 2] {
    let sub = Subpath::app_bucket(0);
    let dir = client::mkdir_levels(&share.root, "cabs", &sub).expect("mkdir cabs levels");
    [share.path("crash.log"), dir.join("hits.log")]
}

/// Reads `path` and checks that stat reports the same size as was read.
fn read_log(path: &Path) -> Vec<u8> {
    let content = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert_eq!(
        fs::metadata(path).expect("stat log").len(),
        content.len() as u64,
        "stat size of {} == bytes read",
        path.display()
    );
    content
}

/// Opens `path` for writing without truncating and seeks to the end it sees.
fn open_at_end(path: &Path) -> (File, u64) {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open log for writing");
    let end = f.seek(SeekFrom::End(0)).expect("seek to end");
    (f, end)
}

#[test]
fn two_handles_writing_at_the_same_end_are_both_kept() {
    for share in MountedShare::each() {
        for path in log_paths(&share) {
            let first = entry("M0", "first.cab");
            client::append_line(&path, &first).expect("first append");
            let (mut h1, end1) = open_at_end(&path);
            let (mut h2, end2) = open_at_end(&path);
            assert_eq!((end1, end2), (first.len() as u64, first.len() as u64));
            let (a, b) = (entry("M1", "aaaaaaaa.cab"), entry("M2", "bbbbbbbb.cab"));
            // Both write at the offset they saw: on a plain file the second overwrites the
            // first.
            h1.write_all(a.as_bytes()).expect("write through handle 1");
            h2.write_all(b.as_bytes()).expect("write through handle 2");
            client::close(h1).expect("close handle 1");
            client::close(h2).expect("close handle 2");
            let content = read_log(&path);
            assert_eq!(
                String::from_utf8_lossy(&content),
                format!("{first}{a}{b}"),
                "{}: every line kept, in close order",
                path.display()
            );
            for line in split_lines(&content) {
                assert!(parse_log_line(line).is_some(), "parses: {line:?}");
            }
        }
    }
}

#[test]
fn malformed_lines_are_kept_verbatim() {
    for share in MountedShare::each() {
        for path in log_paths(&share) {
            let lines = [
                entry("M0", "good.cab"),
                "this is not a log line\r\n".to_owned(),
                "15:32:23 04-23-2007\tone space only\tuser\titem\r\n".to_owned(),
                "bare LF ending\n".to_owned(),
                "caf\u{e9} au lait\r\n".to_owned(),
                entry("M1", "good2.cab"),
            ];
            for line in &lines {
                client::append_line(&path, line).expect("append");
            }
            let content = read_log(&path);
            assert_eq!(
                String::from_utf8_lossy(&content),
                lines.concat(),
                "{} keeps every line byte-for-byte",
                path.display()
            );
        }
    }
}

#[test]
fn stat_size_equals_bytes_read_as_the_log_grows() {
    for share in MountedShare::each() {
        for path in log_paths(&share) {
            let mut expected = String::new();
            for i in 0..10 {
                let line = entry(&format!("M{i}"), &format!("{i:08}.cab"));
                client::append_line(&path, &line).expect("append");
                expected.push_str(&line);
                let content = read_log(&path);
                assert_eq!(content.len(), expected.len(), "after {} lines", i + 1);
            }
            assert_eq!(read_log(&path), expected.as_bytes());
        }
    }
}

#[test]
fn creating_an_existing_log_with_truncate_removes_nothing() {
    for share in MountedShare::each() {
        for path in log_paths(&share) {
            let first = entry("M0", "first.cab");
            client::append_line(&path, &first).expect("first append");
            // A client that "creates the file empty" with truncation, then appends.
            let second = entry("M1", "second.cab");
            client::write_whole(&path, second.as_bytes()).expect("create with truncate + write");
            assert_eq!(
                String::from_utf8_lossy(&read_log(&path)),
                format!("{first}{second}"),
                "{}: the stored line survived the truncation",
                path.display()
            );
        }
    }
}

#[test]
fn rewriting_stored_bytes_differently_is_refused() {
    for share in MountedShare::each() {
        for path in log_paths(&share) {
            let first = entry("M0", "first.cab");
            client::append_line(&path, &first).expect("first append");
            let mut f = OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open for writing");
            // Two lines over the stored one: a rewrite of history, refused at the write or at
            // close. (One whole line below the end is taken as an append at a stale end.)
            let changed = format!("{}{}", entry("XX", "first.cab"), entry("YY", "first.cab"));
            let result = f
                .write_all(changed.as_bytes())
                .and_then(|()| client::close(f));
            assert_errno(result, &[libc::EINVAL], "overwrite a stored line");
            assert_eq!(read_log(&path), first.as_bytes(), "{}", path.display());

            // Re-saving the same bytes at offset 0 is fine and adds nothing.
            let mut f = OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open for writing");
            f.write_all(first.as_bytes())
                .expect("rewrite the same bytes");
            client::close(f).expect("close after rewriting the same bytes");
            assert_eq!(read_log(&path), first.as_bytes(), "{}", path.display());
        }
    }
}

#[test]
fn logs_cannot_be_deleted_or_renamed() {
    for share in MountedShare::each() {
        for path in log_paths(&share) {
            let line = entry("M0", "first.cab");
            client::append_line(&path, &line).expect("append");
            assert_errno(fs::remove_file(&path), &[libc::EPERM], "unlink a log");
            assert_errno(
                fs::rename(&path, path.with_file_name("other.log")),
                &[libc::EPERM],
                "rename a log",
            );
            assert_eq!(read_log(&path), line.as_bytes());
        }
    }
}

/// Appends two lines, then writes `written(second)` through a new handle at the end as it
/// was before the second line (a stale end): the written line must follow both.
fn assert_appended_at_stale_end(written: impl Fn(&str) -> String) {
    for share in MountedShare::each() {
        for path in log_paths(&share) {
            let first = entry("M0", "first.cab");
            let second = entry("M1", "second.cab");
            client::append_line(&path, &first).expect("first append");
            client::append_line(&path, &second).expect("second append");
            let line = written(&second);
            let mut f = OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open for writing");
            f.seek(SeekFrom::Start(first.len() as u64)).expect("seek");
            f.write_all(line.as_bytes()).expect("the line is taken");
            client::close(f).expect("close");
            assert_eq!(
                String::from_utf8_lossy(&read_log(&path)),
                format!("{first}{second}{line}"),
                "{}",
                path.display()
            );
        }
    }
}

/// A writer whose idea of the end lags behind the log (the kernel's size of the log is
/// shared by every open and can be stale) writes its one line below the end: the line is
/// appended after everything else, and what is stored stays.
#[test]
fn one_line_written_at_a_stale_end_is_appended() {
    assert_appended_at_stale_end(|_| entry("M2", "third.cab"));
}

/// The same where the stored line at the stale end equals the one written (one machine
/// reporting the same program twice in a second writes the same line): it is a new report,
/// appended, not a re-save of the stored one.
#[test]
fn an_identical_line_written_at_a_stale_end_is_appended() {
    assert_appended_at_stale_end(str::to_owned);
}
