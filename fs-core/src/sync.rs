//! Locking that survives a panicked thread: a panic while serving one request must not
//! take the share down for every other client.

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, recovering from poisoning.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
