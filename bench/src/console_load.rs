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

/// Runs benchmark 5c over the store in `dir` (`dir/cer.db`).
pub(crate) fn run(opts: &Opts, dir: &Path, out: &mut String) -> Result<()> {
    // Long enough (about 15 s a run here) that a run's figure is not the machine's noise.
    let cycles: u64 = if opts.quick { 4 } else { 48 };
    let smb_dir = opts.smb_client_dir()?;
    let cab_dir = make_cabs(&opts.workdir.join("console-cabs"))?;
    let addr = format!("127.0.0.1:{PORT_WEB}");
    let serve = Cerfs::serve_with(dir, PORT_SERVE, &["--web", &addr])?;
    let clients = |label: &str| -> Result<RunFigures> {
        smb_run(
            &smb_dir,
            &cab_dir,
            PORT_SERVE,
            CLIENTS,
            cycles,
            &serve.mountpoint,
        )
        .with_context(|| format!("SMB clients {label}"))
    };
    let before = clients("alone, before")?;
    let mut rows = Vec::new();
    for (label, pause) in [
        ("a page a second", Duration::from_secs(1)),
        ("pages back to back", Duration::ZERO),
    ] {
        let reader = Reader::start(&addr, pause);
        let start = Instant::now();
        let during = clients(label)?;
        let secs = start.elapsed().as_secs_f64();
        let pages = reader.finish()?;
        rows.push((label, during, pages as f64 / secs.max(f64::MIN_POSITIVE)));
    }
    let after = clients("alone, after")?;
    drop(serve);
    let alone = (before.reports_per_s + after.reports_per_s) / 2.0;
    out.push_str(&format!(
        "\n### 5c. The console beside an SMB load\n\n`cerfs serve --web` over the same store; \
         {CLIENTS} SMB clients × {cycles} report cycles alone (before and after), then while one \
         console reader opens {} in turn.\n\n\
         | console reader | pages/s | reports/s | errors | / alone |\n|---|---:|---:|---:|---:|\n\
         | none, before | 0 | {:.1} | {} | |\n| none, after | 0 | {:.1} | {} | |\n",
        PAGES.join(", "),
        before.reports_per_s,
        before.errors,
        after.reports_per_s,
        after.errors,
    ));
    for (label, during, pages_per_s) in rows {
        out.push_str(&format!(
            "| {label} | {pages_per_s:.1} | {:.1} | {} | **{:.2}** |\n",
            during.reports_per_s,
            during.errors,
            during.reports_per_s / alone.max(f64::MIN_POSITIVE)
        ));
    }
    out.push_str(
        "\nTarget: a console in use lowers the clients' reports/s by at most 5 % (≥ 0.95).\n",
    );
    Ok(())
}
