//! `cerfs mount` with its background indexer: cabs copied onto the mounted share (a real
//! minidump wrapped in a cab, a cab that hung other readers, junk) are indexed by the
//! `cerfs index-one` worker while the mount serves; the admin commands change what clients
//! read without a remount.
//!
//! Where FUSE cannot be used the test prints "skipping: ..." and passes, unless
//! CERFS_REQUIRE_FUSE=1, where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod admin_support;
mod running_mount;

use std::time::{Duration, Instant};

use admin_support::*;
use running_mount::Running;

#[test]
fn cabs_copied_onto_the_mount_are_indexed_and_settings_apply_without_remount() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let db = root.join("cer.db");
    let mnt = root.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let Some(mut running) = Running::mounted(&db, &mnt) else {
        return;
    };

    let bucket = mnt.join("cabs/TestApp/1.0.0.0/test_app.exe/1.0.0.0/0000429e");
    std::fs::create_dir_all(&bucket).unwrap();
    let good = build_cab(&[
        ("test.dmp", read_testdata("minidumps/test.dmp")),
        ("version.txt", utf16le_bom("Architecture: X86\r\n")),
    ]);
    let hang = read_testdata("cabs/cve-2010-2800-mszip-infinite-loop.cab");
    let junk = b"this is not a cabinet".to_vec();
    for (name, bytes) in [
        ("good.cab", &good),
        ("hang.cab", &hang),
        ("junk.cab", &junk),
    ] {
        std::fs::write(bucket.join(name), bytes).unwrap();
    }

    // The indexer runs in the background: poll the database until nothing is pending.
    let deadline = Instant::now() + Duration::from_secs(90);
    let statuses = loop {
        let out = cerfs_db(
            &db,
            &[
                "query",
                "--format",
                "csv",
                "SELECT name, index_status, coalesce(index_error, '') FROM cabs ORDER BY name",
            ],
        );
        assert_code(&out, 0);
        let text = stdout(&out);
        if !text.contains("pending") && text.lines().count() == 4 {
            break text;
        }
        assert!(Instant::now() < deadline, "still pending:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines: Vec<&str> = statuses.lines().collect();
    assert!(lines[1].starts_with("good.cab,indexed,"), "{statuses}");
    assert!(lines[2].starts_with("hang.cab,partial,"), "{statuses}");
    assert!(
        lines[3].starts_with("junk.cab,failed,not a readable cabinet"),
        "{statuses}"
    );
    let dump = stdout(&cerfs_db(
        &db,
        &[
            "query",
            "--format",
            "csv",
            "SELECT crash_module, crash_offset, crash_reason FROM minidumps",
        ],
    ));
    assert_eq!(
        dump,
        "crash_module,crash_offset,crash_reason\r\ntest_app.exe,0000429e,EXCEPTION_ACCESS_VIOLATION_WRITE\r\n"
    );
    // The reports are kept byte for byte, whatever the indexer made of them.
    assert_eq!(std::fs::read(bucket.join("junk.cab")).unwrap(), junk);
    assert_eq!(std::fs::read(bucket.join("hang.cab")).unwrap(), hang);

    // Admin changes reach the clients' next read, no remount.
    assert_code(
        &cerfs_db(
            &db,
            &["policy", "set", "Tracking=YES", "Crashes per bucket=2"],
        ),
        0,
    );
    assert_eq!(
        std::fs::read_to_string(mnt.join("policy.txt")).unwrap(),
        "Tracking=YES\r\nCrashes per bucket=2\r\n"
    );
    assert_code(
        &cerfs_db(
            &db,
            &["status", "set", "blue", "Response=https://example.com/fix"],
        ),
        0,
    );
    assert_eq!(
        std::fs::read_to_string(mnt.join("status/blue/status.txt")).unwrap(),
        "Response=https://example.com/fix\r\n"
    );
    std::fs::create_dir_all(mnt.join("counts/blue")).unwrap();
    let count = mnt.join("counts/blue/count.txt");
    std::fs::write(&count, "Cabs Gathered=1\r\nTotal Hits=3\r\n").unwrap();
    assert_code(&cerfs_db(&db, &["counts", "reset", "blue"]), 0);
    assert_eq!(
        std::fs::read_to_string(&count).unwrap(),
        "Cabs Gathered=0\r\nTotal Hits=0\r\n"
    );

    running.signal(libc::SIGTERM);
    let status = running.wait();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", running.stderr());
    running.logged("cab indexer stopped");
}
