//! Hostile clients over SMB against `cerfs serve` with a real smbd (docs/security.md): a
//! counter pushed to its limit in one write, a delete-pending lockout of protected files,
//! a sparse cab extended to gigabytes, log handles each holding a megabyte of unfinished
//! line, control characters in log lines, the admin account (not root, signing, lockout) and an
//! unsafe Samba state directory. Each test failed before its fix.

mod smb_support;

use std::os::unix::fs::PermissionsExt;

use smb_support::*;

/// Writes `text` to a local file of the test and returns its path (for `put`).
fn local(serve: &Serve, name: &str, text: &[u8]) -> String {
    let path = serve.root.join(name);
    std::fs::write(&path, text).expect("write a local file");
    path.to_str().expect("UTF-8 path").to_owned()
}

/// A CER2 kernel-fault report, as Windows sends it (UTF-16LE with a BOM).
fn blue_report() -> Vec<u8> {
    let xml = r#"<?xml version="1.0" encoding="UTF-16"?><WERREPORT><MACHINEINFO machinename="m1" os="6.1.6561.2.0.0.256.1" lcid="1033"/><USERINFO username="u1"/><APPLICATIONINFO appname="Windows" apppath="C:\Windows\System32\WerFault.exe"/><EVENTINFO reporttype="4" eventtime="128496996179046077" eventtype="BlueScreen"/><SIGNATURE><SECONDARYPARAMETER name="BCCode" value="f4"/></SIGNATURE></WERREPORT>"#;
    cerfs_testkit::utf16le_bom(xml)
}

/// POSTs a level-1 report; the HTTP status.
fn post_stage2(addr: &str, body: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).expect("connect to the HTTP server");
    let head = format!(
        "POST /stage2.htm HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).expect("send head");
    conn.write_all(body).expect("send body");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read the answer");
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("an HTTP status line")
}

#[test]
fn one_write_adds_at_most_one_report_and_no_counter_state_breaks_a_bucket() {
    if !can_run(true) {
        return;
    }
    let http_port = reserve_port();
    let http = http_port.addr().to_string();
    let mut opts = ServeOptions::new();
    opts.extra = vec!["--http".into(), http.clone()];
    let Some(serve) = Serve::start_or_skip(&opts) else {
        return;
    };
    let count = r"counts\blue\count.txt";
    assert_ok(
        &serve.py(&["mkdir", r"counts\blue"]),
        "the bucket's counter folder",
    );
    assert_ok(
        &serve.py(&["count", count, "--pattern", "a"]),
        "a first report",
    );
    let before = serve.py(&["get", count]);
    assert_eq!(data(&before), b"Cabs Gathered=1\r\nTotal Hits=1\r\n");

    // The attack: read, then write the largest counters in one go.
    let huge = local(
        &serve,
        "huge.txt",
        b"Cabs Gathered=1000\r\nTotal Hits=9223372036854775807\r\n",
    );
    let refused = serve.py(&["put", &huge, count, "--disposition", "open_if"]);
    assert_eq!(
        assert_refused(&refused, "a jump of many reports"),
        "STATUS_INVALID_PARAMETER"
    );
    assert_eq!(data(&serve.py(&["get", count])), data(&before), "unchanged");
    // The refusal is logged.
    serve.logged("one report adds one hit and at most one cab");
    // The bucket keeps working over SMB and over HTTP.
    assert_ok(
        &serve.py(&["count", count, "--pattern", "b"]),
        "next report",
    );
    assert_eq!(post_stage2(&http, &blue_report()), 200);
    assert_eq!(
        data(&serve.py(&["get", count])),
        b"Cabs Gathered=2\r\nTotal Hits=3\r\n"
    );

    // Counters at their largest, however they got there (an admin's sqlite3): a report is
    // still taken, over SMB and over HTTP, and nothing answers 500.
    let conn = rusqlite::Connection::open(&serve.db).expect("open the database");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .expect("busy timeout");
    conn.execute(
        "UPDATE bucket_rows SET total_hits = 9223372036854775807, \
         cabs_gathered = 9223372036854775806 WHERE subpath = 'blue'",
        [],
    )
    .expect("push the counters to the limit");
    drop(conn);
    assert_eq!(post_stage2(&http, &blue_report()), 200);
    assert_ok(
        &serve.py(&["count", count, "--pattern", "a", "--add-cab", "0"]),
        "an SMB report at the limit",
    );
    assert_eq!(
        data(&serve.py(&["get", count])),
        b"Cabs Gathered=9223372036854775806\r\nTotal Hits=9223372036854775807\r\n"
    );
}

#[test]
fn a_guest_cannot_make_a_protected_file_delete_pending() {
    if !can_run(true) {
        return;
    }
    let Some(serve) = Serve::start_or_skip(&ServeOptions::new()) else {
        return;
    };
    // One of each protected kind: settings, counters, a log, a stored cab.
    let policy = local(&serve, "policy.txt", b"Tracking=YES\r\n");
    assert_ok(
        &serve.py_admin(&["put", &policy, "policy.txt"]),
        "policy.txt",
    );
    assert_ok(&serve.py(&["mkdir", r"counts\blue"]), "the counter folder");
    assert_ok(
        &serve.py(&["count", r"counts\blue\count.txt", "--pattern", "a"]),
        "count.txt",
    );
    assert_ok(
        &serve.py(&[
            "append",
            "crash.log",
            &hex::encode("10:00:00  01-02-2024\tPC\tu\tblue\r\n"),
        ]),
        "crash.log",
    );
    assert_ok(&serve.py(&["mkdir", r"cabs\blue"]), "the bucket's folder");
    assert_ok(
        &serve.py(&[
            "put",
            &cab_file(),
            r"cabs\blue\r.cab",
            "--disposition",
            "create",
        ]),
        "a stored cab",
    );
    for path in [
        "policy.txt",
        r"counts\blue\count.txt",
        "crash.log",
        r"cabs\blue\r.cab",
    ] {
        // The guest holds a handle with DELETE (delete-on-close) while others read.
        let answers = serve.batch(&[
            op(Who::Guest, &["hold-delete", path]),
            op(Who::Admin, &["get", path]),
            op(Who::Guest, &["get", path]),
        ]);
        assert_eq!(
            assert_refused(&answers[0], &format!("DELETE access to {path}")),
            "STATUS_ACCESS_DENIED",
            "{path}"
        );
        assert_ok(&answers[1], &format!("the admin reads {path}"));
        assert_ok(&answers[2], &format!("another guest reads {path}"));
    }
    // A guest may still abandon its own upload (delete a cab it is writing: the copy
    // engine's clean-up), and delete the plain files it made.
    let plain = local(&serve, "notes.txt", b"notes");
    assert_ok(&serve.py(&["put", &plain, "notes.txt"]), "a plain file");
    assert_ok(&serve.py(&["delete", "notes.txt"]), "deleting it");
}

#[test]
fn a_sparse_cab_is_bounded_and_costs_nothing_to_close() {
    if !can_run(true) {
        return;
    }
    let mut opts = ServeOptions::new();
    opts.extra = vec!["--max-cab-size".into(), "1M".into()];
    let Some(serve) = Serve::start_or_skip(&opts) else {
        return;
    };
    assert_ok(&serve.py(&["mkdir", r"cabs\blue"]), "bucket");
    // Four bytes, then an end of file of 6 GiB: taken as a preallocation hint; the cab is
    // what was written, and its close hashes four bytes, not six gigabytes.
    let extended = serve.py(&["extend", r"cabs\blue\sparse.cab", &(6u64 << 30).to_string()]);
    assert_ok(&extended, "set end of file");
    let close = extended["close_seconds"].as_f64().expect("close time");
    let info = serve.py(&["sha256", r"cabs\blue\sparse.cab"]);
    assert_ok(&info, "the cab");
    assert_eq!(info["size"], 4, "the cab holds what was written");
    assert!(close < 30.0, "the close took {close} s");
    // Bytes past the largest cab (1 MiB here) fail the upload, and nothing is kept.
    let past = serve.py(&[
        "write-at",
        r"cabs\blue\far.cab",
        &(2u64 << 20).to_string(),
        "10",
    ]);
    assert_refused(&past, "a write past the largest cab");
    let listing = serve.py(&["ls", r"cabs\blue"]);
    assert_eq!(
        listing["names"],
        serde_json::json!(["sparse.cab"]),
        "{listing}"
    );
    serve.logged("past the largest cab accepted");
}

/// Resident memory of process `pid` in MiB (VmRSS).
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

#[test]
fn unfinished_log_lines_are_bounded_and_refused_clearly() {
    if !can_run(true) {
        return;
    }
    let Some(serve) = Serve::start_or_skip(&ServeOptions::new()) else {
        return;
    };
    let before = rss_mib(serve.child.id());
    // 48 handles, each writing 1 MiB without a line end, held open at once.
    let flood = serve.py(&[
        "log-flood",
        "crash.log",
        "--handles",
        "48",
        "--bytes",
        "1048576",
    ]);
    assert_ok(&flood, "the flood ran");
    let after = rss_mib(serve.child.id());
    let refusals = &flood["refusals"];
    assert_eq!(
        refusals["STATUS_INVALID_PARAMETER"], 48,
        "every megabyte line is refused as such, not as a full disk: {flood}"
    );
    assert!(refusals.get("STATUS_DISK_FULL").is_none(), "{flood}");
    assert!(
        after - before < 24.0,
        "cerfs grew from {before:.1} to {after:.1} MiB"
    );
    // Nothing of the refused lines entered the log.
    let log = serve.py(&["get", "crash.log"]);
    assert!(
        log["ok"] == serde_json::Value::Bool(false) || data(&log).len() < 64 * 1024,
        "{} bytes in crash.log",
        data(&log).len()
    );
    serve.logged("a log line of more than 65536 bytes");
}

#[test]
fn control_characters_in_log_lines_are_refused() {
    if !can_run(true) {
        return;
    }
    let Some(serve) = Serve::start_or_skip(&ServeOptions::new()) else {
        return;
    };
    let good = "10:00:00  01-02-2024\tPC\tuser\tblue\r\n";
    assert_ok(
        &serve.py(&["append", "crash.log", &hex::encode(good)]),
        "a line",
    );
    for hostile in [
        "10:00:00  01-02-2024\tPC\t\x1b[2Juser\tblue\r\n",
        "10:00:00  01-02-2024\tPC\tuser\rspoofed\tblue\r\n",
        "bell\x07\r\n",
    ] {
        let answer = serve.py(&["append", "crash.log", &hex::encode(hostile)]);
        assert_eq!(
            assert_refused(&answer, &format!("{hostile:?}")),
            "STATUS_INVALID_PARAMETER"
        );
    }
    assert_eq!(data(&serve.py(&["get", "crash.log"])), good.as_bytes());
}

/// The NTSTATUS smbclient printed, if any.
fn nt_status(out: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.split_whitespace()
        .find(|w| w.starts_with("NT_STATUS_"))
        .unwrap_or("")
        .to_owned()
}

/// smbclient to `share` as `user` with `option` (e.g. `--client-protection=off`),
/// running `ls`.
fn login(
    serve: &Serve,
    share: &str,
    user: &str,
    password: &str,
    option: &str,
) -> std::process::Output {
    std::process::Command::new("smbclient")
        .arg(format!("//127.0.0.1/{share}"))
        .args(["-p", &serve.port.to_string()])
        .args(["-U", &format!("{user}%{password}")])
        .arg(option)
        .args(["-c", "ls"])
        .output()
        .expect("run smbclient")
}

/// A client that cannot encrypt: SMB 2.1 at most.
const NO_ENCRYPTION: &str = "--option=client max protocol=SMB2_10";

/// The uid of unix account `name`.
fn uid_of(name: &str) -> u32 {
    let out = std::process::Command::new("id")
        .args(["-u", name])
        .output()
        .expect("id -u");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a uid")
}

#[test]
fn the_admin_is_a_dedicated_account_with_an_encrypted_share_and_a_lockout() {
    if !can_run(true) {
        return;
    }
    let mut opts = ServeOptions::new();
    opts.extra = vec!["--lockout-attempts".into(), "3".into()];
    let Some(serve) = Serve::start_or_skip(&opts) else {
        return;
    };
    let policy = local(&serve, "policy.txt", b"Tracking=YES\r\n");
    // root's name, or the admin unix account's own, with the admin's password: a guest
    // (which this client, asked to sign, refuses to be).
    for name in ["root", "cerfs-admin"] {
        let answer = py_client(
            serve.port,
            Some((name, ADMIN_PASSWORD)),
            &["put", &policy, "policy.txt"],
        );
        assert!(
            status(&answer).contains("authenticated as a guest"),
            "{name}: {answer}"
        );
    }
    // On the guests' share the admin only reads.
    let on_cer = |args: &[&str]| py_client(serve.port, Some((ADMIN_USER, ADMIN_PASSWORD)), args);
    assert_eq!(
        assert_refused(&on_cer(&["put", &policy, "policy.txt"]), "the admin on cer"),
        "STATUS_ACCESS_DENIED"
    );
    // Through its own share it changes the settings, acting as cerfs-admin (not root).
    assert_ok(
        &serve.py_admin(&["put", &policy, "policy.txt"]),
        "the admin",
    );
    assert_ok(&on_cer(&["get", "policy.txt"]), "the admin reads on cer");
    let owner = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(serve.mountpoint.join("policy.txt")).expect("stat policy.txt"),
    );
    let admin_uid = uid_of("cerfs-admin");
    assert_ne!(admin_uid, 0);
    assert_eq!(owner, admin_uid, "policy.txt is presented as the admin's");

    // The admin share takes encrypted sessions only, and no guest.
    let plain = login(
        &serve,
        ADMIN_SHARE,
        ADMIN_USER,
        ADMIN_PASSWORD,
        NO_ENCRYPTION,
    );
    assert_eq!(
        nt_status(&plain),
        "NT_STATUS_ACCESS_DENIED",
        "unencrypted admin"
    );
    let encrypted = "--client-protection=encrypt";
    assert!(
        login(&serve, ADMIN_SHARE, ADMIN_USER, ADMIN_PASSWORD, encrypted)
            .status
            .success()
    );
    let guest = py_client(serve.port, None, &["--share", ADMIN_SHARE, "ls", ""]);
    assert_eq!(guest["ok"], false, "a guest on the admin share: {guest}");

    // Three wrong passwords lock the account: then even the right one is refused.
    for _ in 0..3 {
        let wrong = login(&serve, "cer", ADMIN_USER, "not-the-password", encrypted);
        assert_eq!(nt_status(&wrong), "NT_STATUS_LOGON_FAILURE");
    }
    let locked = login(&serve, ADMIN_SHARE, ADMIN_USER, ADMIN_PASSWORD, encrypted);
    assert_eq!(nt_status(&locked), "NT_STATUS_ACCOUNT_LOCKED_OUT");
}

#[test]
fn without_guests_every_session_must_sign() {
    if !can_run(true) {
        return;
    }
    let mut opts = ServeOptions::new();
    opts.extra = vec!["--no-guest".into()];
    let Some(serve) = Serve::start_or_skip(&opts) else {
        return;
    };
    let with_guests = Serve::start_or_skip(&ServeOptions::new()).expect("a second server");
    let negotiated = py_client(with_guests.port, None, &["negotiate"]);
    assert_eq!(
        negotiated["signing_required"], false,
        "guests: {negotiated}"
    );
    // Clients follow what the server's negotiate response demands.
    let negotiated = py_client(serve.port, None, &["negotiate"]);
    assert_eq!(negotiated["signing_required"], true, "{negotiated}");
    let signed = login(
        &serve,
        "cer",
        ADMIN_USER,
        ADMIN_PASSWORD,
        "--client-protection=sign",
    );
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
}

#[test]
fn a_state_directory_others_can_write_is_refused_and_left_alone() {
    if !can_run(false) {
        return;
    }
    let (_dir, root) = open_tempdir();
    let state = root.join("open-state");
    std::fs::create_dir(&state).expect("mkdir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let port = reserve_port();
    let out = std::process::Command::new(CERFS)
        .arg("serve")
        .arg("--db")
        .arg(root.join("cer.db"))
        .arg("--mountpoint")
        .arg(root.join("mnt"))
        .arg("--state-dir")
        .arg(&state)
        .args(["--port", &port.get().to_string()])
        .env_remove("CERFS_ADMIN_PASSWORD")
        .output()
        .expect("run cerfs serve");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing the Samba state directory") && stderr.contains("chmod 755"),
        "{stderr}"
    );
    let mode = std::fs::metadata(&state)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o1777, "the directory was left as it was");
}
