//! NTSTATUS values, and the one place where fs-core's errors become NTSTATUS (the
//! counterpart of fuse-unix's `errno.rs`). Values from the Windows SDK's `ntstatus.h`.

use cerfs_fs_core::FsError;

/// Success.
pub const STATUS_SUCCESS: u32 = 0x0000_0000;
/// An unsupported operation (WinFsp's answer for callbacks we do not implement).
pub const STATUS_INVALID_DEVICE_REQUEST: u32 = 0xC000_0010;
/// `FsError::BadHandle`: unknown handle, or a write through a handle opened read-only.
pub const STATUS_INVALID_HANDLE: u32 = 0xC000_0008;
/// `FsError::InvalidContent` (count.txt garbage or lower counters, a bad settings line, a
/// rewritten log line) and malformed requests (a `\` path that is not absolute, ...).
pub const STATUS_INVALID_PARAMETER: u32 = 0xC000_000D;
/// A read at or past the end of the file (what WinFsp file systems answer there).
pub const STATUS_END_OF_FILE: u32 = 0xC000_0011;
/// `FsError::NotPermitted` (committed cabs, counters, logs, the fixed folders, CER renames)
/// and `FsError::AccessDenied` (a non-admin changing policy.txt/status.txt).
pub const STATUS_ACCESS_DENIED: u32 = 0xC000_0022;
/// `FsError::InvalidName`: a name breaking R3 (non-ASCII, `<>:"/\|?*`, device names).
pub const STATUS_OBJECT_NAME_INVALID: u32 = 0xC000_0033;
/// `FsError::NotFound` on the last component of a path.
pub const STATUS_OBJECT_NAME_NOT_FOUND: u32 = 0xC000_0034;
/// `FsError::Exists`: FILE_CREATE of an existing name, rename without replace onto a name.
pub const STATUS_OBJECT_NAME_COLLISION: u32 = 0xC000_0035;
/// A missing (or non-directory) component before the last one: Win32 ERROR_PATH_NOT_FOUND.
pub const STATUS_OBJECT_PATH_NOT_FOUND: u32 = 0xC000_003A;
/// `FsError::Busy`: a cab still being uploaded through another handle.
pub const STATUS_SHARING_VIOLATION: u32 = 0xC000_0043;
/// `FsError::Exhausted`: a limit shared by all clients is reached; retry later.
pub const STATUS_INSUFFICIENT_RESOURCES: u32 = 0xC000_009A;
/// `FsError::NoSpace`: the database's disk is full.
pub const STATUS_DISK_FULL: u32 = 0xC000_007F;
/// `FsError::IsDir`: a file operation on a directory (or FILE_NON_DIRECTORY_FILE on one).
pub const STATUS_FILE_IS_A_DIRECTORY: u32 = 0xC000_00BA;
/// `FsError::NotEmpty`: deleting a folder that has entries.
pub const STATUS_DIRECTORY_NOT_EMPTY: u32 = 0xC000_0101;
/// `FsError::NotDir`: a directory operation on a file (or FILE_DIRECTORY_FILE on one).
pub const STATUS_NOT_A_DIRECTORY: u32 = 0xC000_0103;
/// `FsError::NameTooLong`: the path as the client sees it is over 260 characters (R4);
/// `FsError::ComponentTooLong`: one name over 255 bytes.
pub const STATUS_NAME_TOO_LONG: u32 = 0xC000_0106;
/// `FsError::Store`: any other storage failure (logged at error level).
pub const STATUS_IO_DEVICE_ERROR: u32 = 0xC000_0185;
/// `FsError::TooLarge`: a cab past the largest cab accepted (Win32 ERROR_FILE_TOO_LARGE,
/// "the file size exceeds the limit allowed").
pub const STATUS_FILE_TOO_LARGE: u32 = 0xC000_0904;

/// The NTSTATUS for an fs-core error (the table in README.md).
pub fn ntstatus(e: &FsError) -> u32 {
    match e {
        FsError::NotFound => STATUS_OBJECT_NAME_NOT_FOUND,
        FsError::Exists => STATUS_OBJECT_NAME_COLLISION,
        FsError::NotDir => STATUS_NOT_A_DIRECTORY,
        FsError::IsDir => STATUS_FILE_IS_A_DIRECTORY,
        FsError::NotEmpty => STATUS_DIRECTORY_NOT_EMPTY,
        FsError::InvalidName(_) => STATUS_OBJECT_NAME_INVALID,
        FsError::NameTooLong(_) | FsError::ComponentTooLong(_) => STATUS_NAME_TOO_LONG,
        FsError::InvalidContent(_) => STATUS_INVALID_PARAMETER,
        FsError::NotPermitted(_) => STATUS_ACCESS_DENIED,
        FsError::AccessDenied(_) => STATUS_ACCESS_DENIED,
        FsError::BadHandle => STATUS_INVALID_HANDLE,
        FsError::TooLarge(_) => STATUS_FILE_TOO_LARGE,
        FsError::Exhausted(_) => STATUS_INSUFFICIENT_RESOURCES,
        FsError::NoSpace => STATUS_DISK_FULL,
        FsError::Busy => STATUS_SHARING_VIOLATION,
        FsError::Store(_) => STATUS_IO_DEVICE_ERROR,
    }
}

/// The symbolic name of a status this crate returns (for logs and test messages).
pub fn status_name(status: u32) -> &'static str {
    match status {
        STATUS_SUCCESS => "STATUS_SUCCESS",
        STATUS_INVALID_DEVICE_REQUEST => "STATUS_INVALID_DEVICE_REQUEST",
        STATUS_INVALID_HANDLE => "STATUS_INVALID_HANDLE",
        STATUS_INVALID_PARAMETER => "STATUS_INVALID_PARAMETER",
        STATUS_END_OF_FILE => "STATUS_END_OF_FILE",
        STATUS_ACCESS_DENIED => "STATUS_ACCESS_DENIED",
        STATUS_OBJECT_NAME_INVALID => "STATUS_OBJECT_NAME_INVALID",
        STATUS_OBJECT_NAME_NOT_FOUND => "STATUS_OBJECT_NAME_NOT_FOUND",
        STATUS_OBJECT_NAME_COLLISION => "STATUS_OBJECT_NAME_COLLISION",
        STATUS_OBJECT_PATH_NOT_FOUND => "STATUS_OBJECT_PATH_NOT_FOUND",
        STATUS_SHARING_VIOLATION => "STATUS_SHARING_VIOLATION",
        STATUS_DISK_FULL => "STATUS_DISK_FULL",
        STATUS_INSUFFICIENT_RESOURCES => "STATUS_INSUFFICIENT_RESOURCES",
        STATUS_FILE_IS_A_DIRECTORY => "STATUS_FILE_IS_A_DIRECTORY",
        STATUS_DIRECTORY_NOT_EMPTY => "STATUS_DIRECTORY_NOT_EMPTY",
        STATUS_NOT_A_DIRECTORY => "STATUS_NOT_A_DIRECTORY",
        STATUS_NAME_TOO_LONG => "STATUS_NAME_TOO_LONG",
        STATUS_IO_DEVICE_ERROR => "STATUS_IO_DEVICE_ERROR",
        STATUS_FILE_TOO_LARGE => "STATUS_FILE_TOO_LARGE",
        _ => "NTSTATUS",
    }
}

/// A refused WinFsp request: the NTSTATUS the client gets, and why (for the log).
#[derive(Debug, thiserror::Error)]
#[error("{} ({status:#010x}): {why}", status_name(*.status))]
pub struct NtError {
    /// The NTSTATUS returned to WinFsp (an error value, never STATUS_SUCCESS).
    pub status: u32,
    /// What was refused and why.
    pub why: String,
}

impl NtError {
    /// An error with an explicit status.
    pub fn new(status: u32, why: impl Into<String>) -> Self {
        NtError {
            status,
            why: why.into(),
        }
    }
}

impl From<FsError> for NtError {
    fn from(e: FsError) -> Self {
        NtError {
            status: ntstatus(&e),
            why: e.to_string(),
        }
    }
}

/// Result of the WinFsp mapping.
pub type NtResult<T> = std::result::Result<T, NtError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_its_status() {
        let cases = [
            (FsError::NotFound, 0xC000_0034),
            (FsError::Exists, 0xC000_0035),
            (FsError::NotDir, 0xC000_0103),
            (FsError::IsDir, 0xC000_00BA),
            (FsError::NotEmpty, 0xC000_0101),
            (FsError::InvalidName("x".into()), 0xC000_0033),
            (FsError::NameTooLong(261), 0xC000_0106),
            (FsError::ComponentTooLong(256), 0xC000_0106),
            (FsError::InvalidContent("x".into()), 0xC000_000D),
            (FsError::NotPermitted("x"), 0xC000_0022),
            (FsError::AccessDenied("x"), 0xC000_0022),
            (FsError::BadHandle, 0xC000_0008),
            (FsError::TooLarge(1), 0xC000_0904),
            (FsError::Exhausted("x"), 0xC000_009A),
            (FsError::NoSpace, 0xC000_007F),
            (FsError::Busy, 0xC000_0043),
        ];
        for (e, status) in cases {
            assert_eq!(ntstatus(&e), status, "{e:?}");
            assert_ne!(status_name(ntstatus(&e)), "NTSTATUS", "{e:?} has a name");
        }
    }

    #[test]
    fn errors_display_their_status_name() {
        let e = NtError::from(FsError::InvalidContent("garbage".into()));
        assert_eq!(e.status, STATUS_INVALID_PARAMETER);
        assert!(
            e.to_string()
                .starts_with("STATUS_INVALID_PARAMETER (0xc000000d)"),
            "{e}"
        );
    }
}
