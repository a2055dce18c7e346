//! The inode-keyed filesystem core: lookups, attributes, directories, and one opaque
//! handle per open whose semantics depend on the kind of file (see docs/semantics.md).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use cerfs_db::{
    AttrChange, CabState, Counts, Ino, LogId, NewNode, Node, NodeRole, SettingsScope, Store,
    ROOT_INO,
};

use crate::area::{self, Area};
use crate::handle::{
    self, CabWriter, CountHandle, Handle, HandleKind, LogHandle, SettingsHandle, TextBuf,
    MAX_COUNT_FILE, MAX_SETTINGS_FILE,
};
use crate::{count_file, settings_file, share_path, FsError, Result};

/// Who is calling: behind Samba, `pid` is the client's smbd process at open/lookup time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller {
    /// Process id of the caller (0 when unknown), or the id of the calling thread when the
    /// adapter gave a [`ProcessOf`] ([`CerFs::with_process_of`]).
    pub pid: u32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// File or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A directory.
    Directory,
    /// A regular file.
    RegularFile,
}

/// Attributes of a node, as `stat` reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Inode number, stable for the life of the object.
    pub ino: Ino,
    /// Exact byte length (synthesized files: the length a read would return now).
    pub size: u64,
    /// File or directory.
    pub kind: FileKind,
    /// Permission bits.
    pub perm: u16,
    /// Link count.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Access time (reported as mtime).
    pub atime: SystemTime,
    /// Modification time.
    pub mtime: SystemTime,
    /// Status change time.
    pub ctime: SystemTime,
    /// Creation time.
    pub crtime: SystemTime,
    /// Whether reads must bypass caches (synthesized files, cabs being written): adapters
    /// use zero TTLs and direct I/O for these.
    pub volatile: bool,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Inode number.
    pub ino: Ino,
    /// Name.
    pub name: String,
    /// File or directory.
    pub kind: FileKind,
}

/// Open flags, platform-neutral.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenFlags {
    /// Opened for reading.
    pub read: bool,
    /// Opened for writing.
    pub write: bool,
    /// Truncate to zero at open (O_TRUNC, FILE_OVERWRITE*, FILE_SUPERSEDE).
    pub truncate: bool,
    /// Every write goes to the end (O_APPEND, FILE_APPEND_DATA only).
    pub append: bool,
}

/// The answer to an open or create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Opaque handle for read/write/flush/release.
    pub fh: u64,
    /// The adapter must not cache this file's pages (direct I/O).
    pub direct_io: bool,
}

/// Attribute changes requested by setattr; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    /// New size (truncate or extend).
    pub size: Option<u64>,
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New modification time.
    pub mtime: Option<SystemTime>,
}

/// How long what a client read from count.txt stays its base for a later overwrite.
const SERVED_TTL: Duration = Duration::from_secs(600);
/// Bound on the per-client count.txt memory: clients (pids × directories) ...
const SERVED_MAX: usize = 100_000;
/// ... and values remembered per client and directory.
const SERVED_PER_CLIENT: usize = 64;

/// Maps the id an adapter puts in [`Caller::pid`] (say a thread id) to its process.
///
/// Finding the process may cost a system call, and most requests do not need it: fs-core
/// asks only where the process matters (count.txt's per-client memory, a handle's owner).
pub type ProcessOf = fn(u32) -> u32;

/// Values served from count.txt per (pid, counts directory), most recent last.
type Served = HashMap<(u32, Ino), Vec<(Counts, Instant)>>;

/// The filesystem core. Cheap to share across adapter threads (`&self` everywhere).
pub struct CerFs {
    store: Arc<dyn Store>,
    handles: Mutex<HashMap<u64, Arc<Mutex<Handle>>>>,
    /// Open listings: the nodes as they were at opendir.
    dirs: Mutex<HashMap<u64, Arc<Vec<Node>>>>,
    next_fh: AtomicU64,
    /// Cabs being uploaded, with their writer's handle: nobody else may write them.
    cab_writers: Mutex<HashMap<Ino, u64>>,
    /// What each client (pid) was served from each counts directory's count.txt, most
    /// recent last
    /// (zero when it looked and found none): the base of a later overwrite (pattern b).
    served: Mutex<Served>,
    /// Users who may change policy.txt and status.txt (Samba maps the admin account to root).
    admin_uids: Vec<u32>,
    /// The process behind a caller's id (the identity by default).
    process_of: ProcessOf,
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
            served: Mutex::new(HashMap::new()),
            admin_uids: vec![0],
            process_of: |id| id,
        }
    }

    /// Callers are identified by a thread (or other) id that `process_of` maps to the
    /// process: what count.txt semantics and handle ownership go by.
    pub fn with_process_of(mut self, process_of: ProcessOf) -> Self {
        self.process_of = process_of;
        self
    }

    /// Adds users who may change policy.txt and status.txt (root always may).
    pub fn with_admin_uids(mut self, uids: impl IntoIterator<Item = u32>) -> Self {
        self.admin_uids.extend(uids);
        self
    }

    fn check_admin(&self, caller: &Caller, role: NodeRole) -> Result<()> {
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

    /// The store behind this filesystem.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Finds `name` in directory `parent`. `caller.pid` is remembered for count.txt
    /// (a miss counts as "this client saw no count.txt").
    pub fn lookup(&self, caller: &Caller, parent: Ino, name: &[u8]) -> Result<Attr> {
        let name = std::str::from_utf8(name).map_err(|_| FsError::NotFound)?;
        match self.store.lookup(parent, name)? {
            Some(node) => self.attr_of(&node),
            None => {
                if name.eq_ignore_ascii_case("count.txt") {
                    let pid = (self.process_of)(caller.pid);
                    self.remember_served(pid, parent, Counts::default());
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

    /// Attributes of `ino`; with `fh`, as seen through that open handle (its unflushed size).
    pub fn getattr(&self, ino: Ino, fh: Option<u64>) -> Result<Attr> {
        let node = self.store.node(ino)?.ok_or(FsError::NotFound)?;
        let mut attr = self.attr_of(&node)?;
        if let Some(h) = fh.and_then(|fh| self.handle(fh).ok()) {
            let h = lock(&h);
            if h.ino == ino {
                match &h.kind {
                    HandleKind::Count(c) => attr.size = c.buf.bytes.len() as u64,
                    HandleKind::Settings(s) => attr.size = s.buf.bytes.len() as u64,
                    HandleKind::Log(l) => attr.size = l.size(),
                    HandleKind::CabWriter(w) => attr.size = w.size(),
                    HandleKind::Plain => {}
                }
            }
        }
        Ok(attr)
    }

    /// Changes attributes; a size change on a handle goes through the handle's semantics.
    pub fn setattr(
        &self,
        caller: &Caller,
        ino: Ino,
        fh: Option<u64>,
        set: &SetAttr,
    ) -> Result<Attr> {
        let _ = caller;
        let node = self.store.node(ino)?.ok_or(FsError::NotFound)?;
        if let Some(size) = set.size {
            self.set_size(&node, fh, size)?;
        }
        let change = AttrChange {
            mode: set.mode,
            uid: set.uid,
            gid: set.gid,
            mtime: set.mtime,
        };
        if change.mode.is_some()
            || change.uid.is_some()
            || change.gid.is_some()
            || change.mtime.is_some()
        {
            self.store.set_attr(ino, &change)?;
        }
        self.getattr(ino, fh)
    }

    fn set_size(&self, node: &Node, fh: Option<u64>, size: u64) -> Result<()> {
        if node.role == NodeRole::Dir {
            return Err(FsError::IsDir);
        }
        // A truncate through a handle follows that handle's semantics.
        if let Some(h) = fh.and_then(|fh| self.handle(fh).ok()) {
            let mut h = lock(&h);
            if h.ino == node.ino {
                if !h.writable {
                    return Err(FsError::BadHandle);
                }
                return match &mut h.kind {
                    HandleKind::Count(c) => c.buf.truncate(size),
                    HandleKind::Settings(s) => s.buf.truncate(size),
                    HandleKind::Log(l) => {
                        l.truncate(size);
                        Ok(())
                    }
                    HandleKind::CabWriter(w) => w.truncate(&*self.store, node.ino, size),
                    HandleKind::Plain => self.truncate_plain(node, size),
                };
            }
        }
        match node.role {
            NodeRole::File => Ok(self.store.truncate(node.ino, size)?),
            NodeRole::Cab => match self.cab_writer_of(node.ino) {
                Some(writer) => {
                    let h = self.handle(writer)?;
                    let mut h = lock(&h);
                    match &mut h.kind {
                        HandleKind::CabWriter(w) => w.truncate(&*self.store, node.ino, size),
                        _ => Err(FsError::Busy),
                    }
                }
                None => Err(FsError::NotPermitted("a committed cab cannot be truncated")),
            },
            // Truncating a synthesized file by path is meaningful only as a no-op.
            _ if size == self.attr_of(node)?.size => Ok(()),
            _ => Err(FsError::NotPermitted(
                "synthesized files change only through an open handle",
            )),
        }
    }

    fn truncate_plain(&self, node: &Node, size: u64) -> Result<()> {
        match node.role {
            NodeRole::File => Ok(self.store.truncate(node.ino, size)?),
            _ => Err(FsError::NotPermitted("a committed cab cannot be truncated")),
        }
    }

    /// Creates a directory (R3 names, R4 path length).
    pub fn mkdir(&self, caller: &Caller, parent: Ino, name: &[u8], mode: u32) -> Result<Attr> {
        let (area, path, name) = self.check_new_name(parent, name)?;
        let _ = (area, path);
        let node = self.store.create_node(&NewNode {
            parent,
            name,
            role: NodeRole::Dir,
            mode: mode & 0o7777,
            uid: caller.uid,
            gid: caller.gid,
            bucket: None,
        })?;
        self.attr_of(&node)
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
        let node = self.store.node(ino)?.ok_or(FsError::NotFound)?;
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
                let mut buf = TextBuf::new(text, MAX_COUNT_FILE);
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
                let mut buf = TextBuf::new(text, MAX_SETTINGS_FILE);
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
            return Ok(HandleKind::CabWriter(CabWriter::new()));
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
                    self.remember_served(pid, c.dir, c.snapshot);
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
            HandleKind::CabWriter(w) => w.write(&*self.store, ino, offset, data),
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
                } else if let Some(seen) = self.take_served(pid, c.dir, wanted) {
                    seen
                } else if c.created {
                    Counts::default()
                } else {
                    c.snapshot
                };
                let now = c.apply(&*self.store, base, wanted)?;
                tracing::debug!(bucket = c.bucket, ?now, "count.txt updated");
                self.remember_served(pid, c.dir, wanted);
                Ok(())
            }
            HandleKind::Settings(s) => s.apply(&*self.store),
            HandleKind::Log(l) => l.apply(&*self.store, finish),
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

    /// Removes a file.
    pub fn unlink(&self, caller: &Caller, parent: Ino, name: &[u8]) -> Result<()> {
        let node = self.child(parent, name)?;
        match node.role {
            NodeRole::Dir => Err(FsError::IsDir),
            NodeRole::File => Ok(self.store.remove_node(node.ino)?),
            NodeRole::Status | NodeRole::Policy => {
                self.check_admin(caller, node.role)?;
                Ok(self.store.remove_node(node.ino)?)
            }
            NodeRole::Cab if self.cab_writer_of(node.ino).is_some() => Err(FsError::Busy),
            NodeRole::Cab => {
                tracing::warn!(name = %node.name, "refused to delete a stored cab");
                Err(FsError::NotPermitted("stored cabs cannot be deleted"))
            }
            NodeRole::Count => Err(FsError::NotPermitted(
                "count.txt cannot be deleted (use `cerfs counts reset`)",
            )),
            NodeRole::CrashLog | NodeRole::HitsLog => {
                Err(FsError::NotPermitted("logs are append-only"))
            }
        }
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, caller: &Caller, parent: Ino, name: &[u8]) -> Result<()> {
        let _ = caller;
        let node = self.child(parent, name)?;
        if node.role != NodeRole::Dir {
            return Err(FsError::NotDir);
        }
        if area::is_fixed(node.ino) {
            return Err(FsError::NotPermitted(
                "cabs, status and counts are part of the share",
            ));
        }
        Ok(self.store.remove_node(node.ino)?)
    }

    /// Renames; `no_replace` refuses to overwrite an existing target. Only plain files and
    /// folders move: the CER files' identity is their path.
    pub fn rename(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        no_replace: bool,
    ) -> Result<()> {
        let _ = caller;
        let node = self.child(parent, name)?;
        if area::is_fixed(node.ino) {
            return Err(FsError::NotPermitted(
                "cabs, status and counts are part of the share",
            ));
        }
        let (src_area, _) = area::area_of(&*self.store, parent)?;
        let (dst_area, _, new_name) = self.check_new_name(new_parent, new_name)?;
        let movable = match node.role {
            NodeRole::File => dst_area.file_role(new_name) == NodeRole::File,
            // A folder inside a CER tree is part of a bucket path.
            NodeRole::Dir => !src_area.is_cer() && !dst_area.is_cer(),
            _ => false,
        };
        if !movable {
            return Err(FsError::NotPermitted(
                "CER files and bucket folders cannot be moved",
            ));
        }
        if let Some(target) = self.store.lookup(new_parent, new_name)? {
            if target.ino == node.ino {
                return Ok(());
            }
            if no_replace {
                return Err(FsError::Exists);
            }
            if target.role != node.role {
                return Err(if target.role == NodeRole::Dir {
                    FsError::IsDir
                } else {
                    FsError::NotDir
                });
            }
            if target.role != NodeRole::File && target.role != NodeRole::Dir {
                return Err(FsError::NotPermitted(
                    "CER files cannot be replaced by rename",
                ));
            }
        }
        Ok(self
            .store
            .rename_node(node.ino, new_parent, new_name, !no_replace)?)
    }

    /// Opens a directory listing: a snapshot that `readdir` pages through.
    pub fn opendir(&self, ino: Ino) -> Result<u64> {
        let node = self.store.node(ino)?.ok_or(FsError::NotFound)?;
        if node.role != NodeRole::Dir {
            return Err(FsError::NotDir);
        }
        let entries: Vec<Node> = self
            .store
            .children(ino)?
            .into_iter()
            // A cab still being written is not part of the share yet.
            .filter(|n| n.cab_state != Some(CabState::Writing))
            .collect();
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.dirs).insert(fh, Arc::new(entries));
        Ok(fh)
    }

    /// Entries of an open listing from index `offset` on ("." and ".." not included).
    pub fn readdir(&self, fh: u64, offset: usize) -> Result<Vec<DirEntry>> {
        let nodes = self.listing(fh)?;
        Ok(nodes
            .get(offset..)
            .unwrap_or_default()
            .iter()
            .map(dir_entry)
            .collect())
    }

    /// Entries of an open listing from index `offset` on, each with its attributes (what
    /// lookup would answer), handed to `add` until it returns `true` (its buffer is full):
    /// attributes are computed only for the entries the caller takes.
    pub fn readdir_plus(
        &self,
        fh: u64,
        offset: usize,
        mut add: impl FnMut(&DirEntry, &Attr) -> bool,
    ) -> Result<()> {
        let nodes = self.listing(fh)?;
        for node in nodes.get(offset..).unwrap_or_default() {
            if add(&dir_entry(node), &self.attr_of(node)?) {
                break;
            }
        }
        Ok(())
    }

    fn listing(&self, fh: u64) -> Result<Arc<Vec<Node>>> {
        lock(&self.dirs).get(&fh).cloned().ok_or(FsError::BadHandle)
    }

    /// Drops an open listing.
    pub fn releasedir(&self, fh: u64) {
        lock(&self.dirs).remove(&fh);
    }

    // ---- helpers ----

    fn handle(&self, fh: u64) -> Result<Arc<Mutex<Handle>>> {
        lock(&self.handles)
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)
    }

    fn cab_writer_of(&self, ino: Ino) -> Option<u64> {
        lock(&self.cab_writers).get(&ino).copied()
    }

    fn child(&self, parent: Ino, name: &[u8]) -> Result<Node> {
        let name = std::str::from_utf8(name).map_err(|_| FsError::NotFound)?;
        self.store.lookup(parent, name)?.ok_or(FsError::NotFound)
    }

    /// Validates a name about to be created in `parent`: R3 and R4 inside the CER trees
    /// and at the root, valid UTF-8 anywhere.
    fn check_new_name<'n>(
        &self,
        parent: Ino,
        name: &'n [u8],
    ) -> Result<(Area, Vec<String>, &'n str)> {
        let parent_node = self.store.node(parent)?.ok_or(FsError::NotFound)?;
        if parent_node.role != NodeRole::Dir {
            return Err(FsError::NotDir);
        }
        let (area, path) = area::area_of(&*self.store, parent)?;
        let name = if area.is_cer() {
            let name = share_path::check_component(name).map_err(|e| {
                tracing::warn!(name = %String::from_utf8_lossy(name), "refused name: {e}");
                FsError::InvalidName(e.to_string())
            })?;
            let len = share_path::client_path_len(path.iter().map(String::as_str).chain([name]));
            if len > share_path::MAX_CLIENT_PATH {
                tracing::warn!(len, name, "refused path longer than 260 characters (R4)");
                return Err(FsError::NameTooLong(len));
            }
            name
        } else {
            std::str::from_utf8(name)
                .map_err(|_| FsError::InvalidName("names must be valid UTF-8".into()))?
        };
        Ok((area, path, name))
    }

    fn attr_of(&self, node: &Node) -> Result<Attr> {
        let (kind, size, volatile) = match node.role {
            NodeRole::Dir => (FileKind::Directory, 4096, false),
            NodeRole::File => (FileKind::RegularFile, node.size, false),
            NodeRole::Cab => (
                FileKind::RegularFile,
                node.size,
                node.cab_state != Some(CabState::Complete),
            ),
            NodeRole::Count => {
                let bucket = node.bucket.ok_or(FsError::NotFound)?;
                let text = count_file::render(self.store.counts(bucket)?);
                (FileKind::RegularFile, text.len() as u64, true)
            }
            NodeRole::Status | NodeRole::Policy => {
                let scope = match node.bucket {
                    Some(b) if node.role == NodeRole::Status => SettingsScope::Status(b),
                    _ => SettingsScope::Policy,
                };
                let len = settings_file::render(&self.store.settings(scope)?).len();
                (FileKind::RegularFile, len as u64, true)
            }
            NodeRole::CrashLog | NodeRole::HitsLog => {
                let log = match node.bucket {
                    Some(b) if node.role == NodeRole::HitsLog => LogId::Hits(b),
                    _ => LogId::Crash,
                };
                (FileKind::RegularFile, self.store.log_len(log)?, true)
            }
        };
        // What Samba's own permission checks see: everyone may create folders, cabs,
        // counts and log lines; settings belong to root; committed cabs are read-only.
        let (perm, uid, gid) = match (node.role, node.cab_state) {
            (NodeRole::Dir, _) => (0o777, node.uid, node.gid),
            (NodeRole::File, _) => ((node.mode & 0o7777) as u16, node.uid, node.gid),
            (NodeRole::Cab, Some(CabState::Complete)) => (0o444, node.uid, node.gid),
            (NodeRole::Status | NodeRole::Policy, _) => (0o644, 0, 0),
            _ => (0o666, node.uid, node.gid),
        };
        Ok(Attr {
            ino: node.ino,
            size,
            kind,
            perm,
            nlink: if kind == FileKind::Directory { 2 } else { 1 },
            uid,
            gid,
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.ctime,
            crtime: node.crtime,
            volatile,
        })
    }

    fn remember_served(&self, pid: u32, dir: Ino, counts: Counts) {
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
    fn take_served(&self, pid: u32, dir: Ino, wanted: Counts) -> Option<Counts> {
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

/// Locks a mutex, recovering from poisoning: a panicked thread must not take the share down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A listed node as a directory entry.
fn dir_entry(node: &Node) -> DirEntry {
    DirEntry {
        ino: node.ino,
        kind: if node.role == NodeRole::Dir {
            FileKind::Directory
        } else {
            FileKind::RegularFile
        },
        name: node.name.clone(),
    }
}
