//! Many client processes reporting at once through one cerfs mount: 16 `cer-client`
//! processes × 50 reports over 4 buckets, both count.txt patterns mixed, tracking on.
//! Nothing may be lost: every counter, every log line and every cab is accounted for by
//! the clients' own summaries, and the database is sound afterwards. On SQLite, and on
//! PostgreSQL when the test server is set up.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use cerfs_e2e::client::{self, Counts, Subpath};
use cerfs_e2e::{parse_log_line, sha256_hex, split_lines, BucketSummary, MountedShare, Summary};

const CLIENTS: usize = 16;
const CYCLES: u64 = 50;
const BUCKETS: usize = 4;
/// Longest the clients may take together (a hang is a failure, not a stuck CI job).
const DEADLINE: Duration = Duration::from_secs(600);

#[test]
fn sixteen_clients_fifty_reports_each_lose_nothing() {
    for mut share in MountedShare::each() {
        client::write_whole(
            &share.path("policy.txt"),
            b"Tracking=YES\r\nCrashes per bucket=100000\r\n",
        )
        .expect("write policy.txt");
        let policy = fs::read(share.path("policy.txt")).expect("read policy.txt back");
        let mut config = client::Config::default();
        config.apply(&policy);
        assert!(
            config.tracking && config.crashes_per_bucket == 100_000,
            "policy.txt read back: {:?}",
            String::from_utf8_lossy(&policy)
        );

        // Start every client, then collect each one's output as it exits.
        let (tx, rx) = mpsc::channel::<(usize, std::io::Result<Output>)>();
        let mut pids = Vec::new();
        for i in 0..CLIENTS {
            let child = Command::new(env!("CARGO_BIN_EXE_cer-client"))
                .arg("--root")
                .arg(&share.root)
                .args(["--buckets", &BUCKETS.to_string()])
                .args(["--cycles", &CYCLES.to_string()])
                .args(["--pattern", "mixed"])
                .args(["--machine", &format!("MACHINE{i:02}")])
                .args(["--user", &format!("user{i}")])
                .args(["--cab-size", "2048"])
                .args(["--seed", &(1000 + i).to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn cer-client");
            pids.push(child.id());
            let tx = tx.clone();
            thread::spawn(move || {
                let _ = tx.send((i, child.wait_with_output()));
            });
        }
        drop(tx);
        let mut outputs: BTreeMap<usize, Output> = BTreeMap::new();
        while outputs.len() < CLIENTS {
            match rx.recv_timeout(DEADLINE) {
                Ok((i, out)) => {
                    outputs.insert(i, out.expect("wait for cer-client"));
                }
                Err(e) => {
                    for (i, pid) in pids.iter().enumerate() {
                        if !outputs.contains_key(&i) {
                            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                        }
                    }
                    panic!("cer-clients did not finish in {DEADLINE:?} ({e}); killed the rest");
                }
            }
        }

        // Every client succeeded; its summary says what it did.
        let mut summaries = Vec::new();
        let mut failures = Vec::new();
        for (i, out) in &outputs {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            match Summary::parse(&stdout) {
                Ok(s) if out.status.success() && s.errors == 0 => summaries.push((*i, s)),
                parsed => {
                    let head = match &parsed {
                        Ok(s) => format!(
                            "cycles={} cabs={} hits={} errors={}",
                            s.cycles, s.cabs, s.hits, s.errors
                        ),
                        Err(e) => format!("unreadable summary: {e}"),
                    };
                    let first: Vec<&str> = stderr.lines().take(5).collect();
                    failures.push(format!(
                        "client {i}: {}, {head}; first errors:\n  {}",
                        out.status,
                        first.join("\n  ")
                    ));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "clients failed:\n{}",
            failures.join("\n")
        );

        let mut per_bucket: BTreeMap<Subpath, BucketSummary> = BTreeMap::new();
        let mut per_machine: BTreeMap<String, u64> = BTreeMap::new();
        let mut cabs_of: BTreeMap<Subpath, BTreeSet<String>> = BTreeMap::new();
        for (i, s) in &summaries {
            assert_eq!(
                (s.cycles, s.hits, s.cabs),
                (CYCLES, CYCLES, CYCLES),
                "client {i}"
            );
            for (sub, b) in &s.buckets {
                let t = per_bucket.entry(sub.clone()).or_default();
                t.hits += b.hits;
                t.cabs += b.cabs;
                t.logged += b.logged;
                *per_machine.entry(format!("MACHINE{i:02}")).or_default() += b.logged;
            }
            for cab in &s.cab_list {
                let fresh = cabs_of
                    .entry(cab.sub.clone())
                    .or_default()
                    .insert(cab.name.clone());
                assert!(fresh, "cab name {} used twice in {}", cab.name, cab.sub);
            }
        }
        let total_hits: u64 = per_bucket.values().map(|b| b.hits).sum();
        let total_logged: u64 = per_bucket.values().map(|b| b.logged).sum();
        assert_eq!(total_hits, CLIENTS as u64 * CYCLES);
        assert_eq!(total_logged, total_hits, "every report was logged");
        assert_eq!(per_bucket.len(), BUCKETS, "every bucket was used");

        // count.txt of every bucket: exactly the sum of what the clients added.
        let mut lost = Vec::new();
        for (sub, b) in &per_bucket {
            let path = sub.dir_under(&share.root, "counts").join("count.txt");
            let bytes = fs::read(&path).expect("read count.txt");
            let want = Counts {
                cabs_gathered: b.cabs,
                total_hits: b.hits,
            };
            if bytes != want.render().as_bytes() {
                lost.push(format!(
                    "{sub}: count.txt is {:?}, expected {want}",
                    String::from_utf8_lossy(&bytes)
                ));
            }
        }
        assert!(lost.is_empty(), "counters wrong:\n{}", lost.join("\n"));

        // crash.log: one parsed line per report, per bucket and per machine as reported.
        let crash = fs::read(share.path("crash.log")).expect("read crash.log");
        assert_eq!(
            fs::metadata(share.path("crash.log")).expect("stat").len(),
            crash.len() as u64
        );
        let lines = split_lines(&crash);
        assert_eq!(lines.len() as u64, total_logged, "crash.log line count");
        let mut items: BTreeMap<String, u64> = BTreeMap::new();
        let mut machines: BTreeMap<String, u64> = BTreeMap::new();
        for line in &lines {
            let e = parse_log_line(line)
                .unwrap_or_else(|| panic!("crash.log line does not parse: {line:?}"));
            *items.entry(e.item).or_default() += 1;
            *machines.entry(e.machine).or_default() += 1;
        }
        let want_items: BTreeMap<String, u64> = per_bucket
            .iter()
            .map(|(sub, b)| (sub.backslashed(), b.logged))
            .collect();
        assert_eq!(items, want_items, "crash.log entries per bucket");
        assert_eq!(machines, per_machine, "crash.log entries per machine");

        // hits.log of every bucket: one line per report, naming each of its cabs once.
        for (sub, b) in &per_bucket {
            let dir = sub.dir_under(&share.root, "cabs");
            let hits = fs::read(dir.join("hits.log")).expect("read hits.log");
            let lines = split_lines(&hits);
            assert_eq!(lines.len() as u64, b.logged, "{sub}: hits.log line count");
            let mut named = BTreeSet::new();
            for line in lines {
                let e = parse_log_line(line)
                    .unwrap_or_else(|| panic!("{sub}: hits.log line does not parse: {line:?}"));
                assert!(
                    named.insert(e.item.clone()),
                    "{sub}: {} logged twice",
                    e.item
                );
            }
            let cabs = cabs_of.get(sub).cloned().unwrap_or_default();
            assert_eq!(named, cabs, "{sub}: hits.log names exactly its cabs");
            // The folder lists exactly the cabs and hits.log.
            let mut listed: BTreeSet<String> = fs::read_dir(&dir)
                .expect("list the cab folder")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            assert!(listed.remove("hits.log"), "{sub}: hits.log listed");
            assert_eq!(listed, cabs, "{sub}: listed cabs");
        }

        // Every cab is intact.
        let mut bad = Vec::new();
        for (_, s) in &summaries {
            for cab in &s.cab_list {
                let path = cab.sub.dir_under(&share.root, "cabs").join(&cab.name);
                match fs::read(&path) {
                    Ok(bytes)
                        if bytes.len() as u64 == cab.len && sha256_hex(&bytes) == cab.sha256 => {}
                    Ok(bytes) => bad.push(format!(
                        "{}: {} bytes, sha differs",
                        path.display(),
                        bytes.len()
                    )),
                    Err(e) => bad.push(format!("{}: {e}", path.display())),
                }
            }
        }
        assert!(
            bad.is_empty(),
            "cabs damaged or missing:\n{}",
            bad.join("\n")
        );

        // The SQLite database is sound once cerfs is gone (PostgreSQL checks its own
        // pages; the cabs were checked above).
        if !share.is_mounted() || share.backend() != "SQLite" {
            continue; // CERFS_E2E_PLAIN: no database
        }
        share.unmount().expect("unmount");
        let store = cerfs_db::SqliteStore::open(&share.db_path).expect("reopen the database");
        assert_eq!(store.integrity_check().expect("integrity_check"), "ok");
    }
}
