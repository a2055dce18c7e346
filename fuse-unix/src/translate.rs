//! Translation between fuser's types and fs-core's: who calls, open flags, attributes and
//! how long the kernel may cache them. No decision is made here.

use std::time::SystemTime;

use cerfs_fs_core::{Attr, Caller, FileKind, OpenFlags, Opened};
use fuser::{FileAttr, FileType, FopenFlags, INodeNo, Request, TimeOrNow};

/// Block size reported by `stat` and `statfs`.
pub(crate) const BLOCK_SIZE: u32 = 4096;

/// Who is calling, from the request header. The kernel sends the calling *thread*; fs-core
/// maps it to the process with [`process_of`] where that matters.
pub(crate) fn caller(req: &Request) -> Caller {
    Caller {
        pid: req.pid(),
        uid: req.uid(),
        gid: req.gid(),
    }
}

/// The thread group (process) of thread `tid`, from /proc; `tid` itself if it is gone.
/// fs-core wants the process: Samba's aio threads belong to the client's smbd. Give it to
/// [`CerFs::with_process_of`] for a `CerFs` that FUSE serves.
pub fn process_of(tid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(tid)
}

/// POSIX open flags to fs-core's.
pub(crate) fn open_flags(flags: i32) -> OpenFlags {
    let access = flags & libc::O_ACCMODE;
    OpenFlags {
        read: access == libc::O_RDONLY || access == libc::O_RDWR,
        write: access == libc::O_WRONLY || access == libc::O_RDWR,
        truncate: flags & libc::O_TRUNC != 0,
        append: flags & libc::O_APPEND != 0,
    }
}

/// fs-core's open answer to FUSE open-reply flags.
pub(crate) fn fopen_flags(opened: &Opened) -> FopenFlags {
    if opened.direct_io {
        FopenFlags::FOPEN_DIRECT_IO
    } else {
        FopenFlags::empty()
    }
}

/// fs-core's kind to FUSE's.
pub(crate) fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::Directory => FileType::Directory,
        FileKind::RegularFile => FileType::RegularFile,
    }
}

/// fs-core's attributes to FUSE's.
pub(crate) fn file_attr(attr: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        blocks: attr.size.div_ceil(512),
        atime: attr.atime,
        mtime: attr.mtime,
        ctime: attr.ctime,
        crtime: attr.crtime,
        kind: file_type(attr.kind),
        perm: attr.perm,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: 0,
        blksize: BLOCK_SIZE,
        flags: 0,
    }
}

/// A setattr time to an absolute time.
pub(crate) fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_flags_follow_posix() {
        let rdonly = open_flags(libc::O_RDONLY);
        assert!(rdonly.read && !rdonly.write && !rdonly.truncate && !rdonly.append);
        let wronly = open_flags(libc::O_WRONLY | libc::O_TRUNC);
        assert!(!wronly.read && wronly.write && wronly.truncate && !wronly.append);
        let rdwr = open_flags(libc::O_RDWR | libc::O_APPEND | libc::O_CREAT);
        assert!(rdwr.read && rdwr.write && !rdwr.truncate && rdwr.append);
    }

    #[test]
    fn attributes_keep_size_and_blocks() {
        let now = SystemTime::now();
        let attr = Attr {
            ino: 7,
            size: 1025,
            kind: FileKind::RegularFile,
            perm: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            volatile: true,
            content: None,
        };
        let fa = file_attr(&attr);
        assert_eq!(
            (fa.ino, fa.size, fa.blocks, fa.blksize),
            (INodeNo(7), 1025, 3, 4096)
        );
        assert_eq!(fa.kind, FileType::RegularFile);
    }
}
