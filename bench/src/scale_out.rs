//! Benchmark 9, past one machine: the same loads on the SQLite store, on the PostgreSQL
//! store with one head, and with two heads (the clients split between them), side by side
//! in one run, on a throw-away PostgreSQL 15 cluster of this machine (docs/scale-out.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use cerfs_e2e::client::RandomBytes;

use crate::counter::{run_on_roots, WRITERS};
use crate::cycles::{make_cabs, remove, smb_run_on, write_policy, RunFigures};
use crate::servers::{open_dir, Cerfs};
use crate::stats::{Figure, Report};
use crate::uploads::{bucket_dir, write_files, BLOCK};
use crate::{Opts, PORT_SERVE};

/// Debian's PostgreSQL 15.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The throw-away cluster's port.
const PG_PORT: u16 = 14489;
/// The second head's SMB port.
const PORT_SERVE_2: u16 = 14477;

/// A PostgreSQL cluster of its own in a fresh directory, stopped and removed when dropped.
pub(crate) struct PgCluster {
    dir: PathBuf,
    next: u32,
}

/// `PG_BIN/program args…` as the postgres user (PostgreSQL refuses to run as root).
fn as_postgres(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(Path::new(PG_BIN).join(program))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl PgCluster {
    pub(crate) fn start(workdir: &Path) -> Result<PgCluster> {
        if !Path::new(PG_BIN).join("postgres").exists() {
            bail!("PostgreSQL 15 is not installed (apt-get install postgresql-15)");
        }
        let dir = workdir.join("postgresql");
        open_dir(&dir)?;
        let chown = Command::new("chown").arg("postgres:").arg(&dir).status()?;
        if !chown.success() {
            bail!("cannot give {} to the postgres user", dir.display());
        }
        let data = dir.join("data");
        let (data, log) = (
            data.to_string_lossy(),
            dir.join("log").to_string_lossy().into_owned(),
        );
        as_postgres("initdb", &["-D", &data, "-A", "trust", "-U", "postgres"])?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {PG_PORT} -k {} -c max_connections=400",
            dir.display()
        );
        as_postgres(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-w", "-o", &options, "start"],
        )?;
        Ok(PgCluster { dir, next: 0 })
    }

    /// A new empty database: its URL.
    pub(crate) fn database(&mut self) -> Result<String> {
        self.next += 1;
        let name = format!("bench{}", self.next);
        as_postgres(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &PG_PORT.to_string(),
                "-U",
                "postgres",
                &name,
            ],
        )?;
        Ok(format!("postgres://postgres@127.0.0.1:{PG_PORT}/{name}"))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = as_postgres(
            "pg_ctl",
            &["-D", &data.to_string_lossy(), "-m", "fast", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Which store a column is.
#[derive(Clone, Copy)]
enum Layout {
    Sqlite,
    PgOneHead,
    PgTwoHeads,
}

/// SMB report cycles of `clients` clients on `layout`.
fn cycles_on(
    opts: &Opts,
    pg: &mut PgCluster,
    layout: Layout,
    clients: usize,
    cycles: u64,
    cab_dir: &Path,
) -> Result<RunFigures> {
    let smb_dir = opts.smb_client_dir()?;
    let base = opts.workdir.join("scale-out-smb");
    let run = match layout {
        Layout::Sqlite => {
            let a = Cerfs::serve(&base.join("a"), PORT_SERVE)?;
            write_policy(&a.mountpoint)?;
            smb_run_on(
                &smb_dir,
                cab_dir,
                &[PORT_SERVE],
                clients,
                cycles,
                &a.mountpoint,
            )
        }
        Layout::PgOneHead | Layout::PgTwoHeads => {
            let url = pg.database()?;
            let a = Cerfs::serve_on(&base.join("a"), url.as_ref(), PORT_SERVE, &[])?;
            write_policy(&a.mountpoint)?;
            let b = match layout {
                Layout::PgTwoHeads => Some(Cerfs::serve_on(
                    &base.join("b"),
                    url.as_ref(),
                    PORT_SERVE_2,
                    &[],
                )?),
                _ => None,
            };
            let ports: &[u16] = if b.is_some() {
                &[PORT_SERVE, PORT_SERVE_2]
            } else {
                &[PORT_SERVE]
            };
            smb_run_on(&smb_dir, cab_dir, ports, clients, cycles, &a.mountpoint)
        }
    };
    remove(&base);
    run
}

/// 64 writers on one count.txt through the mount(s) of `layout`: increments/s and losses.
fn counter_on(pg: &mut PgCluster, workdir: &Path, layout: Layout, secs: f64) -> Result<(f64, i64)> {
    let base = workdir.join("scale-out-counter");
    let run = match layout {
        Layout::Sqlite => {
            let a = Cerfs::mount(&base.join("a"))?;
            run_on_roots(&[&a.mountpoint], secs)
        }
        Layout::PgOneHead | Layout::PgTwoHeads => {
            let url = pg.database()?;
            let a = Cerfs::mount_on(&base.join("a"), url.as_ref())?;
            match layout {
                Layout::PgTwoHeads => {
                    let b = Cerfs::mount_on(&base.join("b"), url.as_ref())?;
                    run_on_roots(&[&a.mountpoint, &b.mountpoint], secs)
                }
                _ => run_on_roots(&[&a.mountpoint], secs),
            }
        }
    }?;
    remove(&base);
    Ok((run.per_s, run.lost))
}

/// Two writers of `mib` MiB through the mount(s) of `layout` (one per head with two): MB/s.
fn uploads_on(pg: &mut PgCluster, workdir: &Path, layout: Layout, mib: u64) -> Result<f64> {
    let base = workdir.join("scale-out-uploads");
    let mut block = vec![0u8; BLOCK];
    std::io::Read::read_exact(&mut RandomBytes::new(9, BLOCK as u64), &mut block)?;
    let rate = match layout {
        Layout::Sqlite => {
            let a = Cerfs::mount(&base.join("a"))?;
            write_files(&bucket_dir(&a.mountpoint)?, 2, mib, &block, false)
        }
        Layout::PgOneHead => {
            let url = pg.database()?;
            let a = Cerfs::mount_on(&base.join("a"), url.as_ref())?;
            write_files(&bucket_dir(&a.mountpoint)?, 2, mib, &block, false)
        }
        Layout::PgTwoHeads => {
            let url = pg.database()?;
            let a = Cerfs::mount_on(&base.join("a"), url.as_ref())?;
            let b = Cerfs::mount_on(&base.join("b"), url.as_ref())?;
            // One bucket each: the two writers' file names are the same.
            let da = bucket_dir(&a.mountpoint)?;
            let db = b.mountpoint.join("cabs").join("second-head");
            open_dir(&db)?;
            let start = std::time::Instant::now();
            std::thread::scope(|s| -> Result<()> {
                let one = s.spawn(|| write_files(&da, 1, mib, &block, false));
                let two = s.spawn(|| write_files(&db, 1, mib, &block, false));
                for h in [one, two] {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("a writer panicked"))??;
                }
                Ok(())
            })?;
            Ok((2 * mib * (1 << 20)) as f64 / 1e6 / start.elapsed().as_secs_f64())
        }
    }?;
    remove(&base);
    Ok(rate)
}

/// Runs benchmark 9.
pub fn run(opts: &Opts) -> Result<Report> {
    crate::servers::require_samba()?;
    let mut pg = PgCluster::start(&opts.workdir)?;
    let cab_dir = make_cabs(&opts.workdir.join("scale-out-cabs"))?;
    let (clients, cycles) = if opts.quick { (4, 8) } else { (8, 32) };
    let secs = if opts.quick { 5.0 } else { 20.0 };
    let mib = if opts.quick { 32 } else { 128 };
    let layouts = [Layout::PgTwoHeads, Layout::PgOneHead, Layout::Sqlite];
    let mut smb = Vec::new();
    let mut counter = Vec::new();
    let mut uploads = Vec::new();
    for layout in layouts {
        smb.push(cycles_on(opts, &mut pg, layout, clients, cycles, &cab_dir)?);
        counter.push(counter_on(&mut pg, &opts.workdir, layout, secs)?);
        uploads.push(uploads_on(&mut pg, &opts.workdir, layout, mib)?);
    }
    remove(&opts.workdir.join("scale-out-cabs"));
    let mut out = Report::default();
    out.text(format!(
        "\n## 9. Past one machine: SQLite, PostgreSQL with one head, with two heads\n\n\
         The same loads on `cerfs serve` / `cerfs mount` over SQLite (the default) and over a \
         PostgreSQL 15 cluster of this machine (defaults: `synchronous_commit` on, fsync on; \
         on the same disk and the same two cores as everything else), served by one head or \
         by two (two processes, each its own FUSE mount and smbd; the clients split between \
         them). SMB: {clients} clients × {cycles} report cycles as in benchmark 1, measured \
         through the first head. Counter: {WRITERS} writers on one count.txt for {secs} s \
         through the mount(s). Uploads: two writers of {mib} MiB cabs through the mount(s).\n"
    ));
    let row = |name: &str, v: [f64; 3]| Figure::rate(name, v[0], v[2]).with_floor(v[1]);
    let count = |name: &str, v: [f64; 3]| Figure::count(name, v[0], v[2]).with_floor(v[1]);
    let f = |i: usize, pick: &dyn Fn(usize) -> f64| [pick(0), pick(1), pick(2)][i];
    let three = |pick: &dyn Fn(usize) -> f64| [f(0, pick), f(1, pick), f(2, pick)];
    out.table_of(
        "SMB report cycles, count.txt contention, uploads",
        "PostgreSQL, 2 heads",
        "PostgreSQL, 1 head",
        "SQLite",
        vec![
            row("SMB reports/s", three(&|i| smb[i].reports_per_s)),
            row("SMB p50 cycle latency, ms", three(&|i| smb[i].p50_ms)),
            count("SMB client errors", three(&|i| smb[i].errors as f64)),
            count("SMB hits lost", three(&|i| smb[i].hits_lost as f64)),
            count(
                "SMB cab files missing",
                three(&|i| smb[i].cab_files_lost as f64),
            ),
            row("count.txt increments/s", three(&|i| counter[i].0)),
            count("increments lost", three(&|i| counter[i].1 as f64)),
            row("uploads, MB/s", three(&|i| uploads[i])),
        ],
    );
    Ok(out)
}
