//! How long the kernel may keep attributes, and taking volatile files' attributes back
//! when fs-core announces a change to what they are made of.
//!
//! smbd stats an open file around nearly every request it serves: without a cache, an SMB
//! report cycle sent ~75 getattrs of count.txt, the logs and policy.txt to cerfs. Their
//! attributes are cached for [`VOLATILE_TTL`] and invalidated (`FUSE_NOTIFY_INVAL_INODE`)
//! on every change this process commits, before the call that committed it returns. Three
//! rules keep a cached size from being older than a change the caller could know of:
//! - a change announced while attributes were being read makes them uncacheable (fs-core's
//!   generation moved; the kernel's own attr_version guards the reply in flight);
//! - attributes seen through a handle (its unflushed size) are that handle's, never cached;
//! - until the notifier exists (the session is starting), nothing volatile is cached.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cerfs_fs_core::{Attr, CerFs, Changed, Content};
use fuser::{INodeNo, Notifier};

/// How long the kernel may cache names, and attributes of non-volatile nodes.
pub(crate) const TTL: Duration = Duration::from_secs(1);
/// How long the kernel may cache a volatile file's attributes unless fs-core announces a
/// change first: the bound on how stale a size can be after another process (an admin's
/// `cerfs status set`) changed the file.
pub(crate) const VOLATILE_TTL: Duration = Duration::from_secs(1);
/// How often the store is asked whether another process changed it: the bound on how
/// stale a cached size can be after an admin's command.
pub(crate) const OUTSIDE_CHECK: Duration = Duration::from_millis(50);
/// Noted attributes beyond which expired notes are swept.
const SWEEP_AT: usize = 4096;

/// The volatile attributes handed to the kernel that may still be cached, by content.
#[derive(Default)]
pub(crate) struct KernelCache {
    notifier: OnceLock<Notifier>,
    noted: Mutex<HashMap<Content, (u64, Instant)>>,
    /// Asks the store about other processes' changes; stopped when the cache is dropped.
    watcher: Mutex<Option<OutsideWatcher>>,
}

impl KernelCache {
    /// Enables caching of volatile attributes of `fs`: fs-core's announcements take them
    /// back from now on, and a thread checks every [`OUTSIDE_CHECK`] for changes made by
    /// other processes.
    pub(crate) fn start(self: &Arc<Self>, fs: &Arc<CerFs>, notifier: Notifier) -> io::Result<()> {
        let cache = Arc::downgrade(self);
        fs.on_content_change(Arc::new(move |change| {
            if let Some(cache) = cache.upgrade() {
                cache.changed(change);
            }
        }));
        let watcher = OutsideWatcher::start(Arc::downgrade(fs))?;
        *self.watcher.lock().unwrap_or_else(PoisonError::into_inner) = Some(watcher);
        let _ = self.notifier.set(notifier);
        Ok(())
    }

    /// The attribute TTL for `attr`, read after fs-core's generation was `since`
    /// (`generation` reads it now); `through_handle`: the answer was a handle's view.
    pub(crate) fn ttl(
        &self,
        attr: &Attr,
        through_handle: bool,
        since: u64,
        generation: impl Fn() -> u64,
    ) -> Duration {
        if !attr.volatile {
            return TTL;
        }
        let Some(content) = attr.content else {
            return Duration::ZERO;
        };
        if through_handle || self.notifier.get().is_none() {
            return Duration::ZERO;
        }
        let expires = Instant::now() + VOLATILE_TTL;
        {
            let mut noted = self.noted.lock().unwrap_or_else(PoisonError::into_inner);
            if noted.len() >= SWEEP_AT {
                let now = Instant::now();
                noted.retain(|_, (_, until)| *until > now);
            }
            noted.insert(content, (attr.ino, expires));
        }
        // Noted first, then checked: a change announced after this check finds the note.
        if generation() == since {
            VOLATILE_TTL
        } else {
            Duration::ZERO
        }
    }

    /// fs-core announced a change: the kernel forgets the attributes it may hold of the
    /// file made of that content (of every volatile file, for another process's change).
    pub(crate) fn changed(&self, change: Changed) {
        let taken: Vec<(u64, Instant)> = {
            let mut noted = self.noted.lock().unwrap_or_else(PoisonError::into_inner);
            match change {
                Changed::Content(content) => noted.remove(&content).into_iter().collect(),
                Changed::ByAnotherProcess => noted.drain().map(|(_, v)| v).collect(),
            }
        };
        let Some(notifier) = self.notifier.get() else {
            return;
        };
        let now = Instant::now();
        for (ino, _) in taken.into_iter().filter(|(_, until)| *until > now) {
            // A negative offset invalidates the attributes only: no page is waited for.
            if let Err(e) = notifier.inval_inode(INodeNo(ino), -1, 0) {
                tracing::warn!(ino, ?change, "the kernel refused an invalidation: {e}");
            }
        }
    }
}

/// The thread that asks the store every [`OUTSIDE_CHECK`] whether another process changed
/// it. Dropping it stops and joins the thread.
struct OutsideWatcher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl OutsideWatcher {
    fn start(fs: Weak<CerFs>) -> io::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("cerfs-outside-changes".into())
            .spawn(move || {
                let (lock, cvar) = &*stopped;
                let mut stop = lock.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    stop = cvar
                        .wait_timeout_while(stop, OUTSIDE_CHECK, |stop| !*stop)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    let Some(fs) = fs.upgrade().filter(|_| !*stop) else {
                        return;
                    };
                    if let Err(e) = fs.check_outside_changes() {
                        tracing::warn!(
                            "cannot tell whether another process changed the store: {e}"
                        );
                    }
                }
            })?;
        Ok(OutsideWatcher {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for OutsideWatcher {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.stop;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cvar.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use cerfs_fs_core::FileKind;

    use super::*;

    fn attr(volatile: bool, content: Option<Content>) -> Attr {
        Attr {
            ino: 9,
            size: 30,
            kind: FileKind::RegularFile,
            perm: 0o666,
            nlink: 1,
            uid: 0,
            gid: 0,
            atime: SystemTime::UNIX_EPOCH,
            mtime: SystemTime::UNIX_EPOCH,
            ctime: SystemTime::UNIX_EPOCH,
            crtime: SystemTime::UNIX_EPOCH,
            volatile,
            content,
        }
    }

    #[test]
    fn stable_nodes_are_cached_and_volatile_ones_not_without_a_notifier() {
        let cache = KernelCache::default();
        assert_eq!(cache.ttl(&attr(false, None), false, 0, || 0), TTL);
        let count = attr(true, Some(Content::Counts(1)));
        assert_eq!(cache.ttl(&count, false, 0, || 0), Duration::ZERO);
        // An upload's size moves with every write: never cached.
        assert_eq!(cache.ttl(&attr(true, None), false, 0, || 0), Duration::ZERO);
        assert!(cache.noted.lock().expect("not poisoned").is_empty());
    }
}
