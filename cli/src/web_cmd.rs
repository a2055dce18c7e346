//! `cerfs web`: the web console over a database, beside any running server (it opens the
//! database as the admin commands do: no lock, no recovery), until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use tracing::info;

use crate::output::DbArg;
use crate::stop::StopSignals;

/// Arguments of `cerfs web`.
#[derive(Debug, Args)]
#[command(after_help = "\
Serves the console: an overview (reports per day by kind, top and new buckets and
signatures of the week, the store's size and the indexer's backlog), the bucket list
(filter, sort, pages), each bucket's page (counters, hits per day, the settings its
clients obey) and the signatures; the same data as JSON under /api/v1/ (described by
/api/v1/openapi.json). Everything is served by cerfs itself; no internet needed.

The console has no accounts yet, so it listens on loopback only: reach it from another
machine through an SSH tunnel (ssh -L 8091:127.0.0.1:8091 HOST) or a reverse proxy that
authenticates. `cerfs serve --web ADDR` runs it inside the server instead.

Runs until SIGINT (Ctrl-C) or SIGTERM. Exit status: 0 ok, 1 error, 2 usage error.

Example:
  cerfs web --db /var/lib/cerfs/cer.db --listen 127.0.0.1:8091")]
pub struct WebArgs {
    #[command(flatten)]
    pub db: DbArg,

    /// Address and port to listen on (loopback only).
    #[arg(long, value_name = "ADDR", default_value = cerfs_web::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
}

/// Serves until told to stop.
pub fn run(args: &WebArgs) -> Result<()> {
    let stop = StopSignals::install()?;
    let fs = Arc::new(args.db.admin_fs()?);
    let console = start(fs, &args.db.db, args.listen)?;
    if let Some(signal) = stop.wait() {
        info!("received {signal}, stopping");
    }
    console.shutdown().context("stopping the web console")?;
    Ok(())
}

/// Starts the console over `fs` (the database at `db`) on `listen`.
pub fn start(
    fs: Arc<cerfs_fs_core::CerFs>,
    db: &std::path::Path,
    listen: SocketAddr,
) -> Result<cerfs_web::WebHandle> {
    // The console's read connections need the current schema: the open above migrated it.
    let console = cerfs_web::spawn(
        fs,
        listen,
        cerfs_web::WebConfig {
            db: db.to_path_buf(),
        },
    )
    .context("cannot start the web console")?;
    info!(
        "web console on http://{}/ for {}",
        console.local_addr(),
        db.display()
    );
    Ok(console)
}
