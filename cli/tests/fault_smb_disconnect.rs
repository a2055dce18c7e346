//! A client that disappears mid-upload: the Python SMB client is killed with SIGKILL while
//! it copies a cab through `cerfs serve` (real smbd). docs/semantics.md: smbd closes the
//! file when the connection drops, cerfs sees a close and commits the truncated cab as it
//! is, with its real size and sha256. So: the cab becomes complete within a deadline (no
//! hang), holds a prefix of what was sent and reads back with the sha256 the store
//! recorded; meanwhile and afterwards other clients upload, list and read as usual.

mod fault_support;
mod smb_support;

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use fault_support::{poll_until, sha256_file, sha256_hex, Rng};
use smb_support::*;

const BIG: usize = 64 << 20;

#[test]
fn a_client_killed_mid_put_leaves_a_consistent_cab_and_others_proceed() {
    if !can_run(true) {
        return;
    }
    let Some(mut serve) = Serve::start_or_skip(&ServeOptions::new()) else {
        return;
    };
    let bucket = serve.mountpoint.join("cabs/blue");
    fs::create_dir_all(&bucket).expect("mkdir cabs/blue");

    let data = Rng::new(0xc0ffee).bytes(BIG);
    let local = serve.root.join("big.cab");
    fs::write(&local, &data).expect("write the local cab");

    // The client that will vanish.
    let mut victim = Command::new("python3")
        .arg(PY_CLIENT)
        .args(["--port", &serve.port.to_string(), "put"])
        .arg(&local)
        .arg("cabs\\blue\\big.cab")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the Python client");
    // Kill it once at least 4 MiB arrived (lookup and getattr work while a cab is
    // written, and report the exact length received).
    let big = bucket.join("big.cab");
    let seen = poll_until(Duration::from_secs(60), "the upload starts", || {
        let len = fs::metadata(&big).map(|m| m.len()).unwrap_or(0);
        (len >= 4 << 20).then_some(len)
    });
    send_signal(victim.id(), libc::SIGKILL);
    let status = victim.wait().expect("reap the client");
    assert!(!status.success(), "the client was killed, not finished");
    assert!(
        (seen as usize) < BIG,
        "the whole cab arrived before the kill"
    );

    // Another client is served while smbd notices the dead connection.
    let small = Rng::new(7).bytes(100_000);
    let small_local = serve.root.join("small.cab");
    fs::write(&small_local, &small).expect("write small cab");
    let answer = serve.py(&[
        "put",
        small_local.to_str().expect("UTF-8 path"),
        "cabs\\blue\\small.cab",
    ]);
    assert_ok(&answer, "put small.cab beside the dead client");

    // The truncated cab is committed (no hang): complete, a prefix of what was sent.
    let (size, sha) = poll_until(
        Duration::from_secs(60),
        "the dropped upload is closed",
        || {
            fault_support::cab_rows(&serve.db, "blue")
                .into_iter()
                .find(|r| r.0 == "big.cab" && r.1 == "complete")
                .map(|r| (r.2.expect("size"), r.3.expect("sha256")))
        },
    );
    eprintln!("big.cab committed at {size} of {BIG} bytes");
    let size = usize::try_from(size).expect("size");
    assert!(
        size >= seen as usize && size < BIG,
        "committed {size} bytes"
    );
    assert_eq!(sha, sha256_hex(&data[..size]), "a prefix of what was sent");
    assert_eq!(sha256_file(&big).expect("read big.cab"), sha);

    // Others proceed: listing and reading through SMB, and a further upload.
    let listing = serve.smbclient("cd cabs\\blue; ls");
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(
        text.contains("big.cab") && text.contains("small.cab"),
        "{text}"
    );
    let got = serve.py(&["get", "cabs\\blue\\small.cab"]);
    assert_ok(&got, "get small.cab");
    assert_eq!(smb_support::data(&got), small);
    let answer = serve.py(&[
        "put",
        small_local.to_str().expect("UTF-8 path"),
        "cabs\\blue\\after.cab",
    ]);
    assert_ok(&answer, "put after.cab");
    assert_eq!(
        sha256_file(&bucket.join("after.cab")).expect("read after.cab"),
        sha256_hex(&small)
    );

    let status = serve.terminate();
    serve.assert_clean_stop(status);
}
