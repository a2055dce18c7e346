//! Benchmark 5c: the web console beside an SMB load. `cerfs serve --web` over the scale
//! store; 16 SMB clients run report cycles alone, while one console reader opens a page a
//! second, and while it opens pages back to back; the clients' reports/s of each run
//! against the mean of the runs alone (one before, one after, so that the store's growth
//! does not count against the console).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cycles::{make_cabs, smb_run, RunFigures};
use crate::servers::Cerfs;
use crate::{Opts, PORT_SERVE, PORT_WEB};

const CLIENTS: usize = 16;

/// What a console reader opens, in turn.
const PAGES: [&str; 6] = [
    "/",
    "/buckets",
    "/buckets/1",
    "/signatures",
    "/api/v1/overview?days=90",
    "/metrics",
];

/// A reader opening [`PAGES`] in turn until stopped, `pause` between pages.
struct Reader {
    stop: Arc<AtomicBool>,
    pages: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<Result<()>>,
}

impl Reader {
    fn start(addr: &str, pause: Duration) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let pages = Arc::new(AtomicU64::new(0));
        let (stop2, pages2, addr) = (stop.clone(), pages.clone(), addr.to_owned());
        let thread = std::thread::spawn(move || -> Result<()> {
            let client = reqwest::blocking::Client::new();
            for path in PAGES.iter().cycle() {
                if stop2.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let response = client
                    .get(format!("http://{addr}{path}"))
                    .send()
                    .with_context(|| format!("GET {path}"))?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "GET {path}: {}",
                    response.status()
                );
                response.bytes()?;
                pages2.fetch_add(1, Ordering::Relaxed);
                // Rate control of the reader, not synchronisation.
                std::thread::sleep(pause);
            }
            Ok(())
        });
        Reader {
            stop,
            pages,
            thread,
        }
    }

    /// Stops the reader; returns the pages it read.
    fn finish(self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the console reader panicked"))??;
        Ok(self.pages.load(Ordering::Relaxed))
    }
}

/// How the console is used during a run.
const READERS: [(&str, Option<Duration>); 3] = [
    ("none", None),
    ("a page a second", Some(Duration::from_secs(1))),
    ("pages back to back", Some(Duration::ZERO)),
];

/// Rounds: each runs the clients once per reader, in turn, so that the machine's drift
/// between runs falls on every reader alike; a reader's figure is the median over the
/// rounds of its run against the run alone of the same round.
const ROUNDS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Runs benchmark 5c over the store in `dir` (`dir/cer.db`).
pub(crate) fn run(opts: &Opts, dir: &Path, out: &mut String) -> Result<()> {
    // About 10 s a run here.
    let cycles: u64 = if opts.quick { 4 } else { 32 };
    let smb_dir = opts.smb_client_dir()?;
    let cab_dir = make_cabs(&opts.workdir.join("console-cabs"))?;
    let addr = format!("127.0.0.1:{PORT_WEB}");
    let serve = Cerfs::serve_with(dir, PORT_SERVE, &["--web", &addr])?;
    // Per reader: reports/s and pages/s of each round, and errors.
    let mut figures: Vec<(Vec<f64>, Vec<f64>, u64)> = vec![Default::default(); READERS.len()];
    for round in 0..ROUNDS {
        for (k, (label, pause)) in READERS.iter().enumerate() {
            let reader = pause.map(|p| Reader::start(&addr, p));
            let start = Instant::now();
            let run: RunFigures = smb_run(
                &smb_dir,
                &cab_dir,
                PORT_SERVE,
                CLIENTS,
                cycles,
                &serve.mountpoint,
            )
            .with_context(|| format!("SMB clients, console reader {label}, round {round}"))?;
            let secs = start.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
            let pages = match reader {
                Some(r) => r.finish()?,
                None => 0,
            };
            figures[k].0.push(run.reports_per_s);
            figures[k].1.push(pages as f64 / secs);
            figures[k].2 += run.errors;
        }
    }
    drop(serve);
    let alone = figures[0].0.clone();
    out.push_str(&format!(
        "\n### 5c. The console beside an SMB load\n\n`cerfs serve --web` over the same store; \
         {CLIENTS} SMB clients × {cycles} report cycles, {ROUNDS} rounds each of: alone, while \
         one console reader opens a page a second, while it opens pages back to back ({} in \
         turn). Medians of the rounds (each round's reports/s in brackets); / alone: the median of \
         each round's run against the same round's run alone.\n\n\
         | console reader | pages/s | reports/s | errors | / alone |\n|---|---:|---:|---:|---:|\n",
        PAGES.join(", "),
    ));
    for ((label, _), (reports, pages, errors)) in READERS.iter().zip(figures) {
        let each: Vec<String> = reports.iter().map(|r| format!("{r:.1}")).collect();
        let ratios: Vec<f64> = reports
            .iter()
            .zip(&alone)
            .map(|(r, a)| r / a.max(f64::MIN_POSITIVE))
            .collect();
        out.push_str(&format!(
            "| {label} | {:.1} | {:.1} ({}) | {errors} | **{:.2}** |\n",
            median(pages),
            median(reports),
            each.join(", "),
            median(ratios)
        ));
    }
    out.push_str(
        "\nTarget: a console in use (a person reading pages) lowers the clients' reports/s by \
         at most 5 % (≥ 0.95); pages back to back are a stress figure.\n",
    );
    Ok(())
}
