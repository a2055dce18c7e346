//! Crash consistency over SMB: `cerfs serve` (FUSE mount + real smbd) is killed with SIGKILL
//! at a random moment (seeded, printed; `CERFS_FAULT_SEED=N` replays) while several SMB
//! clients report into it, 20 times in a row, serving the same database again each time.
//!
//! Why beside `fault_crash.rs` (the same under a FUSE load on `cerfs mount`): here every
//! operation goes through smbd, so "acknowledged" is what a Windows client sees — the SMB
//! CLOSE returned success — and the kill also orphans smbd mid-request.
//!
//! Load: [`CLIENTS`] long-lived `cer_smb_client.py loop` processes (one SMB session each,
//! guest), two buckets. Each repeats a CER report: copy a cab (16 KiB to 768 KiB of random
//! bytes, in random pieces), increment count.txt with the one-handle pattern, append a
//! hits.log line. A client prints, flushed, an *attempt* event before each CLOSE is sent (a
//! cab's before its create) and an *ack* event once the CLOSE succeeded; the test builds its
//! ledger from those lines.
//!
//! The moment of each kill, once every client is connected: after a random number of
//! completed reports plus 0–150 ms, or at the n-th CLOSE of a cab, count.txt or hits.log
//! plus 0–4 ms (a close takes a few ms; a report is mostly its cab's upload, so without this
//! the kills would rarely land near a commit). Each round prints what was in flight.
//!
//! After each kill: the clients are killed, Samba's orphaned process group is stopped, the
//! dead mount is detached. Then, with the test's own connections:
//! - `PRAGMA integrity_check` is ok before and after the store's start-up purge; a cab row
//!   left `writing` is never one whose close was acknowledged, and the purge removes them
//!   all (at most one per client);
//! - served again, over SMB: every acknowledged cab is listed and reads back with its
//!   sha256; the listing equals the complete rows; every listed cab is one a client sent and
//!   holds the *whole* upload even if its close was not acknowledged (cerfs, not the
//!   client, died: a cab cut short must never be committed);
//! - counters: `acknowledged ≤ stored ≤ attempted`. Equality cannot be asserted: a kill
//!   between the commit and the reply leaves a committed increment unacknowledged. The
//!   stored value becomes the new baseline, so the bound never loosens by more than one
//!   in-flight increment per client per round;
//! - hits.log: every acknowledged line is present, every present line was attempted.

mod fault_support;
mod smb_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use cerfs_db::SqliteStore;
use cerfs_fs_core::count_file;
use fault_support::{check_log_items, close_checked, detach_mount, Rng};
use smb_support::{
    assert_ok, data, is_mounted, op, open_tempdir, py_batch, reserve_port, send_signal,
    stop_orphaned_samba, Port, Serve, ServeOptions, Started, Who, PY_CLIENT,
};

/// The port of every round (the same server is started again on it), reserved once.
fn port() -> Arc<Port> {
    static PORT: std::sync::OnceLock<Arc<Port>> = std::sync::OnceLock::new();
    Arc::clone(PORT.get_or_init(|| Arc::new(reserve_port())))
}
const ROUNDS: u32 = 20;
/// Three clients keep both cores busy (each SMB request crosses Python, smbd and cerfs).
const CLIENTS: usize = 3;
const BUCKETS: [&str; 2] = [
    "SmbKill\\1.0.0.0\\kill.dll\\2.0.0.0\\0000dead",
    "SmbKill\\1.0.0.0\\other.dll\\2.0.0.0\\0000f00d",
];
const MIN_CAB: u64 = 16 << 10;
const MAX_CAB: u64 = 768 << 10;

fn dir_of(sub: &str) -> PathBuf {
    sub.split('\\').collect()
}

/// A cab a client sent: the whole upload's sha256 and size, and whether its close was
/// acknowledged.
#[derive(Debug, Clone)]
struct Sent {
    sha256: String,
    size: i64,
    acked: bool,
}

/// What one bucket's clients did, as they saw it.
#[derive(Debug, Default)]
struct Ledger {
    /// Increments of both counters whose close returned success.
    acked: u64,
    /// Increments whose close was sent (acked + in flight at a kill).
    attempted: u64,
    cabs: BTreeMap<String, Sent>,
    /// hits.log items whose close returned success / was sent.
    lines_acked: BTreeSet<String>,
    lines_attempted: BTreeSet<String>,
    /// Cabs already read back over SMB.
    verified: BTreeSet<String>,
}

type Ledgers = Arc<Vec<Mutex<Ledger>>>;

/// What the kills caught in flight (attempted, not acknowledged), and how much of that the
/// store kept: evidence that the rounds exercise the races the ledger allows for.
#[derive(Debug, Default, Clone, Copy)]
struct InFlight {
    cabs: usize,
    cabs_kept: usize,
    increments: u64,
    increments_kept: u64,
    lines: usize,
    lines_kept: usize,
}

impl std::ops::AddAssign for InFlight {
    fn add_assign(&mut self, o: InFlight) {
        self.cabs += o.cabs;
        self.cabs_kept += o.cabs_kept;
        self.increments += o.increments;
        self.increments_kept += o.increments_kept;
        self.lines += o.lines;
        self.lines_kept += o.lines_kept;
    }
}

/// When a round's kill comes (plus a random delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    /// Once this many reports are done, all clients together.
    Reports(u64),
    /// At the n-th CLOSE of that kind sent this round, all clients together: the kill
    /// lands around a commit (before it, during it, or between it and the reply).
    Close(Commit, u64),
}

/// The operations whose CLOSE commits something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    Cab,
    Count,
    Line,
}

/// What the test and the readers of its clients' output share during one round.
struct Round {
    moment: Moment,
    /// CLOSEs of the moment's kind sent since every client is connected.
    closes: AtomicU64,
    /// Told when the moment's CLOSE is sent.
    fire: Mutex<mpsc::Sender<()>>,
    ledgers: Ledgers,
    /// Set just before the SIGKILL: errors from then on are expected.
    killed: AtomicBool,
    /// Clients connected (SMB session and tree connect done).
    ready: AtomicU64,
    /// Reports completed this round, all clients.
    progress: AtomicU64,
    /// Errors a client reported before the kill (a bug, or a broken environment).
    errors: Mutex<Vec<String>>,
}

/// One `cer_smb_client.py loop` process and the thread that applies its events.
struct LoopClient {
    child: Child,
    reader: Option<JoinHandle<()>>,
}

impl LoopClient {
    fn start(id: usize, round: u32, seed: u64, shared: &Arc<Round>) -> LoopClient {
        let b = id % BUCKETS.len();
        let mut child = Command::new("python3")
            .arg(PY_CLIENT)
            .args([
                "--port",
                &port().get().to_string(),
                "loop",
                "--subpath",
                BUCKETS[b],
            ])
            .args(["--client-id", &id.to_string()])
            .args(["--round", &round.to_string()])
            .args(["--seed", &seed.to_string()])
            .args(["--min-size", &MIN_CAB.to_string()])
            .args(["--max-size", &MAX_CAB.to_string()])
            // A client's first cab of a round, and every third after, is 4–6 MiB: its
            // bytes past 4 MiB go to the cab database.
            .args(["--big-every", "3"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the Python SMB client");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("client {id}: {line}");
            }
        });
        let shared = Arc::clone(shared);
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                apply(&shared, id, b, &line);
            }
        });
        LoopClient {
            child,
            reader: Some(reader),
        }
    }

    /// Kills the client (by pid), reaps it and waits until all it printed is applied.
    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            reader.join().expect("client reader");
        }
    }
}

impl Drop for LoopClient {
    fn drop(&mut self) {
        // On a panic path: no client may outlive the test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Applies one event line of client `id` (bucket `b`) to the ledger.
fn apply(r: &Round, id: usize, b: usize, line: &str) {
    let killed = r.killed.load(Ordering::SeqCst);
    let event: serde_json::Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            if !killed {
                let mut errors = r.errors.lock().expect("errors");
                errors.push(format!("client {id}: not JSON ({e}): {line}"));
            }
            return;
        }
    };
    let text = |key: &str| event[key].as_str().unwrap_or_default().to_owned();
    let closing = match (text("ev").as_str(), text("op").as_str()) {
        ("closing", "cab") => Some(Commit::Cab),
        ("attempt", "count") => Some(Commit::Count),
        ("attempt", "line") => Some(Commit::Line),
        _ => None,
    };
    let mut l = r.ledgers[b].lock().expect("ledger");
    // Closes count once every client is connected, so that the kill finds them all busy.
    let all_ready = r.ready.load(Ordering::SeqCst) == CLIENTS as u64;
    if let (Some(op), Moment::Close(kind, nth), true) = (closing, r.moment, all_ready) {
        if op == kind && r.closes.fetch_add(1, Ordering::SeqCst) + 1 == nth {
            let _ = r.fire.lock().expect("fire").send(());
        }
    }
    match (text("ev").as_str(), text("op").as_str()) {
        ("attempt", "cab") => {
            let sent = Sent {
                sha256: text("sha256"),
                size: event["size"].as_i64().expect("size"),
                acked: false,
            };
            l.cabs.insert(text("name"), sent);
        }
        ("ack", "cab") => {
            l.cabs.get_mut(&text("name")).expect("attempted cab").acked = true;
        }
        ("attempt", "count") => l.attempted += 1,
        ("ack", "count") => l.acked += 1,
        ("attempt", "line") => {
            l.lines_attempted.insert(text("item"));
        }
        ("ack", "line") => {
            l.lines_acked.insert(text("item"));
        }
        ("done", _) => {
            r.progress.fetch_add(1, Ordering::SeqCst);
        }
        ("ready", _) => {
            r.ready.fetch_add(1, Ordering::SeqCst);
        }
        ("closing", _) | ("end", _) => {}
        // The server is gone: errors are expected (logged: what a client sees of a kill).
        _ if killed => eprintln!("client {id} after the kill: {line}"),
        _ => {
            let mut errors = r.errors.lock().expect("errors");
            errors.push(format!("client {id}: {line}"));
        }
    }
}

/// Checks the store and the share served again against the ledgers; then makes the
/// observed state the new baseline. Returns what was in flight.
fn verify(serve: &Serve, ledgers: &Ledgers, round: u32) -> InFlight {
    let mut flight = InFlight::default();
    let db = &serve.db;
    // What to ask over SMB, in one client process: per bucket, its listing, count.txt,
    // hits.log and the sha256 of each cab not yet read back.
    let mut rows_of = Vec::new();
    let mut ops = Vec::new();
    for (b, sub) in BUCKETS.iter().enumerate() {
        let l = ledgers[b].lock().expect("ledger");
        let rows = fault_support::cab_rows(db, sub);
        let (cabs, counts) = (format!("cabs\\{sub}"), format!("counts\\{sub}"));
        ops.push(op(Who::Guest, &["ls", &cabs]));
        ops.push(op(Who::Guest, &["get", &format!("{counts}\\count.txt")]));
        ops.push(op(Who::Guest, &["get", &format!("{cabs}\\hits.log")]));
        let fresh: Vec<String> = rows
            .iter()
            .map(|r| r.0.clone())
            .filter(|name| !l.verified.contains(name))
            .collect();
        for name in &fresh {
            ops.push(op(Who::Guest, &["sha256", &format!("{cabs}\\{name}")]));
        }
        rows_of.push((rows, fresh));
    }
    let answers = py_batch(port().get(), &ops);
    let mut answers = answers.iter();

    for (b, sub) in BUCKETS.iter().enumerate() {
        let mut l = ledgers[b].lock().expect("ledger");
        let (rows, fresh) = &rows_of[b];
        let (ls, count, log) = (
            answers.next().expect("ls"),
            answers.next().expect("count.txt"),
            answers.next().expect("hits.log"),
        );

        // Cabs: complete rows only, each the whole upload of a client; listed exactly.
        assert!(
            rows.iter().all(|r| r.1 == "complete"),
            "round {round}: a cab row is not complete after restart: {rows:?}"
        );
        for (name, _, size, sha) in rows {
            let Some(sent) = l.cabs.get(name) else {
                panic!("round {round}: cab {sub}\\{name} was never sent by a client");
            };
            assert_eq!(
                (sha.as_deref(), *size),
                (Some(sent.sha256.as_str()), Some(sent.size)),
                "round {round}: {sub}\\{name} (acknowledged: {}) is not the whole upload",
                sent.acked
            );
        }
        assert_ok(ls, "list the cabs over SMB");
        let listed: Vec<&str> = ls["names"]
            .as_array()
            .expect("names")
            .iter()
            .filter_map(|n| n.as_str())
            .filter(|n| *n != "hits.log")
            .collect();
        let stored: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(
            listed, stored,
            "round {round}: SMB listing and store disagree"
        );
        for (name, sent) in &l.cabs {
            assert!(
                !sent.acked || stored.contains(&name.as_str()),
                "round {round}: acknowledged cab {sub}\\{name} is missing"
            );
        }
        for name in fresh {
            let got = answers.next().expect("sha256 answer");
            assert_ok(got, &format!("round {round}: read {sub}\\{name} over SMB"));
            let sent = &l.cabs[name];
            assert_eq!(
                (got["sha256"].as_str(), got["size"].as_i64()),
                (Some(sent.sha256.as_str()), Some(sent.size)),
                "round {round}: {sub}\\{name} reads back other bytes over SMB"
            );
        }
        for name in l.cabs.iter().filter(|(_, s)| !s.acked).map(|(n, _)| n) {
            flight.cabs += 1;
            flight.cabs_kept += usize::from(stored.contains(&name.as_str()));
        }
        // Unacknowledged cabs that are not there are gone for good: forget them. The rest
        // is the baseline.
        l.cabs.retain(|name, _| stored.contains(&name.as_str()));
        for sent in l.cabs.values_mut() {
            sent.acked = true;
        }
        l.verified.extend(fresh.iter().cloned());

        // Counters, over SMB and in SQL.
        assert_ok(count, "read count.txt over SMB");
        let text = data(count);
        let c = count_file::parse(&text).expect("count.txt parses");
        let in_sql: (i64, i64) = fault_support::sql(db)
            .query_row(
                "SELECT cabs_gathered, total_hits FROM buckets WHERE subpath = ?1",
                [sub],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("the bucket's counters in SQL");
        assert_eq!(
            (c.cabs_gathered as i64, c.total_hits as i64),
            in_sql,
            "round {round}: count.txt and SQL disagree"
        );
        assert_eq!(
            c.total_hits, c.cabs_gathered,
            "round {round}: both counters move together"
        );
        assert!(
            l.acked <= c.total_hits && c.total_hits <= l.attempted,
            "round {round}: {sub}: acknowledged {} ≤ stored {} ≤ attempted {} fails",
            l.acked,
            c.total_hits,
            l.attempted
        );
        flight.increments += l.attempted - l.acked;
        flight.increments_kept += c.total_hits - l.acked;
        l.acked = c.total_hits;
        l.attempted = c.total_hits;

        // hits.log.
        let log = if log["ok"] == serde_json::Value::Bool(true) {
            String::from_utf8(data(log)).expect("hits.log is ASCII")
        } else {
            String::new() // no report appended a line yet
        };
        let items = check_log_items(round, &log, &l.lines_acked, &l.lines_attempted);
        flight.lines += l.lines_attempted.len() - l.lines_acked.len();
        flight.lines_kept += items.len() - l.lines_acked.len();
        l.lines_acked = items.clone();
        l.lines_attempted = items;
    }
    assert!(answers.next().is_none(), "every answer was checked");
    flight
}

/// The store right after a kill, before any server opens it: sound, and every row left
/// `writing` an upload whose close was not acknowledged; then the start-up purge removes
/// exactly those. Returns how many it purged.
fn check_store_after_kill(db: &Path, ledgers: &Ledgers, round: u32) -> usize {
    let conn = fault_support::sql(db);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok", "round {round}: integrity_check after kill -9");
    let mut stmt = conn
        .prepare("SELECT subpath, name FROM cabs WHERE state = 'writing' ORDER BY name")
        .expect("prepare");
    let writing: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query writing cabs")
        .collect::<Result<_, _>>()
        .expect("read writing cabs");
    drop(stmt);
    drop(conn);
    for (sub, name) in &writing {
        let b = BUCKETS
            .iter()
            .position(|s| s == sub)
            .unwrap_or_else(|| panic!("round {round}: a cab in unknown bucket {sub}"));
        let l = ledgers[b].lock().expect("ledger");
        assert!(
            l.cabs.get(name).is_some_and(|s| !s.acked),
            "round {round}: {sub}\\{name} is still writing although its close was acknowledged \
             (or nobody sent it)"
        );
    }

    let store = SqliteStore::open(db).expect("reopen after kill -9");
    assert_eq!(
        store.integrity_check().expect("integrity_check"),
        "ok",
        "round {round}: integrity_check after the start-up purge"
    );
    let mut purged: Vec<String> = store.purged_cabs().iter().map(|p| p.name.clone()).collect();
    purged.sort();
    let names: Vec<String> = writing.into_iter().map(|w| w.1).collect();
    assert_eq!(
        purged, names,
        "round {round}: the purge removes the unfinished cabs"
    );
    assert!(
        purged.len() <= CLIENTS,
        "round {round}: at most one cab per client was in flight"
    );
    purged.len()
}

/// Serves the database again after a kill; a failure to start is a failure here.
fn serve_again(opts: &ServeOptions, root: &Path, round: u32) -> Serve {
    match Serve::start_in(opts, root) {
        Started::Ready(serve) => serve,
        Started::Exited(status, stderr) => {
            panic!("round {round}: cerfs serve did not start again ({status}):\n{stderr}")
        }
    }
}

#[test]
fn kill_9_serve_twenty_times_under_smb_load_loses_nothing_acknowledged() {
    if !smb_support::can_run(true) {
        return;
    }
    let seed = fault_support::seed("kill_9_serve_twenty_times_under_smb_load");
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let (_dir, root) = open_tempdir();
    // No admin account: clients are guests, and no passdb is rewritten at each start.
    let opts = ServeOptions {
        admin: false,
        ..ServeOptions::on_port(port())
    };
    let Some(mut serve) = Serve::start_in_or_skip(&opts, &root) else {
        return;
    };

    // Setup through the local mount: the buckets' folders and a count.txt each at 1/1.
    let ledgers: Ledgers = Arc::new((0..BUCKETS.len()).map(|_| Mutex::default()).collect());
    for (b, sub) in BUCKETS.iter().enumerate() {
        let mnt = &serve.mountpoint;
        fs::create_dir_all(mnt.join("cabs").join(dir_of(sub))).expect("mkdir cabs");
        fs::create_dir_all(mnt.join("counts").join(dir_of(sub))).expect("mkdir counts");
        let f = File::create(mnt.join("counts").join(dir_of(sub)).join("count.txt"));
        let mut f = f.expect("create count.txt");
        f.write_all(b"Cabs Gathered=1\r\nTotal Hits=1\r\n")
            .expect("write count.txt");
        close_checked(f).expect("close count.txt");
        let mut l = ledgers[b].lock().expect("ledger");
        (l.acked, l.attempted) = (1, 1);
    }
    verify(&serve, &ledgers, 0);

    let (mut purged_total, mut samba_killed) = (0, 0);
    let mut flight_total = InFlight::default();
    for round in 1..=ROUNDS {
        // The moment: a random kind, then a random delay that is the experiment, not a
        // synchronisation. After a CLOSE was sent, a few milliseconds span its commit and
        // reply; reports take longer.
        let moment = match rng.range(0, 4) {
            0 => Moment::Reports(rng.range(0, 2 * CLIENTS as u64 + 1)),
            kind => {
                let op = [Commit::Cab, Commit::Count, Commit::Line][kind as usize - 1];
                Moment::Close(op, rng.range(1, CLIENTS as u64 + 2))
            }
        };
        let extra = Duration::from_micros(match moment {
            Moment::Reports(_) => rng.range(0, 150_000),
            Moment::Close(..) => rng.range(0, 4_000),
        });
        eprintln!("round {round}: kill -9 at {moment:?} + {extra:?}");
        let (fire, fired) = mpsc::channel();
        let shared = Arc::new(Round {
            moment,
            closes: AtomicU64::new(0),
            fire: Mutex::new(fire),
            ledgers: Arc::clone(&ledgers),
            killed: AtomicBool::new(false),
            ready: AtomicU64::new(0),
            progress: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
        });
        let clients: Vec<LoopClient> = (0..CLIENTS)
            .map(|id| LoopClient::start(id, round, rng.next() >> 1, &shared))
            .collect();
        // Wait for the moment, with every client connected; a client's error ends the wait.
        let waited = Instant::now();
        loop {
            let fired = fired.recv_timeout(Duration::from_millis(20)).is_ok();
            let ready = shared.ready.load(Ordering::SeqCst) == CLIENTS as u64;
            let done = shared.progress.load(Ordering::SeqCst);
            let now = match moment {
                Moment::Reports(n) => ready && done >= n,
                Moment::Close(..) => fired,
            };
            if now || !shared.errors.lock().expect("errors").is_empty() {
                break;
            }
            assert!(
                waited.elapsed() < Duration::from_secs(60),
                "round {round}: {moment:?} not reached after 60 s ({done} reports done)"
            );
        }
        thread::sleep(extra); // the random moment, not a synchronisation
        shared.killed.store(true, Ordering::SeqCst);
        send_signal(serve.child.id(), libc::SIGKILL);
        serve.wait();

        // What the kill leaves: clients talking to an smbd whose share is dead, Samba
        // without its supervisor (it exits when its stdin closes; SIGKILL if it lingers),
        // the dead FUSE mount.
        for c in clients {
            c.stop();
        }
        let errors = shared.errors.lock().expect("errors").clone();
        assert!(
            errors.is_empty(),
            "round {round}: clients failed before the kill:\n{}",
            errors.join("\n")
        );
        if stop_orphaned_samba(serve.samba_pid, Duration::from_secs(10)) {
            samba_killed += 1;
        }
        detach_mount(&serve.mountpoint);
        assert!(
            !is_mounted(&serve.mountpoint),
            "round {round}: dead mount removed"
        );
        drop(serve);

        purged_total += check_store_after_kill(&root.join("cer.db"), &ledgers, round);
        serve = serve_again(&opts, &root, round);
        let flight = verify(&serve, &ledgers, round);
        eprintln!(
            "round {round} ({:?}): in flight at the kill (kept by the store): {flight:?}",
            started.elapsed()
        );
        flight_total += flight;
    }
    let cabs: usize = ledgers
        .iter()
        .map(|l| l.lock().expect("ledger").cabs.len())
        .sum();
    let big_acked: usize = ledgers
        .iter()
        .map(|l| {
            let l = l.lock().expect("ledger");
            l.cabs
                .values()
                .filter(|c| c.acked && c.size > 4 << 20)
                .count()
        })
        .sum();
    eprintln!(
        "{ROUNDS} kills in {:?}: {cabs} cabs stored ({big_acked} acknowledged past 4 MiB), \
         {purged_total} unfinished cabs purged at restart, Samba needed SIGKILL {samba_killed} \
         times; in flight: {flight_total:?}",
        started.elapsed()
    );
    assert!(
        big_acked > 0,
        "no cab past 4 MiB was acknowledged: the cab database was not exercised"
    );
    let status = serve.terminate();
    serve.assert_clean_stop(status);
}
