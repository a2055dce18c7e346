//! The admin commands of the real binary: `--help` everywhere, `policy` and `status`
//! (validated by the share's grammar), `counts reset`, `cab get` / `cab export`, `reindex`,
//! exit codes, and that none of them disturbs an upload in progress of a running server.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod admin_support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use admin_support::*;
use cerfs_db::SqliteStore;
use cerfs_fs_core::{Caller, CerFs, OpenFlags};
use cerfs_testkit::sha256_hex;

/// What a client reading `path` on the share gets now (through fs-core, as the mount does).
fn share_read(db: &Path, path: &str) -> Option<String> {
    let fs = CerFs::new(Arc::new(SqliteStore::open_for_admin(db).unwrap()));
    let caller = Caller {
        pid: 1,
        uid: 1000,
        gid: 1000,
    };
    let attr = fs.resolve(&caller, path).ok()?;
    let flags = OpenFlags {
        read: true,
        write: false,
        truncate: false,
        append: false,
    };
    let fh = fs.open(&caller, attr.ino, flags).unwrap().fh;
    let bytes = fs.read(fh, 0, 1 << 20).unwrap();
    fs.release(fh).unwrap();
    Some(String::from_utf8(bytes).unwrap())
}

#[test]
fn every_command_has_help_and_index_one_is_hidden() {
    let top = cerfs(&["--help"]);
    assert_code(&top, 0);
    let text = stdout(&top);
    for cmd in [
        "query", "buckets", "status", "policy", "cab", "counts", "reindex",
    ] {
        assert!(
            text.contains(cmd),
            "{cmd} missing from cerfs --help:\n{text}"
        );
    }
    assert!(!text.contains("index-one"), "{text}");
    for args in [
        &["query", "--help"][..],
        &["buckets", "--help"],
        &["status", "--help"],
        &["status", "show", "--help"],
        &["status", "set", "--help"],
        &["status", "clear", "--help"],
        &["policy", "--help"],
        &["policy", "show", "--help"],
        &["policy", "set", "--help"],
        &["policy", "clear", "--help"],
        &["cab", "--help"],
        &["cab", "get", "--help"],
        &["cab", "export", "--help"],
        &["counts", "--help"],
        &["counts", "reset", "--help"],
        &["counts", "set", "--help"],
        &["reindex", "--help"],
    ] {
        let out = cerfs(args);
        assert_code(&out, 0);
        assert!(stdout(&out).contains("Usage: cerfs"), "{args:?}");
    }
    for args in [&["status"][..], &["policy", "frobnicate"], &["cab", "get"]] {
        assert_code(&cerfs(args), 2);
    }
}

#[test]
fn policy_and_status_are_validated_like_the_share_and_seen_at_the_next_read() {
    let g = generate();
    let db = &g.db;

    let out = cerfs_db(
        db,
        &["policy", "set", "Tracking=no", "Crashes per bucket=7"],
    );
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "Tracking=NO\nCrashes per bucket=7\n");
    assert_eq!(
        share_read(db, "policy.txt").unwrap(),
        "Tracking=NO\r\nCrashes per bucket=7\r\n"
    );
    let limits = stdout(&cerfs_db(
        db,
        &[
            "query",
            "--format",
            "csv",
            "SELECT cab_limit FROM buckets WHERE subpath = 'blue'",
        ],
    ));
    assert_eq!(limits, "cab_limit\r\n7\r\n");

    // Refusals name what to fix, and change nothing.
    for (pair, why) in [
        ("Tracking=maybe", "bad value `maybe` for `Tracking`"),
        (
            "Crashes per bucket=-1",
            "bad value `-1` for `Crashes per bucket`",
        ),
        ("tracking=YES", "names are case-sensitive, write `Tracking`"),
        ("Colour=blue", "unknown name `Colour`"),
        ("Response=1", "`Response` is not allowed in policy.txt"),
    ] {
        let out = cerfs_db(db, &["policy", "set", pair]);
        assert_code(&out, 1);
        assert!(stderr(&out).contains(why), "{pair}: {}", stderr(&out));
    }
    assert_code(&cerfs_db(db, &["policy", "set", "Tracking"]), 2);
    assert_code(&cerfs_db(db, &["policy", "set"]), 2);
    assert_eq!(
        stdout(&cerfs_db(db, &["policy", "show"])),
        "Tracking=NO\nCrashes per bucket=7\n"
    );

    // status.txt of a bucket, with / or \ in the subpath.
    let sub_slash = TEST_APP.replace('\\', "/");
    let out = cerfs_db(
        db,
        &[
            "status",
            "set",
            &sub_slash,
            "iData=1",
            "Response=https://help.example.com/kb/1",
        ],
    );
    assert_code(&out, 0);
    assert_eq!(
        share_read(db, &format!("status\\{TEST_APP}\\status.txt")).unwrap(),
        "Response=https://help.example.com/kb/1\r\niData=YES\r\n"
    );
    let out = cerfs_db(db, &["status", "set", "blue", "FileTreeRoot=\\\\srv\\cer"]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("`FileTreeRoot` is not allowed in status.txt"),
        "{}",
        stderr(&out)
    );
    let out = cerfs_db(db, &["status", "show", "--effective", TEST_APP]);
    assert_eq!(
        stdout(&out),
        "Response=https://help.example.com/kb/1\niData=YES\nTracking=NO\nCrashes per bucket=7\n"
    );
    // A bucket without status.txt: said so, not an error; an unknown bucket is one.
    let out = cerfs_db(db, &["status", "show", "blue"]);
    assert_code(&out, 0);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let out = cerfs_db(db, &["status", "show", "no/such/bucket"]);
    assert_code(&out, 1);
    assert!(stderr(&out).contains("cerfs buckets"), "{}", stderr(&out));
    let out = cerfs_db(db, &["status", "show", "bad|name"]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("bad bucket subpath"),
        "{}",
        stderr(&out)
    );

    // Clear one name, then the file.
    assert_code(&cerfs_db(db, &["status", "clear", TEST_APP, "Response"]), 0);
    assert_eq!(
        share_read(db, &format!("status\\{TEST_APP}\\status.txt")).unwrap(),
        "iData=YES\r\n"
    );
    let out = cerfs_db(db, &["status", "clear", TEST_APP, "Respons"]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("unknown name `Respons`"),
        "{}",
        stderr(&out)
    );
    assert_code(&cerfs_db(db, &["status", "clear", TEST_APP]), 0);
    assert_eq!(
        share_read(db, &format!("status\\{TEST_APP}\\status.txt")),
        None
    );
    let out = cerfs_db(db, &["status", "clear", TEST_APP]);
    assert_code(&out, 0);
    assert!(
        stderr(&out).contains("nothing to clear"),
        "{}",
        stderr(&out)
    );
    assert_code(&cerfs_db(db, &["policy", "clear"]), 0);
    assert_eq!(share_read(db, "policy.txt"), None);
    let limits = stdout(&cerfs_db(
        db,
        &[
            "query",
            "--format",
            "csv",
            "SELECT cab_limit FROM buckets WHERE subpath = 'blue'",
        ],
    ));
    assert_eq!(limits, "cab_limit\r\n5\r\n");
}

#[test]
fn counts_reset_and_cab_copies() {
    let g = generate();
    let db = &g.db;
    let out = cerfs_db(db, &["counts", "reset", "blue"]);
    assert_code(&out, 0);
    assert!(stdout(&out).contains("(was 5, 12)"), "{}", stdout(&out));
    assert_eq!(
        share_read(db, "counts\\blue\\count.txt").unwrap(),
        "Cabs Gathered=0\r\nTotal Hits=0\r\n"
    );
    // An admin may give a bucket any counters (clients only add one report per write).
    let out = cerfs_db(
        db,
        &["counts", "set", "blue", "--cabs", "5", "--hits", "10"],
    );
    assert_code(&out, 0);
    assert_eq!(
        share_read(db, "counts\\blue\\count.txt").unwrap(),
        "Cabs Gathered=5\r\nTotal Hits=10\r\n"
    );
    assert_code(
        &cerfs_db(
            db,
            &["counts", "set", "blue", "--cabs", "-1", "--hits", "1"],
        ),
        2,
    );
    let out = cerfs_db(db, &["counts", "reset", "nope"]);
    assert_code(&out, 1);
    assert!(stderr(&out).contains("cerfs buckets"), "{}", stderr(&out));

    // cab get: the bytes the client uploaded, checked against the recorded sha256.
    let listing = stdout(&cerfs_db(
        db,
        &[
            "query",
            "--format",
            "csv",
            "SELECT name, sha256, size FROM cabs WHERE subpath = 'blue' ORDER BY name",
        ],
    ));
    let rows: Vec<Vec<&str>> = listing
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 5);
    let (name, sha) = (rows[0][0], rows[0][1]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("copy.cab");
    let out = cerfs_db(
        db,
        &[
            "cab",
            "get",
            &format!("blue/{name}"),
            "-o",
            target.to_str().unwrap(),
        ],
    );
    assert_code(&out, 0);
    let bytes = std::fs::read(&target).unwrap();
    assert_eq!(sha256_hex(&bytes), sha);
    assert_eq!(bytes.len().to_string(), rows[0][2]);
    let out = cerfs_db(db, &["cab", "get", &format!("blue\\{name}"), "-o", "-"]);
    assert_code(&out, 0);
    assert_eq!(out.stdout, bytes);

    // A device takes the bytes in place: a rename over it would replace it (as root, the
    // CI once lost /dev/null that way). A private null device stands in for /dev/null.
    let null = dir.path().join("null");
    let made = Command::new("mknod")
        .arg(&null)
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    if made {
        let out = cerfs_db(
            db,
            &[
                "cab",
                "get",
                &format!("blue/{name}"),
                "-o",
                null.to_str().unwrap(),
            ],
        );
        assert_code(&out, 0);
        use std::os::unix::fs::FileTypeExt;
        let kind = std::fs::symlink_metadata(&null).unwrap().file_type();
        assert!(kind.is_char_device(), "{} is now {kind:?}", null.display());
        assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".cerfs-part")));
    } else {
        eprintln!("skipping the device case of cab get: mknod needs root");
    }
    let out = cerfs_db(
        db,
        &[
            "cab",
            "get",
            &format!("blue/{name}"),
            "-o",
            dir.path().to_str().unwrap(),
        ],
    );
    assert_code(&out, 1);
    assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));

    let out = cerfs_db(db, &["cab", "get", "blue/missing.cab", "-o", "x"]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("no cab \"missing.cab\""),
        "{}",
        stderr(&out)
    );
    let out = cerfs_db(db, &["cab", "get", "justaname", "-o", "x"]);
    assert_code(&out, 1);
    assert!(stderr(&out).contains("SUBPATH/NAME"), "{}", stderr(&out));

    // cab export: every complete cab of the bucket; again keeps them; a clash is refused.
    let to = dir.path().join("export");
    let out = cerfs_db(
        db,
        &[
            "cab",
            "export",
            "--bucket",
            "blue",
            "--to",
            to.to_str().unwrap(),
        ],
    );
    assert_code(&out, 0);
    for row in &rows {
        let bytes = std::fs::read(to.join(row[0])).unwrap();
        assert_eq!(sha256_hex(&bytes), row[1], "{}", row[0]);
    }
    assert_eq!(std::fs::read_dir(&to).unwrap().count(), 5);
    let out = cerfs_db(
        db,
        &[
            "cab",
            "export",
            "--bucket",
            "blue",
            "--to",
            to.to_str().unwrap(),
        ],
    );
    assert_code(&out, 0);
    assert!(stderr(&out).contains("5 already there"), "{}", stderr(&out));
    std::fs::write(to.join(rows[1][0]), b"something else").unwrap();
    let out = cerfs_db(
        db,
        &[
            "cab",
            "export",
            "--bucket",
            "blue",
            "--to",
            to.to_str().unwrap(),
        ],
    );
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("already exists with other content"),
        "{}",
        stderr(&out)
    );
    let out = cerfs_db(
        db,
        &[
            "cab",
            "export",
            "--bucket",
            "nope",
            "--to",
            to.to_str().unwrap(),
        ],
    );
    assert_code(&out, 1);
}

#[test]
fn admin_commands_beside_a_running_server_leave_its_upload_alone() {
    let g = generate();
    let db = &g.db;
    // The "server": a store opened as cerfs mount opens it, with an upload in progress.
    let server = CerFs::new(Arc::new(SqliteStore::open(db).unwrap()));
    let fh = server.begin_cab("blue", "uploading.cab").unwrap();
    server.write(fh, 0, b"MSCF first half").unwrap();

    assert_code(
        &cerfs_db(db, &["status", "set", "blue", "Crashes per bucket=9"]),
        0,
    );
    assert_code(&cerfs_db(db, &["counts", "reset", "blue"]), 0);
    assert_code(&cerfs_db(db, &["buckets"]), 0);
    let out = cerfs_db(db, &["cab", "get", "blue/uploading.cab", "-o", "-"]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("still being uploaded"),
        "{}",
        stderr(&out)
    );
    let out = cerfs_db(db, &["reindex", "--bucket", "blue"]);
    assert_code(&out, 0);

    // The upload goes on and completes.
    server.write(fh, 15, b", second half").unwrap();
    server.flush(fh, None).unwrap();
    server.release(fh).unwrap();
    let state = stdout(&cerfs_db(
        db,
        &[
            "query",
            "--format",
            "csv",
            "SELECT state, size FROM cabs WHERE name = 'uploading.cab'",
        ],
    ));
    assert_eq!(state, "state,size\r\ncomplete,28\r\n");
}

#[test]
fn reindex_redoes_the_selected_cabs() {
    let g = generate();
    let db = &g.db;
    let out = cerfs_db(db, &["reindex", "--bucket", BROKEN]);
    assert_code(&out, 0);
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines.iter().all(|l| l.starts_with("partial\t")),
        "{lines:?}"
    );
    assert!(stderr(&out).contains("queued 3 cabs"), "{}", stderr(&out));

    let out = cerfs_db(db, &["reindex", "--failed", "--queue-only"]);
    assert_code(&out, 0);
    assert!(stderr(&out).contains("queued 3 cabs"), "{}", stderr(&out));
    let pending = stdout(&cerfs_db(
        db,
        &[
            "query",
            "--format",
            "csv",
            "SELECT count(*) FROM cabs WHERE index_status = 'pending'",
        ],
    ));
    assert_eq!(pending, "count(*)\r\n3\r\n");
    let out = cerfs_db(db, &["reindex"]);
    assert_code(&out, 0);
    // Everything queued (the 3 above and all the others) indexed once more.
    assert!(stderr(&out).contains("indexed 28 cabs"), "{}", stderr(&out));
    let out = cerfs_db(db, &["reindex", "--bucket", "no/such"]);
    assert_code(&out, 1);
    assert!(stderr(&out).contains("cerfs buckets"), "{}", stderr(&out));
}
