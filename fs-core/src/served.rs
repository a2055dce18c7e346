//! What each client was served from count.txt: the base of a later overwrite that did not
//! read through its own handle (docs/semantics.md, count.txt, pattern b). Bounded in time,
//! in clients and in values per client.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cerfs_db::{Counts, Ino};

use crate::handle;
use crate::sync::lock;

/// How long what a client read from count.txt stays its base for a later overwrite.
const SERVED_TTL: Duration = Duration::from_secs(600);
/// Bound on the per-client count.txt memory: clients (pids × directories) ...
const SERVED_MAX: usize = 100_000;
/// ... and values remembered per client and directory.
const SERVED_PER_CLIENT: usize = 64;

/// What one client (pid) was served from one counts directory's count.txt, most recent
/// last (zero when it looked and found no count.txt).
type Seen = Vec<(Counts, Instant)>;

/// Values served from count.txt per (pid, counts directory).
#[derive(Default)]
pub(crate) struct ServedMemory {
    served: Mutex<HashMap<(u32, Ino), Seen>>,
}

impl ServedMemory {
    /// Remembers that `pid` was served `counts` from the count.txt of directory `dir`.
    pub(crate) fn remember(&self, pid: u32, dir: Ino, counts: Counts) {
        let mut served = lock(&self.served);
        if served.len() >= SERVED_MAX {
            served.retain(|_, seen| {
                seen.retain(|(_, at)| at.elapsed() < SERVED_TTL);
                !seen.is_empty()
            });
        }
        if served.len() >= SERVED_MAX && !served.contains_key(&(pid, dir)) {
            return;
        }
        let seen = served.entry((pid, dir)).or_default();
        if seen.len() >= SERVED_PER_CLIENT {
            seen.remove(0);
        }
        seen.push((counts, Instant::now()));
    }

    /// The base for a write of `wanted` by `pid` that did not read through its own handle:
    /// the most recent values served to that pid of which `wanted` is one more report
    /// (several clients may share a pid: behind Windows' SMB server they all do), else the
    /// most recent values served. Consumed.
    pub(crate) fn take(&self, pid: u32, dir: Ino, wanted: Counts) -> Option<Counts> {
        let mut served = lock(&self.served);
        let seen = served.get_mut(&(pid, dir))?;
        seen.retain(|(_, at)| at.elapsed() < SERVED_TTL);
        let pick = seen
            .iter()
            .rposition(|(c, _)| handle::is_one_report_after(*c, wanted))
            .or_else(|| seen.len().checked_sub(1))?;
        let (counts, _) = seen.remove(pick);
        if seen.is_empty() {
            served.remove(&(pid, dir));
        }
        Some(counts)
    }
}
