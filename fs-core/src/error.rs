//! Typed errors of the filesystem core. Adapters map each variant to an errno / NTSTATUS
//! in one place.

use cerfs_db::StoreError;

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// No such file or directory.
    #[error("not found")]
    NotFound,
    /// The name is already taken.
    #[error("already exists")]
    Exists,
    /// A path component is not a directory.
    #[error("not a directory")]
    NotDir,
    /// The operation needs a file but got a directory.
    #[error("is a directory")]
    IsDir,
    /// The directory is not empty.
    #[error("directory not empty")]
    NotEmpty,
    /// A name breaks MS-CER R3 (non-ASCII, forbidden character or reserved device name).
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// The path, as a Windows client sees it under the share root, is over 260 characters (R4).
    #[error("path too long: {0} characters as the client sees it (limit 260)")]
    NameTooLong(usize),
    /// One name is longer than 255 bytes (`NAME_MAX`, and what Windows allows).
    #[error("a name of {0} bytes (at most 255)")]
    ComponentTooLong(usize),
    /// Content written to a synthesized file does not parse or is not allowed.
    #[error("invalid content: {0}")]
    InvalidContent(String),
    /// The object may not be changed this way (committed cab, fixed directory, ...).
    #[error("not permitted: {0}")]
    NotPermitted(&'static str),
    /// Only an admin (uid 0) may do this: change policy.txt or status.txt.
    #[error("access denied: {0}")]
    AccessDenied(&'static str),
    /// The file handle is unknown or was not opened for this.
    #[error("bad file handle")]
    BadHandle,
    /// A cab would grow past the largest cab the share accepts (`--max-cab-size`).
    #[error("file too large: cabs may be at most {0} bytes")]
    TooLarge(u64),
    /// A limit shared by all clients is reached (the memory held for unfinished log
    /// lines): the request may succeed later.
    #[error("server busy: {0}")]
    Exhausted(&'static str),
    /// No space left in the store.
    #[error("no space left")]
    NoSpace,
    /// The object is in use (a cab still being written by another handle).
    #[error("busy")]
    Busy,
    /// The store failed.
    #[error("store: {0}")]
    Store(StoreError),
}

impl From<StoreError> for FsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => FsError::NotFound,
            StoreError::Exists(_) => FsError::Exists,
            StoreError::NotEmpty(_) => FsError::NotEmpty,
            StoreError::NotDir(_) => FsError::NotDir,
            StoreError::Full => FsError::NoSpace,
            StoreError::IsDir(_) => FsError::IsDir,
            StoreError::NoBucket(_) => FsError::NotFound,
            StoreError::CabComplete(_) => FsError::NotPermitted("a committed cab is read-only"),
            StoreError::Invalid(why) => FsError::InvalidContent(why),
            other => FsError::Store(other),
        }
    }
}
