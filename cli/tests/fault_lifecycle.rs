//! Crash safety of the lifecycle commands: `cerfs prune`, `cerfs bucket delete`,
//! `cerfs compact` and `cerfs backup` are each killed with SIGKILL at random moments (at
//! least 10 times each, while they run) beside `cerfs serve` under an SMB client's report
//! load. After every kill the database passes integrity_check and every cab is whole or
//! marked removed; at the end every stored cab re-hashes to its sha256, removals finish,
//! the client's acknowledged counter increments and lines are all there, and a backup is
//! either whole or absent. `CERFS_FAULT_SEED=N` replays a run.

mod smb_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use smb_support::*;

/// Kills each kind needs to have landed while the command still ran.
const KILLS: usize = 10;
/// Rounds tried per kind at most.
const MAX_ROUNDS: usize = 60;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What the load client acknowledged.
#[derive(Default)]
struct Ledger {
    counts: u64,
    lines: u64,
    cabs: HashMap<String, String>,
    pending_cab: Option<(String, String)>,
    error: Option<String>,
}

fn start_load(serve: &Serve) -> (Child, Arc<Mutex<Ledger>>) {
    let mut child = Command::new("python3")
        .arg(PY_CLIENT)
        .args(["--port", &serve.port.to_string()])
        .args(["loop", "--subpath", "load", "--max-size", "200000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the SMB load");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let out = child.stdout.take().expect("stdout");
    let shared = Arc::clone(&ledger);
    thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let Ok(ev) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let text = |k: &str| ev[k].as_str().unwrap_or_default().to_owned();
            let mut l = shared.lock().expect("ledger");
            match (text("ev").as_str(), text("op").as_str()) {
                ("attempt", "cab") => l.pending_cab = Some((text("name"), text("sha256"))),
                ("ack", "cab") => {
                    if let Some((name, sha)) = l.pending_cab.take() {
                        l.cabs.insert(name, sha);
                    }
                }
                ("ack", "count") => l.counts += 1,
                ("ack", "line") => l.lines += 1,
                ("error", _) => l.error = Some(text("error")),
                _ => {}
            }
        }
    });
    (child, ledger)
}

/// Eight cabs of 256 KiB in bucket `sub`, through the mount.
fn fill(serve: &Serve, sub: &str) {
    let dir = serve.mountpoint.join("cabs").join(sub);
    std::fs::create_dir_all(&dir).expect("bucket");
    for i in 0..8u8 {
        let mut f = std::fs::File::create(dir.join(format!("f{i}.cab"))).expect("create");
        f.write_all(&vec![i; 256 * 1024]).expect("write");
        cerfs_testkit::close_checked(f).expect("commit");
    }
}

/// Runs `args` and SIGKILLs it after `delay`; `None` if it was still running then (it was
/// killed), else how long it took.
fn run_and_kill(db: &std::path::Path, args: &[String], delay: Duration) -> Option<Duration> {
    let mut child = Command::new(CERFS)
        .args(args)
        .arg("--db")
        .arg(db)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run cerfs");
    let start = Instant::now();
    while start.elapsed() < delay {
        if child.try_wait().expect("try_wait").is_some() {
            return Some(start.elapsed());
        }
        thread::sleep(Duration::from_millis(1)); // the random moment, not a synchronisation
    }
    let running = child.try_wait().expect("try_wait").is_none();
    let _ = child.kill();
    let _ = child.wait();
    (!running).then(|| start.elapsed())
}

/// integrity_check, and every complete cab on the share holds all its chunks.
fn check_store(db: &std::path::Path, what: &str) {
    // Read-write: a command killed mid-group leaves the cab database a hot journal, which
    // only a connection that may write rolls back (as the server's does at its next use).
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy");
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(ok, "ok", "{what}");
    let mut cab_db = db.as_os_str().to_owned();
    cab_db.push("-cabs");
    conn.execute("ATTACH ?1 AS cab_db", [cab_db.to_string_lossy()])
        .expect("attach the cab database");
    // A cab's bytes below its split are 64 KiB chunks of `chunks`, the rest 1 MiB chunks
    // of the cab database (no split: all in `chunks`).
    let broken: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT c.ino, c.size, \
                 min(c.size, coalesce(c.bytes_from, c.size)) AS low FROM cab_rows c \
                 WHERE c.state = 'complete' AND c.removal IS NULL) c \
             WHERE (SELECT count(*) FROM chunks k WHERE k.ino = c.ino) <> (c.low + 65535) / 65536 \
                OR (SELECT count(*) FROM cab_db.cab_chunks k WHERE k.ino = c.ino) \
                   <> (c.size - c.low + 1048575) / 1048576",
            [],
            |r| r.get(0),
        )
        .expect("chunk counts");
    assert_eq!(broken, 0, "{what}: a cab on the share lost chunks");
}

#[test]
fn kill_9_during_prune_delete_compact_and_backup_keeps_the_store_sound() {
    if !can_run(true) {
        return;
    }
    let seed = std::env::var("CERFS_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 | 1)
                .unwrap_or(1)
        });
    eprintln!("fault_lifecycle: seed {seed} (replay with CERFS_FAULT_SEED={seed})");
    let mut rng = Rng(seed);
    let mut opts = ServeOptions::new();
    opts.admin = false;
    let Some(mut serve) = Serve::start_or_skip(&opts) else {
        return;
    };
    std::fs::create_dir_all(serve.mountpoint.join("cabs/load")).expect("load bucket");
    std::fs::create_dir_all(serve.mountpoint.join("counts/load")).expect("load counts");
    std::fs::write(
        serve.mountpoint.join("counts/load/count.txt"),
        "Cabs Gathered=0\r\nTotal Hits=0\r\n",
    )
    .expect("count.txt");
    let (mut load, ledger) = start_load(&serve);
    let db = serve.db.clone();
    let backups = serve.root.join("backups");
    std::fs::create_dir(&backups).expect("backups dir");

    let kinds = ["prune", "delete", "compact", "backup"];
    let mut kills: HashMap<&str, usize> = HashMap::new();
    for kind in kinds {
        // The moments are drawn within how long the command takes on this machine: the
        // time of its last run that finished (every run is killed by then).
        let mut takes = Duration::from_millis(60);
        let mut round = 0;
        while kills.get(kind).copied().unwrap_or(0) < KILLS {
            round += 1;
            assert!(
                round <= MAX_ROUNDS,
                "{kind}: the command finished before every kill"
            );
            let sub = format!("{kind}{round}");
            let args: Vec<String> = match kind {
                "prune" => {
                    fill(&serve, &sub);
                    let keep = ["retention", "set", "--keep-last", "1", "--db"];
                    let out = Command::new(CERFS)
                        .args(keep)
                        .arg(&db)
                        .output()
                        .expect("retention");
                    assert!(out.status.success());
                    vec!["prune".into()]
                }
                "delete" => {
                    fill(&serve, &sub);
                    vec![
                        "bucket".into(),
                        "delete".into(),
                        sub.clone(),
                        "--yes".into(),
                    ]
                }
                "compact" => {
                    fill(&serve, &sub);
                    let out = Command::new(CERFS)
                        .args(["bucket", "delete", &sub, "--yes", "--db"])
                        .arg(&db)
                        .output()
                        .expect("free some pages");
                    assert!(out.status.success());
                    vec!["compact".into()]
                }
                _ => {
                    let dest = backups.join(format!("b{round}.db"));
                    vec!["backup".into(), dest.to_string_lossy().into_owned()]
                }
            };
            let span = u64::try_from(takes.as_micros()).unwrap_or(60_000).max(1);
            let delay = Duration::from_micros(rng.next() % span);
            match run_and_kill(&db, &args, delay) {
                None => *kills.entry(kind).or_default() += 1,
                Some(took) => takes = took,
            }
            check_store(&db, &format!("after killing {kind} round {round}"));
        }
    }
    // Every backup is whole or absent (a .partial may remain).
    for entry in std::fs::read_dir(&backups).expect("backups") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "db") {
            check_store(&path, &format!("backup {}", path.display()));
        }
    }

    let _ = load.kill();
    let _ = load.wait();
    // Finish what the kills interrupted, then everything stored must re-hash.
    for args in [&["prune"][..], &["compact"][..], &["verify"][..]] {
        let out = Command::new(CERFS)
            .args(args)
            .arg("--db")
            .arg(&db)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy");
    let leftover: i64 = conn
        .query_row(
            "SELECT count(*) FROM chunks k JOIN cab_rows c ON c.ino = k.ino WHERE c.removal IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("leftover chunks");
    assert_eq!(leftover, 0, "removed cabs still hold bytes");
    let l = ledger.lock().expect("ledger");
    assert!(l.error.is_none(), "the SMB load failed: {:?}", l.error);
    assert!(l.counts > 0, "the load made no report");
    let (hits, lines): (i64, i64) = conn
        .query_row(
            "SELECT total_hits, (SELECT line_count FROM logs WHERE log_id = b.bucket_id) \
             FROM bucket_rows b WHERE subpath = 'load'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("load bucket");
    assert!(
        hits as u64 >= l.counts,
        "acknowledged increments lost: {hits} < {}",
        l.counts
    );
    assert!(
        lines as u64 >= l.lines,
        "acknowledged lines lost: {lines} < {}",
        l.lines
    );
    for (name, sha) in &l.cabs {
        let (state, stored): (String, String) = conn
            .query_row(
                "SELECT state, sha256 FROM cabs WHERE subpath = 'load' AND name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or_else(|e| panic!("acknowledged cab {name} is gone: {e}"));
        assert!(state == "complete" || state == "pruned", "{name}: {state}");
        assert_eq!(&stored, sha, "{name}");
    }
    eprintln!(
        "fault_lifecycle: kills {kills:?}; load: {} reports, {} cabs acknowledged",
        l.counts,
        l.cabs.len()
    );
    drop(l);
    let status = serve.terminate();
    serve.assert_clean_stop(status);
}
