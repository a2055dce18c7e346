//! Bounds on what open handles hold in memory for clients, all handles together: unfinished
//! log lines, and the tails of cab uploads not stored yet. Many clients each holding a
//! little cannot make the server hold more than the budget.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::{FsError, Result};

/// The bytes some kind of handle holds, against one limit.
#[derive(Debug)]
pub struct MemoryBudget {
    used: AtomicUsize,
    limit: usize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        MemoryBudget {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// Bytes held now by all handles.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// One handle's share of a [`MemoryBudget`]; returned when the handle goes.
#[derive(Debug)]
pub(crate) struct Held {
    budget: Arc<MemoryBudget>,
    bytes: usize,
}

impl Held {
    pub(crate) fn new(budget: Arc<MemoryBudget>) -> Self {
        Held { budget, bytes: 0 }
    }

    /// Grows this handle's share to `bytes`; false when the budget is spent.
    pub(crate) fn try_grow_to(&mut self, bytes: usize) -> bool {
        if bytes <= self.bytes {
            return true;
        }
        if !self.budget.take(bytes - self.bytes) {
            return false;
        }
        self.bytes = bytes;
        true
    }

    /// Grows this handle's share to `bytes` for log lines, or says the budget is spent.
    pub(crate) fn grow_to(&mut self, bytes: usize) -> Result<()> {
        if self.try_grow_to(bytes) {
            return Ok(());
        }
        tracing::warn!(
            held = self.budget.used(),
            limit = self.budget.limit,
            "refused a log write: open log handles hold their whole budget of unfinished lines"
        );
        Err(FsError::Exhausted(
            "too much unfinished log data is held for other clients; retry later",
        ))
    }

    /// Gives back what this handle no longer holds beyond `bytes`.
    pub(crate) fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.budget.give_back(self.bytes - bytes);
            self.bytes = bytes;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_shared_and_returned() {
        let budget = Arc::new(MemoryBudget::new(100));
        let mut a = Held::new(Arc::clone(&budget));
        let mut b = Held::new(Arc::clone(&budget));
        a.grow_to(60).expect("fits");
        assert!(matches!(b.grow_to(50), Err(FsError::Exhausted(_))));
        b.grow_to(40).expect("fits");
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        b.grow_to(90).expect("fits again");
        b.shrink_to(10);
        assert_eq!(budget.used(), 10);
        assert!(b.try_grow_to(100) && !b.try_grow_to(101));
    }
}
