//! The server's background maintenance: every interval it finishes removals (sweep),
//! applies the retention policy, and re-hashes a slice of the stored cabs (the scrub),
//! throttled to a byte rate, so that a flipped byte in a stored cab is found and logged
//! without waiting for `cerfs verify`. Stopped (and joined) by [`Maintenance::stop`] or
//! its drop.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cerfs_db::{CabCheck, Ino, LifecycleStore};

use crate::runs;

/// How the background maintenance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceConfig {
    /// Time between rounds (sweep, retention, a slice of scrub).
    pub interval: Duration,
    /// Bytes of stored cabs re-hashed per second, on average (0: no scrub).
    pub scrub_bytes_per_second: u64,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            interval: Duration::from_secs(600),
            scrub_bytes_per_second: 4 << 20,
        }
    }
}

/// The running background maintenance.
pub struct Maintenance {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Maintenance {
    /// Starts it on `store`.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn spawn(
        store: Arc<dyn LifecycleStore>,
        config: MaintenanceConfig,
    ) -> std::io::Result<Maintenance> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("cerfs-maintenance".to_owned())
            .spawn(move || run(&*store, config, &stopped))?;
        Ok(Maintenance {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops it (the current transaction finishes) and waits for the thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.halt();
    }
}

fn run(store: &dyn LifecycleStore, config: MaintenanceConfig, stopped: &mpsc::Receiver<()>) {
    let keep_going = || matches!(stopped.try_recv(), Err(mpsc::TryRecvError::Empty));
    let mut scrub_after: Ino = 0;
    loop {
        let round = Instant::now();
        // On a store several servers share, one of them does the work.
        let leads = store.leads_background().unwrap_or_else(|e| {
            tracing::warn!("maintenance: cannot tell whether this server runs it: {e}");
            false
        });
        if leads {
            scrub_after = one_round(store, &config, scrub_after, &keep_going);
        }
        let rest = config.interval.saturating_sub(round.elapsed());
        match stopped.recv_timeout(rest) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Sweep, retention and a slice of scrub; returns where the scrub goes on next time.
fn one_round(
    store: &dyn LifecycleStore,
    config: &MaintenanceConfig,
    mut scrub_after: Ino,
    keep_going: &dyn Fn() -> bool,
) -> Ino {
    if let Err(e) = runs::sweep_all(store, &mut |_| {}, keep_going) {
        tracing::warn!("maintenance: finishing removed cabs failed: {e}");
    }
    if let Err(e) = runs::prune(store, false, &mut |_| {}, keep_going) {
        tracing::warn!("maintenance: retention failed: {e}");
    }
    let budget = config
        .scrub_bytes_per_second
        .saturating_mul(config.interval.as_secs().max(1));
    match scrub_slice(store, scrub_after, budget, keep_going) {
        Ok(next) => scrub_after = next,
        Err(e) => tracing::warn!("maintenance: scrub failed: {e}"),
    }
    scrub_after
}

/// Re-hashes stored cabs after inode `after` until about `budget` bytes were read; returns
/// where to go on next time (0: from the start again).
fn scrub_slice(
    store: &dyn LifecycleStore,
    mut after: Ino,
    budget: u64,
    keep_going: &dyn Fn() -> bool,
) -> crate::Result<Ino> {
    if budget == 0 {
        return Ok(after);
    }
    let mut read = 0u64;
    while read < budget && keep_going() {
        let batch = store.cabs_after(after, 16)?;
        if batch.is_empty() {
            return Ok(0);
        }
        for cab in batch {
            if let CabCheck::Corrupt(why) = store.check_cab(cab.ino)? {
                tracing::error!(
                    subpath = %cab.subpath,
                    name = %cab.name,
                    "scrub: stored cab is corrupt: {why} (see the cabs view, column corrupt)"
                );
            }
            read += cab.size;
            after = cab.ino;
            if read >= budget || !keep_going() {
                break;
            }
        }
    }
    Ok(after)
}
