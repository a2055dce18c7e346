//! What the process has done, for `/metrics`: refusals of client requests by reason and
//! request latencies per adapter and operation. Plain atomics in one process-wide table
//! (like a Prometheus client's default registry): adapters record, the web console
//! exports; no exporter types here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::FsError;

/// Upper bounds (seconds) of the latency buckets; the last bucket is everything above.
pub const LATENCY_BOUNDS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// Where a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// The FUSE mount (SMB clients through smbd, local processes).
    Fuse,
    /// CER V2 over HTTP.
    Http,
}

impl Adapter {
    /// Its label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Adapter::Fuse => "fuse",
            Adapter::Http => "http",
        }
    }
}

/// The operations latencies are kept for (others count as `other`).
pub const OPS: [&str; 16] = [
    "lookup", "getattr", "setattr", "open", "create", "read", "write", "flush", "release",
    "readdir", "mkdir", "unlink", "rename", "statfs", "report", "other",
];

/// Why a request was refused (an [`FsError`] kind; lookups of missing names are answers,
/// not refusals, and are not counted).
pub const REASONS: [&str; 10] = [
    "invalid_name",
    "name_too_long",
    "invalid_content",
    "not_permitted",
    "access_denied",
    "too_large",
    "exhausted",
    "no_space",
    "busy",
    "store_error",
];

fn reason_of(e: &FsError) -> Option<usize> {
    let name = match e {
        FsError::NotFound
        | FsError::Exists
        | FsError::NotDir
        | FsError::IsDir
        | FsError::NotEmpty
        | FsError::BadHandle => return None,
        FsError::InvalidName(_) => "invalid_name",
        FsError::NameTooLong(_) | FsError::ComponentTooLong(_) => "name_too_long",
        FsError::InvalidContent(_) => "invalid_content",
        FsError::NotPermitted(_) => "not_permitted",
        FsError::AccessDenied(_) => "access_denied",
        FsError::TooLarge(_) => "too_large",
        FsError::Exhausted(_) => "exhausted",
        FsError::NoSpace => "no_space",
        FsError::Busy => "busy",
        FsError::Store(_) => "store_error",
    };
    REASONS.iter().position(|r| *r == name)
}

/// A latency histogram of plain atomics.
#[derive(Debug)]
pub struct Latency {
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A histogram's values at one moment: cumulative counts per bound, the sum, the count.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySnapshot {
    /// `(upper bound in seconds, requests at or below it)`, cumulative, then +Inf.
    pub buckets: Vec<(f64, u64)>,
    /// Seconds spent in all.
    pub sum: f64,
    /// Requests.
    pub count: u64,
}

impl Latency {
    const fn new() -> Latency {
        Latency {
            buckets: [const { AtomicU64::new(0) }; LATENCY_BOUNDS.len() + 1],
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = LATENCY_BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn snapshot(&self) -> LatencySnapshot {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BOUNDS.len() + 1);
        for (i, b) in self.buckets.iter().enumerate() {
            total += b.load(Ordering::Relaxed);
            buckets.push((
                LATENCY_BOUNDS.get(i).copied().unwrap_or(f64::INFINITY),
                total,
            ));
        }
        LatencySnapshot {
            buckets,
            sum: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            count: total,
        }
    }
}

/// The process's table.
#[derive(Debug)]
pub struct Stats {
    refusals: [[AtomicU64; REASONS.len()]; 2],
    latency: [[Latency; OPS.len()]; 2],
}

/// The one table of the process.
pub static STATS: Stats = Stats {
    refusals: [const { [const { AtomicU64::new(0) }; REASONS.len()] }; 2],
    latency: [const { [const { Latency::new() }; OPS.len()] }; 2],
};

fn op_index(op: &str) -> usize {
    OPS.iter().position(|o| *o == op).unwrap_or(OPS.len() - 1)
}

impl Stats {
    /// Counts a refusal of `e` to a client of `adapter` (ordinary answers such as a
    /// missing name are not counted).
    pub fn refused(&self, adapter: Adapter, e: &FsError) {
        if let Some(i) = reason_of(e) {
            self.refusals[adapter as usize][i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records that `op` of `adapter` took `took`.
    pub fn observe(&self, adapter: Adapter, op: &str, took: Duration) {
        self.latency[adapter as usize][op_index(op)].observe(took);
    }

    /// Times `op` until the returned guard drops.
    pub fn time(&'static self, adapter: Adapter, op: &'static str) -> Timed {
        Timed {
            stats: self,
            adapter,
            op,
            start: Instant::now(),
        }
    }

    /// Refusals so far: `(adapter, reason, count)`, every pair.
    pub fn refusals(&self) -> Vec<(Adapter, &'static str, u64)> {
        let mut out = Vec::new();
        for adapter in [Adapter::Fuse, Adapter::Http] {
            for (i, reason) in REASONS.iter().enumerate() {
                let n = self.refusals[adapter as usize][i].load(Ordering::Relaxed);
                out.push((adapter, *reason, n));
            }
        }
        out
    }

    /// Latencies so far: `(adapter, op, histogram)` for the pairs that saw a request.
    pub fn latencies(&self) -> Vec<(Adapter, &'static str, LatencySnapshot)> {
        let mut out = Vec::new();
        for adapter in [Adapter::Fuse, Adapter::Http] {
            for (i, op) in OPS.iter().enumerate() {
                let snap = self.latency[adapter as usize][i].snapshot();
                if snap.count > 0 {
                    out.push((adapter, *op, snap));
                }
            }
        }
        out
    }
}

/// Records its operation's time when dropped (after the reply was sent).
#[derive(Debug)]
pub struct Timed {
    stats: &'static Stats,
    adapter: Adapter,
    op: &'static str,
    start: Instant,
}

impl Drop for Timed {
    fn drop(&mut self) {
        self.stats
            .observe(self.adapter, self.op, self.start.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latency_lands_in_its_bucket_and_the_sum() {
        let l = Latency::new();
        l.observe(Duration::from_micros(300));
        l.observe(Duration::from_secs(10));
        let s = l.snapshot();
        assert_eq!(s.count, 2);
        assert_eq!(s.buckets[1], (0.00025, 0));
        assert_eq!(s.buckets[2], (0.0005, 1));
        assert_eq!(s.buckets.last().copied(), Some((f64::INFINITY, 2)));
        assert!((s.sum - 10.0003).abs() < 1e-6);
    }

    #[test]
    fn answers_are_not_refusals() {
        assert_eq!(reason_of(&FsError::NotFound), None);
        assert_eq!(
            reason_of(&FsError::NoSpace).map(|i| REASONS[i]),
            Some("no_space")
        );
        assert_eq!(op_index("nonsense"), OPS.len() - 1);
    }
}
