//! `cerfs mount` on Unix: open the store, mount it with FUSE, serve until SIGINT/SIGTERM or
//! an external unmount, then unmount cleanly and close the store.

use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cerfs_fuse::MountOptions;
use clap::Args;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::info;

use super::{check_db_dir, open_share};
use crate::stop::signal_name;
use cerfs_db::StoreLocation;

/// The FUSE device; without it nothing can be mounted.
pub(crate) const DEV_FUSE: &str = "/dev/fuse";

/// Arguments of `cerfs mount`.
#[derive(Debug, Args)]
#[command(after_help = "\
Runs in the foreground until SIGINT (Ctrl-C) or SIGTERM, then unmounts cleanly,
closes the database and exits 0; it also exits 0 when the mount is unmounted
from outside (fusermount3 -u MOUNTPOINT). If files are still open under the
mount at the signal, it is detached (nothing new can be opened there) and serves
them until they are closed, at most 30 s (a second signal: at once). Run it as root so that other users
(Samba) can use the mount. Exit status: 0 ok, 1 error, 2 usage error.

Example:
  mkdir -p /srv/cer && cerfs mount --db /var/lib/cerfs/cer.db /srv/cer")]
pub struct MountArgs {
    /// SQLite database holding the share (created if missing), or a PostgreSQL database
    /// (postgres://USER@HOST:PORT/DBNAME) that several `cerfs mount` heads on different
    /// machines serve together (docs/scale-out.md; no cab indexing or alerts there yet).
    #[arg(long, value_name = "FILE|URL", value_parser = StoreLocation::parse)]
    pub db: StoreLocation,

    /// Existing empty directory to mount the share on.
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint: PathBuf,

    #[command(flatten)]
    pub limits: super::ShareLimits,

    #[command(flatten)]
    pub symbols: crate::symbols_cmd::SymbolArgs,

    /// A unix uid that may change policy.txt and status.txt besides root (repeat for
    /// several); they are presented as its files. For a Samba of your own, give the uid of
    /// the account your admin logs in as.
    #[arg(long = "admin-uid", value_name = "UID")]
    pub admin_uids: Vec<u32>,

    /// Number of FUSE worker threads serving requests concurrently.
    #[arg(
        long,
        value_name = "N",
        default_value_t = MountOptions::default().threads,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024),
    )]
    pub threads: usize,
}

/// Mounts, serves until told to stop, unmounts.
pub fn run(args: &MountArgs) -> Result<()> {
    check_mountpoint(&args.mountpoint)?;
    if let Some(path) = args.db.sqlite_path() {
        check_db_dir(path)?;
    }
    if !Path::new(DEV_FUSE).exists() {
        bail!(
            "{DEV_FUSE} not found: install fuse3 (apt-get install fuse3) and load the kernel \
             module (modprobe fuse); in a container, pass the device through (--device /dev/fuse)"
        );
    }

    // Catch the signals before mounting: from now on SIGINT/SIGTERM must unmount, not kill.
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot install signal handlers")?;

    let share = open_share(&args.db, &args.limits, &args.admin_uids)?;
    let (fs, maintenance, alerts) = (share.fs, share.maintenance, share.alerts);
    let store_watch = crate::store_watch::StoreWatch::spawn(&fs)?;
    let opts = MountOptions {
        threads: args.threads,
        ..MountOptions::default()
    };
    let mount = cerfs_fuse::spawn_mount(fs, &args.mountpoint, &opts)
        .map_err(|e| mount_error(e, &args.mountpoint))?;
    info!("mounted {} at {}", args.db, args.mountpoint.display());
    // Index what committed cabs hold, in the background (each cab in a bounded child).
    let indexer = super::spawn_indexer(&args.db, &args.symbols)?;

    // An external unmount ends the session: stop waiting for signals then.
    let end = mount.session_end();
    let signals_handle = signals.handle();
    thread::Builder::new()
        .name("cerfs-unmount-watch".to_owned())
        .spawn(move || {
            end.wait();
            signals_handle.close();
        })
        .context("cannot start the unmount watcher thread")?;

    match signals.forever().next() {
        Some(signal) => info!(
            "received {}, unmounting {}",
            signal_name(signal),
            args.mountpoint.display()
        ),
        None => info!(
            "{} was unmounted externally, stopping",
            args.mountpoint.display()
        ),
    }

    indexer.stop();
    maintenance.stop();
    if let Some(alerts) = alerts {
        alerts.stop();
    }
    // A second signal while open files keep a detached mount alive: stop at once.
    thread::Builder::new()
        .name("cerfs-second-signal".to_owned())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                eprintln!(
                    "cerfs: received {} again: exiting now; files still open under the \
                     detached mount fail from now on",
                    signal_name(signal)
                );
                std::process::exit(1);
            }
        })
        .context("cannot start the signal watcher thread")?;
    // Joins the FUSE workers; the store is dropped (the database closed) with the session.
    let ended = mount
        .unmount_or_detach(DETACH_GRACE)
        .with_context(|| format!("could not unmount {}", args.mountpoint.display()))?;
    if !ended {
        bail!(
            "{} was still in use {} s after it was detached: stopping anyway; files still \
             open there fail from now on (every change made through them before is stored)",
            args.mountpoint.display(),
            DETACH_GRACE.as_secs()
        );
    }
    info!(
        "unmounted {}, closed {}",
        args.mountpoint.display(),
        args.db
    );
    store_watch.outcome()
}

/// How long a mount that is still in use at a stop signal serves its open files after it
/// was detached.
const DETACH_GRACE: Duration = Duration::from_secs(30);

/// The mountpoint must be an existing directory.
pub(crate) fn check_mountpoint(mountpoint: &Path) -> Result<()> {
    match std::fs::metadata(mountpoint) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => bail!(
            "mountpoint {} is not a directory: give an empty directory",
            mountpoint.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
            "mountpoint {0} does not exist: create it (mkdir -p {0})",
            mountpoint.display()
        ),
        Err(e) if is_not_connected(&e) => bail!(
            "mountpoint {0} is a dead FUSE mount (a previous cerfs did not unmount): \
             run `fusermount3 -u {0}` first",
            mountpoint.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot use mountpoint {}", mountpoint.display())),
    }
}

/// `ENOTCONN`: "Transport endpoint is not connected", what a FUSE mount whose server died
/// answers.
fn is_not_connected(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotConnected
}

/// Explains a failed mount and what to do about it.
pub(crate) fn mount_error(e: io::Error, mountpoint: &Path) -> anyhow::Error {
    let mp = mountpoint.display();
    let text = e.to_string();
    let hint = if e.kind() == io::ErrorKind::PermissionDenied
        || text.contains("Operation not permitted")
        || text.contains("Permission denied")
    {
        format!(
            "not permitted to mount on {mp}: run cerfs as root (a FUSE mount that Samba's \
             users can enter needs root, or user_allow_other in /etc/fuse.conf)"
        )
    } else if e.kind() == io::ErrorKind::NotFound {
        format!(
            "cannot mount on {mp}: fusermount3 not found: install fuse3 (apt-get install fuse3)"
        )
    } else {
        format!("cannot mount on {mp}")
    };
    anyhow::Error::new(e).context(hint)
}
