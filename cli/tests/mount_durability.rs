//! The real `cerfs mount` under load and under kill -9: a 1 GiB cab streams through in
//! bounded memory, and a crash mid-upload loses nothing that was acknowledged.

mod running_mount;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use cerfs_db::SqliteStore;
use cerfs_testkit::close_checked;
use running_mount::{is_mounted, Running};
use sha2::{Digest, Sha256};

/// Deterministic bytes that do not compress (xorshift64).
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Writes `size` noise bytes to `path` in 1 MiB pieces; returns their sha256 (hex).
fn write_noise(path: &Path, size: u64, seed: u64) -> String {
    let mut f = File::create(path).expect("create cab");
    let mut noise = Noise(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut hash = Sha256::new();
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        noise.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).expect("write cab");
        hash.update(&buf[..n]);
        left -= n as u64;
    }
    close_checked(f).expect("close the cab");
    hex::encode(hash.finalize())
}

fn sha256_of(path: &Path) -> String {
    cerfs_testkit::sha256_file(path).expect("hash a file on the mount")
}

fn fresh() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical temp dir");
    let mountpoint = root.join("mnt");
    fs::create_dir(&mountpoint).expect("mkdir mountpoint");
    (dir, root.join("cer.db"), mountpoint)
}

#[test]
fn one_gib_cab_streams_in_bounded_memory() {
    let (_dir, db, mnt) = fresh();
    let Some(mut running) = Running::mounted(&db, &mnt) else {
        return;
    };
    fs::create_dir_all(mnt.join("cabs/blue")).expect("mkdir bucket");
    let cab = mnt.join("cabs/blue/huge.cab");
    let written = write_noise(&cab, 1 << 30, 0x5eed);
    let peak_kib = running.peak_rss_kib();
    eprintln!(
        "peak RSS of cerfs after a 1 GiB upload: {} MiB",
        peak_kib / 1024
    );
    assert!(
        peak_kib < 100 * 1024,
        "cerfs used {peak_kib} KiB for a 1 GiB upload"
    );
    assert_eq!(fs::metadata(&cab).expect("stat").len(), 1 << 30);
    assert_eq!(sha256_of(&cab), written, "the cab reads back byte-for-byte");
    running.signal(libc::SIGTERM);
    assert_eq!(running.wait().code(), Some(0), "{}", running.stderr());
}

#[test]
fn four_concurrent_uploads_stream_in_bounded_memory() {
    let (_dir, db, mnt) = fresh();
    let Some(mut running) = Running::mounted(&db, &mnt) else {
        return;
    };
    fs::create_dir_all(mnt.join("cabs/blue")).expect("mkdir bucket");
    // Each upload has its own queue of chunks and tail; the cab database one cache.
    let written: Vec<(std::path::PathBuf, String)> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..4u64)
            .map(|w| {
                let cab = mnt.join(format!("cabs/blue/big{w}.cab"));
                s.spawn(move || {
                    let sha = write_noise(&cab, 256 << 20, 0xbee + w);
                    (cab, sha)
                })
            })
            .collect();
        writers
            .into_iter()
            .map(|w| w.join().expect("writer"))
            .collect()
    });
    let peak_kib = running.peak_rss_kib();
    eprintln!(
        "peak RSS of cerfs after 4 concurrent 256 MiB uploads: {} MiB",
        peak_kib / 1024
    );
    assert!(
        peak_kib < 100 * 1024,
        "cerfs used {peak_kib} KiB for 4 concurrent uploads"
    );
    for (cab, sha) in &written {
        assert_eq!(
            &sha256_of(cab),
            sha,
            "{} reads back byte-for-byte",
            cab.display()
        );
    }
    running.signal(libc::SIGTERM);
    assert_eq!(running.wait().code(), Some(0), "{}", running.stderr());
}

#[test]
fn kill_9_mid_upload_keeps_everything_acknowledged() {
    let (_dir, db, mnt) = fresh();
    let Some(mut running) = Running::mounted(&db, &mnt) else {
        return;
    };
    let counts = mnt.join("counts/blue");
    fs::create_dir_all(&counts).expect("mkdir counts/blue");
    fs::create_dir_all(mnt.join("cabs/blue")).expect("mkdir cabs/blue");
    // Acknowledged work: 20 increments (each close returned success) and one cab.
    for n in 1..=20u32 {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(counts.join("count.txt"))
            .expect("open count.txt");
        f.write_all(format!("Cabs Gathered={n}\r\nTotal Hits={n}\r\n").as_bytes())
            .expect("write count.txt");
        f.sync_all().expect("fsync");
        close_checked(f).expect("close count.txt");
        let text = fs::read_to_string(counts.join("count.txt")).expect("read back");
        assert_eq!(text, format!("Cabs Gathered={n}\r\nTotal Hits={n}\r\n"));
    }
    let done_sha = write_noise(&mnt.join("cabs/blue/done.cab"), 3 << 20, 1);
    // An upload in flight when cerfs dies.
    let mut partial = File::create(mnt.join("cabs/blue/partial.cab")).expect("create");
    let mut buf = vec![0u8; 1 << 20];
    Noise(2).fill(&mut buf);
    for _ in 0..5 {
        partial.write_all(&buf).expect("write partial");
    }
    running.signal(libc::SIGKILL);
    running.wait();
    drop(partial);
    // The kernel keeps a dead FUSE mount until it is unmounted.
    let _ = Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(&mnt)
        .status();
    assert!(!is_mounted(&mnt), "dead mount removed");

    let store = SqliteStore::open(&db).expect("reopen after kill -9");
    assert_eq!(store.integrity_check().expect("integrity_check"), "ok");
    assert_eq!(
        store.purged_at_open(),
        1,
        "the unfinished cab is purged at start"
    );
    drop(store);

    let Some(mut running) = Running::mounted(&db, &mnt) else {
        return;
    };
    assert_eq!(
        fs::read_to_string(counts.join("count.txt")).expect("count.txt"),
        "Cabs Gathered=20\r\nTotal Hits=20\r\n"
    );
    assert_eq!(sha256_of(&mnt.join("cabs/blue/done.cab")), done_sha);
    assert!(
        !mnt.join("cabs/blue/partial.cab").exists(),
        "no partial cab"
    );
    let names: Vec<_> = fs::read_dir(mnt.join("cabs/blue"))
        .expect("list bucket")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["done.cab"]);
    running.signal(libc::SIGTERM);
    assert_eq!(running.wait().code(), Some(0), "{}", running.stderr());
}

/// `strace` following every thread of process `pid`, writing the syscalls `calls` (with
/// their file paths) to a file; stopped (detached) by [`Tracer::finish`].
struct Tracer {
    child: std::process::Child,
    out: std::path::PathBuf,
    /// Kept open to the end: strace writes to it when it detaches, and a closed pipe would
    /// kill it (SIGPIPE) before it flushes its output file.
    stderr: std::io::BufReader<std::process::ChildStderr>,
}

impl Tracer {
    /// Attaches and waits until every thread of `pid` is traced; `None` when the test
    /// must skip (no strace, and CERFS_REQUIRE_FUSE is not set).
    fn attach(pid: u32, calls: &str, out: &Path) -> Option<Tracer> {
        use std::io::{BufRead, BufReader};
        let spawned = Command::new("strace")
            .args(["-f", "-y", "-e", &format!("trace={calls}"), "-o"])
            .arg(out)
            .args(["-p", &pid.to_string()])
            .stderr(std::process::Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                running_mount::unavailable(&format!(
                    "cannot run strace (apt-get install strace): {e}"
                ));
                return None;
            }
        };
        // "strace: Process N attached with M threads" once all are traced.
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut first = String::new();
        stderr.read_line(&mut first).expect("strace's first line");
        assert!(first.contains("attached"), "strace did not attach: {first}");
        Some(Tracer {
            child,
            out: out.to_path_buf(),
            stderr,
        })
    }

    /// Detaches and returns the lines traced, each with the name of its thread.
    fn finish(mut self, pid: u32) -> Vec<(String, String)> {
        let names: std::collections::HashMap<String, String> =
            fs::read_dir(format!("/proc/{pid}/task"))
                .expect("threads of the traced process")
                .map(|t| {
                    let tid = t.expect("task").file_name().to_string_lossy().into_owned();
                    let comm = fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                        .unwrap_or_default();
                    (tid, comm.trim().to_owned())
                })
                .collect();
        // SIGINT makes strace detach cleanly.
        cerfs_testkit::send_signal(self.child.id(), libc::SIGINT);
        let mut rest = String::new();
        self.stderr
            .read_to_string(&mut rest)
            .expect("strace's stderr");
        // strace detaches, then ends by the signal it was sent.
        let status = self.child.wait().expect("wait for strace");
        assert!(rest.contains("detached"), "strace: {status}\n{rest}");
        fs::read_to_string(&self.out)
            .expect("strace output")
            .lines()
            .map(|line| {
                let tid = line.split(' ').next().unwrap_or_default();
                let name = names.get(tid).cloned().unwrap_or_default();
                (name, line.to_owned())
            })
            .collect()
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        // A test that fails before `finish` must not leave strace attached to cerfs (after
        // `finish` it has exited, and these fail harmlessly).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// fsync, the close of an fsynced handle and fsyncdir each fdatasync the WAL, from the
/// thread serving the request; a plain close does not.
#[test]
fn fsync_through_the_mount_reaches_the_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical");
    let (db, mnt) = (root.join("cer.db"), root.join("mnt"));
    fs::create_dir(&mnt).expect("mkdir");
    let Some(mut running) = Running::mounted(&db, &mnt) else {
        return;
    };
    let pid = running.child.id();
    let line = |n: u32| format!("10:00:0{n}  03-01-2024\tM\tU\tblue\r\n");
    let log = mnt.join("crash.log");
    fs::create_dir_all(mnt.join("cabs/blue")).expect("mkdir bucket");
    let Some(tracer) = Tracer::attach(pid, "openat,fdatasync,fsync", &root.join("trace")) else {
        return;
    };
    // A close alone commits the line but does not sync (like a plain share).
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&log)
        .expect("create");
    f.write_all(line(1).as_bytes()).expect("append");
    close_checked(f).expect("close");
    // fsync syncs what is committed; the close then commits the line and syncs it too.
    let mut f = OpenOptions::new().append(true).open(&log).expect("open");
    f.write_all(line(2).as_bytes()).expect("append");
    f.sync_all().expect("fsync");
    close_checked(f).expect("close");
    // fsync of a folder syncs too.
    File::open(mnt.join("cabs"))
        .expect("open cabs/")
        .sync_all()
        .expect("fsyncdir");
    // A cab of 1 MiB or more: its close commits the cab database, which SQLite syncs.
    write_noise(&mnt.join("cabs/blue/big.cab"), 2 << 20, 7);
    let traced = tracer.finish(pid);
    // cerfs's sync opens the WAL and fdatasyncs that descriptor, from the thread serving
    // the request. SQLite syncs too, with its own long-open descriptor: the checkpointer
    // on its own schedule, and a request's commit that starts the WAL over after a
    // checkpoint (its header). Only the first kind is counted.
    let returned_fd = |line: &str| {
        let fd = line.rsplit("= ").next().and_then(|r| r.split('<').next());
        fd.map(|fd| fd.trim().to_owned())
    };
    let (mut opening, mut opened) = (HashSet::new(), HashSet::new());
    let mut synced = Vec::new();
    for (thread, line) in traced.iter().filter(|(t, _)| t.starts_with("fuser")) {
        let tid = line.split(' ').next().unwrap_or_default().to_owned();
        // strace splits a call that another thread's call interrupts: "<unfinished ...>",
        // then "<... openat resumed>" with the result.
        if line.contains(" openat(") && line.contains("cer.db-wal\"") {
            if line.contains("<unfinished") {
                opening.insert(tid);
            } else if let Some(fd) = returned_fd(line) {
                opened.insert((tid, fd));
            }
        } else if line.contains("<... openat resumed>") && opening.remove(&tid) {
            if let Some(fd) = returned_fd(line) {
                opened.insert((tid, fd));
            }
        } else if let Some(args) = line.split(" fdatasync(").nth(1) {
            let fd = args.split('<').next().unwrap_or_default().to_owned();
            if opened.remove(&(tid, fd)) {
                assert!(line.contains("cer.db-wal>"), "{thread}: {line}");
                synced.push(line);
            }
        }
    }
    assert_eq!(synced.len(), 3, "syncs by request threads: {traced:#?}");
    // SQLite's syncs are fdatasync too (.cargo/config.toml): fsync(2) also writes the
    // inode for every change of its times.
    let full: Vec<_> = traced
        .iter()
        .filter(|(_, l)| l.contains(" fsync("))
        .collect();
    assert!(full.is_empty(), "fsync(2) calls: {full:#?}");
    assert!(
        traced
            .iter()
            .any(|(_, l)| l.contains(" fdatasync(") && l.contains("cer.db-cabs")),
        "the cab database's commit synced nothing: {traced:#?}"
    );
    assert_eq!(
        fs::read_to_string(&log).expect("read crash.log"),
        format!("{}{}", line(1), line(2))
    );
    running.signal(libc::SIGTERM);
    assert_eq!(running.wait().code(), Some(0), "{}", running.stderr());
}
