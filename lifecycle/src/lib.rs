//! Keeps a cerfs store healthy for years, through the store's [`LifecycleStore`] methods
//! (each a small transaction, so clients keep being served):
//!
//! - [`prune`]: applies the retention policy (cabs' bytes go, their rows stay);
//! - [`sweep_all`]: deletes the bytes of removed cabs in small steps;
//! - [`verify`]: re-hashes every stored cab against its sha256;
//! - [`Maintenance`]: the server's background thread doing all three slowly.
//!
//! The CLI (`cerfs prune`, `cerfs verify`, ...) drives the same functions with a progress
//! callback for its progress bars.

mod maintenance;
mod runs;

pub use maintenance::{Maintenance, MaintenanceConfig};
pub use runs::{prune, sweep_all, verify, PruneSummary, VerifySummary};

use cerfs_db::StoreError;

/// What can stop lifecycle work.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, LifecycleError>;

pub use cerfs_db::LifecycleStore;
