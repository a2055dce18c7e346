//! Crash consistency: `cerfs mount` is killed with SIGKILL at a random moment (seeded,
//! printed) under a concurrent CER load, 20 times in a row, and remounted each time.
//!
//! The load is four client threads on the FUSE mount (not SMB: a Python SMB client per
//! operation makes 20 rounds far too slow for CI on two cores; the FUSE path is where the
//! store is written either way). Each client repeats a CER report: upload a cab (several
//! 64 KiB chunks), increment count.txt with the one-handle pattern, append a line to
//! hits.log. Every operation is *attempted* before its close(2) and *acknowledged* when
//! close returned success; both are recorded.
//!
//! After each kill, before and after remounting:
//! - the database passes `PRAGMA integrity_check`, and no cab row is left `writing`;
//! - every acknowledged cab is listed and reads back with its sha256 (the store's sha256
//!   and size agree); every listed cab is one a client wrote, and if its close was not
//!   acknowledged it holds the *whole* upload (a cab is committed only by its writer's
//!   close, after all its writes: a partial cab must never be visible);
//! - counters: `acknowledged ≤ stored ≤ attempted`, where attempted counts the increments
//!   whose close was started. Equality cannot be asserted: a kill between the commit and
//!   the reply makes a committed increment unacknowledged. The stored value then becomes
//!   the new baseline (acknowledged = attempted = stored), so the bound stays tight: it is
//!   never looser than one in-flight increment per client per round;
//! - hits.log: every acknowledged line is present, every present line was attempted.

mod fault_support;
mod running_mount;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use cerfs_db::SqliteStore;
use cerfs_fs_core::count_file;
use fault_support::{
    check_log_items, close_checked, detach_mount, list, sha256_file, sha256_hex, Rng,
};
use running_mount::{is_mounted, Running};

const ROUNDS: u32 = 20;
const CLIENTS: usize = 4;
const BUCKETS: [&str; 2] = [
    "FaultApp\\1.0.0.0\\fault.dll\\2.0.0.0\\0000beef",
    "FaultApp\\1.0.0.0\\other.dll\\2.0.0.0\\0000f00d",
];

fn dir_of(sub: &str) -> PathBuf {
    sub.split('\\').collect()
}

/// What one bucket's clients did, as they saw it.
#[derive(Debug, Default)]
struct Ledger {
    /// Increments of both counters whose close returned success.
    acked: u64,
    /// Increments whose close was started (acked + in flight at a kill).
    attempted: u64,
    /// Cab name → (sha256 of the whole upload, acknowledged).
    cabs: BTreeMap<String, (String, bool)>,
    /// hits.log items whose close returned success / was started.
    lines_acked: BTreeSet<String>,
    lines_attempted: BTreeSet<String>,
    /// Cabs already verified by reading them back.
    verified: BTreeSet<String>,
}

type Ledgers = Arc<Vec<Mutex<Ledger>>>;

/// What the test and its client threads share during one round.
struct Round {
    mnt: PathBuf,
    round: u32,
    ledgers: Ledgers,
    /// Clients finish their current report and stop.
    stop: AtomicBool,
    /// Set just before the SIGKILL: errors from then on are expected.
    killed: AtomicBool,
    /// Reports completed this round.
    progress: AtomicU64,
}

/// One client's reports until `stop`; returns an error that happened before the kill.
fn client(r: &Round, id: usize, seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let b = id % BUCKETS.len();
    let sub = dir_of(BUCKETS[b]);
    let mut n = 0u32;
    while !r.stop.load(Ordering::SeqCst) {
        n += 1;
        let step = report(&r.mnt, &sub, id, r.round, n, &mut rng, &r.ledgers[b]);
        if let Err(e) = step {
            if r.killed.load(Ordering::SeqCst) {
                return Ok(()); // the server is gone: expected (ENOTCONN, ECONNABORTED, …)
            }
            return Err(format!("client {id} round {} report {n}: {e}", r.round));
        }
        r.progress.fetch_add(1, Ordering::SeqCst);
    }
    Ok(())
}

/// One report: cab, count.txt increment, hits.log line.
fn report(
    mnt: &Path,
    sub: &Path,
    id: usize,
    round: u32,
    n: u32,
    rng: &mut Rng,
    ledger: &Mutex<Ledger>,
) -> io::Result<()> {
    // 1. The cab: 1 byte to 400 KiB, written in pieces of up to 48 KiB; one in eight
    // past 4 MiB (up to 6 MiB, pieces up to 256 KiB): its bytes from 4 MiB on go to the
    // cab database, gathered with other uploads' and committed by the close.
    let name = format!("c{id}r{round}n{n}.cab");
    let big = rng.range(0, 8) == 0;
    let (len, max_piece) = if big {
        (rng.range((4 << 20) + 1, 6 << 20) as usize, 256 << 10)
    } else {
        (rng.range(1, 400 << 10) as usize, 48 << 10)
    };
    let data = rng.bytes(len);
    let mut f = File::create(mnt.join("cabs").join(sub).join(&name))?;
    let mut at = 0;
    while at < len {
        let piece = (rng.range(1, max_piece) as usize).min(len - at);
        f.write_all(&data[at..at + piece])?;
        at += piece;
    }
    ledger
        .lock()
        .expect("ledger")
        .cabs
        .insert(name.clone(), (sha256_hex(&data), false));
    close_checked(f)?;
    ledger
        .lock()
        .expect("ledger")
        .cabs
        .insert(name, (sha256_hex(&data), true));

    // 2. count.txt, pattern (a): one read+write handle.
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(mnt.join("counts").join(sub).join("count.txt"))?;
    let mut text = Vec::new();
    f.read_to_end(&mut text)?;
    let c = count_file::parse(&text)
        .map_err(|e| io::Error::other(format!("count.txt as read: {e}: {text:?}")))?;
    let next = count_file::render(cerfs_db::Counts {
        cabs_gathered: c.cabs_gathered + 1,
        total_hits: c.total_hits + 1,
    });
    f.seek(SeekFrom::Start(0))?;
    f.write_all(next.as_bytes())?;
    f.set_len(next.len() as u64)?;
    ledger.lock().expect("ledger").attempted += 1;
    close_checked(f)?;
    ledger.lock().expect("ledger").acked += 1;

    // 3. hits.log: append one line.
    let item = format!("i{id}r{round}n{n}.cab");
    let line = format!("12:00:00  01-02-2027\tFAULT{id}\tuser\t{item}\r\n");
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(mnt.join("cabs").join(sub).join("hits.log"))?;
    f.write_all(line.as_bytes())?;
    ledger
        .lock()
        .expect("ledger")
        .lines_attempted
        .insert(item.clone());
    close_checked(f)?;
    ledger.lock().expect("ledger").lines_acked.insert(item);
    Ok(())
}

/// Checks the mounted share against the ledgers; then makes the observed state the new
/// baseline.
fn verify(mnt: &Path, db: &Path, ledgers: &Ledgers, round: u32) {
    for (b, sub) in BUCKETS.iter().enumerate() {
        let mut l = ledgers[b].lock().expect("ledger");
        let dir = mnt.join("cabs").join(dir_of(sub));
        let listed: Vec<String> = list(&dir).into_iter().filter(|n| n != "hits.log").collect();
        let rows = fault_support::cab_rows(db, sub);
        let complete: Vec<&String> = rows
            .iter()
            .filter(|r| r.1 == "complete")
            .map(|r| &r.0)
            .collect();
        assert!(
            rows.iter().all(|r| r.1 == "complete"),
            "round {round}: a cab row is not complete after restart: {rows:?}"
        );
        assert_eq!(
            complete,
            listed.iter().collect::<Vec<_>>(),
            "round {round}: listing and store disagree"
        );
        for (name, (_, acked)) in &l.cabs {
            if *acked {
                assert!(
                    listed.contains(name),
                    "round {round}: acknowledged cab {sub}\\{name} is missing"
                );
            }
        }
        let mut now_verified = Vec::new();
        for row in &rows {
            let name = &row.0;
            let Some((sha, acked)) = l.cabs.get(name) else {
                panic!("round {round}: cab {name} was never written by a client");
            };
            assert_eq!(
                row.3.as_deref(),
                Some(sha.as_str()),
                "round {round}: {name} (acknowledged: {acked}) is not the whole upload"
            );
            if !l.verified.contains(name) {
                let read = sha256_file(&dir.join(name)).expect("read a cab back");
                assert_eq!(&read, sha, "round {round}: {name} reads back other bytes");
                let len = fs::metadata(dir.join(name)).expect("stat cab").len();
                assert_eq!(Some(len as i64), row.2, "round {round}: {name} size");
                now_verified.push(name.clone());
            }
        }
        // Unacknowledged cabs that are not there are gone for good: forget them.
        let present: BTreeSet<&String> = rows.iter().map(|r| &r.0).collect();
        let gone: Vec<String> = l
            .cabs
            .keys()
            .filter(|n| !present.contains(n))
            .cloned()
            .collect();
        for name in gone {
            l.cabs.remove(&name);
        }
        for name in now_verified {
            l.verified.insert(name);
        }
        for v in l.cabs.values_mut() {
            v.1 = true;
        }

        // Counters.
        let text = fs::read(mnt.join("counts").join(dir_of(sub)).join("count.txt"))
            .expect("read count.txt");
        let c = count_file::parse(&text).expect("count.txt parses");
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
        l.acked = c.total_hits;
        l.attempted = c.total_hits;

        // hits.log.
        let log = fs::read_to_string(dir.join("hits.log")).unwrap_or_default();
        let items = check_log_items(round, &log, &l.lines_acked, &l.lines_attempted);
        l.lines_acked = items.clone();
        l.lines_attempted = items;
    }
}

#[test]
fn kill_9_twenty_times_under_load_loses_nothing_acknowledged() {
    let seed = fault_support::seed("kill_9_twenty_times_under_load");
    let mut rng = Rng::new(seed);
    let (_dir, root) = fault_support::tempdir();
    let db = root.join("cer.db");
    let mnt = root.join("mnt");
    fs::create_dir(&mnt).expect("mkdir mountpoint");

    // Setup: the buckets' folders and a count.txt each at 1/1 (acknowledged).
    let Some(mut running) = Running::mounted(&db, &mnt) else {
        return;
    };
    let ledgers: Ledgers = Arc::new((0..BUCKETS.len()).map(|_| Mutex::default()).collect());
    for (b, sub) in BUCKETS.iter().enumerate() {
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
    verify(&mnt, &db, &ledgers, 0);

    let mut purged_total = 0;
    for round in 1..=ROUNDS {
        let shared = Arc::new(Round {
            mnt: mnt.clone(),
            round,
            ledgers: Arc::clone(&ledgers),
            stop: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            progress: AtomicU64::new(0),
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| {
                let shared = Arc::clone(&shared);
                let client_seed = rng.next();
                thread::spawn(move || client(&shared, id, client_seed))
            })
            .collect();
        // The moment: after a random number of completed reports, plus a random delay.
        let reports = rng.range(0, 12);
        let extra = Duration::from_micros(rng.range(0, 40_000));
        eprintln!("round {round}: kill -9 after {reports} reports + {extra:?}");
        fault_support::poll_until(Duration::from_secs(60), "clients make progress", || {
            let failed = clients.iter().any(|c| c.is_finished());
            (failed || shared.progress.load(Ordering::SeqCst) >= reports).then_some(())
        });
        thread::sleep(extra); // the random moment, not a synchronisation
        shared.killed.store(true, Ordering::SeqCst);
        shared.stop.store(true, Ordering::SeqCst);
        running.signal(libc::SIGKILL);
        running.wait();
        // Clients blocked in the dead mount get ENOTCONN; none may hang.
        fault_support::poll_until(
            Duration::from_secs(30),
            "clients end after the kill",
            || clients.iter().all(|c| c.is_finished()).then_some(()),
        );
        for c in clients {
            if let Err(e) = c.join().expect("client thread") {
                panic!("{e}");
            }
        }
        detach_mount(&mnt);
        drop(running);
        assert!(!is_mounted(&mnt), "round {round}: dead mount removed");

        let store = SqliteStore::open(&db).expect("reopen after kill -9");
        assert_eq!(
            store.integrity_check().expect("integrity_check"),
            "ok",
            "round {round}"
        );
        purged_total += store.purged_at_open();
        assert!(
            store.purged_at_open() <= CLIENTS,
            "round {round}: at most one cab per client was in flight"
        );
        drop(store);

        let Some(next) = Running::mounted(&db, &mnt) else {
            panic!("round {round}: the remount failed");
        };
        running = next;
        verify(&mnt, &db, &ledgers, round);
    }
    eprintln!("{ROUNDS} kills: {purged_total} unfinished cabs purged at restart");
    running.signal(libc::SIGTERM);
    assert_eq!(running.wait().code(), Some(0), "{}", running.stderr());
}
