//! What a local user and the host can reach of a running `cerfs serve` (docs/security.md):
//! the mount (shared with every user: allow_other) applies the kernel's permission checks;
//! the database files are the server's alone; a database file replaced under a running
//! server stops it with a clear error. Each test failed before its fix.

mod smb_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use smb_support::*;

/// Runs `argv` as the local user uid 1 / gid 1 (daemon), with no supplementary group.
fn as_uid_1(argv: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=1", "--regid=1", "--clear-groups", "--"])
        .args(argv)
        .output()
        .expect("run setpriv")
}

fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_local_user_meets_the_kernels_permission_checks_on_the_mount() {
    if !can_run(false) || !cerfs_testkit::skip::tool_usable("setpriv", "util-linux") {
        return;
    }
    let mut opts = ServeOptions::new();
    opts.admin = false;
    let Some(serve) = Serve::start_or_skip(&opts) else {
        return;
    };
    let mnt = &serve.mountpoint;
    // Root's files: one everybody may read (the control), one only root may.
    let open = mnt.join("open.txt");
    std::fs::write(&open, "for everyone").expect("write open.txt");
    let secret = mnt.join("secret.txt");
    std::fs::write(&secret, "root only").expect("write secret.txt");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(
        std::fs::metadata(&secret).expect("stat").mode() & 0o777,
        0o600
    );

    let control = as_uid_1(&["cat", text(&open)]);
    assert!(
        control.status.success(),
        "uid 1 reads a 0644 file: {}",
        stderr_of(&control)
    );
    let read = as_uid_1(&["cat", text(&secret)]);
    assert!(!read.status.success(), "uid 1 read a root-only file");
    assert!(
        stderr_of(&read).contains("Permission denied"),
        "{}",
        stderr_of(&read)
    );
    for argv in [
        ["chmod", "666", text(&secret)],
        ["chown", "1:1", text(&secret)],
    ] {
        let out = as_uid_1(&argv);
        assert!(!out.status.success(), "uid 1 ran {argv:?}");
        assert!(
            stderr_of(&out).contains("Operation not permitted"),
            "{argv:?}: {}",
            stderr_of(&out)
        );
    }
    let meta = std::fs::metadata(&secret).expect("stat");
    assert_eq!((meta.mode() & 0o777, meta.uid()), (0o600, 0), "unchanged");

    // A stored cab's time is part of the report: nobody changes it, root included.
    let bucket = mnt.join("cabs").join("blue");
    std::fs::create_dir(&bucket).expect("mkdir cabs/blue");
    let cab = bucket.join("r.cab");
    std::fs::copy(cab_file(), &cab).expect("store a cab");
    let stored = std::fs::metadata(&cab).expect("stat").mtime();
    let by_user = as_uid_1(&["touch", "-d", "2001-01-01", text(&cab)]);
    assert!(
        !by_user.status.success(),
        "uid 1 changed a stored cab's time"
    );
    let by_root = Command::new("touch")
        .args(["-d", "2001-01-01", text(&cab)])
        .output()
        .expect("touch");
    assert!(
        !by_root.status.success(),
        "root changed a stored cab's time"
    );
    assert_eq!(std::fs::metadata(&cab).expect("stat").mtime(), stored);
    // What the share presents: a stored cab is root's and read-only, a CER folder sticky.
    let cab_meta = std::fs::metadata(&cab).expect("stat");
    assert_eq!((cab_meta.mode() & 0o7777, cab_meta.uid()), (0o444, 0));
    let dir_meta = std::fs::metadata(&bucket).expect("stat");
    assert_eq!(dir_meta.mode() & 0o7777, 0o1777);
    let delete = as_uid_1(&["rm", "-f", text(&cab)]);
    assert!(!delete.status.success(), "uid 1 deleted a stored cab");
}

#[test]
fn database_files_are_the_servers_alone() {
    if !can_run(false) {
        return;
    }
    let (_dir, root) = open_tempdir();
    // A database someone created readable by all (umask 022) is made private at start.
    let db = root.join("cer.db");
    std::fs::write(&db, b"").expect("create an empty database file");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut opts = ServeOptions::new();
    opts.admin = false;
    let Started::Ready(serve) = Serve::start_in(&opts, &root) else {
        if unavailable("cerfs serve did not start") {
            return;
        }
        panic!("cerfs serve did not start");
    };
    // A write makes sure the -wal and -shm exist.
    std::fs::create_dir(serve.mountpoint.join("cabs").join("blue")).expect("mkdir");
    for suffix in ["", "-wal", "-shm"] {
        let file = root.join(format!("cer.db{suffix}"));
        let mode = std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
}

#[test]
fn a_database_replaced_while_serving_stops_the_server_with_a_clear_error() {
    if !can_run(false) {
        return;
    }
    let mut opts = ServeOptions::new();
    opts.admin = false;
    let Some(mut serve) = Serve::start_or_skip(&opts) else {
        return;
    };
    std::fs::create_dir(serve.mountpoint.join("cabs").join("blue")).expect("mkdir");
    // A restore put in place with mv while the server runs.
    let other = serve.root.join("restored.db");
    std::fs::copy(&serve.db, &other).expect("copy the database");
    std::fs::rename(&other, &serve.db).expect("mv over the database");
    let status = serve.wait();
    assert_eq!(status.code(), Some(1), "{}", serve.stderr());
    let stderr = serve.stderr();
    assert!(
        stderr.contains("was replaced or deleted while in use")
            && stderr.contains("put the right file back"),
        "{stderr}"
    );
    serve.assert_cleaned_up();
}
