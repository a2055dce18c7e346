//! Two `cerfs serve` heads (FUSE + real smbd each) on one PostgreSQL database, the layout
//! of docs/scale-out.md without CTDB: SMB report cycles from clients of both heads at once
//! on one bucket; what either head then serves adds up to what every client did.
//! Needs FUSE, smbd, Python's smbprotocol and the test PostgreSQL server.

mod smb_support;

use std::process::{Command, Stdio};

use cerfs_fs_core::count_file;
use serde_json::Value;
use smb_support::*;

const BUCKET: &str = r"TwoHeads\1.0.0.0\Mod\1.0.0.0\0000beef";
const CYCLES: usize = 8;

/// Runs `clients` clients of the report cycle against each port at once; their summaries.
fn cycles(ports: &[u16], clients: usize) -> Vec<Value> {
    let children: Vec<_> = ports
        .iter()
        .flat_map(|port| (0..clients).map(move |c| (*port, c)))
        .enumerate()
        .map(|(n, (port, _))| {
            Command::new("python3")
                .arg(PY_CLIENT)
                .args(["--port", &port.to_string(), "cycles"])
                .args(["--subpath", BUCKET, "--cab", &cab_file()])
                .args([
                    "--cycles",
                    &CYCLES.to_string(),
                    "--client-id",
                    &n.to_string(),
                ])
                .args([
                    "--pattern",
                    "alternate",
                    "--machine",
                    &format!("HEADS{n:02}"),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn a client")
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().expect("client output");
            let text = String::from_utf8_lossy(&out.stdout);
            serde_json::from_str(text.trim()).unwrap_or_else(|e| {
                panic!(
                    "a client printed no summary ({e}):\n{text}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
        })
        .collect()
}

#[test]
fn two_smb_heads_serve_one_share_and_lose_nothing() {
    if !can_run(true) {
        return;
    }
    let Some(db) = cerfs_testkit::TestDatabase::create() else {
        return;
    };
    let mut opts = ServeOptions::new();
    opts.db_url = Some(db.url.clone());
    let Some(a) = Serve::start_or_skip(&opts) else {
        return;
    };
    let mut opts = ServeOptions::new();
    opts.db_url = Some(db.url.clone());
    let Some(b) = Serve::start_or_skip(&opts) else {
        return;
    };
    // Every client asks for every cab (through A's mount; B reads it from the database).
    std::fs::write(
        a.mountpoint.join("policy.txt"),
        "Tracking=YES\r\nCrashes per bucket=1000\r\n",
    )
    .expect("policy.txt through A");

    let summaries = cycles(&[a.port, b.port], 2);
    let sum = |key: &str| {
        summaries
            .iter()
            .map(|s| s[key].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let (hits, cabs_counted) = (sum("hits"), sum("cabs_counted"));
    assert_eq!(
        hits,
        (4 * CYCLES) as u64,
        "every cycle of every client succeeded: {summaries:?}"
    );
    let cabs: Vec<String> = summaries
        .iter()
        .flat_map(|s| s["cabs"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();

    // Either head serves the same counters, and lists every cab the clients of both sent.
    let cab_bytes = std::fs::read(cab_file()).expect("the clients' cab");
    for (head, other) in [(&a, &b), (&b, &a)] {
        let answers = head.batch(&[
            op(
                Who::Guest,
                &["get", &format!("counts\\{BUCKET}\\count.txt")],
            ),
            op(Who::Guest, &["ls", &format!("cabs\\{BUCKET}")]),
        ]);
        let counts = count_file::parse(&data(&answers[0])).expect("count.txt parses");
        assert_eq!(
            (counts.cabs_gathered, counts.total_hits),
            (cabs_counted, hits),
            "count.txt through the head on port {}",
            head.port
        );
        let listed: Vec<String> = answers[1]["names"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect();
        for cab in &cabs {
            assert!(
                listed.contains(cab),
                "{cab} not listed by the head on port {}",
                head.port
            );
        }
        // A cab through the other head: the very bytes.
        let got = other.batch(&[op(
            Who::Guest,
            &["get", &format!("cabs\\{BUCKET}\\{}", cabs[0])],
        )]);
        assert_eq!(
            data(&got[0]),
            cab_bytes,
            "a cab read through the head on port {}",
            other.port
        );
    }
}
