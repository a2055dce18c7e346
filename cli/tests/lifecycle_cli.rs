//! Running a store for years, end to end with `cerfs serve` (real smbd) and the admin
//! commands beside it: one server per database, retention and prune, deletions and their
//! audit, quotas over SMB and HTTP, backup under load, verify, compact.

mod smb_support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cerfs_testkit::poll_until;
use smb_support::*;

fn cerfs(db: &std::path::Path, args: &[&str]) -> Output {
    Command::new(CERFS)
        .args(args)
        .arg("--db")
        .arg(db)
        .stdin(Stdio::null())
        .output()
        .expect("run cerfs")
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// CSV rows of `sql`, with `\n` line ends.
fn query(db: &std::path::Path, sql: &str) -> String {
    ok(&cerfs(db, &["query", "--format", "csv", sql]), sql).replace("\r\n", "\n")
}

/// Stores cabs in bucket `sub` through the mount, as root (quicker than SMB).
fn store_cabs(serve: &Serve, sub: &str, names: &[&str], size: usize) {
    let dir = serve.mountpoint.join("cabs").join(sub);
    std::fs::create_dir_all(&dir).expect("bucket folder");
    for (i, name) in names.iter().enumerate() {
        let bytes: Vec<u8> = (0..size).map(|b| ((b + i) % 253) as u8).collect();
        let mut f = std::fs::File::create(dir.join(name)).expect("create cab");
        f.write_all(&bytes).expect("write cab");
        cerfs_testkit::close_checked(f).expect("commit cab");
    }
}

#[test]
fn a_second_server_is_refused_while_the_first_uploads() {
    if !can_run(false) {
        return;
    }
    let Some(serve) = Serve::start_or_skip(&ServeOptions::new()) else {
        return;
    };
    // An upload in progress on the first server.
    let dir = serve.mountpoint.join("cabs").join("blue");
    std::fs::create_dir_all(&dir).expect("bucket");
    let mut upload = std::fs::File::create(dir.join("slow.cab")).expect("start upload");
    upload.write_all(&[1u8; 100_000]).expect("first half");

    let other = serve.root.join("other-mnt");
    std::fs::create_dir(&other).expect("mkdir");
    let second = Command::new(CERFS)
        .args(["mount", "--db"])
        .arg(&serve.db)
        .arg(&other)
        .stdin(Stdio::null())
        .output()
        .expect("run a second cerfs mount");
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("already served by another cerfs process")
            && stderr.contains(&format!("pid {}", serve.child.id()))
            && stderr.contains("serve"),
        "{stderr}"
    );
    // The first one's upload goes on and completes.
    upload.write_all(&[2u8; 100_000]).expect("second half");
    cerfs_testkit::close_checked(upload).expect("commit");
    assert_eq!(
        query(
            &serve.db,
            "SELECT size, state FROM cabs WHERE name = 'slow.cab'"
        ),
        "size,state\n200000,complete\n"
    );
    // Admin commands keep working beside it.
    ok(&cerfs(&serve.db, &["buckets"]), "buckets beside a server");
}

#[test]
fn retention_prunes_bytes_keeps_rows_and_the_share_forgets_them() {
    if !can_run(false) {
        return;
    }
    let Some(serve) = Serve::start_or_skip(&ServeOptions::new()) else {
        return;
    };
    let names = ["c1.cab", "c2.cab", "c3.cab", "c4.cab", "c5.cab"];
    store_cabs(&serve, "blue", &names, 70_000);
    ok(
        &cerfs(
            &serve.db,
            &["retention", "set", "--keep-first", "1", "--keep-last", "2"],
        ),
        "retention set",
    );
    let shown = ok(&cerfs(&serve.db, &["retention", "show"]), "retention show");
    assert!(shown.contains("keep last per bucket  2"), "{shown}");
    let dry = ok(&cerfs(&serve.db, &["prune", "--dry-run"]), "dry run");
    assert_eq!(dry.lines().count(), 2, "{dry}");
    assert!(dry.contains("c2.cab") && dry.contains("c3.cab") && dry.contains("per-bucket"));
    assert_eq!(
        query(
            &serve.db,
            "SELECT count(*) AS n FROM cabs WHERE state = 'complete'"
        ),
        "n\n5\n",
        "a dry run changes nothing"
    );
    ok(&cerfs(&serve.db, &["prune"]), "prune");
    assert_eq!(
        query(
            &serve.db,
            "SELECT name, state, size FROM cabs ORDER BY name"
        ),
        "name,state,size\nc1.cab,complete,70000\nc2.cab,pruned,70000\nc3.cab,pruned,70000\n\
         c4.cab,complete,70000\nc5.cab,complete,70000\n"
    );
    let listing: Vec<String> = std::fs::read_dir(serve.mountpoint.join("cabs").join("blue"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let mut listing = listing;
    listing.sort();
    assert_eq!(listing, ["c1.cab", "c4.cab", "c5.cab"]);
    let copy = serve.root.join("c2-copy.cab");
    let got = cerfs(
        &serve.db,
        &[
            "cab",
            "get",
            "blue/c2.cab",
            "-o",
            copy.to_str().expect("UTF-8"),
        ],
    );
    assert_eq!(got.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&got.stderr).contains("was pruned by retention on"),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert!(!copy.exists(), "a refused get writes nothing");
    // A new upload may take a pruned cab's name.
    store_cabs(&serve, "blue", &["c2.cab"], 10);
    assert_eq!(
        query(
            &serve.db,
            "SELECT count(*) AS n FROM cabs WHERE name = 'c2.cab'"
        ),
        "n\n2\n"
    );
}

#[test]
fn deletions_ask_leave_an_audit_and_take_everything() {
    if !can_run(false) {
        return;
    }
    let Some(serve) = Serve::start_or_skip(&ServeOptions::new()) else {
        return;
    };
    store_cabs(&serve, "blue", &["a.cab", "b.cab"], 1000);
    store_cabs(&serve, "green", &["g.cab"], 1000);
    // No terminal and no --yes: refused, nothing changes.
    let refused = cerfs(&serve.db, &["cab", "delete", "blue/a.cab"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refusing without --yes"));
    ok(
        &cerfs(
            &serve.db,
            &["cab", "delete", "blue/a.cab", "--yes", "--reason", "PII 1"],
        ),
        "cab delete",
    );
    ok(
        &cerfs(
            &serve.db,
            &["bucket", "delete", "green", "--yes", "--reason", "PII 2"],
        ),
        "bucket delete",
    );
    assert_eq!(
        query(&serve.db, "SELECT subpath, name FROM cabs ORDER BY name"),
        "subpath,name\nblue,b.cab\n"
    );
    assert_eq!(
        query(
            &serve.db,
            "SELECT kind, subpath, name, reason FROM deletions ORDER BY deletion_id"
        ),
        "kind,subpath,name,reason\ncab,blue,a.cab,PII 1\nbucket,green,,PII 2\n"
    );
    assert!(!serve.mountpoint.join("cabs/blue/a.cab").exists());
    assert!(!serve.mountpoint.join("cabs/green").exists());
    // Over SMB, clients still cannot delete.
    let answer = serve.py(&["delete", r"cabs\blue\b.cab"]);
    assert_eq!(status(&answer), "STATUS_ACCESS_DENIED", "{answer}");
}

#[test]
fn a_quota_refuses_cabs_but_not_counters_and_lifts_without_a_restart() {
    if !can_run(true) {
        return;
    }
    let Some(serve) = Serve::start_or_skip(&ServeOptions::new()) else {
        return;
    };
    assert_ok(&serve.py(&["mkdir", r"cabs\blue"]), "bucket");
    assert_ok(&serve.py(&["mkdir", r"counts\blue"]), "counter folder");
    ok(
        &cerfs(&serve.db, &["quota", "set", "--max-store", "64K"]),
        "quota set",
    );
    let refused = poll_until(Duration::from_secs(10), "the quota applies", || {
        let answer = serve.py(&[
            "put",
            &cab_file(),
            r"cabs\blue\r1.cab",
            "--disposition",
            "create",
        ]);
        (status(&answer) == "STATUS_DISK_FULL").then_some(answer)
    });
    assert_eq!(refused["ok"], false);
    // count.txt keeps working: it tells the admin what is happening.
    assert_ok(
        &serve.py(&["count", r"counts\blue\count.txt", "--pattern", "a"]),
        "count.txt beside a full store",
    );
    serve.logged("refusing new cabs until space returns");
    assert_eq!(
        query(&serve.db, "SELECT count(*) AS n FROM cabs"),
        "n\n0\n",
        "nothing of the refused cab is kept"
    );
    ok(&cerfs(&serve.db, &["quota", "clear"]), "quota clear");
    poll_until(Duration::from_secs(10), "cabs are accepted again", || {
        let answer = serve.py(&[
            "put",
            &cab_file(),
            r"cabs\blue\r2.cab",
            "--disposition",
            "create",
        ]);
        (answer["ok"] == true).then_some(())
    });
    serve.logged("new cabs are accepted again");
}

#[test]
fn backup_verify_and_compact_work_beside_a_server() {
    if !can_run(false) {
        return;
    }
    let Some(mut serve) = Serve::start_or_skip(&ServeOptions::new()) else {
        return;
    };
    store_cabs(&serve, "blue", &["a.cab", "b.cab", "c.cab"], 300_000);
    let dest = serve.root.join("backup.db");
    let out = ok(
        &cerfs(&serve.db, &["backup", dest.to_str().expect("UTF-8")]),
        "backup",
    );
    assert!(out.contains("backed up"), "{out}");
    let again = cerfs(&serve.db, &["backup", dest.to_str().expect("UTF-8")]);
    assert_eq!(again.status.code(), Some(1), "a backup never overwrites");
    let copy = cerfs(&dest, &["verify"]);
    ok(&copy, "verify the copy");
    let said = String::from_utf8_lossy(&copy.stderr);
    assert!(
        said.contains("integrity_check: ok; cab database: ok"),
        "{said}"
    );
    let served = cerfs(&serve.db, &["verify"]);
    ok(&served, "verify the served store");
    let said = String::from_utf8_lossy(&served.stderr);
    assert!(
        said.contains("cab database: structure not checked while a server runs"),
        "{said}"
    );

    // Pruned bytes leave free pages; compact gives them back beside the server.
    ok(
        &cerfs(&serve.db, &["retention", "set", "--keep-last", "1"]),
        "retention",
    );
    ok(&cerfs(&serve.db, &["prune"]), "prune");
    let compacted = ok(&cerfs(&serve.db, &["compact"]), "compact");
    assert!(compacted.contains("gave"), "{compacted}");

    let status = serve.terminate();
    serve.assert_clean_stop(status);
    // A flipped byte in a stored cab: verify names it and exits 1.
    zero_first_chunk(&serve.db, "c.cab");
    let bad = cerfs(&serve.db, &["verify"]);
    assert_eq!(bad.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(stdout.contains("corrupt\tblue\tc.cab"), "{stdout}");
    // The copy still holds it whole.
    let copy = serve.root.join("c-restored.cab");
    let restored = cerfs(
        &dest,
        &[
            "cab",
            "get",
            "blue/c.cab",
            "-o",
            copy.to_str().expect("UTF-8"),
        ],
    );
    ok(&restored, "the backup's copy of the cab");
    assert_eq!(
        std::fs::metadata(&copy).expect("restored copy").len(),
        300_000
    );
}

/// Zeroes the first stored chunk of cab `name`'s bytes where they live (the cab database
/// beside `db`, or `chunks` for a cab under 1 MiB): a flipped byte, as a failing disk
/// would leave it.
fn zero_first_chunk(db: &std::path::Path, name: &str) {
    let meta = rusqlite::Connection::open(db).expect("open");
    meta.busy_timeout(Duration::from_secs(10)).expect("busy");
    let (ino, bytes_from): (i64, Option<i64>) = meta
        .query_row(
            "SELECT ino, bytes_from FROM cab_rows WHERE name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the cab's row");
    let zero = "SET data = CAST(zeroblob(length(data)) AS BLOB) WHERE ino = ?1 AND idx = 0";
    let changed = if bytes_from.is_none() {
        meta.execute(&format!("UPDATE chunks {zero}"), [ino])
    } else {
        let mut cabs = db.as_os_str().to_owned();
        cabs.push("-cabs");
        let conn = rusqlite::Connection::open(cabs).expect("open the cab database");
        conn.busy_timeout(Duration::from_secs(10)).expect("busy");
        conn.execute(&format!("UPDATE cab_chunks {zero}"), [ino])
    }
    .expect("flip bytes");
    assert_eq!(changed, 1, "{name} has no first chunk");
}

#[test]
fn the_server_prunes_and_scrubs_in_the_background() {
    if !can_run(false) {
        return;
    }
    let mut opts = ServeOptions::new();
    opts.extra = vec!["--maintenance-interval".into(), "1".into()];
    let Some(serve) = Serve::start_or_skip(&opts) else {
        return;
    };
    store_cabs(&serve, "blue", &["a.cab", "b.cab", "c.cab"], 100_000);
    ok(
        &cerfs(&serve.db, &["retention", "set", "--keep-last", "1"]),
        "retention set",
    );
    poll_until(Duration::from_secs(30), "the background prune", || {
        (query(
            &serve.db,
            "SELECT count(*) AS n FROM cabs WHERE state = 'pruned'",
        ) == "n\n2\n")
            .then_some(())
    });
    // A byte flipped under the server: the scrub finds it and says so.
    zero_first_chunk(&serve.db, "c.cab");
    poll_until(Duration::from_secs(30), "the scrub", || {
        serve
            .stderr()
            .contains("scrub: stored cab is corrupt")
            .then_some(())
    });
    assert_eq!(
        query(&serve.db, "SELECT name FROM cabs WHERE corrupt IS NOT NULL"),
        "name\nc.cab\n"
    );
}
