//! The value types of fs-core's API: who calls, what a node looks like to `stat`, what an
//! open asks for and gets. Adapters translate these to and from their platform's types.

use std::time::SystemTime;

use cerfs_db::Ino;

/// Who is calling: behind Samba, `pid` is the client's smbd process at open/lookup time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller {
    /// Process id of the caller (0 when unknown), or the id of the calling thread when the
    /// adapter gave a [`ProcessOf`] ([`crate::CerFs::with_process_of`]).
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
    /// use direct I/O for these, and cache their attributes only as `content` allows.
    pub volatile: bool,
    /// For a volatile synthesized file: what its size is made of. fs-core announces every
    /// change to it ([`crate::CerFs::on_content_change`]), so an adapter may cache these
    /// attributes until then. `None` on a volatile node (a cab being uploaded, whose size
    /// moves with each write): never cache.
    pub content: Option<crate::Content>,
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

/// Maps the id an adapter puts in [`Caller::pid`] (say a thread id) to its process.
///
/// Finding the process may cost a system call, and most requests do not need it: fs-core
/// asks only where the process matters (count.txt's per-client memory, a handle's owner).
pub type ProcessOf = fn(u32) -> u32;
