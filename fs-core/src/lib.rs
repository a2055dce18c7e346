//! The cerfs filesystem logic, platform-neutral: it presents the [MS-CER] share (share
//! paths, the CER file formats, synthesized files, open-handle semantics) over any
//! [`cerfs_db::Store`]. No FUSE or WinFsp types here: the adapters translate to and from
//! this crate's inode-keyed API and its [`FsError`].

pub mod admin;
mod area;
pub mod count_file;
mod error;
mod filesystem;
mod handle;
pub mod log_line;
pub mod settings_file;
pub mod share_path;

pub use admin::{subpath_parts, SettingsTarget};
pub use cerfs_db::{Ino, ROOT_INO};
pub use error::FsError;
pub use filesystem::{
    Attr, Caller, CerFs, DirEntry, FileKind, OpenFlags, Opened, ProcessOf, SetAttr,
};

/// Result type of fs-core.
pub type Result<T> = std::result::Result<T, FsError>;
