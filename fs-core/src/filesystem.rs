//! The filesystem core: [`CerFs`], its open handles, and the handle-based operations
//! (open, create, read, write, flush, release, fsync) whose semantics depend on the kind of
//! file (docs/semantics.md). Attributes are in `attributes.rs`, folders and names in
//! `directory.rs`, the value types in `types.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cerfs_db::{
    CabState, Counts, Ino, LogId, NewNode, Node, NodeRole, SettingsScope, Store, ROOT_INO,
};

use crate::content_change::ContentChanges;
use crate::handle::{
    CabWriter, CountHandle, Handle, HandleKind, LogHandle, SettingsHandle, TextBuf, MAX_COUNT_FILE,
    MAX_SETTINGS_FILE,
};
use crate::log_handle::DEFAULT_LOG_BUDGET;
use crate::memory_budget::{Held, MemoryBudget};
use crate::served::ServedMemory;
use crate::space::{SpaceGuard, SpaceLimits, SpaceStatus};
use crate::sync::lock;
use crate::{
    count_file, settings_file, share_path, Attr, Caller, Content, FileKind, FsError, OpenFlags,
    Opened, ProcessOf, Result,
};

/// An open listing: the folder, and its entries once read (taken again at a rewind).
pub(crate) type OpenListing = (Ino, Option<Arc<Vec<Node>>>);

/// The filesystem core. Cheap to share across adapter threads (`&self` everywhere).
pub struct CerFs {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) handles: Mutex<HashMap<u64, Arc<Mutex<Handle>>>>,
    /// Open listings: the nodes as they were at opendir.
    /// Open listings by handle.
    pub(crate) dirs: Mutex<HashMap<u64, OpenListing>>,
    pub(crate) next_fh: AtomicU64,
    /// Cabs being uploaded, with their writer's handle: nobody else may write them.
    pub(crate) cab_writers: Mutex<HashMap<Ino, u64>>,
    /// What each client (pid) was served from each counts directory's count.txt: the base
    /// of a later overwrite (pattern b).
    pub(crate) served: ServedMemory,
    /// Users who may change policy.txt and status.txt (Samba maps the admin account to root).
    pub(crate) admin_uids: Vec<u32>,
    /// The process behind a caller's id (the identity by default).
    pub(crate) process_of: ProcessOf,
    /// The largest cab accepted, over SMB and HTTP alike.
    pub(crate) max_cab_size: u64,
    /// What all open log handles together may hold.
    pub(crate) log_budget: Arc<MemoryBudget>,
    /// What all cab uploads together may hold of bytes not stored yet.
    pub(crate) cab_tail_budget: Arc<MemoryBudget>,
    /// Folders known to be (or not to be) in a CER tree.
    pub(crate) cer_dirs: Mutex<HashMap<Ino, bool>>,
    /// The quotas new cabs must fit.
    pub(crate) space: SpaceGuard,
    /// Who hears of committed changes to volatile content.
    pub(crate) changes: ContentChanges,
}

impl CerFs {
    /// A filesystem over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        CerFs {
            store,
            handles: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            cab_writers: Mutex::new(HashMap::new()),
            served: ServedMemory::default(),
            max_cab_size: crate::DEFAULT_MAX_CAB_SIZE,
            log_budget: Arc::new(MemoryBudget::new(DEFAULT_LOG_BUDGET)),
            cab_tail_budget: Arc::new(MemoryBudget::new(crate::DEFAULT_CAB_TAIL_BUDGET)),
            cer_dirs: Mutex::new(HashMap::new()),
            admin_uids: vec![0],
            process_of: |id| id,
            space: SpaceGuard::new(SpaceLimits::default()),
            changes: ContentChanges::default(),
        }
    }

    /// Quotas for new cabs: a largest store and a free-space floor (each, when not given,
    /// from the stored setting, else the default: no maximum, and 1 % of the filesystem
    /// up to 1 GiB free).
    pub fn with_space_limits(mut self, limits: SpaceLimits) -> Self {
        self.space = SpaceGuard::new(limits);
        self
    }

    /// Whether new cabs are refused for space now, and how many were.
    pub fn space_status(&self) -> SpaceStatus {
        self.space.status()
    }

    /// Callers are identified by a thread (or other) id that `process_of` maps to the
    /// process: what count.txt semantics and handle ownership go by.
    pub fn with_process_of(mut self, process_of: ProcessOf) -> Self {
        self.process_of = process_of;
        self
    }

    /// The largest cab the share accepts over SMB and HTTP (default
    /// [`crate::DEFAULT_MAX_CAB_SIZE`]): a write past it fails the upload.
    pub fn with_max_cab_size(mut self, bytes: u64) -> Self {
        self.max_cab_size = bytes;
        self
    }

    /// The largest cab the share accepts.
    pub fn max_cab_size(&self) -> u64 {
        self.max_cab_size
    }

    /// What all open log handles together may hold of unfinished lines (default
    /// [`crate::DEFAULT_LOG_BUDGET`]).
    pub fn with_log_budget(mut self, bytes: usize) -> Self {
        self.log_budget = Arc::new(MemoryBudget::new(bytes));
        self
    }

    /// What all cab uploads together may hold of bytes received and not stored yet (default
    /// [`crate::DEFAULT_CAB_TAIL_BUDGET`]): past it, an upload's writes are stored as they
    /// come instead of in whole storage units.
    pub fn with_cab_tail_budget(mut self, bytes: usize) -> Self {
        self.cab_tail_budget = Arc::new(MemoryBudget::new(bytes));
        self
    }

    /// Bytes the cab uploads hold now, not stored yet.
    pub fn cab_bytes_held(&self) -> usize {
        self.cab_tail_budget.used()
    }

    /// Bytes the open log handles hold now.
    pub fn log_bytes_held(&self) -> usize {
        self.log_budget.used()
    }

    /// Adds users who may change policy.txt and status.txt (root always may).
    pub fn with_admin_uids(mut self, uids: impl IntoIterator<Item = u32>) -> Self {
        self.admin_uids.extend(uids);
        self
    }

    pub(crate) fn check_admin(&self, caller: &Caller, role: NodeRole) -> Result<()> {
        let settings = matches!(role, NodeRole::Status | NodeRole::Policy);
        if settings && !self.admin_uids.contains(&caller.uid) {
            tracing::warn!(
                uid = caller.uid,
                pid = caller.pid,
                "refused a settings change by a non-admin"
            );
            return Err(FsError::AccessDenied(
                "policy.txt and status.txt are changed by admins only",
            ));
        }
        Ok(())
    }

    /// Finds `name` in directory `parent`. `caller.pid` is remembered for count.txt
    /// (a miss counts as "this client saw no count.txt").
    pub fn lookup(&self, caller: &Caller, parent: Ino, name: &[u8]) -> Result<Attr> {
        if name.len() > crate::directory::MAX_NAME_BYTES {
            return Err(FsError::ComponentTooLong(name.len()));
        }
        let name = std::str::from_utf8(name).map_err(|_| FsError::NotFound)?;
        match self.store.lookup(parent, name)? {
            Some(node) if node.cab_state != Some(CabState::Removed) => self.attr_of(&node),
            Some(_) => Err(FsError::NotFound),
            None => {
                if name.eq_ignore_ascii_case("count.txt") {
                    let pid = (self.process_of)(caller.pid);
                    self.served.remember(pid, parent, Counts::default());
                }
                Err(FsError::NotFound)
            }
        }
    }

    /// Resolves a `/`- or `\`-separated path from the root (for path-based adapters).
    pub fn resolve(&self, caller: &Caller, path: &str) -> Result<Attr> {
        let mut attr = self.getattr(ROOT_INO, None)?;
        for part in path.split(['/', '\\']).filter(|p| !p.is_empty()) {
            if attr.kind != FileKind::Directory {
                return Err(FsError::NotDir);
            }
            attr = self.lookup(caller, attr.ino, part.as_bytes())?;
        }
        Ok(attr)
    }

    /// Creates and opens a file; `exclusive` fails with `Exists` when it is there already,
    /// otherwise an existing file is opened (with `flags`).
    pub fn create(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &[u8],
        mode: u32,
        flags: OpenFlags,
        exclusive: bool,
    ) -> Result<(Attr, Opened)> {
        let (area, _path, name) = self.check_new_name(parent, name)?;
        if let Some(existing) = self.store.lookup(parent, name)? {
            if exclusive {
                return Err(FsError::Exists);
            }
            let opened = self.open_node(caller, &existing, flags, false)?;
            return Ok((self.getattr(existing.ino, Some(opened.fh))?, opened));
        }
        let role = area.file_role(name);
        self.check_admin(caller, role)?;
        if role == NodeRole::Cab {
            self.space.allow_cab(&*self.store)?;
        }
        let bucket = area.sub().map(|sub| {
            let parts: Vec<&str> = sub.iter().map(String::as_str).collect();
            share_path::bucket_key(&parts)
        });
        let needs_bucket = matches!(
            role,
            NodeRole::Count | NodeRole::Status | NodeRole::HitsLog | NodeRole::Cab
        );
        let node = self.store.create_node(&NewNode {
            parent,
            name,
            role,
            mode: mode & 0o7777,
            uid: caller.uid,
            gid: caller.gid,
            bucket: if needs_bucket { bucket.as_ref() } else { None },
        })?;
        let opened = self.open_node(caller, &node, flags, true)?;
        Ok((self.getattr(node.ino, Some(opened.fh))?, opened))
    }

    /// Opens an existing file.
    pub fn open(&self, caller: &Caller, ino: Ino, flags: OpenFlags) -> Result<Opened> {
        let node = self.live_node(ino)?;
        self.open_node(caller, &node, flags, false)
    }

    fn open_node(
        &self,
        caller: &Caller,
        node: &Node,
        flags: OpenFlags,
        created: bool,
    ) -> Result<Opened> {
        let writable = flags.write || flags.append;
        let kind = match node.role {
            NodeRole::Dir => return Err(FsError::IsDir),
            NodeRole::File => {
                if flags.truncate && writable {
                    self.store.truncate(node.ino, 0)?;
                }
                HandleKind::Plain
            }
            NodeRole::Cab => self.open_cab(node, writable || flags.truncate, created)?,
            NodeRole::Count => {
                let bucket = node.bucket.ok_or(FsError::NotFound)?;
                let snapshot = self.store.counts(bucket)?;
                // A file this handle just created starts empty, like any new file.
                let text = if flags.truncate || created {
                    Vec::new()
                } else {
                    count_file::render(snapshot).into_bytes()
                };
                let mut buf = TextBuf::new(text, MAX_COUNT_FILE, "count.txt");
                buf.dirty = flags.truncate && writable;
                HandleKind::Count(CountHandle {
                    bucket,
                    dir: node.parent,
                    snapshot,
                    read_done: false,
                    created,
                    buf,
                })
            }
            NodeRole::Status | NodeRole::Policy => {
                if writable || flags.truncate {
                    self.check_admin(caller, node.role)?;
                }
                let scope = match (node.role, node.bucket) {
                    (NodeRole::Policy, _) => SettingsScope::Policy,
                    (_, Some(b)) => SettingsScope::Status(b),
                    _ => return Err(FsError::NotFound),
                };
                let text = if flags.truncate {
                    Vec::new()
                } else {
                    settings_file::render(&self.store.settings(scope)?)
                };
                let mut buf = TextBuf::new(text, MAX_SETTINGS_FILE, "a settings file");
                buf.dirty = flags.truncate && writable;
                HandleKind::Settings(SettingsHandle { scope, buf })
            }
            NodeRole::CrashLog | NodeRole::HitsLog => {
                let log = match (node.role, node.bucket) {
                    (NodeRole::CrashLog, _) => LogId::Crash,
                    (_, Some(b)) => LogId::Hits(b),
                    _ => return Err(FsError::NotFound),
                };
                let len = self.store.log_len(log)?;
                HandleKind::Log(LogHandle {
                    log,
                    base: if flags.truncate { 0 } else { len },
                    append: flags.append,
                    own: Vec::new(),
                    committed: 0,
                    wrote: false,
                    held: Held::new(Arc::clone(&self.log_budget)),
                })
            }
        };
        // Only immutable or ordinary content may sit in the page cache.
        let direct_io = match kind {
            HandleKind::Plain => {
                node.role == NodeRole::Cab && node.cab_state != Some(CabState::Complete)
            }
            _ => true,
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        if matches!(kind, HandleKind::CabWriter(_)) {
            lock(&self.cab_writers).insert(node.ino, fh);
        }
        let handle = Handle {
            ino: node.ino,
            pid: (self.process_of)(caller.pid),
            writable,
            kind,
            sync_on_close: false,
        };
        lock(&self.handles).insert(fh, Arc::new(Mutex::new(handle)));
        Ok(Opened { fh, direct_io })
    }

    fn open_cab(&self, node: &Node, write: bool, created: bool) -> Result<HandleKind> {
        if created {
            return Ok(HandleKind::CabWriter(CabWriter::new(
                self.max_cab_size,
                Held::new(Arc::clone(&self.cab_tail_budget)),
            )));
        }
        match (node.cab_state, write) {
            (_, false) => Ok(HandleKind::Plain),
            (Some(CabState::Writing), true) => Err(FsError::Busy),
            (_, true) => {
                tracing::warn!(ino = node.ino, name = %node.name, "refused to open a committed cab for writing");
                Err(FsError::NotPermitted("a committed cab is read-only"))
            }
        }
    }

    /// Reads through a handle (short at end of file).
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let h = self.handle(fh)?;
        let mut h = lock(&h);
        let (ino, pid) = (h.ino, h.pid);
        match &mut h.kind {
            HandleKind::Plain => Ok(self.store.read_at(ino, offset, size)?),
            HandleKind::CabWriter(w) => {
                w.flush_tail(&*self.store, ino)?;
                Ok(self.store.read_at(ino, offset, size)?)
            }
            HandleKind::Count(c) => {
                if !c.read_done {
                    c.read_done = true;
                    self.served.remember(pid, c.dir, c.snapshot);
                }
                Ok(c.buf.read(offset, size))
            }
            HandleKind::Settings(s) => Ok(s.buf.read(offset, size)),
            HandleKind::Log(l) => l.read(&*self.store, offset, size),
        }
    }

    /// Writes through a handle; returns the number of bytes taken.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let h = self.handle(fh)?;
        let mut h = lock(&h);
        if !h.writable {
            return Err(FsError::BadHandle);
        }
        let ino = h.ino;
        match &mut h.kind {
            HandleKind::Plain => {
                let node = self.store.node(ino)?.ok_or(FsError::NotFound)?;
                if node.role != NodeRole::File {
                    return Err(FsError::NotPermitted("a committed cab is read-only"));
                }
                self.store.write_at(ino, offset, data)?;
                Ok(data.len() as u32)
            }
            HandleKind::CabWriter(w) => {
                if let Err(e) = self.space.allow_cab(&*self.store) {
                    tracing::warn!(
                        ino,
                        "a cab upload was refused for space: nothing of it is kept"
                    );
                    return Err(w.refuse(e));
                }
                w.write(&*self.store, ino, offset, data)
            }
            HandleKind::Count(c) => c.buf.write(offset, data),
            HandleKind::Settings(s) => s.buf.write(offset, data),
            HandleKind::Log(l) => l.write(&*self.store, offset, data),
        }
    }

    /// Applies what the handle wrote (count deltas, settings, log lines, cab commit).
    /// Called at every close of a descriptor; its error reaches the client.
    ///
    /// `closer` is who closes a descriptor (a [`Caller::pid`]) (`None`: the owner, e.g. a path-based
    /// adapter's cleanup). A close by another process is a fork's inherited copy of the
    /// descriptor going away (exec, exit): it applies nothing, the owner's close will
    /// (and release is the backstop).
    pub fn flush(&self, fh: u64, closer: Option<u32>) -> Result<()> {
        let h = self.handle(fh)?;
        let owner = lock(&h).pid;
        // The owner's main thread needs no lookup of its process.
        if closer.is_some_and(|id| id != owner && (self.process_of)(id) != owner) {
            tracing::debug!(
                fh,
                owner,
                ?closer,
                "flush by another process: nothing applied"
            );
            return Ok(());
        }
        self.apply(fh, false)
    }

    /// Forgets the handle after a last flush (errors here reach nobody: they are logged).
    pub fn release(&self, fh: u64) -> Result<()> {
        let result = self.apply(fh, true);
        let removed = lock(&self.handles).remove(&fh);
        if let Some(h) = removed {
            let ino = lock(&h).ino;
            let mut writers = lock(&self.cab_writers);
            if writers.get(&ino) == Some(&fh) {
                writers.remove(&ino);
            }
        }
        if let Err(e) = &result {
            tracing::warn!(fh, "error at release (the client cannot see it): {e}");
        }
        result
    }

    fn apply(&self, fh: u64, finish: bool) -> Result<()> {
        let h = self.handle(fh)?;
        let mut h = lock(&h);
        let applied = self.apply_kind(&mut h, fh, finish);
        if applied.is_ok() && h.sync_on_close {
            self.store.sync()?;
            // Once: the release that follows a close's flush has nothing new to sync.
            h.sync_on_close = false;
        }
        applied
    }

    fn apply_kind(&self, h: &mut Handle, fh: u64, finish: bool) -> Result<()> {
        let (ino, pid) = (h.ino, h.pid);
        match &mut h.kind {
            HandleKind::Plain => Ok(()),
            // A close before any write is a shell redirect or `dd of=` dup2()ing the new
            // descriptor and closing the original: the upload has not started yet. The
            // last close (release) commits an upload that stays empty.
            HandleKind::CabWriter(w) if !finish && w.is_untouched() => Ok(()),
            HandleKind::CabWriter(w) => {
                let result = w.commit(&*self.store, ino);
                let mut writers = lock(&self.cab_writers);
                if writers.get(&ino) == Some(&fh) {
                    writers.remove(&ino);
                }
                result
            }
            HandleKind::Count(c) => {
                if !c.has_content() {
                    // Consult (and consume) this client's memory only for a real write.
                    return Ok(());
                }
                let wanted = c.take_wanted()?;
                let base = if c.read_done {
                    c.snapshot
                } else if let Some(seen) = self.served.take(pid, c.dir, wanted) {
                    seen
                } else if c.created {
                    Counts::default()
                } else {
                    c.snapshot
                };
                let now = c.apply(&*self.store, base, wanted)?;
                self.changes.changed(Content::Counts(c.bucket));
                tracing::debug!(bucket = c.bucket, ?now, "count.txt updated");
                self.served.remember(pid, c.dir, wanted);
                Ok(())
            }
            HandleKind::Settings(s) => {
                let dirty = s.buf.dirty;
                let applied = s.apply(&*self.store);
                // Good lines are stored even when others are refused.
                if dirty {
                    self.changes.changed(Content::Settings(s.scope));
                }
                applied
            }
            HandleKind::Log(l) => {
                let stored = l.committed;
                let applied = l.apply(&*self.store, finish);
                if l.committed != stored {
                    self.changes.changed(Content::Log(l.log));
                }
                applied
            }
        }
    }

    /// Abandons a cab upload through `fh`: nothing is committed, the partial cab is
    /// deleted and the handle released (an HTTP upload over its limit or cut short).
    pub fn abort_upload(&self, fh: u64) -> Result<()> {
        let h = self.handle(fh)?;
        let ino = {
            let mut h = lock(&h);
            match &mut h.kind {
                HandleKind::CabWriter(w) if !w.committed => w.committed = true,
                _ => return Err(FsError::BadHandle),
            }
            h.ino
        };
        lock(&self.handles).remove(&fh);
        lock(&self.cab_writers).remove(&ino);
        self.store.remove_node(ino)?;
        Ok(())
    }

    /// Makes everything committed so far durable (survives a power cut). What the handle
    /// has not committed yet (a cab mid-upload, a count.txt or log write applied at close)
    /// is not committed by fsync, which would end an upload the client may go on with; the
    /// handle's close then syncs what it commits.
    pub fn fsync(&self, fh: u64) -> Result<()> {
        let h = self.handle(fh)?;
        lock(&h).sync_on_close = true;
        Ok(self.store.sync()?)
    }

    /// Makes everything committed so far durable (`fsyncdir`: every change of a folder is
    /// committed before its reply).
    pub fn sync_all(&self) -> Result<()> {
        Ok(self.store.sync()?)
    }

    /// FlushFileBuffers (WinFsp's Flush of one open): what the handle wrote to count.txt, a
    /// settings file or a log is applied now, so that its verdict reaches the client (a
    /// Windows close reports none), then everything committed is made durable as by
    /// [`CerFs::fsync`]. A cab upload is not committed: the client may go on writing.
    pub fn flush_buffers(&self, fh: u64) -> Result<()> {
        let uploading = matches!(lock(&*self.handle(fh)?).kind, HandleKind::CabWriter(_));
        if !uploading {
            self.apply(fh, false)?;
        }
        self.fsync(fh)
    }

    /// Whether the store is still the one opened (its database file not replaced or
    /// deleted): servers poll it and stop with this error rather than serve a mix.
    pub fn check_store(&self) -> Result<()> {
        Ok(self.store.check_identity()?)
    }

    /// The node `ino`, unless it is absent from the share: missing, or a cab that was
    /// pruned or deleted (its row may stay, the share no longer shows it).
    pub(crate) fn live_node(&self, ino: Ino) -> Result<Node> {
        match self.store.node(ino)? {
            Some(node) if node.cab_state != Some(CabState::Removed) => Ok(node),
            _ => Err(FsError::NotFound),
        }
    }

    pub(crate) fn handle(&self, fh: u64) -> Result<Arc<Mutex<Handle>>> {
        lock(&self.handles)
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)
    }

    pub(crate) fn cab_writer_of(&self, ino: Ino) -> Option<u64> {
        lock(&self.cab_writers).get(&ino).copied()
    }
}
