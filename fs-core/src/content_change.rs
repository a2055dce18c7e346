//! Changes of volatile content, told to whoever caches attributes (the FUSE adapter lets
//! the kernel cache them and takes them back). A synthesized file's size is a function of
//! stored content (a bucket's counters, a scope's settings, a log); every change fs-core
//! commits to such content is announced here after the commit and before the call that
//! made it returns, so that a cached size is never older than the caller's own change.
//! Changes committed by another process (an admin's command) are seen when the adapter
//! asks ([`CerFs::check_outside_changes`], a few times a second), and announced as "anything
//! may have changed" (docs/semantics.md, *Caching*).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use cerfs_db::{BucketId, LogId, SettingsScope};

use crate::{CerFs, Result};

/// What a volatile file's size and content are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Content {
    /// A bucket's counters: its count.txt.
    Counts(BucketId),
    /// policy.txt or a status.txt.
    Settings(SettingsScope),
    /// crash.log or a hits.log.
    Log(LogId),
}

/// A change announced to the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// This process committed a change to this content.
    Content(Content),
    /// Another process committed changes: any content may have changed.
    ByAnotherProcess,
}

/// Called with what changed, on the thread that committed the change (or checked).
pub type ChangeListener = Arc<dyn Fn(Changed) + Send + Sync>;

/// The listener, and a count of the changes announced so far.
#[derive(Default)]
pub(crate) struct ContentChanges {
    generation: AtomicU64,
    listener: RwLock<Option<ChangeListener>>,
    /// The store's outside-change mark when last checked.
    outside_seen: AtomicU64,
}

impl ContentChanges {
    /// Announces a committed change: the generation moves first, so that an attribute
    /// read that began before it can tell (see [`CerFs::content_generation`]).
    pub(crate) fn changed(&self, what: Content) {
        self.announce(Changed::Content(what));
    }

    fn announce(&self, what: Changed) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let listener = self
            .listener
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(listener) = listener {
            listener(what);
        }
    }
}

impl CerFs {
    /// Sets who hears of every committed change to volatile content (one listener; a new
    /// one replaces the old). Attributes of a volatile node name what they depend on in
    /// [`crate::Attr::content`].
    pub fn on_content_change(&self, listener: ChangeListener) {
        *self
            .changes
            .listener
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(listener);
    }

    /// How many changes have been announced. An adapter reads it before asking for
    /// attributes and again once it has noted them for a later take-back: if it moved, a
    /// change may have been committed after the attributes were read and announced before
    /// they were noted, so they must not be cached.
    pub fn content_generation(&self) -> u64 {
        self.changes.generation.load(Ordering::SeqCst)
    }

    /// Whether another process committed a change to the store since the last check;
    /// if so, [`Changed::ByAnotherProcess`] is announced first.
    pub fn check_outside_changes(&self) -> Result<bool> {
        let mark = self.store.outside_changes()?;
        let seen = self.changes.outside_seen.swap(mark, Ordering::SeqCst);
        if mark == seen {
            return Ok(false);
        }
        tracing::debug!("another process changed the store");
        self.changes.announce(Changed::ByAnotherProcess);
        Ok(true)
    }
}
