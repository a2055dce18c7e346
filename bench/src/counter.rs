//! Benchmark 4: counter contention. Many processes increment one bucket's count.txt
//! (pattern a: read, seek 0, write, truncate, close) as fast as they can.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use cerfs_e2e::client::{self, Counts, Subpath};

use crate::cycles::remove;
use crate::servers::{self, Cerfs};
use crate::stats::{Figure, Report};
use crate::{workers, Opts};

/// Writers.
pub(crate) const WRITERS: usize = 64;

pub(crate) struct Run {
    pub(crate) per_s: f64,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) lost: i64,
    pub(crate) first_error: Option<String>,
}

fn run_on(root: &Path, secs: f64) -> Result<Run> {
    run_on_roots(&[root], secs)
}

/// The writers split over `roots` (mounts of one store: heads), one count.txt made
/// through the first, read back through it at the end.
pub(crate) fn run_on_roots(roots: &[&Path], secs: f64) -> Result<Run> {
    let root = roots[0];
    let sub = Subpath::app_bucket(0);
    client::mkdir_levels(root, "counts", &sub)?;
    client::create_counts(root, &sub, 0).context("create count.txt")?;
    let me = std::env::current_exe()?;
    let commands = (0..WRITERS)
        .map(|w| {
            let mut cmd = Command::new(&me);
            cmd.arg("worker-count")
                .arg("--root")
                .arg(roots[w % roots.len()])
                .args(["--secs", &secs.to_string()]);
            cmd
        })
        .collect();
    let (summaries, wall) = workers::run(commands)?;
    let ok: u64 = summaries
        .iter()
        .map(|s| s["ok"].as_u64().unwrap_or(0))
        .sum();
    let errors: u64 = summaries
        .iter()
        .map(|s| s["errors"].as_u64().unwrap_or(0))
        .sum();
    let first_error = summaries
        .iter()
        .find_map(|s| s["first_error"].as_str().map(str::to_owned));
    let text = std::fs::read(sub.dir_under(root, "counts").join("count.txt"))?;
    let stored = Counts::parse(&text).map_or(0, |c| c.total_hits);
    Ok(Run {
        per_s: ok as f64 / wall,
        ok,
        errors,
        lost: 1 + ok as i64 - stored as i64,
        first_error,
    })
}

/// Runs benchmark 4 on the FUSE mount and on a plain directory.
pub fn run(opts: &Opts) -> Result<Report> {
    let secs = if opts.quick { 5.0 } else { 20.0 };
    let base = opts.workdir.join("counter");
    let cerfs = Cerfs::mount(&base.join("cerfs"))?;
    let c = run_on(&cerfs.mountpoint, secs)?;
    drop(cerfs);
    let plain = base.join("plain");
    servers::open_dir(&plain)?;
    let p = run_on(&plain, secs)?;
    remove(&base);
    let n = |v: u64| v as f64;
    let mut out = Report::default();
    out.text(format!(
        "\n## 4. Counter contention\n\n{WRITERS} processes increment one bucket's count.txt \
         with pattern (a) (open read+write, read, seek 0, write, truncate, close) for {secs} s \
         each, straight on the FUSE mount vs a plain directory. Lost = 1 (the initial \
         count.txt) + successful increments − the final Total Hits (an unreadable count.txt \
         reads as 0).\n"
    ));
    out.table(
        &format!("{WRITERS} writers, one count.txt"),
        "plain dir",
        vec![
            Figure::rate("successful increments/s", c.per_s, p.per_s),
            Figure::count("successful increments", n(c.ok), n(p.ok)),
            Figure::count("failed increments (errors)", n(c.errors), n(p.errors)),
            Figure::count("increments lost", c.lost as f64, p.lost as f64),
        ],
    );
    for (who, r) in [("cerfs", &c), ("plain dir", &p)] {
        if let Some(e) = &r.first_error {
            out.text(format!("\n{who}: first error: `{e}`\n"));
        }
    }
    Ok(out)
}
