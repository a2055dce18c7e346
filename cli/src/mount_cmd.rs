//! `cerfs mount`: open the store, mount it, serve until told to stop, then unmount cleanly
//! and close the store. FUSE on Unix (`mount_cmd/unix.rs`); WinFsp on Windows
//! (`mount_cmd/windows.rs`, unverified until `.github/workflows/windows.yml` has run on a
//! Windows runner). What both do the same way is here.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use cerfs_db::{PgStore, SqliteStore};
use cerfs_fs_core::CerFs;

use cerfs_db::StoreLocation;

#[cfg(unix)]
pub(crate) mod unix;
#[cfg(windows)]
mod windows;
#[cfg(any(windows, test))]
mod winfsp_point;

#[cfg(unix)]
pub use unix::{run, MountArgs};
#[cfg(windows)]
pub use windows::{run, MountArgs};

/// The database's directory must exist (the database itself is created when missing).
pub(crate) fn check_db_dir(db: &Path) -> Result<()> {
    let dir = match db.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "the directory of database {} does not exist: create it (mkdir -p {})",
            db.display(),
            dir.display()
        );
    }
    Ok(())
}

/// The limits of a served share, the same over SMB, the mount and HTTP.
#[derive(Debug, Clone, clap::Args)]
pub struct ShareLimits {
    /// Largest cab accepted, over SMB and HTTP alike (bytes; K, M, G, T suffixes are powers
    /// of 1024): a copy that would grow past it fails (over SMB with STATUS_DISK_FULL,
    /// over HTTP with 413) and nothing of it is kept.
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = crate::http_cmd::parse_size)]
    pub max_cab_size: u64,

    /// Refuse new cabs once the database holds SIZE of data [default: `cerfs quota`, else
    /// no maximum]. count.txt, logs and settings keep working.
    #[arg(long, value_name = "SIZE", value_parser = crate::http_cmd::parse_size)]
    pub max_store: Option<u64>,

    /// Refuse new cabs while less than SIZE is free on the database's filesystem
    /// [default: `cerfs quota`, else 1% of the filesystem, at most 1G].
    #[arg(long, value_name = "SIZE", value_parser = crate::http_cmd::parse_size)]
    pub min_free: Option<u64>,

    /// Bytes per second of stored cabs the background scrub re-hashes (0: no scrub).
    #[arg(long, value_name = "SIZE", default_value = "4M", value_parser = parse_rate)]
    pub scrub_rate: u64,

    /// Seconds between rounds of the background maintenance (retention, finishing
    /// removals, a slice of the scrub).
    #[arg(long, value_name = "SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub maintenance_interval: u64,

    /// Seconds between looks for new buckets, signatures, spikes and a full store, and
    /// deliveries of due alerts (`cerfs alerts`).
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub alert_interval: u64,
}

/// Starts the background cab indexer of `db`, walking and signing minidumps with the
/// symbol sources of `symbols` (completed from the database before every batch).
pub(crate) fn spawn_indexer(
    db: &StoreLocation,
    symbols: &crate::symbols_cmd::SymbolArgs,
) -> Result<cerfs_index::IndexerHandle> {
    let worker = cerfs_index::Worker::current_exe().context("cannot find the cerfs executable")?;
    let config = cerfs_index::IndexerConfig {
        analysis: cerfs_index::Analysis::On(symbols.settings()?),
        ..cerfs_index::IndexerConfig::new(worker)
    };
    cerfs_index::spawn_indexer_with(db, config).context("cannot start the cab indexer")
}

/// A size that may be 0 (no scrub).
fn parse_rate(text: &str) -> std::result::Result<u64, String> {
    if text.trim() == "0" {
        return Ok(0);
    }
    crate::http_cmd::parse_size(text)
}

/// A served share: the one `CerFs` of the process, and the background maintenance over
/// the same store (retention, sweep, scrub), stopped when dropped.
pub(crate) struct Share {
    pub fs: Arc<CerFs>,
    pub maintenance: cerfs_lifecycle::Maintenance,
    /// Stopped when dropped (after its current round).
    pub alerts: Option<cerfs_alerts::AlertWorker>,
}

/// How often a head on PostgreSQL looks for heads that are gone, and removes the uploads
/// they left unfinished.
const HEAD_RECOVERY_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// What the alert worker reads and writes.
type AlertBackend = Arc<dyn cerfs_alerts::AlertBackend>;

/// The store at `db`: SQLite (created if missing) or PostgreSQL (a head of it, with its
/// recovery of gone heads' uploads running until the store is dropped).
fn open_store(db: &StoreLocation) -> Result<(Arc<dyn cerfs_db::Store>, Option<AlertBackend>)> {
    match db {
        StoreLocation::Sqlite(path) => {
            let store = Arc::new(
                SqliteStore::open(path)
                    .with_context(|| format!("cannot open database {}", path.display()))?,
            );
            Ok((store.clone(), Some(store)))
        }
        StoreLocation::Postgres(url) => {
            let store = Arc::new(
                PgStore::open(url).with_context(|| format!("cannot open the store at {db}"))?,
            );
            // Its own recovery logs each upload it removes (and so did the open's).
            store
                .keep_recovering(HEAD_RECOVERY_EVERY)
                .context("cannot start the head recovery thread")?;
            tracing::info!(head = store.head_id(), "serving as a head of {db}");
            Ok((store.clone(), Some(store)))
        }
    }
}

/// Opens the database (created if missing) and the share's logic over it: the one `CerFs`
/// of a server process, which its mount (and its HTTP server, if any) serve.
/// Besides root, the users in `admin_uids` may change policy.txt and status.txt.
pub(crate) fn open_share(
    db: &StoreLocation,
    limits: &ShareLimits,
    admin_uids: &[u32],
) -> Result<Share> {
    let (store, alert_backend) = open_store(db)?;
    let maintenance = cerfs_lifecycle::Maintenance::spawn(
        Arc::clone(&store) as Arc<dyn cerfs_db::LifecycleStore>,
        cerfs_lifecycle::MaintenanceConfig {
            interval: std::time::Duration::from_secs(limits.maintenance_interval),
            scrub_bytes_per_second: limits.scrub_rate,
        },
    )
    .context("cannot start the background maintenance")?;
    let alerts = alert_backend
        .map(|backend| {
            cerfs_alerts::AlertWorker::spawn(
                backend,
                std::time::Duration::from_secs(limits.alert_interval),
                limits.max_store,
            )
            .context("cannot start the alert worker")
        })
        .transpose()?;
    let fs = CerFs::new(store)
        .with_max_cab_size(limits.max_cab_size)
        .with_space_limits(cerfs_fs_core::SpaceLimits {
            max_store: limits.max_store,
            min_free: limits.min_free,
        })
        .with_admin_uids(admin_uids.iter().copied());
    // The kernel names the calling thread; fs-core keys per-client state on processes.
    #[cfg(unix)]
    let fs = fs.with_process_of(cerfs_fuse::process_of);
    Ok(Share {
        fs: Arc::new(fs),
        maintenance,
        alerts,
    })
}
