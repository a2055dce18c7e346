//! The inode-keyed filesystem core: lookups, attributes, directories, and one opaque
//! handle per open whose semantics depend on the kind of file (see docs/semantics.md).

use std::sync::Arc;
use std::time::SystemTime;

use cerfs_db::{Ino, Store};

use crate::{FsError, Result};

/// Who is calling: behind Samba, `pid` is the client's smbd process at open/lookup time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller {
    /// Process id of the caller (0 when unknown).
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

/// The filesystem core. Cheap to share across adapter threads (`&self` everywhere).
pub struct CerFs {
    store: Arc<dyn Store>,
}

impl CerFs {
    /// A filesystem over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        CerFs { store }
    }

    /// The store behind this filesystem.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Finds `name` in directory `parent`. `caller.pid` is remembered for count.txt
    /// (a miss counts as "this client saw no count.txt").
    pub fn lookup(&self, caller: &Caller, parent: Ino, name: &[u8]) -> Result<Attr> {
        let _ = (caller, parent, name);
        Err(FsError::NotFound)
    }

    /// Resolves a `/`- or `\`-separated path from the root (for path-based adapters).
    pub fn resolve(&self, caller: &Caller, path: &str) -> Result<Attr> {
        let _ = (caller, path);
        Err(FsError::NotFound)
    }

    /// Attributes of `ino`; with `fh`, as seen through that open handle (its unflushed size).
    pub fn getattr(&self, ino: Ino, fh: Option<u64>) -> Result<Attr> {
        let _ = (ino, fh);
        Err(FsError::NotFound)
    }

    /// Changes attributes; a size change on a handle goes through the handle's semantics.
    pub fn setattr(&self, caller: &Caller, ino: Ino, fh: Option<u64>, set: &SetAttr) -> Result<Attr> {
        let _ = (caller, ino, fh, set);
        Err(FsError::NotFound)
    }

    /// Creates a directory (R3 names, R4 path length).
    pub fn mkdir(&self, caller: &Caller, parent: Ino, name: &[u8], mode: u32) -> Result<Attr> {
        let _ = (caller, parent, name, mode);
        Err(FsError::NotFound)
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
        let _ = (caller, parent, name, mode, flags, exclusive);
        Err(FsError::NotFound)
    }

    /// Opens an existing file.
    pub fn open(&self, caller: &Caller, ino: Ino, flags: OpenFlags) -> Result<Opened> {
        let _ = (caller, ino, flags);
        Err(FsError::NotFound)
    }

    /// Reads through a handle (short at end of file).
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let _ = (fh, offset, size);
        Err(FsError::BadHandle)
    }

    /// Writes through a handle; returns the number of bytes taken.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let _ = (fh, offset, data);
        Err(FsError::BadHandle)
    }

    /// Applies what the handle wrote (count deltas, settings, log lines, cab commit).
    /// Called at every close of a descriptor; its error reaches the client.
    pub fn flush(&self, fh: u64) -> Result<()> {
        let _ = fh;
        Err(FsError::BadHandle)
    }

    /// Forgets the handle after a last flush (errors here reach nobody: they are logged).
    pub fn release(&self, fh: u64) -> Result<()> {
        let _ = fh;
        Err(FsError::BadHandle)
    }

    /// Makes what the handle wrote durable (same as flush).
    pub fn fsync(&self, fh: u64) -> Result<()> {
        self.flush(fh)
    }

    /// Removes a file.
    pub fn unlink(&self, caller: &Caller, parent: Ino, name: &[u8]) -> Result<()> {
        let _ = (caller, parent, name);
        Err(FsError::NotFound)
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, caller: &Caller, parent: Ino, name: &[u8]) -> Result<()> {
        let _ = (caller, parent, name);
        Err(FsError::NotFound)
    }

    /// Renames; `no_replace` refuses to overwrite an existing target.
    pub fn rename(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        no_replace: bool,
    ) -> Result<()> {
        let _ = (caller, parent, name, new_parent, new_name, no_replace);
        Err(FsError::NotFound)
    }

    /// Opens a directory listing: a snapshot that `readdir` pages through.
    pub fn opendir(&self, ino: Ino) -> Result<u64> {
        let _ = ino;
        Err(FsError::NotFound)
    }

    /// Entries of an open listing from index `offset` on ("." and ".." not included).
    pub fn readdir(&self, fh: u64, offset: usize) -> Result<Vec<DirEntry>> {
        let _ = (fh, offset);
        Err(FsError::BadHandle)
    }

    /// Drops an open listing.
    pub fn releasedir(&self, fh: u64) {
        let _ = fh;
    }
}
