//! The one place where fs-core's errors become errnos, and where refusals are logged.

use std::fmt;

use cerfs_fs_core::FsError;
use fuser::Errno;
use tracing::{error, info, trace, warn};

/// The one errno mapping of cerfs on Unix.
pub(crate) fn errno(e: &FsError) -> Errno {
    match e {
        FsError::NotFound => Errno::ENOENT,
        FsError::Exists => Errno::EEXIST,
        FsError::NotDir => Errno::ENOTDIR,
        FsError::IsDir => Errno::EISDIR,
        FsError::NotEmpty => Errno::ENOTEMPTY,
        FsError::InvalidName(_) => Errno::EINVAL,
        FsError::NameTooLong(_) | FsError::ComponentTooLong(_) => Errno::ENAMETOOLONG,
        FsError::InvalidContent(_) => Errno::EINVAL,
        FsError::NotPermitted(_) => Errno::EPERM,
        FsError::AccessDenied(_) => Errno::EACCES,
        FsError::BadHandle => Errno::EBADF,
        // A cab past the largest accepted; smbd shows it as STATUS_DISK_FULL, which is what
        // a Windows client meets on a share whose quota a file would exceed.
        FsError::TooLarge(_) => Errno::EFBIG,
        // smbd: STATUS_INSUFFICIENT_RESOURCES (not a full disk: it passes).
        FsError::Exhausted(_) => Errno::ENOBUFS,
        FsError::NoSpace => Errno::ENOSPC,
        FsError::Busy => Errno::EBUSY,
        FsError::Store(_) => Errno::EIO,
    }
}

/// Logs why `op` on `what` was refused and returns the errno to reply with. Store failures
/// are errors, a full store a warning, a missed lookup a trace (it is very frequent),
/// every other refusal of client input is info.
pub(crate) fn refuse(op: &'static str, what: fmt::Arguments<'_>, e: &FsError) -> Errno {
    cerfs_fs_core::stats::STATS.refused(cerfs_fs_core::stats::Adapter::Fuse, e);
    let errno = errno(e);
    let code = errno.code();
    match e {
        FsError::Store(_) => error!(op, code, "{op} {what}: {e}"),
        FsError::NoSpace | FsError::Exhausted(_) | FsError::TooLarge(_) => {
            warn!(op, code, "{op} {what}: {e}")
        }
        FsError::NotFound if op == "lookup" => trace!(op, code, "{op} {what}: {e}"),
        _ => info!(op, code, "{op} {what}: {e}"),
    }
    errno
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_its_errno() {
        let cases = [
            (FsError::NotFound, libc::ENOENT),
            (FsError::Exists, libc::EEXIST),
            (FsError::NotDir, libc::ENOTDIR),
            (FsError::IsDir, libc::EISDIR),
            (FsError::NotEmpty, libc::ENOTEMPTY),
            (FsError::InvalidName("x".into()), libc::EINVAL),
            (FsError::NameTooLong(261), libc::ENAMETOOLONG),
            (FsError::ComponentTooLong(256), libc::ENAMETOOLONG),
            (FsError::InvalidContent("x".into()), libc::EINVAL),
            (FsError::NotPermitted("x"), libc::EPERM),
            (FsError::AccessDenied("x"), libc::EACCES),
            (FsError::BadHandle, libc::EBADF),
            (FsError::TooLarge(1), libc::EFBIG),
            (FsError::Exhausted("x"), libc::ENOBUFS),
            (FsError::NoSpace, libc::ENOSPC),
            (FsError::Busy, libc::EBUSY),
        ];
        for (e, code) in cases {
            assert_eq!(errno(&e).code(), code, "{e:?}");
        }
    }
}
