//! Hostile files through a real `cerfs mount`: every cab and minidump of
//! `testdata/` (libmspack's corrupt and CVE cabinets, rust-minidump's corrupt dumps),
//! copied onto the share as cabs, raw and wrapped in a valid cabinet. Each is stored intact
//! (it reads back with its sha256, and the store records that sha256), the background
//! indexer that runs inside `cerfs mount` flags the broken ones (`index_status` failed or
//! partial, with a reason) within a deadline, and the mount keeps serving and stops cleanly.

mod fault_support;
mod running_mount;

use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use cerfs_testkit::{build_cab, testdata};
use fault_support::{close_checked, list, poll_until, sha256_file, sha256_hex, sql};
use running_mount::Running;

/// A valid cabinet holding `name` = `bytes`.
fn wrap_in_cab(name: &str, bytes: &[u8]) -> Vec<u8> {
    build_cab(&[(name, bytes)])
}

const SUB: &str = "Hostile\\1.0.0.0\\hostile.dll\\1.0.0.0\\0badf00d";

/// What the indexer must conclude about one upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Indexed,
    /// `partial` or `failed`, with a reason.
    Flagged,
    /// Anything but pending, and a reason unless indexed (a reader may or may not loop).
    Done,
}

#[test]
fn hostile_cabs_and_minidumps_are_stored_intact_and_flagged() {
    let (_dir, root) = fault_support::tempdir();
    let db = root.join("cer.db");
    let mnt = root.join("mnt");
    fs::create_dir(&mnt).expect("mkdir mountpoint");

    // (name on the share, bytes, expectation)
    let mut uploads: Vec<(String, Vec<u8>, Expect)> = Vec::new();
    let mut cabs: Vec<PathBuf> = fs::read_dir(testdata().join("cabs"))
        .expect("list testdata/cabs")
        .map(|e| e.expect("entry").path())
        .collect();
    cabs.sort();
    assert!(cabs.len() >= 15, "{cabs:?}");
    for path in &cabs {
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        let expect = match name {
            "normal_2files_1folder.cab"
            | "normal_2files_2folders.cab"
            | "normal_255c_filename.cab"
            | "reserve_HFD.cab" => Expect::Indexed,
            "cve-2010-2800-mszip-infinite-loop.cab" => Expect::Done,
            _ => Expect::Flagged,
        };
        uploads.push((name.to_owned(), fs::read(path).expect("read cab"), expect));
    }
    let mut dumps: Vec<PathBuf> = fs::read_dir(testdata().join("minidumps"))
        .expect("list testdata/minidumps")
        .map(|e| e.expect("entry").path())
        .collect();
    dumps.sort();
    assert!(dumps.len() >= 5, "{dumps:?}");
    for path in &dumps {
        let stem = path.file_stem().and_then(|n| n.to_str()).expect("name");
        let bytes = fs::read(path).expect("read dump");
        // A minidump where a cab should be: nothing readable.
        uploads.push((format!("raw-{stem}.cab"), bytes.clone(), Expect::Flagged));
        // Wrapped in a valid cab: a sound dump is indexed, a corrupt one flags the cab
        // (invalid-parameter.dmp is a sound dump of an invalid-parameter crash).
        let expect = if matches!(stem, "invalid-range" | "invalid-record-count") {
            Expect::Flagged
        } else {
            Expect::Indexed
        };
        uploads.push((
            format!("wrapped-{stem}.cab"),
            wrap_in_cab("crash.mdmp", &bytes),
            expect,
        ));
        // Cut in half inside a valid cab. The indexer reads only the streams it needs:
        // test.dmp and invalid-parameter.dmp keep those in their first half (indexed, no
        // note of the truncation); the others lose them and are flagged.
        let half = &bytes[..bytes.len() / 2];
        let expect = if matches!(stem, "test" | "invalid-parameter") {
            Expect::Done
        } else {
            Expect::Flagged
        };
        uploads.push((
            format!("half-{stem}.cab"),
            wrap_in_cab("crash.mdmp", half),
            expect,
        ));
    }

    let Some(mut running) = Running::mounted(&db, &mnt) else {
        return;
    };
    let dir = SUB.split('\\').fold(mnt.join("cabs"), |p, c| p.join(c));
    fs::create_dir_all(&dir).expect("mkdir bucket");
    for (name, bytes, _) in &uploads {
        let mut f = File::create(dir.join(name)).expect("create cab");
        f.write_all(bytes).expect("write cab");
        close_checked(f).unwrap_or_else(|e| panic!("close {name}: {e}"));
    }

    // Stored intact: reads back byte for byte, and the store's sha256 agrees.
    let mut expected_names: Vec<String> = uploads.iter().map(|u| u.0.clone()).collect();
    expected_names.sort();
    assert_eq!(list(&dir), expected_names);
    let rows = fault_support::cab_rows(&db, SUB);
    for (name, bytes, _) in &uploads {
        let sha = sha256_hex(bytes);
        assert_eq!(
            sha256_file(&dir.join(name)).expect("read back"),
            sha,
            "{name}"
        );
        let row = rows.iter().find(|r| &r.0 == name).expect("a cab row");
        assert_eq!(row.1, "complete", "{name}");
        assert_eq!(row.2, Some(bytes.len() as i64), "{name}");
        assert_eq!(row.3.as_deref(), Some(sha.as_str()), "{name}");
    }

    // Flagged by the background indexer, within a deadline (the worker's own wall-time
    // limit is what bounds a cab that loops; 150 s leaves room for it on a slow machine).
    let statuses: Vec<(String, String, Option<String>)> = poll_until(
        Duration::from_secs(150),
        "the indexer handles every upload",
        || {
            let conn = sql(&db);
            let mut stmt = conn
                .prepare(
                    "SELECT name, index_status, index_error FROM cabs \
                     WHERE subpath = ?1 ORDER BY name",
                )
                .expect("prepare");
            let rows: Vec<(String, Option<String>, Option<String>)> = stmt
                .query_map([SUB], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            let done = rows.len() == uploads.len()
                && rows
                    .iter()
                    .all(|r| r.1.as_deref().is_some_and(|s| s != "pending"));
            done.then(|| {
                rows.into_iter()
                    .map(|(n, s, e)| (n, s.unwrap_or_default(), e))
                    .collect()
            })
        },
    );
    for (name, _, expect) in &uploads {
        let (_, status, error) = statuses.iter().find(|s| &s.0 == name).expect("status row");
        let dump: Option<(Option<String>, Option<String>)> = sql(&db)
            .query_row(
                "SELECT error, crash_reason FROM minidumps WHERE subpath = ?1 AND cab = ?2",
                [SUB, name.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok();
        eprintln!("{name}: {status} {error:?}; minidump (error, reason): {dump:?}");
        match expect {
            Expect::Indexed => {
                assert_eq!(status, "indexed", "{name}: {error:?}");
                assert!(error.is_none(), "{name}: {error:?}");
            }
            Expect::Flagged => {
                assert!(
                    status == "failed" || status == "partial",
                    "{name} is {status}, not flagged: {error:?}"
                );
                assert!(
                    error.as_deref().is_some_and(|e| !e.trim().is_empty()),
                    "{name}: flagged without a reason"
                );
            }
            Expect::Done => {
                assert!(
                    ["indexed", "partial", "failed"].contains(&status.as_str()),
                    "{name}: {status}"
                );
                assert_eq!(status == "indexed", error.is_none(), "{name}: {error:?}");
            }
        }
    }

    // Still serving: a new upload, a listing, a read; then a clean stop.
    let good = uploads
        .iter()
        .find(|u| u.0 == "normal_2files_1folder.cab")
        .expect("a valid cab")
        .1
        .clone();
    let mut f = File::create(dir.join("after.cab")).expect("create after.cab");
    f.write_all(&good).expect("write after.cab");
    close_checked(f).expect("close after.cab");
    assert_eq!(
        sha256_file(&dir.join("after.cab")).expect("read after.cab"),
        sha256_hex(&good)
    );
    assert_eq!(list(&dir).len(), uploads.len() + 1);
    running.signal(libc::SIGTERM);
    assert_eq!(running.wait().code(), Some(0), "{}", running.stderr());
    let store = cerfs_db::SqliteStore::open(&db).expect("reopen");
    assert_eq!(store.integrity_check().expect("integrity_check"), "ok");
}
