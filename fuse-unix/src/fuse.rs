//! `impl fuser::Filesystem` over [`CerFs`]: one fs-core call per callback, arguments and
//! results translated, nothing decided here. Over 600 lines on purpose: it is the one
//! trait impl, about forty callbacks of a few lines each, and reads best as one list.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cerfs_fs_core::stats::{Adapter, STATS};
use cerfs_fs_core::{CerFs, FsError, OpenFlags, SetAttr, SpecialNode};
use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use tracing::{debug, info, warn};

use crate::errno::refuse;
use crate::kernel_cache::{KernelCache, TTL};
use crate::translate::{caller, file_attr, file_type, fopen_flags, open_flags, time, BLOCK_SIZE};
use crate::SessionEnd;

/// Largest write the kernel should send in one request.
const MAX_WRITE: u32 = 1024 * 1024;
/// Blocks reported by `statfs` (16 TiB of 4 KiB blocks): the store grows on demand, and
/// Windows clients refuse to copy when the share looks full.
const STATFS_BLOCKS: u64 = 1 << 32;
/// Inodes reported by `statfs`.
const STATFS_FILES: u64 = 1 << 32;
/// Longest name reported by `statfs`.
const NAME_MAX: u32 = 255;

/// The FUSE side of cerfs: holds the core; signals the session's end once the session has
/// dropped it (the store closes with the last holder of the core).
pub(crate) struct CerFsFuse {
    /// Declared before `fs`: its watcher thread stops before the core is let go.
    cache: Arc<KernelCache>,
    fs: Arc<CerFs>,
    /// Declared after `fs`: fields drop in order, so the end is signalled after the
    /// session let go of the core (and closed the store, if it held the last reference).
    _end: EndOnDrop,
}

impl CerFsFuse {
    /// The adapter over `fs`; `end` is set when the session drops the adapter.
    pub(crate) fn new(fs: Arc<CerFs>, end: SessionEnd, cache: Arc<KernelCache>) -> Self {
        CerFsFuse {
            cache,
            fs,
            _end: EndOnDrop(end),
        }
    }

    /// How long the kernel may keep `attr`, read after fs-core's content generation was
    /// `since`; `through_handle`: it is a handle's own view.
    fn ttl(&self, attr: &cerfs_fs_core::Attr, through_handle: bool, since: u64) -> Duration {
        self.cache
            .ttl(attr, through_handle, since, || self.fs.content_generation())
    }
}

/// Sets the session end when dropped.
struct EndOnDrop(SessionEnd);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        self.0.set_ended();
    }
}

/// The first two entries of every listing.
const DOTS: [&str; 2] = [".", ".."];

/// Nodes have no generations: inode numbers are never reused while the store lives.
const GENERATION: Generation = Generation(0);

impl Filesystem for CerFsFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // open(O_TRUNC) must arrive as a flag on open, not as a separate setattr(size 0):
        // fs-core gives truncation at open its own meaning per kind of file.
        if let Err(missing) = config.add_capabilities(InitFlags::FUSE_ATOMIC_O_TRUNC) {
            warn!("the kernel does not support {missing:?}: O_TRUNC arrives as setattr");
        }
        // Lookups and listings of one directory may run in parallel (fs-core is &self).
        if let Err(missing) = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS) {
            debug!("the kernel does not support {missing:?}");
        }
        // Listings carry each entry's attributes, so that `ls -l` or Samba's directory
        // query does not send one lookup per entry afterwards; the kernel decides per
        // listing whether it wants them (AUTO).
        if let Err(missing) = config
            .add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO)
        {
            debug!("the kernel does not support {missing:?}");
        }
        if let Err(nearest) = config.set_max_write(MAX_WRITE) {
            debug!("max_write {MAX_WRITE} not allowed, using {nearest}");
            if let Err(nearest) = config.set_max_write(nearest) {
                warn!("max_write {nearest} not allowed either, keeping the default");
            }
        }
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let since = self.fs.content_generation();
        match timed("lookup", || {
            self.fs.lookup(&caller(req), parent.0, name.as_bytes())
        }) {
            // fuser's order: attribute TTL, then entry (name) TTL.
            Ok(attr) => {
                let ttl = self.ttl(&attr, false, since);
                reply.entry_with_ttls(&ttl, &TTL, &file_attr(&attr), GENERATION)
            }
            Err(e) => reply.error(refuse("lookup", format_args!("{name:?} in {parent}"), &e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let since = self.fs.content_generation();
        match timed("getattr", || self.fs.getattr(ino.0, fh.map(|fh| fh.0))) {
            Ok(attr) => reply.attr(&self.ttl(&attr, fh.is_some(), since), &file_attr(&attr)),
            Err(e) => reply.error(refuse("getattr", format_args!("inode {ino}"), &e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            size,
            mode: mode.map(|mode| mode & 0o7777),
            uid,
            gid,
            mtime: mtime.map(time),
        };
        let since = self.fs.content_generation();
        match timed("setattr", || {
            self.fs
                .setattr(&caller(req), ino.0, fh.map(|fh| fh.0), &set)
        }) {
            Ok(attr) => reply.attr(&self.ttl(&attr, fh.is_some(), since), &file_attr(&attr)),
            Err(e) => reply.error(refuse("setattr", format_args!("inode {ino} {set:?}"), &e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        match timed("mkdir", || {
            self.fs
                .mkdir(&caller(req), parent.0, name.as_bytes(), mode & 0o7777)
        }) {
            // fuser's order: attribute TTL, then entry (name) TTL.
            Ok(attr) => reply.entry_with_ttls(&TTL, &TTL, &file_attr(&attr), GENERATION),
            Err(e) => reply.error(refuse("mkdir", format_args!("{name:?} in {parent}"), &e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let exclusive = flags & libc::O_EXCL != 0;
        match timed("create", || {
            self.fs.create(
                &caller(req),
                parent.0,
                name.as_bytes(),
                mode & 0o7777,
                open_flags(flags),
                exclusive,
            )
        }) {
            Ok((attr, opened)) => reply.created(
                &self.ttl(&attr, true, 0),
                &file_attr(&attr),
                GENERATION,
                FileHandle(opened.fh),
                fopen_flags(&opened),
            ),
            Err(e) => reply.error(refuse(
                "create",
                format_args!("{name:?} in {parent} (flags {flags:#o})"),
                &e,
            )),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: fuser::OpenFlags, reply: ReplyOpen) {
        match timed("open", || {
            self.fs.open(&caller(req), ino.0, open_flags(flags.0))
        }) {
            Ok(opened) => reply.opened(FileHandle(opened.fh), fopen_flags(&opened)),
            Err(e) => reply.error(refuse(
                "open",
                format_args!("inode {ino} (flags {:#o})", flags.0),
                &e,
            )),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: fuser::OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match timed("read", || self.fs.read(fh.0, offset, size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(refuse(
                "read",
                format_args!("inode {ino} handle {fh} at {offset} ({size} bytes)"),
                &e,
            )),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: fuser::OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match timed("write", || self.fs.write(fh.0, offset, data)) {
            Ok(written) => reply.written(written),
            Err(e) => reply.error(refuse(
                "write",
                format_args!("inode {ino} handle {fh} at {offset} ({} bytes)", data.len()),
                &e,
            )),
        }
    }

    fn flush(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        match timed("flush", || self.fs.flush(fh.0, Some(req.pid()))) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refuse("flush", format_args!("inode {ino} handle {fh}"), &e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: fuser::OpenFlags,
        _lock_owner: Option<LockOwner>,
        flush: bool,
        reply: ReplyEmpty,
    ) {
        // Nobody receives an error from release: refuse() logs it, the kernel gets ok.
        timed("release", || {
            if flush {
                if let Err(e) = self.fs.flush(fh.0, None) {
                    refuse(
                        "flush at release",
                        format_args!("inode {ino} handle {fh}"),
                        &e,
                    );
                }
            }
            if let Err(e) = self.fs.release(fh.0) {
                refuse("release", format_args!("inode {ino} handle {fh}"), &e);
            }
        });
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match timed("other", || self.fs.fsync(fh.0)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refuse("fsync", format_args!("inode {ino} handle {fh}"), &e)),
        }
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match timed("unlink", || {
            self.fs.unlink(&caller(req), parent.0, name.as_bytes())
        }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refuse("unlink", format_args!("{name:?} in {parent}"), &e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let caller = caller(req);
        let made = timed("other", || {
            if mode & libc::S_IFMT == libc::S_IFREG {
                // mknod(2) of a regular file: a create whose handle is closed at once.
                let flags = OpenFlags {
                    read: false,
                    write: true,
                    truncate: false,
                    append: false,
                };
                self.fs
                    .create(
                        &caller,
                        parent.0,
                        name.as_bytes(),
                        mode & 0o7777,
                        flags,
                        true,
                    )
                    .and_then(|(attr, opened)| self.fs.release(opened.fh).map(|()| attr))
            } else {
                Err(self.fs.refuse_special(&caller, SpecialNode::Device))
            }
        });
        match made {
            Ok(attr) => reply.entry_with_ttls(
                &self.ttl(&attr, true, 0),
                &TTL,
                &file_attr(&attr),
                GENERATION,
            ),
            Err(e) => reply.error(refuse(
                "mknod",
                format_args!("{name:?} in {parent} (mode {mode:#o})"),
                &e,
            )),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let e = timed("other", || {
            self.fs
                .refuse_special(&caller(req), SpecialNode::SymbolicLink)
        });
        reply.error(refuse(
            "symlink",
            format_args!("{link_name:?} in {parent}"),
            &e,
        ));
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let e = timed("other", || {
            self.fs.refuse_special(&caller(req), SpecialNode::HardLink)
        });
        reply.error(refuse(
            "link",
            format_args!("{ino} as {newname:?} in {newparent}"),
            &e,
        ));
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match timed("unlink", || {
            self.fs.rmdir(&caller(req), parent.0, name.as_bytes())
        }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refuse("rmdir", format_args!("{name:?} in {parent}"), &e)),
        }
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            timed("rename", || {
                info!(
                    op = "rename",
                    "rename {name:?} in {parent} to {newname:?} in {newparent}: flags {flags:#x} not supported"
                )
            });
            reply.error(Errno::EINVAL);
            return;
        }
        match timed("rename", || {
            self.fs.rename(
                &caller(req),
                parent.0,
                name.as_bytes(),
                newparent.0,
                newname.as_bytes(),
                flags.contains(RenameFlags::RENAME_NOREPLACE),
            )
        }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refuse(
                "rename",
                format_args!("{name:?} in {parent} to {newname:?} in {newparent}"),
                &e,
            )),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: fuser::OpenFlags, reply: ReplyOpen) {
        match timed("readdir", || self.fs.opendir(ino.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(refuse("opendir", format_args!("inode {ino}"), &e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        // Offsets are indices into [".", "..", fs-core's entries...]; each entry carries
        // the offset of the one after it. fs-core does not know ".." (the kernel ignores
        // its inode number), so both dot entries carry this directory's inode.
        let listed = timed("readdir", || -> Result<(), FsError> {
            let Ok(start) = usize::try_from(offset) else {
                return Ok(());
            };
            if start == 0 {
                self.fs.rewinddir(fh.0)?;
            }
            for (index, name) in DOTS.into_iter().enumerate().skip(start) {
                if reply.add(ino, index as u64 + 1, FileType::Directory, name) {
                    return Ok(());
                }
            }
            let first = start.saturating_sub(DOTS.len());
            let entries = self.fs.readdir(fh.0, first)?;
            for (index, entry) in (first + DOTS.len()..).zip(&entries) {
                let next = index as u64 + 1;
                if reply.add(INodeNo(entry.ino), next, file_type(entry.kind), &entry.name) {
                    break;
                }
            }
            Ok(())
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refuse(
                "readdir",
                format_args!("inode {ino} handle {fh} from {offset}"),
                &e,
            )),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        // The same offsets as readdir. The kernel makes no dentries of the dot entries,
        // so their attributes (this directory's) only fill the format.
        let listed = timed("readdir", || -> Result<(), FsError> {
            let Ok(start) = usize::try_from(offset) else {
                return Ok(());
            };
            // Offset 0: the first read, or a rewinddir: list the folder as it is now.
            if start == 0 {
                self.fs.rewinddir(fh.0)?;
            }
            if start < DOTS.len() {
                let attr = self.fs.getattr(ino.0, None)?;
                for (index, name) in DOTS.into_iter().enumerate().skip(start) {
                    if reply.add(
                        ino,
                        index as u64 + 1,
                        name,
                        &Duration::ZERO,
                        &file_attr(&attr),
                        GENERATION,
                    ) {
                        return Ok(());
                    }
                }
            }
            let first = start.saturating_sub(DOTS.len());
            let mut next = (first + DOTS.len()) as u64;
            let since = self.fs.content_generation();
            self.fs.readdir_plus(fh.0, first, |entry, attr| {
                next += 1;
                reply.add(
                    INodeNo(entry.ino),
                    next,
                    &entry.name,
                    &self.ttl(attr, false, since),
                    &file_attr(attr),
                    GENERATION,
                )
            })
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refuse(
                "readdirplus",
                format_args!("inode {ino} handle {fh} from {offset}"),
                &e,
            )),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: fuser::OpenFlags,
        reply: ReplyEmpty,
    ) {
        timed("readdir", || self.fs.releasedir(fh.0));
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Every directory change is committed before its reply: syncing the store makes
        // them all durable.
        match timed("other", || self.fs.sync_all()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(refuse("fsyncdir", format_args!("inode {ino}"), &e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        timed("statfs", || ());
        reply.statfs(
            STATFS_BLOCKS,
            STATFS_BLOCKS,
            STATFS_BLOCKS,
            STATFS_FILES,
            STATFS_FILES,
            BLOCK_SIZE,
            NAME_MAX,
            BLOCK_SIZE,
        );
    }

    // Extended attributes: answered ENOSYS, which the kernel remembers for the whole mount
    // (it then fails xattr calls with EOPNOTSUPP) instead of asking again for every file
    // Samba opens. cerfs keeps no xattrs (Samba derives ACLs from the modes). access(2)
    // never arrives: with default_permissions the kernel answers it from the modes and
    // owners cerfs reports; fs-core's own rules apply at each operation on top.

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(timed("other", || Errno::ENOSYS));
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(timed("other", || Errno::ENOSYS));
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(timed("other", || Errno::ENOSYS));
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(timed("other", || Errno::ENOSYS));
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        reply.error(timed("other", || Errno::ENOSYS));
    }
}

/// Runs `answer`, timed as FUSE operation `op` in the request metrics. The reply is sent
/// after the timer stops: sending it wakes the caller, which may take this thread's core,
/// and that wait is not time spent answering.
fn timed<T>(op: &'static str, answer: impl FnOnce() -> T) -> T {
    let _timed = STATS.time(Adapter::Fuse, op);
    answer()
}
