//! Clustered Samba in front of a PostgreSQL store (docs/scale-out.md, Clustered Samba):
//! two `cerfs serve --ctdb-socket` heads, each with its smbd clustered (clustering = yes)
//! through its own ctdbd, the two ctdbd one cluster in CTDB's test mode on 127.0.0.1 and
//! 127.0.0.2 with two public addresses. SMB clients report through the head that CTDB
//! gives their public address to; then head B dies mid-load (SIGKILL to its cerfs, its
//! smbd and its ctdbd: a machine lost). CTDB moves B's address to A, B's clients copy
//! their reports again through A, and nothing acknowledged is lost:
//! - every acknowledged cab reads back through A with its sha256, and every cab A lists
//!   holds a whole upload (B's upload cut short is removed by A, never completed);
//! - count.txt lies between the acknowledged increments and the attempted ones (a kill
//!   between a commit and its reply leaves one committed increment unacknowledged per
//!   client caught in flight, so equality cannot be asserted);
//! - every acknowledged hits.log line is there, and every line there was attempted.
//!
//! In test mode CTDB assigns the public addresses without putting them on an interface,
//! and both heads run on this one machine: the test sends each client to the head whose
//! node CTDB says holds the client's address, which is what moving the address does
//! between real hosts. Needs FUSE, smbd, ctdbd (Debian's ctdb), Python's smbprotocol and
//! the test PostgreSQL server; CTDB's own port, 4379, must be free on 127.0.0.1 and 2.

mod smb_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use cerfs_fs_core::count_file;
use cerfs_testkit::poll_until;
use smb_support::*;

const BUCKET: &str = "blue";
/// CTDB's node addresses (its port is fixed: 4379).
const NODES: [&str; 2] = ["127.0.0.1", "127.0.0.2"];
/// The cluster's public addresses, one per head at the start.
const PUBLIC: [&str; 2] = ["127.0.1.1", "127.0.1.2"];
const CLIENTS_PER_ADDRESS: usize = 2;
/// Reports of each client: enough that B's are still at work when B dies.
const REPORTS: &str = "40";
/// Reports of each client that copies again through A.
const RETRY_REPORTS: &str = "6";

/// Two ctdbd in CTDB's test mode, each in its own process group.
struct Ctdb {
    dir: tempfile::TempDir,
    daemons: Vec<Option<Child>>,
}

impl Ctdb {
    /// Starts both nodes and waits until they are healthy and every public address has a
    /// node; `None` (after `unavailable`) when CTDB cannot run here.
    fn start() -> Option<Ctdb> {
        let Some(ctdbd) = cerfs_testkit::skip::find_tool("ctdbd") else {
            unavailable("ctdbd is not installed (apt-get install ctdb)");
            return None;
        };
        for node in NODES {
            if std::net::TcpListener::bind((node, 4379)).is_err() {
                unavailable(&format!("CTDB's port {node}:4379 is taken"));
                return None;
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let nodes: String = NODES.iter().map(|n| format!("{n}\n")).collect();
        let public: String = PUBLIC.iter().map(|p| format!("{p}/8 lo\n")).collect();
        let lock = dir.path().join("recovery.lock");
        let mut daemons = Vec::new();
        for (n, address) in NODES.iter().enumerate() {
            let base = dir.path().join(format!("node.{n}"));
            // The event scripts' directory must exist (none is enabled: no interface is
            // configured in test mode), or ctdbd's init event fails.
            for sub in [
                "run",
                "events/legacy",
                "db/volatile",
                "db/persistent",
                "db/state",
            ] {
                std::fs::create_dir_all(base.join(sub)).expect("ctdb dirs");
            }
            std::fs::write(base.join("nodes"), &nodes).expect("nodes");
            std::fs::write(base.join("public_addresses"), &public).expect("public_addresses");
            let db = base.join("db");
            std::fs::write(
                base.join("ctdb.conf"),
                format!(
                    "[logging]\n\tlog level = NOTICE\n\
                     [cluster]\n\trecovery lock = !/usr/libexec/ctdb/ctdb_mutex_fcntl_helper {lock}\n\
                     \tnode address = {address}\n\
                     [database]\n\tvolatile database directory = {db}/volatile\n\
                     \tpersistent database directory = {db}/persistent\n\
                     \tstate database directory = {db}/state\n",
                    lock = lock.display(),
                    db = db.display(),
                ),
            )
            .expect("ctdb.conf");
            // In the foreground (a child to kill), logging to a file of its node.
            let log = std::fs::File::create(base.join("ctdbd.log")).expect("ctdbd.log");
            let child = Command::new(&ctdbd)
                .arg("--interactive")
                .env("CTDB_TEST_MODE", "yes")
                .env("CTDB_BASE", &base)
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start ctdbd");
            daemons.push(Some(child));
        }
        let ctdb = Ctdb { dir, daemons };
        poll_until(Duration::from_secs(90), "both CTDB nodes healthy", || {
            let status = ctdb.run(0, &["status"]);
            let ok = status.lines().filter(|l| l.contains(" OK")).count();
            (ok == 2).then_some(())
        });
        poll_until(
            Duration::from_secs(60),
            "every public address on a node",
            || {
                let holders = ctdb.holders(0);
                (holders.len() == 2 && holders.values().all(|n| *n >= 0)).then_some(())
            },
        );
        Some(ctdb)
    }

    fn base(&self, node: usize) -> PathBuf {
        self.dir.path().join(format!("node.{node}"))
    }

    /// The socket smbd of the head on `node` talks to.
    fn socket(&self, node: usize) -> PathBuf {
        self.base(node).join("run/ctdbd.socket")
    }

    /// `ctdb ARGS` against `node`'s daemon; its stdout (empty if it failed).
    fn run(&self, node: usize, args: &[&str]) -> String {
        let out = Command::new(cerfs_testkit::skip::find_tool("ctdb").expect("ctdb"))
            .args(args)
            .env("CTDB_TEST_MODE", "yes")
            .env("CTDB_BASE", self.base(node))
            .output()
            .expect("run ctdb");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Which node (pnn; -1: none) holds each public address, as `node` sees it.
    fn holders(&self, node: usize) -> BTreeMap<String, i64> {
        self.run(node, &["ip"])
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let (ip, pnn) = (words.next()?, words.next()?.parse().ok()?);
                PUBLIC.contains(&ip).then(|| (ip.to_owned(), pnn))
            })
            .collect()
    }

    /// SIGKILL to `node`'s ctdbd and its helpers.
    fn kill(&mut self, node: usize) {
        if let Some(mut child) = self.daemons[node].take() {
            kill_group(child.id());
            let _ = child.wait();
        }
    }
}

impl Drop for Ctdb {
    fn drop(&mut self) {
        for node in 0..self.daemons.len() {
            self.kill(node);
        }
    }
}

fn kill_group(pgid: u32) {
    // Gone already is fine: this only makes sure.
    let _ = cerfs_testkit::process::signal(-i32::try_from(pgid).expect("pid"), libc::SIGKILL);
}

/// What the clients sent and what they were told.
#[derive(Default)]
struct Ledger {
    /// Cab name → (sha256 of the whole upload, acknowledged).
    cabs: BTreeMap<String, (String, bool)>,
    increments_attempted: u64,
    increments_acked: u64,
    lines_attempted: BTreeSet<String>,
    lines_acked: BTreeSet<String>,
    /// Reports done, per client.
    done: BTreeMap<usize, u64>,
    /// Errors, per client.
    errors: BTreeMap<usize, String>,
}

/// One `cer_smb_client.py loop` process, its events applied to the ledger.
struct Client {
    child: Child,
    reader: Option<JoinHandle<()>>,
}

impl Client {
    fn start(
        id: usize,
        round: u32,
        reports: &str,
        port: u16,
        ledger: &Arc<Mutex<Ledger>>,
    ) -> Client {
        let mut child = Command::new("python3")
            .arg(PY_CLIENT)
            .args(["--port", &port.to_string(), "loop", "--subpath", BUCKET])
            .args([
                "--client-id",
                &id.to_string(),
                "--round",
                &round.to_string(),
            ])
            .args(["--seed", &(id as u64 * 7 + u64::from(round)).to_string()])
            .args(["--min-size", "2000", "--max-size", "300000"])
            .args(["--reports", reports])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the Python SMB client");
        let stdout = child.stdout.take().expect("piped stdout");
        let ledger = Arc::clone(ledger);
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                apply(&mut ledger.lock().expect("ledger"), id, &line);
            }
        });
        Client {
            child,
            reader: Some(reader),
        }
    }

    /// Waits for the client to end by itself; all it printed is applied.
    fn finish(mut self) {
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            reader.join().expect("client reader");
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn apply(l: &mut Ledger, id: usize, line: &str) {
    let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
        l.errors.insert(id, format!("not JSON: {line}"));
        return;
    };
    let text = |key: &str| event[key].as_str().unwrap_or_default().to_owned();
    match (text("ev").as_str(), text("op").as_str()) {
        ("attempt", "cab") => {
            l.cabs.insert(text("name"), (text("sha256"), false));
        }
        ("ack", "cab") => {
            if let Some(cab) = l.cabs.get_mut(&text("name")) {
                cab.1 = true;
            }
        }
        ("attempt", "count") => l.increments_attempted += 1,
        ("ack", "count") => l.increments_acked += 1,
        ("attempt", "line") => {
            l.lines_attempted.insert(text("item"));
        }
        ("ack", "line") => {
            l.lines_acked.insert(text("item"));
        }
        ("done", _) => *l.done.entry(id).or_default() += 1,
        ("error", _) => {
            l.errors.insert(id, text("error"));
        }
        _ => {}
    }
}

/// The port of the head on CTDB node `pnn`.
fn port_of(heads: &[u16], pnn: i64) -> u16 {
    heads[usize::try_from(pnn).expect("a node holds the address")]
}

#[test]
fn clustered_heads_fail_over_and_lose_nothing_acknowledged() {
    if !can_run(true) {
        return;
    }
    let Some(db) = cerfs_testkit::TestDatabase::create() else {
        return;
    };
    let Some(mut ctdb) = Ctdb::start() else {
        return;
    };
    let head = |node: usize| {
        let mut opts = ServeOptions::new();
        opts.db_url = Some(db.url.clone());
        opts.extra = vec![
            "--ctdb-socket".into(),
            ctdb.socket(node).to_str().expect("UTF-8").to_owned(),
        ];
        Serve::start_or_skip(&opts)
    };
    let Some(a) = head(0) else {
        return;
    };
    let Some(mut b) = head(1) else {
        return;
    };
    let conf = std::fs::read_to_string(b.state_dir.join("smb.conf")).expect("B's smb.conf");
    assert!(conf.contains("clustering = yes"), "{conf}");

    // The bucket, and a policy that asks for every cab.
    let mnt = &a.mountpoint;
    std::fs::create_dir_all(mnt.join("cabs").join(BUCKET)).expect("cabs/blue");
    std::fs::create_dir_all(mnt.join("counts").join(BUCKET)).expect("counts/blue");
    // The first report's count (a count.txt of zeros is not one): the base of the ledger.
    let mut count = std::fs::File::create(mnt.join("counts").join(BUCKET).join("count.txt"))
        .expect("count.txt");
    std::io::Write::write_all(&mut count, b"Cabs Gathered=1\r\nTotal Hits=1\r\n")
        .expect("write count.txt");
    cerfs_testkit::close_checked(count).expect("count.txt accepted");
    std::fs::write(
        mnt.join("policy.txt"),
        "Tracking=YES\r\nCrashes per bucket=100000\r\n",
    )
    .expect("policy.txt");

    // Each client reports through the head holding its public address.
    let holders = ctdb.holders(0);
    let heads = [a.port, b.port];
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut clients: Vec<(usize, &str, Client)> = Vec::new();
    for (k, ip) in PUBLIC.iter().enumerate() {
        for c in 0..CLIENTS_PER_ADDRESS {
            let id = k * CLIENTS_PER_ADDRESS + c;
            let port = port_of(&heads, holders[*ip]);
            clients.push((id, ip, Client::start(id, 0, REPORTS, port, &ledger)));
        }
    }
    let on_b: Vec<&str> = PUBLIC
        .iter()
        .copied()
        .filter(|ip| holders[*ip] == 1)
        .collect();
    assert_eq!(
        on_b.len(),
        1,
        "CTDB gave each node one address: {holders:?}"
    );

    // Mid-load (every client has reported at least once), head B's machine is lost.
    poll_until(
        Duration::from_secs(60),
        "every client reported once",
        || {
            let l = ledger.lock().expect("ledger");
            (l.done.len() == clients.len() || !l.errors.is_empty()).then_some(())
        },
    );
    assert!(
        ledger.lock().expect("ledger").errors.is_empty(),
        "errors before the kill: {:?}",
        ledger.lock().expect("ledger").errors
    );
    // cerfs first, as when the machine goes: smbd's files closing at its death would
    // otherwise reach a live cerfs, which cannot tell a cut copy from a finished one.
    let _ = b.child.kill();
    let _ = b.child.wait();
    kill_group(b.samba_pid);
    ctdb.kill(1);

    // CTDB gives B's address to A.
    poll_until(Duration::from_secs(90), "A holds both addresses", || {
        let holders = ctdb.holders(0);
        (holders.len() == 2 && holders.values().all(|n| *n == 0)).then_some(())
    });
    // Every client ends: those of A after their reports, those of B at their first error.
    let mut cut_off = Vec::new();
    for (id, ip, client) in clients {
        client.finish();
        if on_b.contains(&ip) {
            cut_off.push(id);
        }
    }
    {
        let l = ledger.lock().expect("ledger");
        for (id, error) in &l.errors {
            assert!(cut_off.contains(id), "client {id} of A failed: {error}");
        }
        for id in &cut_off {
            assert!(
                l.errors.contains_key(id),
                "client {id} of B was not cut off"
            );
        }
    }
    // B's clients copy their reports again, to the same address: now A.
    let port = port_of(&heads, ctdb.holders(0)[on_b[0]]);
    assert_eq!(port, a.port);
    let before_retry = ledger.lock().expect("ledger").errors.len();
    let retries: Vec<Client> = cut_off
        .iter()
        .map(|id| Client::start(*id, 1, RETRY_REPORTS, port, &ledger))
        .collect();
    retries.into_iter().for_each(Client::finish);
    assert_eq!(
        ledger.lock().expect("ledger").errors.len(),
        before_retry,
        "a retry through A failed: {:?}",
        ledger.lock().expect("ledger").errors
    );

    // A removes the upload B left unfinished (its recovery runs every 5 s).
    poll_until(Duration::from_secs(30), "no upload left writing", || {
        let out = Command::new(CERFS)
            .args(["query", "--format", "csv", "--db", &db.url])
            .arg("SELECT count(*) AS n FROM cabs WHERE state = 'writing'")
            .output()
            .expect("cerfs query");
        (String::from_utf8_lossy(&out.stdout) == "n\r\n0\r\n").then_some(())
    });

    // What A serves against what the clients were told.
    let l = ledger.lock().expect("ledger");
    let cabs_dir = format!("cabs\\{BUCKET}");
    let answers = a.batch(&[
        op(Who::Guest, &["ls", &cabs_dir]),
        op(
            Who::Guest,
            &["get", &format!("counts\\{BUCKET}\\count.txt")],
        ),
        op(Who::Guest, &["get", &format!("{cabs_dir}\\hits.log")]),
    ]);
    let listed: Vec<String> = answers[0]["names"]
        .as_array()
        .expect("a listing")
        .iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .filter(|n| n.ends_with(".cab"))
        .collect();
    let hashes = a.batch(
        &listed
            .iter()
            .map(|n| op(Who::Guest, &["sha256", &format!("{cabs_dir}\\{n}")]))
            .collect::<Vec<_>>(),
    );
    for (name, answer) in listed.iter().zip(&hashes) {
        let (sent, _) = l
            .cabs
            .get(name)
            .unwrap_or_else(|| panic!("{name} was never sent"));
        assert_eq!(
            answer["sha256"].as_str(),
            Some(sent.as_str()),
            "{name} is not whole: {answer}"
        );
    }
    for (name, (_, acked)) in &l.cabs {
        assert!(
            !acked || listed.contains(name),
            "acknowledged cab {name} is missing"
        );
    }
    let counts = count_file::parse(&data(&answers[1])).expect("count.txt parses");
    let added = counts.total_hits - 1;
    assert_eq!(
        counts.cabs_gathered, counts.total_hits,
        "every report added a cab"
    );
    assert!(
        l.increments_acked <= added && added <= l.increments_attempted,
        "count.txt {counts:?}: {} acknowledged, {} attempted",
        l.increments_acked,
        l.increments_attempted
    );
    assert!(
        l.increments_attempted - l.increments_acked <= cut_off.len() as u64,
        "at most one increment in flight per client cut off"
    );
    let log = String::from_utf8(data(&answers[2])).expect("hits.log is text");
    let items: BTreeSet<String> = log
        .lines()
        .filter_map(|line| line.split('\t').nth(3).map(str::to_owned))
        .collect();
    assert!(
        l.lines_acked.is_subset(&items),
        "an acknowledged hits.log line is missing"
    );
    assert!(
        items.is_subset(&l.lines_attempted),
        "a hits.log line nobody sent"
    );
    assert!(l.increments_acked >= (PUBLIC.len() * CLIENTS_PER_ADDRESS) as u64 * 2);
    eprintln!(
        "clustered: {} cabs listed, count.txt {:?}, {} increments acknowledged of {} attempted",
        listed.len(),
        counts,
        l.increments_acked,
        l.increments_attempted
    );
}

#[test]
fn a_clustered_head_needs_a_postgresql_store_and_its_ctdbd() {
    if !can_run(false) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = |db: &str, socket: &str| {
        Command::new(CERFS)
            .args(["serve", "--db", db, "--ctdb-socket", socket, "--state-dir"])
            .arg(dir.path().join("samba"))
            .arg("--mountpoint")
            .arg(dir.path().join("mnt"))
            .output()
            .expect("run cerfs serve")
    };
    let sqlite = dir.path().join("cer.db");
    let out = serve(sqlite.to_str().expect("UTF-8"), "/run/ctdb/ctdbd.socket");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PostgreSQL store"), "{err}");
    assert!(!sqlite.exists(), "nothing was created");
    let missing = dir.path().join("no-ctdbd.socket");
    let out = serve(
        "postgres://nobody@127.0.0.1:1/cer",
        missing.to_str().expect("UTF-8"),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no ctdbd socket at"), "{err}");

    let out = Command::new(CERFS)
        .args(["samba-config", "--cluster", "--path", "/srv/cer"])
        .output()
        .expect("run cerfs samba-config");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("#   clustering = yes"), "{text}");
    assert!(text.contains("vfs objects = fileid"), "{text}");
}
