//! The cerfs filesystem logic, platform-neutral: it presents the [MS-CER] share (share
//! paths, the CER file formats, synthesized files, open-handle semantics) over any
//! [`cerfs_db::Store`], and takes CER V2 reports into the same buckets. No FUSE, WinFsp or
//! HTTP types here: the adapters translate to and from this crate's inode-keyed API and
//! its [`FsError`]. Every rule of the share lives here, once (docs/architecture.md).

pub mod admin;
mod area;
mod attributes;
mod cab_writer;
pub mod cer2;
pub mod content_change;
pub mod count_file;
mod directory;
mod error;
mod filesystem;
mod handle;
mod log_handle;
pub mod log_line;
mod memory_budget;
mod served;
pub mod settings_file;
pub mod share_path;
mod space;
pub mod stats;
mod stored_cab;
mod sync;
mod types;

pub use admin::{subpath_parts, SettingsTarget};
pub use cab_writer::DEFAULT_CAB_TAIL_BUDGET;
pub use cab_writer::DEFAULT_MAX_CAB_SIZE;
pub use cer2::{DumpOffer, ReportPolicy, TakenReport};
pub use cerfs_db::{Ino, ROOT_INO};
pub use content_change::{ChangeListener, Changed, Content};
pub use directory::SpecialNode;
pub use error::FsError;
pub use filesystem::CerFs;
pub use log_handle::DEFAULT_LOG_BUDGET;
pub use memory_budget::MemoryBudget;
pub use space::{SpaceLimits, SpaceStatus, MAX_STORE_SETTING, MIN_FREE_SETTING};
pub use stored_cab::StoredCab;
pub use types::{Attr, Caller, DirEntry, FileKind, OpenFlags, Opened, ProcessOf, SetAttr};

/// Result type of fs-core.
pub type Result<T> = std::result::Result<T, FsError>;
