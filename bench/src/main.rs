//! `cerfs-bench`: reproducible figures for cerfs against the baseline it replaces (a plain
//! directory, a plain Samba share over a plain directory), measured side by side in one run.
//! Benchmarks 1–3 also measure the FUSE floor: bindfs, a FUSE passthrough doing no work,
//! over a plain directory (and smbd over that), so what FUSE itself costs is in the table.
//!
//! ```text
//! cargo build --release -p cerfs -p cerfs-bench
//! sudo target/release/cerfs-bench [--quick] [--workdir DIR] all
//! sudo target/release/cerfs-bench smb-cycles | fs-cycles | uploads | counter | scale | http
//!     | lifecycle | analysis
//! ```
//!
//! Every benchmark prints a Markdown table: each figure on cerfs, on the baseline, and
//! their ratio (benchmarks 1–3: also on bindfs, and its ratio to the baseline). Needs
//! root, fuse3, bindfs, samba, smbclient, gcab and python3 with smbprotocol. Started:
//! `cerfs mount`, `cerfs serve`, `cerfs http`, bindfs (in the foreground), smbd over a
//! plain directory and over bindfs. Servers listen on 127.0.0.1 ports 14470, 14471, 14472
//! and 14474–14476 only; every process started is stopped by its pid and every mount unmounted
//! before the program exits.

mod analysis;
mod console_load;
mod counter;
mod cycles;
mod http;
mod in_turn;
mod lifecycle;
mod requests;
mod scale;
mod scale_console_pg;
mod scale_out;
mod servers;
mod stats;
mod uploads;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::stats::Report;

/// Port of `cerfs serve` in the SMB benchmarks.
pub const PORT_SERVE: u16 = 14470;
/// Port of the plain Samba share.
pub const PORT_PLAIN_SMB: u16 = 14471;
/// Port of smbd over bindfs (the FUSE floor).
pub const PORT_BINDFS_SMB: u16 = 14472;
/// Port of `cerfs http`.
pub const PORT_HTTP: u16 = 14474;
/// `cerfs web` (benchmark 5: the console at scale).
pub const PORT_WEB: u16 = 14475;
/// `cerfs serve --web`, read for its /metrics (benchmarks 1b and 2b).
pub const PORT_WEB_METRICS: u16 = 14476;

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Benchmarks cerfs against a plain directory and a plain Samba share")]
struct Cli {
    /// Smaller runs (fewer cycles, 64 MiB cabs, 5 s of contention): minutes, not tens.
    #[arg(long, global = true)]
    quick: bool,
    /// Where the databases, shares and mounts go (default: a fresh directory in /tmp).
    /// Must be on the disk to measure.
    #[arg(long, global = true, value_name = "DIR")]
    workdir: Option<PathBuf>,
    /// Only run the client counts up to this (1, 4, 16, 64).
    #[arg(long, global = true, value_name = "N")]
    max_clients: Option<usize>,
    /// Run each benchmark with tables (cycles, uploads, counter, http) this many times and
    /// print the median of each rate and latency and the largest of each count (losses,
    /// errors, totals, RSS).
    #[arg(long, global = true, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=9))]
    runs: u32,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Every benchmark, in order.
    All,
    /// 1. MS-CER report cycles through SMB: cerfs serve, smbd over bindfs, plain Samba.
    SmbCycles,
    /// 2. MS-CER report cycles on the FUSE mount, a bindfs mount, a plain directory.
    FsCycles,
    /// 3. Cab upload throughput (cerfs, bindfs, plain) and cerfs peak RSS.
    Uploads,
    /// 4. 64 writers incrementing one count.txt.
    Counter,
    /// 5. Scale: queries and listings on a store filled by SQL.
    Scale,
    /// 5b only: the web console over the store of benchmark 5, on SQLite and on PostgreSQL.
    ConsoleScale,
    /// 6. CER V2 over HTTP: level-1 reports/s, level-2 MB/s.
    Http,
    /// 7. Running for years: prune under SMB load, backup against cp.
    Lifecycle,
    /// 8. Crash analysis: dumps walked/s, SMB cycles while the indexer walks, peak RSS.
    Analysis,
    /// 9. Past one machine: SQLite, PostgreSQL with one head and with two heads.
    ScaleOut,
    /// (internal) one client process of `fs-cycles`.
    #[command(hide = true)]
    WorkerFs {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        client: u64,
        #[arg(long)]
        bucket: usize,
        #[arg(long)]
        cycles: u64,
        #[arg(long)]
        cab_dir: PathBuf,
    },
    /// (internal) one writer process of `counter`.
    #[command(hide = true)]
    WorkerCount {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        secs: f64,
    },
}

/// One benchmark: runs and returns its Markdown section.
type Bench = fn(&Opts) -> Result<Report>;

/// Options every benchmark sees.
#[derive(Debug)]
pub struct Opts {
    /// `--quick`.
    pub quick: bool,
    /// The working directory (exists, open to everybody).
    pub workdir: PathBuf,
    /// `--max-clients`.
    pub max_clients: Option<usize>,
    /// Which run this is (from 0, of `--runs`): the systems compared start in turn.
    pub run: usize,
}

impl Opts {
    /// The folder of tests/smb/cer_smb_client.py (the SMB client the benchmark reuses).
    pub fn smb_client_dir(&self) -> Result<PathBuf> {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/smb"));
        if !dir.join("cer_smb_client.py").exists() {
            anyhow::bail!(
                "{}/cer_smb_client.py not found: run the bench from the cerfs source tree",
                dir.display()
            );
        }
        Ok(dir)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cerfs-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::WorkerFs {
            root,
            client,
            bucket,
            cycles,
            cab_dir,
        } => return workers::fs_cycles(&root, client, bucket, cycles, &cab_dir),
        Cmd::WorkerCount { root, secs } => return workers::count(&root, secs),
        _ => {}
    }
    servers::require_root()?;
    servers::cerfs_bin()?;
    let _temp;
    let workdir = match cli.workdir {
        Some(dir) => dir,
        None => {
            let dir = tempfile::Builder::new()
                .prefix("cerfs-bench-")
                .tempdir_in("/tmp")
                .context("cannot create a directory in /tmp")?;
            let path = dir.path().to_path_buf();
            _temp = dir;
            path
        }
    };
    servers::open_dir(&workdir)?;
    let mut opts = Opts {
        quick: cli.quick,
        workdir,
        max_clients: cli.max_clients,
        run: 0,
    };
    let benches: Vec<(&str, Bench)> = match cli.command {
        Cmd::All => vec![
            ("smb-cycles", cycles::smb),
            ("fs-cycles", cycles::fs),
            ("uploads", uploads::run),
            ("counter", counter::run),
            ("scale", scale_report),
            ("http", http::run),
            ("lifecycle", lifecycle_report),
            ("analysis", analysis_report),
            ("scale-out", scale_out::run),
        ],
        Cmd::SmbCycles => vec![("smb-cycles", cycles::smb)],
        Cmd::FsCycles => vec![("fs-cycles", cycles::fs)],
        Cmd::Uploads => vec![("uploads", uploads::run)],
        Cmd::Counter => vec![("counter", counter::run)],
        Cmd::Scale => vec![("scale", scale_report)],
        Cmd::ConsoleScale => vec![("console-scale", console_scale_report)],
        Cmd::Http => vec![("http", http::run)],
        Cmd::Lifecycle => vec![("lifecycle", lifecycle_report)],
        Cmd::Analysis => vec![("analysis", analysis_report)],
        Cmd::ScaleOut => vec![("scale-out", scale_out::run)],
        Cmd::WorkerFs { .. } | Cmd::WorkerCount { .. } => unreachable!("handled above"),
    };
    println!(
        "# cerfs-bench{}{}\n\ncommit {}, {} (UTC){}",
        if opts.quick { " --quick" } else { "" },
        if cli.runs > 1 {
            format!(" --runs {}", cli.runs)
        } else {
            String::new()
        },
        source_commit(),
        utc_now(),
        if cli.runs > 1 {
            format!(
                "; tables: medians of {} runs for rates and latencies (ratios of the medians), \
                 the largest of the runs for counts (losses, errors, totals, RSS); text from \
                 the first run",
                cli.runs
            )
        } else {
            String::new()
        }
    );
    for (name, bench) in benches {
        let mut runs = Vec::new();
        for run in 1..=cli.runs {
            eprintln!("cerfs-bench: running {name} ({run} of {})", cli.runs);
            opts.run = run as usize - 1;
            let report = bench(&opts).with_context(|| format!("benchmark {name}"))?;
            let repeat = report.has_tables();
            runs.push(report);
            if !repeat {
                break; // text only: nothing to take a median of
            }
        }
        let report = Report::reduce(&runs).map_err(|e| anyhow::anyhow!("benchmark {name}: {e}"))?;
        println!("{}", report.render());
    }
    Ok(())
}

fn scale_report(opts: &Opts) -> Result<Report> {
    scale::run(opts).map(Report::from_text)
}

fn console_scale_report(opts: &Opts) -> Result<Report> {
    scale::console_only(opts).map(Report::from_text)
}

fn lifecycle_report(opts: &Opts) -> Result<Report> {
    lifecycle::run(opts).map(Report::from_text)
}

fn analysis_report(opts: &Opts) -> Result<Report> {
    analysis::run(opts).map(Report::from_text)
}

/// The commit of the source tree the bench was built from (`+dirty` with local changes).
fn source_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            format!("{rev}{}", if dirty { "+dirty" } else { "" })
        }
        None => "unknown (not run from a git checkout)".to_owned(),
    }
}

fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
