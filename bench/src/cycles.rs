//! Benchmarks 1 and 2: full MS-CER 3.1.7 report cycles by N concurrent clients, through
//! SMB (cerfs serve vs smbd over bindfs vs a plain Samba share) and straight on the FUSE
//! mount (vs a bindfs mount vs a plain directory); reports/s, p50/p99 cycle latency, and
//! what was lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use cerfs_e2e::client::{RandomBytes, Subpath};
use serde_json::Value;

use crate::in_turn::in_turn;
use crate::servers::{self, Bindfs, Cerfs, SambaShare};
use crate::stats::{self, Figure, Report};
use crate::{workers, Opts, PORT_BINDFS_SMB, PORT_PLAIN_SMB, PORT_SERVE};

/// Tracking on (logs written), and a cab limit no run reaches: every cycle copies a cab.
const POLICY: &str = "Tracking=YES\r\nCrashes per bucket=1000000\r\n";
/// Clients share this many buckets (client k uses bucket k mod BUCKETS): contention.
pub(crate) const BUCKETS: usize = 4;
/// Sizes of the real cabs the clients copy: 16 KiB – 1 MiB.
const CAB_KIB: [u64; 8] = [16, 32, 64, 128, 256, 512, 768, 1024];

/// Makes one real cabinet per size of [`CAB_KIB`] with gcab (a `version.txt` and
/// incompressible `data.bin`, stored uncompressed so the cab has about that size) in
/// `dir/cabs`; returns that folder.
pub fn make_cabs(dir: &Path) -> Result<PathBuf> {
    let src = dir.join("cab-src");
    let out = dir.join("cabs");
    std::fs::create_dir_all(&src)?;
    std::fs::create_dir_all(&out)?;
    let version = src.join("version.txt");
    std::fs::write(
        &version,
        "Product: CerfsBench\r\nVersion: 1.0.0.0\r\nOS: 5.1.2600\r\n",
    )?;
    for kib in CAB_KIB {
        let data = src.join("data.bin");
        let mut bytes = vec![0u8; (kib * 1024 - 512) as usize];
        std::io::Read::read_exact(&mut RandomBytes::new(kib, bytes.len() as u64), &mut bytes)?;
        std::fs::write(&data, &bytes)?;
        let cab = out.join(format!("{kib:04}k.cab"));
        let status = Command::new("gcab")
            .arg("-c")
            .arg("-n")
            .arg(&cab)
            .arg(&version)
            .arg(&data)
            .status()
            .context("cannot run gcab (apt-get install gcab)")?;
        if !status.success() {
            bail!("gcab failed ({status}) making {}", cab.display());
        }
    }
    Ok(out)
}

/// What one run of N clients measured.
#[derive(Debug, Default, Clone)]
pub struct RunFigures {
    pub(crate) cycles_ok: u64,
    pub(crate) errors: u64,
    pub(crate) reports_per_s: f64,
    pub(crate) mb_per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) hits_lost: i64,
    pub(crate) cabs_counted_lost: i64,
    pub(crate) cab_files_lost: u64,
    pub(crate) crash_lines_lost: i64,
    pub(crate) hits_lines_lost: i64,
    pub(crate) first_error: Option<String>,
}

/// Cycles per client for `clients` clients.
fn cycles_per_client(opts: &Opts, clients: usize) -> u64 {
    let total: u64 = if opts.quick { 32 } else { 256 };
    (total / clients as u64).max(2)
}

/// The client counts of a run.
fn client_counts(opts: &Opts) -> Vec<usize> {
    vec![1, 4, 16, 64]
        .into_iter()
        .filter(|n| opts.max_clients.is_none_or(|m| *n <= m))
        .collect()
}

/// Lays out a plain CER share: the three trees, policy.txt.
/// The cycles' policy.txt, written through cerfs's mount at `mountpoint`.
pub(crate) fn write_policy(mountpoint: &Path) -> Result<()> {
    std::fs::write(mountpoint.join("policy.txt"), POLICY)
        .context("write policy.txt through the mount")
}

fn plain_layout(dir: &Path) -> Result<()> {
    servers::open_dir(dir)?;
    for sub in ["cabs", "status", "counts"] {
        servers::open_dir(&dir.join(sub))?;
    }
    std::fs::write(dir.join("policy.txt"), POLICY).context("write policy.txt")
}

/// Benchmark 1: SMB clients against `cerfs serve`, smbd over bindfs and a plain Samba share.
pub fn smb(opts: &Opts) -> Result<Report> {
    servers::require_samba()?;
    servers::require_bindfs()?;
    let smb_dir = opts.smb_client_dir()?;
    let cab_dir = make_cabs(&opts.workdir.join("smb-cabs"))?;
    let mut out = Report::default();
    out.text("\n## 1. Report cycles through SMB\n");
    out.text(format!(
        "\nN Python smbprotocol clients (tests/smb/cer_smb_client.py), each its own process and SMB \
         session, full MS-CER 3.1.7 cycles (policy, status, count.txt read; mkdir of every level; \
         a real cab of 16 KiB–1 MiB made by gcab; count.txt by patterns a, b, supersede in turn; crash.log and hits.log \
         appended), {BUCKETS} buckets shared by all clients. Baseline: smbd with the same generated \
         smb.conf over a plain directory on the same disk. bindfs: a FUSE passthrough doing no \
         work over a plain directory, exported by the same smbd configuration — the floor any \
         FUSE filesystem starts from on this machine. The three take turns: each run starts with \
         the next one.\n"
    ));
    for clients in client_counts(opts) {
        let cycles = cycles_per_client(opts, clients);
        let base = opts.workdir.join(format!("smb-{clients}"));
        let mut on_cerfs = || -> Result<RunFigures> {
            let cerfs = Cerfs::serve(&base.join("cerfs"), PORT_SERVE)?;
            write_policy(&cerfs.mountpoint)?;
            smb_run(
                &smb_dir,
                &cab_dir,
                PORT_SERVE,
                clients,
                cycles,
                &cerfs.mountpoint,
            )
        };
        let mut on_bindfs = || -> Result<RunFigures> {
            let bindfs = Bindfs::mount(&base.join("bindfs"), &base.join("bindfs-mnt"))?;
            plain_layout(&bindfs.mountpoint)?;
            let floor =
                SambaShare::over_bindfs(bindfs, &base.join("bindfs-samba"), PORT_BINDFS_SMB)?;
            smb_run(
                &smb_dir,
                &cab_dir,
                PORT_BINDFS_SMB,
                clients,
                cycles,
                &floor.dir,
            )
        };
        let mut on_plain = || -> Result<RunFigures> {
            let plain_dir = base.join("plain");
            plain_layout(&plain_dir)?;
            let plain = SambaShare::plain(&plain_dir, &base.join("plain-samba"), PORT_PLAIN_SMB)?;
            smb_run(
                &smb_dir,
                &cab_dir,
                PORT_PLAIN_SMB,
                clients,
                cycles,
                &plain.dir,
            )
        };
        let [on_cerfs, on_bindfs, on_plain] =
            in_turn(opts.run, [&mut on_cerfs, &mut on_bindfs, &mut on_plain])?;
        figures_table(
            &mut out,
            &format!("{clients} SMB clients × {cycles} cycles"),
            "plain Samba",
            &on_cerfs,
            &on_bindfs,
            &on_plain,
        );
        remove(&base);
    }
    out.text(crate::requests::per_cycle(opts, crate::requests::Via::Smb)?);
    Ok(out)
}

pub(crate) fn smb_run(
    smb_dir: &Path,
    cab_dir: &Path,
    port: u16,
    clients: usize,
    cycles: u64,
    root: &Path,
) -> Result<RunFigures> {
    smb_run_on(smb_dir, cab_dir, &[port], clients, cycles, root)
}

/// [`smb_run`] with the clients split over `ports` (heads of one store), measured through
/// the mount at `root`.
pub(crate) fn smb_run_on(
    smb_dir: &Path,
    cab_dir: &Path,
    ports: &[u16],
    clients: usize,
    cycles: u64,
    root: &Path,
) -> Result<RunFigures> {
    let commands = (0..clients)
        .map(|k| {
            let mut cmd = Command::new("python3");
            cmd.arg("-c")
                .arg(include_str!("smb_worker.py"))
                .arg(smb_dir)
                .arg(ports[k % ports.len()].to_string())
                .arg(k.to_string())
                .arg(Subpath::app_bucket(k % BUCKETS).backslashed())
                .arg(cycles.to_string())
                .arg((k + 1).to_string())
                .arg(cab_dir);
            cmd
        })
        .collect();
    let (summaries, secs) = workers::run(commands)?;
    measure(root, &summaries, secs)
}

/// Benchmark 2: the same cycles on the FUSE mount, a bindfs mount and a plain directory.
pub fn fs(opts: &Opts) -> Result<Report> {
    servers::require_bindfs()?;
    let mut out = Report::default();
    out.text("\n## 2. Report cycles on the FUSE mount\n");
    out.text(format!(
        "\nN client processes (`cerfs-bench worker-fs`, the cycle of tests/src/client.rs: std::fs \
         calls), full MS-CER 3.1.7 cycles with real cabs of 16 KiB–1 MiB (gcab), count.txt by pattern a or b \
         at random, tracking on, {BUCKETS} shared buckets. Baseline: the same on a plain \
         directory of the same disk. bindfs: a FUSE passthrough doing no work over a plain \
         directory of the same disk — the floor any FUSE filesystem starts from on this \
         machine. The three take turns: each run starts with the next one.\n"
    ));
    let me = std::env::current_exe()?;
    let cab_dir = make_cabs(&opts.workdir.join("fs-cabs"))?;
    for clients in client_counts(opts) {
        let cycles = cycles_per_client(opts, clients);
        let base = opts.workdir.join(format!("fs-{clients}"));
        let mut on_cerfs = || -> Result<RunFigures> {
            let cerfs = Cerfs::mount(&base.join("cerfs"))?;
            write_policy(&cerfs.mountpoint)?;
            fs_run(&me, &cab_dir, clients, cycles, &cerfs.mountpoint)
        };
        let mut on_bindfs = || -> Result<RunFigures> {
            let bindfs = Bindfs::mount(&base.join("bindfs"), &base.join("bindfs-mnt"))?;
            plain_layout(&bindfs.mountpoint)?;
            fs_run(&me, &cab_dir, clients, cycles, &bindfs.mountpoint)
        };
        let mut on_plain = || -> Result<RunFigures> {
            let plain_dir = base.join("plain");
            plain_layout(&plain_dir)?;
            fs_run(&me, &cab_dir, clients, cycles, &plain_dir)
        };
        let [on_cerfs, on_bindfs, on_plain] =
            in_turn(opts.run, [&mut on_cerfs, &mut on_bindfs, &mut on_plain])?;
        figures_table(
            &mut out,
            &format!("{clients} clients × {cycles} cycles"),
            "plain dir",
            &on_cerfs,
            &on_bindfs,
            &on_plain,
        );
        remove(&base);
    }
    out.text(crate::requests::per_cycle(
        opts,
        crate::requests::Via::Mount,
    )?);
    Ok(out)
}

pub(crate) fn fs_run(
    me: &Path,
    cab_dir: &Path,
    clients: usize,
    cycles: u64,
    root: &Path,
) -> Result<RunFigures> {
    let commands = (0..clients)
        .map(|k| {
            let mut cmd = Command::new(me);
            cmd.arg("worker-fs")
                .arg("--root")
                .arg(root)
                .args(["--client", &k.to_string()])
                .args(["--bucket", &(k % BUCKETS).to_string()])
                .args(["--cycles", &cycles.to_string()])
                .arg("--cab-dir")
                .arg(cab_dir);
            cmd
        })
        .collect();
    let (summaries, secs) = workers::run(commands)?;
    measure(root, &summaries, secs)
}

/// Removes a finished run's files (they can be large).
pub fn remove(dir: &PathBuf) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        eprintln!("cannot remove {}: {e}", dir.display());
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn len(v: &Value) -> u64 {
    v.as_array().map_or(0, |a| a.len() as u64)
}

/// Well-formed MS-CER log lines in `text`: CRLF-terminated, four TAB-separated fields.
fn log_lines(text: &[u8]) -> i64 {
    String::from_utf8_lossy(text)
        .split_inclusive('\n')
        .filter(|l| l.ends_with("\r\n") && l.matches('\t').count() == 3 && l.len() > 24)
        .count() as i64
}

/// count.txt's counters as signed figures (what the clients did minus what is stored).
fn counters(text: &[u8]) -> (i64, i64) {
    let (cabs, hits) = cerfs_testkit::counters(text);
    let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    (signed(cabs), signed(hits))
}

/// Compares what the clients say they did with what the share holds under `root`.
fn measure(root: &Path, summaries: &[Value], secs: f64) -> Result<RunFigures> {
    #[derive(Default)]
    struct Want {
        hits: i64,
        cabs_counted: i64,
        cabs: Vec<String>,
        hits_lines: i64,
    }
    let mut want: BTreeMap<String, Want> = BTreeMap::new();
    let mut f = RunFigures::default();
    let (mut lat, mut crash_lines, mut bytes) = (Vec::new(), 0i64, 0u64);
    for s in summaries {
        let w = want
            .entry(s["bucket"].as_str().unwrap_or("").to_owned())
            .or_default();
        // Every cycle attempted is one crash that should be counted, whether or not the
        // client met an error on the way (a garbled count.txt on a plain share is a loss).
        w.hits += len(&s["lat"]) as i64;
        w.cabs_counted += u(&s["cabs_counted"]) as i64;
        w.cabs.extend(
            s["cabs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_owned)),
        );
        let hits_lines = s.get("hits_count").map_or_else(|| len(&s["hits_lines"]), u);
        w.hits_lines += hits_lines as i64;
        crash_lines += s
            .get("crash_count")
            .map_or_else(|| len(&s["crash_lines"]), u) as i64;
        f.cycles_ok += u(&s["cycles"]);
        f.errors += len(&s["errors"]);
        if f.first_error.is_none() {
            f.first_error = s["errors"][0].as_str().map(str::to_owned);
        }
        lat.extend(
            s["lat"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64),
        );
        bytes += u(&s["cab_bytes"]);
    }
    f.reports_per_s = lat.len() as f64 / secs;
    f.mb_per_s = bytes as f64 / 1e6 / secs;
    f.p50_ms = stats::percentile(&lat, 50.0) * 1000.0;
    f.p99_ms = stats::percentile(&lat, 99.0) * 1000.0;
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_default();
    f.crash_lines_lost = crash_lines - log_lines(&read(root.join("crash.log")));
    for (bucket, w) in &want {
        let sub = Subpath::parse(bucket);
        let (cabs, hits) = counters(&read(sub.dir_under(root, "counts").join("count.txt")));
        f.hits_lost += w.hits - hits;
        f.cabs_counted_lost += w.cabs_counted - cabs;
        let cab_dir = sub.dir_under(root, "cabs");
        f.hits_lines_lost += w.hits_lines - log_lines(&read(cab_dir.join("hits.log")));
        let listed: Vec<String> = std::fs::read_dir(&cab_dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        f.cab_files_lost += w.cabs.iter().filter(|n| !listed.contains(n)).count() as u64;
    }
    if let Some(e) = &f.first_error {
        eprintln!(
            "{} client errors under {}; first: {e}",
            f.errors,
            root.display()
        );
    }
    Ok(f)
}

fn figures_table(
    out: &mut Report,
    title: &str,
    baseline: &str,
    c: &RunFigures,
    b: &RunFigures,
    p: &RunFigures,
) {
    let rate =
        |name: &str, v: fn(&RunFigures) -> f64| Figure::rate(name, v(c), v(p)).with_floor(v(b));
    let count =
        |name: &str, v: fn(&RunFigures) -> f64| Figure::count(name, v(c), v(p)).with_floor(v(b));
    let rows = vec![
        rate("reports/s", |f| f.reports_per_s),
        rate("cab MB/s", |f| f.mb_per_s),
        rate("p50 cycle latency, ms", |f| f.p50_ms),
        rate("p99 cycle latency, ms", |f| f.p99_ms),
        count("cycles without error", |f| f.cycles_ok as f64),
        count("client errors", |f| f.errors as f64),
        count("hits lost (cycles − Total Hits)", |f| f.hits_lost as f64),
        count("cabs lost (Cabs Gathered)", |f| f.cabs_counted_lost as f64),
        count("cab files missing", |f| f.cab_files_lost as f64),
        count("crash.log lines lost", |f| f.crash_lines_lost as f64),
        count("hits.log lines lost", |f| f.hits_lines_lost as f64),
    ];
    out.table_with_floor(title, "bindfs", baseline, rows);
    for (who, f) in [("cerfs", c), ("bindfs", b), (baseline, p)] {
        if let Some(e) = &f.first_error {
            out.text(format!("\n{who}: first client error: `{e}`\n"));
        }
    }
}
