//! Benchmark 8: crash analysis. (a) Dumps walked per second by the indexer's walker for a
//! Windows x64 minidump (`testdata/windows/mini.dmp`): without symbols, and with its PDB
//! and PE from a Microsoft-style symbol server on loopback (converted with dump_syms) with
//! a cold cache, a warm cache (a new worker reads the converted symbols from disk) and a
//! warm walker (a worker's later dumps). (b) SMB report cycles against `cerfs serve` while
//! its indexer walks a backlog of those dumps, against the same clients with the indexer
//! idle. (c) Peak RSS of `cerfs reindex --stacks` and its walking child.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cerfs_analysis::{AnalysisSettings, Walker};
use cerfs_testkit::{build_cab, mini_dmp_symbol_server, read_testdata};

use crate::cycles::{make_cabs, remove, smb_run};
use crate::servers::{self, Cerfs};
use crate::{Opts, PORT_SERVE};

const CLIENTS: usize = 16;

fn settings(url: Option<&str>, cache: &Path) -> AnalysisSettings {
    AnalysisSettings {
        symbol_urls: url.map(str::to_owned).into_iter().collect(),
        symbol_cache: Some(cache.to_path_buf()),
        ..AnalysisSettings::default()
    }
}

/// Walks per second over `n` walks; `fresh(i)` gives the walker of walk `i` (`None`: keep
/// the previous one).
fn rate(n: usize, dump: &[u8], mut fresh: impl FnMut(usize) -> Option<Walker>) -> Result<f64> {
    let mut walker: Option<Walker> = None;
    let start = Instant::now();
    for i in 0..n {
        if let Some(w) = fresh(i) {
            walker = Some(w);
        }
        let w = walker.as_ref().context("no walker")?;
        let row = w.walk("mini.dmp", dump);
        if let Some(e) = row.error {
            bail!("mini.dmp could not be walked: {e}");
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64().max(f64::MIN_POSITIVE))
}

/// (a) the walker alone, in this process.
fn walk_rates(opts: &Opts, out: &mut String) -> Result<()> {
    let n = if opts.quick { 50 } else { 400 };
    let dump = read_testdata("windows/mini.dmp");
    let server = mini_dmp_symbol_server();
    let base = opts.workdir.join("analysis-walk");
    std::fs::create_dir_all(&base)?;
    let new = |url: Option<&str>, cache: &Path| Walker::new(&settings(url, cache));
    let none = rate(n, &dump, |_| new(None, &base.join("none")).ok())?;
    let cold = rate(n, &dump, |i| {
        new(Some(&server.url), &base.join(format!("cold{i}"))).ok()
    })?;
    let warm_cache = rate(n, &dump, |_| {
        new(Some(&server.url), &base.join("cold0")).ok()
    })?;
    let warm_walker = rate(n * 10, &dump, |i| {
        (i == 0)
            .then(|| new(Some(&server.url), &base.join("cold0")).ok())
            .flatten()
    })?;
    let probe = new(Some(&server.url), &base.join("cold0"))?.walk("mini.dmp", &dump);
    let symbolicated = probe.frames.iter().filter(|f| f.function.is_some()).count();
    let all_threads = Walker::new(&AnalysisSettings {
        all_threads: true,
        ..settings(Some(&server.url), &base.join("cold0"))
    })?
    .walk("mini.dmp", &dump);
    let threads = all_threads
        .frames
        .iter()
        .map(|f| f.thread)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    out.push_str(&format!(
        "\n### Walking\n\n`testdata/windows/mini.dmp` ({} KB, Windows x64, {threads} threads), \
         walked and signed by the indexer's walker in one process. With symbols: its PDB \
         (1 MB) and PE from a Microsoft-style symbol server on loopback, converted with \
         dump_syms; {symbolicated} of the crashing thread's {} frames get a function. Every \
         thread stored (`--stack-all-threads`): {} frame rows instead of {}.\n\n\
         | | dumps/s |\n|---|---|\n\
         | no symbol source (a new walker per dump) | {none:.0} |\n\
         | symbols, cold cache (fetch + convert per dump) | {cold:.1} |\n\
         | symbols, warm cache (a new walker per dump) | {warm_cache:.0} |\n\
         | symbols, warm walker (a worker's later dumps) | {warm_walker:.0} |\n",
        dump.len() / 1000,
        probe.frames.len(),
        all_threads.frames.len(),
        probe.frames.len(),
    ));
    remove(&base.to_path_buf());
    Ok(())
}

fn cerfs(db: &Path, args: &[&str]) -> Result<String> {
    let out = servers::cerfs_admin(db, args)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Cabs of the backlog still waiting for the indexer.
fn pending(db: &Path) -> Result<u64> {
    let text = cerfs(
        db,
        &[
            "query",
            "--format",
            "csv",
            "SELECT count(*) FROM cabs WHERE index_status = 'pending'",
        ],
    )?;
    text.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .context("cannot read the pending count")
}

/// A store with `cabs` cabs holding mini.dmp, uploaded as a client does (through fs-core).
fn backlog(db: &Path, cabs: usize) -> Result<()> {
    let cab = build_cab(&[("mini.dmp", read_testdata("windows/mini.dmp"))]);
    let store = cerfs_db::SqliteStore::open(db).context("create the store")?;
    let fs = cerfs_fs_core::CerFs::new(Arc::new(store));
    for i in 0..cabs {
        let sub = format!("crash\\1.0.0.0\\crash.exe\\1.0.0.0\\{:08x}", i % 50);
        fs.upload_cab(
            &sub,
            &format!("{i:06}.cab"),
            &mut std::io::Cursor::new(&cab),
        )
        .with_context(|| format!("upload cab {i}"))?;
    }
    Ok(())
}

/// (b) SMB cycles with the indexer idle and walking; (c) peak RSS of a reindex.
fn share_while_walking(opts: &Opts, out: &mut String) -> Result<()> {
    let cabs = if opts.quick { 3_000 } else { 20_000 };
    let cycles: u64 = if opts.quick { 8 } else { 16 };
    let base = opts.workdir.join("analysis-share");
    servers::open_dir(&base)?;
    let db = base.join("cer.db");
    backlog(&db, cabs)?;
    let server = mini_dmp_symbol_server();
    cerfs(&db, &["symbols", "set", "--url", &server.url])?;
    let smb_dir = opts.smb_client_dir()?;
    let cab_dir = make_cabs(&opts.workdir.join("analysis-cabs"))?;
    let serve = Cerfs::serve(&base, PORT_SERVE)?;
    // The server indexes and walks the backlog as it starts: that is the end-to-end rate.
    let start = Instant::now();
    while pending(&db)? > 0 {
        if start.elapsed() > Duration::from_secs(3600) {
            bail!("the indexer did not finish the backlog within an hour");
        }
        std::thread::sleep(Duration::from_millis(200)); // a bench's progress poll
    }
    let indexed_secs = start.elapsed().as_secs_f64();
    let idle = smb_run(
        &smb_dir,
        &cab_dir,
        PORT_SERVE,
        CLIENTS,
        cycles,
        &serve.mountpoint,
    )?;
    cerfs(&db, &["reindex", "--stacks", "--queue-only"])?;
    // The clients start once the indexer has taken up the backlog (it looks every second).
    let queued = pending(&db)?;
    let start = Instant::now();
    while pending(&db)? >= queued && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50)); // a bench's progress poll
    }
    let before = pending(&db)?;
    let busy = smb_run(
        &smb_dir,
        &cab_dir,
        PORT_SERVE,
        CLIENTS,
        cycles,
        &serve.mountpoint,
    )?;
    let left = pending(&db)?;
    let walked = before.saturating_sub(left);
    drop(serve);
    let ratio = busy.reports_per_s / idle.reports_per_s.max(f64::MIN_POSITIVE);
    out.push_str(&format!(
        "\n### The share while the indexer walks\n\n`cerfs serve` indexed and walked a \
         backlog of {cabs} cabs holding mini.dmp (symbols from the loopback server, \
         converted once) in {indexed_secs:.1} s: **{:.0} cabs/s** end to end. Then \
         {CLIENTS} SMB clients × {cycles} report cycles, with the indexer idle, and while \
         it walked the backlog again (`cerfs reindex --stacks --queue-only`; the clients \
         started once the walk had begun; {walked} cabs were walked while they ran and \
         {left} were still waiting when they finished{}).\n\n\
         | indexer | reports/s | errors |\n|---|---|---|\n\
         | idle | {:.1} | {} |\n| walking | {:.1} | {} |\n\n\
         Ratio walking/idle: **{ratio:.2}** (target ≥ 0.9).\n",
        cabs as f64 / indexed_secs.max(f64::MIN_POSITIVE),
        if left == 0 {
            ": the walk ended before the clients did, the ratio flatters"
        } else {
            ""
        },
        idle.reports_per_s,
        idle.errors,
        busy.reports_per_s,
        busy.errors,
    ));

    remove(&base);
    Ok(())
}

/// (c) Peak RSS of a reindex with a cold symbol cache: the child fetches and converts the
/// PDB, then walks.
fn memory(opts: &Opts, out: &mut String) -> Result<()> {
    let cabs = 50;
    let base = opts.workdir.join("analysis-rss");
    servers::open_dir(&base)?;
    let db = base.join("cer.db");
    backlog(&db, cabs)?;
    let server = mini_dmp_symbol_server();
    let cache = base.join("cache");
    let tree = peak_rss_mib(
        &db,
        &[
            "reindex",
            "--symbols-url",
            &server.url,
            "--symbols-cache",
            cache.to_str().context("UTF-8 path")?,
        ],
    )?;
    let own = peak_rss_mib(&db, &["reindex", "--stacks", "--queue-only"])?;
    out.push_str(&format!(
        "\n### Memory\n\nPeak RSS of `cerfs reindex` walking {cabs} cabs holding mini.dmp \
         with a cold symbol cache (its child fetches and converts the PDB, then walks): \
         **{tree:.0} MiB** for the largest process of the tree; the reindex process alone \
         (`--queue-only`, no child) {own:.0} MiB. The child is bounded at 1 GiB of address \
         space.\n"
    ));
    remove(&base);
    Ok(())
}

/// The largest peak RSS (MiB) of `cerfs ARGS` and the children it waited for, from wait4
/// (std's `Child::wait` gives no resource usage).
#[allow(unsafe_code)]
fn peak_rss_mib(db: &Path, args: &[&str]) -> Result<f64> {
    let child = Command::new(servers::cerfs_bin()?)
        .args(args)
        .arg("--db")
        .arg(db)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run cerfs {args:?}"))?;
    let pid = i32::try_from(child.id()).context("pid")?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes into the two locals passed, which outlive the call; the child
    // is ours and not waited for elsewhere.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if rc != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("cerfs {args:?} failed (status {status})");
    }
    // Linux: ru_maxrss in KiB, the largest of the process and its waited-for descendants.
    Ok(usage.ru_maxrss as f64 / 1024.0)
}

/// Benchmark 8.
pub fn run(opts: &Opts) -> Result<String> {
    servers::require_samba()?;
    let mut out = String::from("\n## 8. Crash analysis: walking, the share meanwhile, memory\n");
    walk_rates(opts, &mut out)?;
    share_while_walking(opts, &mut out)?;
    memory(opts, &mut out)?;
    Ok(out)
}
