//! Quotas: a largest store and a free-space floor on the database's filesystem. Past
//! either, new cabs are refused (`ENOSPC`: smbd answers STATUS_DISK_FULL, CER2 507) while
//! count.txt, logs, settings and reads keep working: they are what tells the admin what is
//! happening. Checked at most once a second; cabs are taken again as soon as space returns.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cerfs_db::Store;

use crate::sync::lock;
use crate::{FsError, Result};

/// The stored setting that caps the store when `--max-store` is not given.
pub const MAX_STORE_SETTING: &str = "quota.max_store";
/// The stored setting of the free-space floor when `--min-free` is not given.
pub const MIN_FREE_SETTING: &str = "quota.min_free";
/// Largest default free-space floor: 1 % of the filesystem, at most this.
const DEFAULT_MIN_FREE_CAP: u64 = 1 << 30;
/// How long a verdict is reused.
const RECHECK: Duration = Duration::from_secs(1);

/// Limits given on the command line (`None`: the stored setting, else the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpaceLimits {
    /// Largest store, in bytes of data in the database file.
    pub max_store: Option<u64>,
    /// Free bytes to leave on the database's filesystem.
    pub min_free: Option<u64>,
}

/// What the quotas say now (for logs and metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpaceStatus {
    /// New cabs are refused.
    pub cabs_refused: bool,
    /// Why, when they are.
    pub reason: Option<String>,
    /// Cab creations and writes refused for space since the start.
    pub refusals: u64,
}

#[derive(Debug)]
pub(crate) struct SpaceGuard {
    limits: SpaceLimits,
    /// When the last verdict was reached, and the reason cabs are refused (if they are).
    verdict: Mutex<Option<(Instant, Option<String>)>>,
    low: AtomicBool,
    refusals: AtomicU64,
}

impl SpaceGuard {
    pub(crate) fn new(limits: SpaceLimits) -> Self {
        SpaceGuard {
            limits,
            verdict: Mutex::new(None),
            low: AtomicBool::new(false),
            refusals: AtomicU64::new(0),
        }
    }

    /// `Ok` if a cab may be created or grow now.
    pub(crate) fn allow_cab(&self, store: &dyn Store) -> Result<()> {
        let reason = {
            let mut verdict = lock(&self.verdict);
            match &*verdict {
                Some((at, reason)) if at.elapsed() < RECHECK => reason.clone(),
                _ => {
                    let reason = self.evaluate(store)?;
                    self.note_change(reason.as_deref());
                    *verdict = Some((Instant::now(), reason.clone()));
                    reason
                }
            }
        };
        match reason {
            None => Ok(()),
            Some(_) => {
                self.refusals.fetch_add(1, Ordering::Relaxed);
                Err(FsError::NoSpace)
            }
        }
    }

    pub(crate) fn status(&self) -> SpaceStatus {
        let reason = lock(&self.verdict).as_ref().and_then(|(_, r)| r.clone());
        SpaceStatus {
            cabs_refused: reason.is_some(),
            reason,
            refusals: self.refusals.load(Ordering::Relaxed),
        }
    }

    /// Why cabs must be refused now, if they must.
    fn evaluate(&self, store: &dyn Store) -> Result<Option<String>> {
        let usage = store.usage()?;
        let stored = |key: &str| -> Result<Option<u64>> {
            Ok(store.server_setting(key)?.and_then(|v| v.parse().ok()))
        };
        let max_store = match self.limits.max_store {
            Some(max) => Some(max),
            None => stored(MAX_STORE_SETTING)?,
        };
        if let Some(max) = max_store {
            if usage.used_bytes >= max {
                return Ok(Some(format!(
                    "the store holds {} bytes, its maximum is {max} (--max-store or `cerfs quota`)",
                    usage.used_bytes
                )));
            }
        }
        let min_free = match self.limits.min_free {
            Some(min) => Some(min),
            None => match stored(MIN_FREE_SETTING)? {
                Some(min) => Some(min),
                None => usage.fs_total.map(|t| (t / 100).min(DEFAULT_MIN_FREE_CAP)),
            },
        };
        // Free pages inside the file are reused before the filesystem is asked for more.
        if let (Some(min), Some(available)) = (min_free, usage.fs_available) {
            if available.saturating_add(usage.free_bytes) < min {
                return Ok(Some(format!(
                    "{available} bytes are free on the database's filesystem, below the floor \
                     of {min} (--min-free or `cerfs quota`)"
                )));
            }
        }
        Ok(None)
    }

    /// Logs when cabs start or stop being refused.
    fn note_change(&self, reason: Option<&str>) {
        let was_low = self.low.swap(reason.is_some(), Ordering::Relaxed);
        match (was_low, reason) {
            (false, Some(why)) => tracing::warn!(
                "refusing new cabs until space returns ({why}); count.txt, logs and \
                 settings keep working"
            ),
            (true, None) => tracing::info!("space is back: new cabs are accepted again"),
            _ => {}
        }
    }
}
