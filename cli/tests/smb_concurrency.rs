//! Many CER clients at once over SMB: 16 client processes x 25 full MS-CER 3.1.7 cycles
//! (tracking on, a cab each time, count.txt updated with patterns a, b and supersede in
//! turn) against `cerfs serve`, then the same load against a plain Samba share over a plain
//! directory (same generated smb.conf, another port). cerfs must lose nothing: every hit,
//! cab and log line is there. The plain share's losses are printed beside cerfs's figures,
//! not asserted: they are what cerfs exists to remove.

mod smb_support;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use cerfs_samba::{Samba, SambaConfig, SambaTools};
use cerfs_testkit::counters;
use serde_json::Value;
use smb_support::*;

const CLIENTS: usize = 16;
const CYCLES: usize = 25;
const BUCKETS: [&str; 2] = [
    r"LoadApp\2.0.0.0\LoadMod\2.0.0.0\0000abc0",
    r"LoadApp\2.0.0.0\LoadMod\2.0.0.0\0000abc1",
];
/// Tracking on, and a limit no run reaches: every cycle copies a cab.
const POLICY: &str = "Tracking=YES\r\nCrashes per bucket=1000000\r\n";
/// How long one load may take before the test gives up (and kills its clients).
const LOAD_DEADLINE: Duration = Duration::from_secs(900);

/// What the clients say they did, per bucket, and the crash.log lines they appended.
#[derive(Debug, Default)]
struct Expected {
    hits: BTreeMap<String, u64>,
    cabs_counted: BTreeMap<String, u64>,
    cabs: BTreeMap<String, Vec<String>>,
    hits_lines: BTreeMap<String, Vec<String>>,
    crash_lines: Vec<String>,
    cycles_ok: u64,
    errors: Vec<String>,
}

/// One load's figures.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    cycles_ok: u64,
    client_errors: u64,
    hits_expected: u64,
    hits_lost: i64,
    cabs_counted_lost: i64,
    cab_files_lost: u64,
    crash_lines_expected: u64,
    crash_lines_lost: u64,
    hits_lines_lost: u64,
    seconds: f64,
}

/// One line of the side-by-side table: its label and how to print a figure.
type Row = (&'static str, fn(&Figures) -> String);

/// Runs the load against 127.0.0.1:`port` and measures it.
fn run_load(port: u16) -> Figures {
    let started = Instant::now();
    let mut children: Vec<(usize, Child)> = (0..CLIENTS)
        .map(|client| {
            let child = Command::new("python3")
                .arg(PY_CLIENT)
                .args(["--port", &port.to_string(), "cycles"])
                .args(["--subpath", BUCKETS[client % BUCKETS.len()]])
                .args(["--cab", &cab_file(), "--cycles", &CYCLES.to_string()])
                .args(["--client-id", &client.to_string(), "--pattern", "alternate"])
                .args(["--machine", &format!("LOAD{client:02}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn a client");
            (client, child)
        })
        .collect();
    let mut expected = Expected::default();
    while !children.is_empty() {
        let mut still = Vec::new();
        for (client, mut child) in children {
            match child.try_wait().expect("try_wait") {
                None => still.push((client, child)),
                Some(_) => {
                    let out = child.wait_with_output().expect("client output");
                    let text = String::from_utf8_lossy(&out.stdout);
                    let summary: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
                        panic!(
                            "client {client} printed no summary ({e}):\n{text}\n{}",
                            String::from_utf8_lossy(&out.stderr)
                        )
                    });
                    add_summary(&mut expected, BUCKETS[client % BUCKETS.len()], &summary);
                }
            }
        }
        children = still;
        if started.elapsed() > LOAD_DEADLINE {
            for (_, child) in &mut children {
                let _ = child.kill();
                let _ = child.wait();
            }
            panic!("the load on port {port} did not finish within {LOAD_DEADLINE:?}");
        }
        if !children.is_empty() {
            thread::sleep(Duration::from_millis(50));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut figures = measure(port, &expected);
    figures.seconds = seconds;
    figures
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn add_summary(expected: &mut Expected, bucket: &str, summary: &Value) {
    let key = bucket.to_owned();
    *expected.hits.entry(key.clone()).or_default() += summary["hits"].as_u64().unwrap_or(0);
    *expected.cabs_counted.entry(key.clone()).or_default() +=
        summary["cabs_counted"].as_u64().unwrap_or(0);
    expected
        .cabs
        .entry(key.clone())
        .or_default()
        .extend(strings(&summary["cabs"]));
    expected
        .hits_lines
        .entry(key)
        .or_default()
        .extend(strings(&summary["hits_lines"]));
    expected
        .crash_lines
        .extend(strings(&summary["crash_lines"]));
    expected.cycles_ok += summary["cycles"].as_u64().unwrap_or(0);
    expected.errors.extend(strings(&summary["errors"]));
}

/// Lines of `text` (CRLF kept) that are missing, counting repeats.
fn missing_lines(expected: &[String], text: &str) -> u64 {
    let mut present: BTreeMap<&str, u64> = BTreeMap::new();
    for line in text.split_inclusive('\n') {
        *present.entry(line).or_default() += 1;
    }
    let mut missing = 0;
    for line in expected {
        match present.get_mut(line.as_str()) {
            Some(n) if *n > 0 => *n -= 1,
            _ => missing += 1,
        }
    }
    missing
}

/// Reads what the server holds (over SMB) and compares it with what the clients did.
fn measure(port: u16, expected: &Expected) -> Figures {
    let mut ops = vec![op(Who::Guest, &["get", "crash.log"])];
    for bucket in BUCKETS {
        ops.push(op(
            Who::Guest,
            &["get", &format!("counts\\{bucket}\\count.txt")],
        ));
        ops.push(op(
            Who::Guest,
            &["get", &format!("cabs\\{bucket}\\hits.log")],
        ));
        ops.push(op(Who::Guest, &["ls", &format!("cabs\\{bucket}")]));
    }
    let answers = py_batch(port, &ops);
    let crash_log = String::from_utf8_lossy(&data(&answers[0])).into_owned();
    let mut figures = Figures {
        cycles_ok: expected.cycles_ok,
        client_errors: expected.errors.len() as u64,
        crash_lines_expected: expected.crash_lines.len() as u64,
        crash_lines_lost: missing_lines(&expected.crash_lines, &crash_log),
        ..Figures::default()
    };
    for (i, bucket) in BUCKETS.iter().enumerate() {
        let key = (*bucket).to_owned();
        let (cabs, hits) = counters(data(&answers[1 + 3 * i]));
        let want_hits = expected.hits.get(&key).copied().unwrap_or(0);
        let want_cabs = expected.cabs_counted.get(&key).copied().unwrap_or(0);
        figures.hits_expected += want_hits;
        figures.hits_lost += want_hits as i64 - hits as i64;
        figures.cabs_counted_lost += want_cabs as i64 - cabs as i64;
        let hits_log = String::from_utf8_lossy(&data(&answers[2 + 3 * i])).into_owned();
        figures.hits_lines_lost += missing_lines(
            expected.hits_lines.get(&key).map_or(&[][..], Vec::as_slice),
            &hits_log,
        );
        let listed = strings(&answers[3 + 3 * i]["names"]);
        figures.cab_files_lost += expected.cabs.get(&key).map_or(0, |names| {
            names.iter().filter(|n| !listed.contains(n)).count() as u64
        });
    }
    if !expected.errors.is_empty() {
        eprintln!(
            "port {port}: {} client errors, first: {:?}",
            expected.errors.len(),
            &expected.errors[..expected.errors.len().min(5)]
        );
    }
    figures
}

/// A plain directory laid out as a CER share, writable by guests (nobody), with policy.txt.
fn plain_share(root: &Path) -> std::path::PathBuf {
    let dir = root.join("plain");
    for sub in ["", "cabs", "status", "counts"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).expect("mkdir plain share");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    std::fs::write(dir.join("policy.txt"), POLICY).expect("write policy.txt");
    dir
}

#[test]
fn sixteen_clients_lose_nothing_on_cerfs_and_plain_samba_is_measured() {
    if !can_run(true) {
        return;
    }
    let Some(mut serve) = Serve::start_or_skip(&ServeOptions::new()) else {
        return;
    };

    // The plain share: the same generated smb.conf, over a plain directory.
    let plain_dir = plain_share(&serve.root);
    let plain_lease = reserve_port();
    let plain_port = plain_lease.get();
    let plain_config = SambaConfig {
        share: "cer".to_owned(),
        path: plain_dir,
        state_dir: serve.root.join("plain-samba"),
        listen: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        port: plain_port,
        guest: true,
        admin_user: None,
        admin_unix_user: cerfs_samba::DEFAULT_ADMIN_UNIX_USER.to_owned(),
        lockout: cerfs_samba::Lockout::default(),
        smb1: false,
        log_level: 0,
        ctdbd_socket: None,
    };
    let tools = SambaTools::find().expect("Samba tools");
    let conf = cerfs_samba::prepare_state_dir(&plain_config).expect("plain smb.conf");
    let plain = Samba::start(&tools, &conf).expect("start the plain smbd");
    plain
        .wait_ready(&plain_config.socket_addrs(), DEADLINE, &|| false)
        .expect("plain smbd ready");

    // cerfs: the admin writes policy.txt over SMB.
    let policy = serve.root.join("policy.txt");
    std::fs::write(&policy, POLICY).expect("write policy.txt");
    assert_ok(
        &serve.py_admin(&["put", policy.to_str().expect("utf-8"), "policy.txt"]),
        "admin writes policy.txt",
    );

    let on_cerfs = run_load(serve.port);
    let on_plain = run_load(plain_port);
    plain
        .stop(Duration::from_secs(10))
        .expect("stop the plain smbd");

    let rows: [Row; 10] = [
        ("client cycles completed", |f| f.cycles_ok.to_string()),
        ("client errors", |f| f.client_errors.to_string()),
        ("hits reported by clients", |f| f.hits_expected.to_string()),
        ("hits lost (Total Hits)", |f| f.hits_lost.to_string()),
        ("cabs lost (Cabs Gathered)", |f| {
            f.cabs_counted_lost.to_string()
        }),
        ("cab files missing", |f| f.cab_files_lost.to_string()),
        ("crash.log lines appended", |f| {
            f.crash_lines_expected.to_string()
        }),
        ("crash.log lines lost", |f| f.crash_lines_lost.to_string()),
        ("hits.log lines lost", |f| f.hits_lines_lost.to_string()),
        ("seconds", |f| format!("{:.1}", f.seconds)),
    ];
    let mut table = format!(
        "\n{CLIENTS} SMB clients x {CYCLES} MS-CER cycles, tracking on\n{:<28} {:>10} {:>12}\n",
        "", "cerfs", "plain Samba"
    );
    for (name, value) in rows {
        table.push_str(&format!(
            "{name:<28} {:>10} {:>12}\n",
            value(&on_cerfs),
            value(&on_plain)
        ));
    }
    eprintln!("{table}");
    println!("{table}");

    nothing_lost(&on_cerfs, &table);

    let status = serve.terminate();
    serve.assert_clean_stop(status);
}

/// Every cycle of every client succeeded and left all its traces.
fn nothing_lost(on_cerfs: &Figures, table: &str) {
    let total = (CLIENTS * CYCLES) as u64;
    assert_eq!(on_cerfs.client_errors, 0, "{table}");
    assert_eq!(on_cerfs.cycles_ok, total, "{table}");
    assert_eq!(on_cerfs.hits_expected, total, "{table}");
    assert_eq!(on_cerfs.crash_lines_expected, total, "{table}");
    assert_eq!(on_cerfs.hits_lost, 0, "{table}");
    assert_eq!(on_cerfs.cabs_counted_lost, 0, "{table}");
    assert_eq!(on_cerfs.cab_files_lost, 0, "{table}");
    assert_eq!(on_cerfs.crash_lines_lost, 0, "{table}");
    assert_eq!(on_cerfs.hits_lines_lost, 0, "{table}");
}

/// The same load on a PostgreSQL store (a head of it): nothing lost there either.
#[test]
fn sixteen_clients_lose_nothing_on_a_postgresql_store() {
    if !can_run(true) {
        return;
    }
    let Some(db) = cerfs_testkit::TestDatabase::create() else {
        return;
    };
    let store = Some(db);
    let Some(mut serve) = Serve::start_or_skip(&options_on(&store)) else {
        return;
    };
    let policy = serve.root.join("policy.txt");
    std::fs::write(&policy, POLICY).expect("write policy.txt");
    assert_ok(
        &serve.py_admin(&["put", policy.to_str().expect("utf-8"), "policy.txt"]),
        "admin writes policy.txt",
    );
    let on_pg = run_load(serve.port);
    let table = format!("{on_pg:?}");
    eprintln!("on PostgreSQL: {table}");
    nothing_lost(&on_pg, &table);
    let status = serve.terminate();
    serve.assert_clean_stop(status);
}
