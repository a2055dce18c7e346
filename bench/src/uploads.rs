//! Benchmark 3: cab upload throughput, one and four writers of big cabs, through the FUSE
//! mount (vs a bindfs mount, vs a plain directory) and through SMB with smbclient (vs smbd
//! over bindfs, vs a plain Samba share); MB/s, and the peak RSS (VmHWM) of the cerfs
//! process.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use cerfs_e2e::client::{RandomBytes, Subpath};

use crate::cycles::remove;
use crate::in_turn::in_turn;
use crate::servers::{self, Bindfs, Cerfs, SambaShare};
use crate::stats::{Figure, Report};
use crate::{Opts, PORT_BINDFS_SMB, PORT_PLAIN_SMB, PORT_SERVE};

/// Bytes per write call (and the size of the repeated random block).
pub(crate) const BLOCK: usize = 1 << 20;

fn cab_mib(opts: &Opts) -> u64 {
    if opts.quick {
        64
    } else {
        256
    }
}

/// The bucket the uploads go to, created (open to guests) under `root`.
pub(crate) fn bucket_dir(root: &Path) -> Result<PathBuf> {
    let sub = Subpath::app_bucket(0);
    let mut dir = root.join("cabs");
    servers::open_dir(&dir)?;
    for level in &sub.0 {
        dir = dir.join(level);
        servers::open_dir(&dir)?;
    }
    Ok(dir)
}

/// `writers` threads each writing a `mib` MiB file into `dir` (with `fsync` before the close
/// if `sync`); returns MB/s overall.
pub(crate) fn write_files(
    dir: &Path,
    writers: usize,
    mib: u64,
    block: &[u8],
    sync: bool,
) -> Result<f64> {
    let start = Instant::now();
    thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let path = dir.join(format!("{}{w}.cab", if sync { "sync" } else { "up" }));
                s.spawn(move || -> Result<()> {
                    let mut f = File::create(&path)
                        .with_context(|| format!("create {}", path.display()))?;
                    for _ in 0..mib * (1 << 20) / BLOCK as u64 {
                        f.write_all(block)
                            .with_context(|| format!("write {}", path.display()))?;
                    }
                    if sync {
                        f.sync_all()
                            .with_context(|| format!("fsync {}", path.display()))?;
                    }
                    // The close is where cerfs commits the cab: include it.
                    drop(f);
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
        }
        Ok(())
    })?;
    let secs = start.elapsed().as_secs_f64();
    Ok((writers as u64 * mib * (1 << 20)) as f64 / 1e6 / secs)
}

/// `writers` concurrent `smbclient put` of `src` to 127.0.0.1:`port`; returns MB/s.
fn smb_put(port: u16, src: &Path, writers: usize, mib: u64) -> Result<f64> {
    let sub = Subpath::app_bucket(0).backslashed();
    let start = Instant::now();
    let children = (0..writers)
        .map(|w| {
            Command::new("smbclient")
                .arg("//127.0.0.1/cer")
                .args(["-p", &port.to_string(), "-N"])
                .arg("-c")
                .arg(format!("put {} cabs\\{sub}\\smb{w}.cab", src.display()))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("cannot run smbclient (apt-get install smbclient)")
        })
        .collect::<Result<Vec<_>>>()?;
    for child in children {
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || text.contains("NT_STATUS") {
            bail!("smbclient put failed ({}): {text}", out.status);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((writers as u64 * mib * (1 << 20)) as f64 / 1e6 / secs)
}

/// Runs benchmark 3.
pub fn run(opts: &Opts) -> Result<Report> {
    servers::require_samba()?;
    servers::require_bindfs()?;
    let mib = cab_mib(opts);
    let base = opts.workdir.join("uploads");
    servers::open_dir(&base)?;
    let mut block = vec![0u8; BLOCK];
    std::io::Read::read_exact(&mut RandomBytes::new(42, BLOCK as u64), &mut block)?;
    let src = base.join("source.cab");
    {
        let mut f = File::create(&src)?;
        for _ in 0..mib {
            f.write_all(&block)?;
        }
    }
    let mut out = Report::from_text(format!(
        "\n## 3. Cab upload throughput\n\nEach writer copies one {mib} MiB cab (1 MiB writes of \
         incompressible bytes; the close, where cerfs commits the cab, is inside the timing; no \
         fsync on either side, except in the row that says so: there every writer fsyncs \
         before its close, as durable as every cerfs close is; the RSS is of the run without). Mount: threads of this process with std::fs. SMB: concurrent \
         `smbclient put` of a page-cached local file. Peak RSS is VmHWM of the cerfs process \
         (`cerfs mount` or `cerfs serve`; smbd and the indexer's child processes not included), \
         each run on a fresh server. bindfs: a FUSE passthrough doing no work over a plain \
         directory, written to directly and exported by the same smbd configuration — the floor \
         any FUSE filesystem starts from on this machine. The three take turns: each run starts \
         with the next one.\n"
    ));
    for writers in [1usize, 4] {
        // Through the mount: each writes its cabs, then again with fsync before the close.
        let dir = base.join(format!("mount-{writers}"));
        let (mut rss_mount, mut on_mount, mut on_mount_sync) = (0.0, 0.0, 0.0);
        let (mut on_bindfs, mut on_bindfs_sync) = (0.0, 0.0);
        let (mut on_plain, mut on_plain_sync) = (0.0, 0.0);
        in_turn(
            opts.run,
            [
                &mut || {
                    let cerfs = Cerfs::mount(&dir.join("cerfs"))?;
                    let cabs = bucket_dir(&cerfs.mountpoint)?;
                    on_mount = write_files(&cabs, writers, mib, &block, false)?;
                    rss_mount = servers::vm_hwm_mib(cerfs.pid())?;
                    on_mount_sync = write_files(&cabs, writers, mib, &block, true)?;
                    Ok(())
                },
                &mut || {
                    let bindfs = Bindfs::mount(&dir.join("bindfs"), &dir.join("bindfs-mnt"))?;
                    let cabs = bucket_dir(&bindfs.mountpoint)?;
                    on_bindfs = write_files(&cabs, writers, mib, &block, false)?;
                    on_bindfs_sync = write_files(&cabs, writers, mib, &block, true)?;
                    Ok(())
                },
                &mut || {
                    let cabs = bucket_dir(&dir.join("plain"))?;
                    on_plain = write_files(&cabs, writers, mib, &block, false)?;
                    on_plain_sync = write_files(&cabs, writers, mib, &block, true)?;
                    Ok(())
                },
            ],
        )?;
        remove(&dir);
        // Through SMB.
        let dir = base.join(format!("smb-{writers}"));
        let (mut rss_serve, mut on_serve, mut on_bindfs_smb, mut on_plain_smb) =
            (0.0, 0.0, 0.0, 0.0);
        in_turn(
            opts.run,
            [
                &mut || {
                    let cerfs = Cerfs::serve(&dir.join("cerfs"), PORT_SERVE)?;
                    bucket_dir(&cerfs.mountpoint)?;
                    on_serve = smb_put(PORT_SERVE, &src, writers, mib)?;
                    rss_serve = servers::vm_hwm_mib(cerfs.pid())?;
                    Ok(())
                },
                &mut || {
                    let bindfs = Bindfs::mount(&dir.join("bindfs"), &dir.join("bindfs-mnt"))?;
                    bucket_dir(&bindfs.mountpoint)?;
                    let floor = SambaShare::over_bindfs(
                        bindfs,
                        &dir.join("bindfs-samba"),
                        PORT_BINDFS_SMB,
                    )?;
                    on_bindfs_smb = smb_put(PORT_BINDFS_SMB, &src, writers, mib)?;
                    drop(floor);
                    Ok(())
                },
                &mut || {
                    let plain_dir = dir.join("plain");
                    bucket_dir(&plain_dir)?;
                    let plain =
                        SambaShare::plain(&plain_dir, &dir.join("plain-samba"), PORT_PLAIN_SMB)?;
                    on_plain_smb = smb_put(PORT_PLAIN_SMB, &src, writers, mib)?;
                    drop(plain);
                    Ok(())
                },
            ],
        )?;
        remove(&dir);
        out.table_with_floor(
            &format!("{writers} writer(s) × {mib} MiB"),
            "bindfs",
            "plain",
            vec![
                Figure::rate(
                    "MB/s through the mount (plain: plain directory)",
                    on_mount,
                    on_plain,
                )
                .with_floor(on_bindfs),
                Figure::rate(
                    "MB/s through the mount, fsync before close (as durable as a cerfs close)",
                    on_mount_sync,
                    on_plain_sync,
                )
                .with_floor(on_bindfs_sync),
                Figure::rate(
                    "MB/s through SMB (plain: plain Samba share)",
                    on_serve,
                    on_plain_smb,
                )
                .with_floor(on_bindfs_smb),
                Figure::count("peak RSS of cerfs mount, MiB", rss_mount, f64::NAN),
                Figure::count("peak RSS of cerfs serve, MiB", rss_serve, f64::NAN),
            ],
        );
    }
    remove(&base);
    Ok(out)
}
