//! What keeps one client from taking the server: connections per address, the pace a
//! request body must keep, and how many new buckets one address may create per minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::lock;

/// Connections open per client address.
#[derive(Debug, Default)]
pub(crate) struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted against its address; uncounted when dropped.
#[derive(Debug)]
pub(crate) struct Counted {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    /// Counts a connection from `ip`, unless that address already has `cap` open.
    pub(crate) fn admit(table: &Arc<PerAddress>, ip: IpAddr, cap: usize) -> Option<Counted> {
        let mut open = lock(&table.open);
        let n = open.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Counted {
            table: Arc::clone(table),
            ip,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = lock(&self.table.open);
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The pace a request body must keep: no pause longer than `stall`, and after `grace`,
/// at least `min_rate` bytes per second on average. A client sending a byte now and then
/// cannot hold a connection (and an upload slot) for hours.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyPace {
    pub(crate) stall: Duration,
    pub(crate) grace: Duration,
    pub(crate) min_rate: u64,
}

/// The clock of one body against its [`BodyPace`].
#[derive(Debug)]
pub(crate) struct BodyClock {
    pace: BodyPace,
    started: tokio::time::Instant,
}

impl BodyClock {
    pub(crate) fn start(pace: BodyPace) -> Self {
        BodyClock {
            pace,
            started: tokio::time::Instant::now(),
        }
    }

    /// When the next piece of the body must have arrived, having received `received`
    /// bytes so far: within `stall`, and before the average pace falls behind.
    pub(crate) fn deadline(&self, received: u64) -> tokio::time::Instant {
        let stall = tokio::time::Instant::now() + self.pace.stall;
        if self.pace.min_rate == 0 {
            return stall;
        }
        let earned = Duration::from_secs_f64(received as f64 / self.pace.min_rate as f64);
        stall.min(self.started + self.pace.grace + earned)
    }

    /// Why a body that missed its deadline is refused.
    pub(crate) fn reason(&self, received: u64) -> String {
        format!(
            "the body came too slowly ({received} bytes in {:.0} s; at most {} s without data, \
             at least {} bytes/s after {} s): request dropped",
            self.started.elapsed().as_secs_f64(),
            self.pace.stall.as_secs(),
            self.pace.min_rate,
            self.pace.grace.as_secs()
        )
    }
}

/// New buckets created per client address in the current minute.
#[derive(Debug)]
pub(crate) struct NewBuckets {
    per_minute: u32,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Addresses remembered at most (older windows are dropped first).
const REMEMBERED: usize = 10_000;

impl NewBuckets {
    pub(crate) fn new(per_minute: u32) -> Self {
        NewBuckets {
            per_minute,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one new bucket from `ip`'s allowance of this minute; false when it is spent.
    pub(crate) fn take(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        let mut seen = lock(&self.seen);
        if seen.len() >= REMEMBERED {
            seen.retain(|_, (start, _)| now.duration_since(*start) < minute);
        }
        let entry = seen.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= minute {
            *entry = (now, 0);
        }
        if entry.1 >= self.per_minute {
            return false;
        }
        entry.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_per_address() {
        let table = Arc::new(PerAddress::default());
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        let b: IpAddr = "127.0.0.2".parse().expect("ip");
        let first = PerAddress::admit(&table, a, 2).expect("first");
        let _second = PerAddress::admit(&table, a, 2).expect("second");
        assert!(PerAddress::admit(&table, a, 2).is_none());
        assert!(PerAddress::admit(&table, b, 2).is_some());
        drop(first);
        assert!(PerAddress::admit(&table, a, 2).is_some());
    }

    #[test]
    fn new_buckets_have_an_allowance_per_address() {
        let limit = NewBuckets::new(3);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        assert!((0..3).all(|_| limit.take(a)));
        assert!(!limit.take(a));
        assert!(limit.take("192.0.2.2".parse().expect("ip")));
    }

    #[tokio::test]
    async fn a_slow_body_falls_behind_its_pace() {
        let clock = BodyClock::start(BodyPace {
            stall: Duration::from_secs(60),
            grace: Duration::from_secs(10),
            min_rate: 1000,
        });
        let now = tokio::time::Instant::now();
        // Nothing received: the grace period is all there is.
        let first = clock.deadline(0);
        assert!(first <= now + Duration::from_secs(11) && first >= now + Duration::from_secs(9));
        // 30 KB earn 30 s more.
        let later = clock.deadline(30_000);
        assert!(later >= now + Duration::from_secs(39));
    }
}
