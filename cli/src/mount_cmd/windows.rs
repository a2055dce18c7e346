//! `cerfs mount` on Windows: open the store, mount it with WinFsp on a drive letter or a
//! folder, serve until Ctrl-C or Ctrl-Break, then unmount and close the store.
//!
//! UNVERIFIED: compiled only for Windows targets, which the development machine cannot
//! build. `.github/workflows/windows.yml` builds it, mounts X: with it, runs [MS-CER]
//! example 4.1 on the drive and stops it with Ctrl-C; until that has passed on a Windows
//! runner this is a draft (winfsp-win/README.md).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use tracing::info;

use super::winfsp_point::MountPoint;
use super::{check_db_dir, open_share};
use crate::stop::StopSignals;

/// Arguments of `cerfs mount`.
#[derive(Debug, Args)]
#[command(after_help = "\
Needs WinFsp 2.x (winget install WinFsp.WinFsp). WinFsp creates a folder mountpoint
itself: an existing empty folder is removed for the mount and created again afterwards.
Runs in the foreground until Ctrl-C or Ctrl-Break, then unmounts, closes the database and
exits 0. Share the mounted drive with Windows' own SMB server:
  New-SmbShare -Name cer -Path X:\\ -FullAccess Everyone -CachingMode None
Exit status: 0 ok, 1 error, 2 usage error.

Examples:
  cerfs mount --db C:\\cerfs\\cer.db X:
  cerfs mount --db C:\\cerfs\\cer.db C:\\cerfs\\share")]
pub struct MountArgs {
    /// SQLite database holding the share (created if missing).
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,

    /// A free drive letter (X:), or a folder that is empty or does not exist yet (its parent
    /// must exist).
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint: PathBuf,

    #[command(flatten)]
    pub limits: super::ShareLimits,
}

/// Mounts, serves until told to stop, unmounts.
pub fn run(args: &MountArgs) -> Result<()> {
    check_db_dir(&args.db)?;

    // Catch Ctrl-C before mounting: from now on it must unmount, not end the process.
    let stop = StopSignals::install()?;

    let location = cerfs_db::StoreLocation::Sqlite(args.db.clone());
    let share = open_share(&location, &args.limits, &[])?;
    let (fs, _maintenance) = (share.fs, share.maintenance);
    let point = MountPoint::prepare(&args.mountpoint)?;
    let mount = match cerfs_winfsp::mount(fs, point.path()) {
        Ok(mount) => mount,
        Err(e) => {
            // The error says what WinFsp refused (not installed, mountpoint taken).
            let _best_effort = point.restore();
            return Err(e.into());
        }
    };
    info!(
        "mounted {} at {}",
        args.db.display(),
        point.path().display()
    );
    // Index what committed cabs hold, in the background (each cab in a bounded child).
    let indexer = match cerfs_index::spawn_indexer(&args.db) {
        Ok(indexer) => indexer,
        Err(e) => {
            mount.unmount();
            let _best_effort = point.restore();
            return Err(anyhow::Error::new(e).context("cannot start the cab indexer"));
        }
    };

    if let Some(signal) = stop.wait() {
        info!("received {signal}, unmounting {}", point.path().display());
    }

    indexer.stop();
    // Stops WinFsp's dispatcher, removes the drive letter or folder, and drops the file
    // system: the store is closed with it.
    mount.unmount();
    point.restore()?;
    info!(
        "unmounted {}, closed {}",
        point.path().display(),
        args.db.display()
    );
    Ok(())
}
