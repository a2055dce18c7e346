//! Watches the store of a serving command (`mount`, `serve`, `http`): if its database file
//! is replaced or deleted while serving, the command stops as if told to (SIGTERM to
//! itself, so each command's own orderly stop runs) and then exits 1 with the reason.
//! Writes into a replaced file already fail in the store; this turns that into a stop.

use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use cerfs_fs_core::CerFs;

/// How often the database path is looked at.
const EVERY: Duration = Duration::from_secs(1);

/// Why the store watch stopped the command, if it did.
pub(crate) struct StoreWatch {
    failure: Arc<Mutex<Option<String>>>,
}

impl StoreWatch {
    /// Starts watching `fs`'s store; the watch ends by itself once `fs` is dropped.
    pub(crate) fn spawn(fs: &Arc<CerFs>) -> Result<StoreWatch> {
        let failure = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&failure);
        let fs: Weak<CerFs> = Arc::downgrade(fs);
        thread::Builder::new()
            .name("cerfs-store-watch".to_owned())
            .spawn(move || loop {
                thread::sleep(EVERY);
                let Some(fs) = fs.upgrade() else {
                    return;
                };
                let checked = fs.check_store();
                drop(fs);
                if let Err(e) = checked {
                    tracing::error!("{e}: stopping");
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                    if let Err(e) = signal_hook::low_level::raise(signal_hook::consts::SIGTERM) {
                        tracing::error!("cannot stop: raising SIGTERM failed: {e}");
                    }
                    return;
                }
            })
            .context("cannot start the store watcher thread")?;
        Ok(StoreWatch { failure })
    }

    /// After the command stopped: an error if the watch stopped it.
    pub(crate) fn outcome(&self) -> Result<()> {
        match self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(why) => Err(anyhow::anyhow!("stopped serving: {why}")),
            None => Ok(()),
        }
    }
}
