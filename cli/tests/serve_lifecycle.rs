//! `cerfs serve` as an admin runs it: start, list the share with smbclient, SIGTERM, and
//! nothing left behind (no mount, no smbd, a sound database); Samba dying on its own; a
//! port already taken; missing smbd or /dev/fuse; the documented flags.

mod smb_support;

use std::net::TcpListener;
use std::process::Command;

use cerfs_testkit::post_stage2;
use smb_support::*;

#[test]
fn serve_lists_the_share_and_stops_cleanly_on_sigterm() {
    if !can_run(false) {
        return;
    }
    let opts = ServeOptions::new();
    let port = opts.port.get();
    let Some(mut serve) = Serve::start_or_skip(&opts) else {
        return;
    };
    assert!(is_mounted(&serve.mountpoint));
    assert!(is_alive(serve.samba_pid));

    let out = serve.smbclient("ls");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "smbclient ls: {listing}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["cabs", "counts", "status"] {
        assert!(
            listing
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name} missing from:\n{listing}"
        );
    }
    // The generated configuration is where --state-dir says, with the share on the mount.
    let conf = std::fs::read_to_string(serve.state_dir.join("smb.conf")).expect("smb.conf");
    assert!(conf.contains("[cer]"), "{conf}");
    assert!(
        conf.contains(&format!("path = {}", serve.mountpoint.display())),
        "{conf}"
    );
    assert!(conf.contains(&format!("smb ports = {port}")), "{conf}");

    let status = serve.terminate();
    serve.assert_clean_stop(status);
    let stderr = serve.stderr();
    assert!(stderr.contains("received SIGTERM"), "{stderr}");
    assert!(stderr.contains("Samba stopped"), "{stderr}");
}

#[test]
fn serve_exits_nonzero_and_unmounts_when_smbd_dies() {
    if !can_run(false) {
        return;
    }
    let Some(mut serve) = Serve::start_or_skip(&ServeOptions::new()) else {
        return;
    };
    send_signal(serve.samba_pid, libc::SIGKILL);
    let status = serve.wait();
    let stderr = serve.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Samba stopped unexpectedly"), "{stderr}");
    assert!(stderr.contains("killed by signal 9"), "{stderr}");
    assert!(stderr.contains("the last lines Samba logged"), "{stderr}");
    serve.assert_cleaned_up();
}

/// Even `kill -9` of cerfs leaves no smbd: Samba's stdin is a pipe only cerfs holds, and
/// Samba in the foreground exits when it closes. (The mount is left dead, as after any
/// crash of a FUSE server; the test unmounts it.)
#[test]
fn serve_killed_outright_leaves_no_smbd() {
    if !can_run(false) {
        return;
    }
    let Some(mut serve) = Serve::start_or_skip(&ServeOptions::new()) else {
        return;
    };
    send_signal(serve.child.id(), libc::SIGKILL);
    serve.wait();
    let deadline = std::time::Instant::now() + DEADLINE;
    while !live_group_members(serve.samba_pid).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "Samba outlived cerfs: {:?}",
            live_group_members(serve.samba_pid)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!is_alive(serve.samba_pid));
}

#[test]
fn serve_refuses_a_port_in_use_before_mounting() {
    if !can_run(false) {
        return;
    }
    let opts = ServeOptions::new();
    let _holder = TcpListener::bind(opts.port.addr()).expect("hold the port");
    match Serve::start(&opts) {
        Started::Ready(_) => panic!("cerfs serve started on a port in use"),
        Started::Exited(status, stderr) => {
            assert_eq!(status.code(), Some(1), "{stderr}");
            assert!(
                stderr.contains(&format!("port {} on 127.0.0.1 is in use", opts.port.get())),
                "{stderr}"
            );
            assert!(!stderr.contains("mounted"), "mounted anyway: {stderr}");
        }
    }
}

/// Runs `cerfs serve` in a private mount namespace where `hide` is covered by an empty
/// tmpfs; returns its exit code and stderr, or None (after the testkit's skip rule) when
/// no such namespace can be made here.
fn serve_without(hide: &str) -> Option<(Option<i32>, String)> {
    let port = reserve_port();
    let port = port.get();
    let (_dir, root) = open_tempdir();
    let script = format!(
        "mount -t tmpfs cerfs-test-empty {hide} && exec {CERFS} serve --db {db} --mountpoint {mnt} \
         --state-dir {state} --port {port}",
        db = root.join("cer.db").display(),
        mnt = root.join("mnt").display(),
        state = root.join("samba").display(),
    );
    let out = match Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("PATH", "/usr/bin:/bin")
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            unavailable(&format!("cannot run unshare (util-linux): {e}"));
            return None;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if (stderr.contains("unshare failed") || stderr.contains("mount:"))
        && unavailable(&format!("no private mount namespace here: {stderr}"))
    {
        return None;
    }
    Some((out.status.code(), stderr))
}

#[test]
fn serve_says_what_to_install_without_smbd() {
    if !can_run(false) {
        return;
    }
    // Debian keeps smbd in /usr/sbin (/sbin is a link to it).
    let Some((code, stderr)) = serve_without("/usr/sbin") else {
        return;
    };
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("smbd not found"), "{stderr}");
    assert!(stderr.contains("apt-get install samba"), "{stderr}");
}

#[test]
fn serve_says_what_to_install_without_dev_fuse() {
    if !can_run(false) {
        return;
    }
    let Some((code, stderr)) = serve_without("/dev") else {
        return;
    };
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("/dev/fuse not found"), "{stderr}");
    assert!(stderr.contains("apt-get install fuse3"), "{stderr}");
}

#[test]
fn serve_help_documents_the_stable_flags() {
    let out = Command::new(CERFS)
        .args(["serve", "--help"])
        .output()
        .expect("run cerfs");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--db",
        "--mountpoint",
        "--share",
        "--listen",
        "--port",
        "--admin-user",
        "--admin-password-file",
        "CERFS_ADMIN_PASSWORD",
        "--guest",
        "--no-guest",
        "--smb1",
        "--state-dir",
        "[default: 4450]",
        "[default: cer.db]",
        "[default: 127.0.0.1]",
        "[default: ceradmin]",
        "--port 445",
    ] {
        assert!(
            help.contains(flag),
            "{flag} missing from serve --help:\n{help}"
        );
    }
}

#[test]
fn serve_rejects_bad_arguments_before_touching_anything() {
    for (args, wanted) in [
        (&["serve", "--share", "a b"][..], "share name"),
        (&["serve", "--admin-user", "nobody"][..], "guest account"),
        (&["serve", "--listen", "not-an-ip"][..], "invalid"),
    ] {
        let out = Command::new(CERFS).args(args).output().expect("run cerfs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(stderr.contains(wanted), "{args:?}: {stderr}");
    }
}

#[test]
fn samba_config_prints_the_share_stanza() {
    let out = Command::new(CERFS)
        .args(["samba-config", "--share", "crashes", "--path", "/srv/cer"])
        .output()
        .expect("run cerfs");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[crashes]"), "{text}");
    assert!(text.contains("path = /srv/cer"), "{text}");
    assert!(text.contains("oplocks = no"), "{text}");
    assert!(text.contains("guest ok = yes"), "{text}");
    assert!(!text.lines().any(|l| l.trim() == "[global]"), "{text}");
    let out = Command::new(CERFS)
        .args(["samba-config", "--path", "relative/dir"])
        .output()
        .expect("run cerfs");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn serve_with_http_counts_cer2_reports_on_the_share() {
    if !can_run(false) {
        return;
    }
    let http_port = reserve_port();
    let http = http_port.addr().to_string();
    let mut opts = ServeOptions::new();
    // The HTTP limits of `cerfs http` apply to `serve --http` too.
    opts.extra = vec![
        "--http".into(),
        http.clone(),
        "--max-report-size".into(),
        "2K".into(),
    ];
    let Some(mut serve) = Serve::start_or_skip(&opts) else {
        return;
    };
    // A kernel fault reported over HTTP, as UTF-16LE with a BOM ([MS-CER2] 4.3, shortened).
    let xml = r#"<?xml version="1.0" encoding="UTF-16"?><WERREPORT><MACHINEINFO machinename="m1" os="6.1.6561.2.0.0.256.1" lcid="1033"/><USERINFO username="u1"/><APPLICATIONINFO appname="Windows" apppath="C:\Windows\System32\WerFault.exe" appcompany="Test Corporation"/><EVENTINFO reporttype="4" eventtime="128496996179046077" eventtype="BlueScreen" friendlyeventname="Shut down unexpectedly"/><SIGNATURE><SECONDARYPARAMETER name="BCCode" value="f4"/></SIGNATURE></WERREPORT>"#;
    let mut body = vec![0xFF, 0xFE];
    body.extend(xml.encode_utf16().flat_map(u16::to_le_bytes));
    let (status, answer) = post_stage2(&http, &body);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("Bucket="), "{answer}");
    assert!(
        answer.contains("DumpFile=\\PersistedCabs\\Blue\\"),
        "{answer}"
    );
    let mut big = body.clone();
    big.resize(4096, b' ');
    let (status, answer) = post_stage2(&http, &big);
    assert_eq!(status, 413, "a report over --max-report-size: {answer}");

    // The hit shows on the share, through Samba.
    let out = serve.smbclient("get counts\\blue\\count.txt -");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Cabs Gathered=0\r\nTotal Hits=1\r\n"),
        "count.txt over SMB: {text:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = serve.terminate();
    serve.assert_clean_stop(status);
    assert!(
        std::net::TcpStream::connect(&http).is_err(),
        "the HTTP server stopped with serve"
    );
}
