//! cerfs on Windows: the [MS-CER] share served through WinFsp (and shared by Windows' own
//! SMB server), over the same [`cerfs_fs_core::CerFs`] as the FUSE adapter.
//!
//! Split in two so that almost all of it is built and tested on Linux:
//! - the platform-neutral part ([`WinFs`], [`FileContext`], [`nt`], [`ntstatus`]): every
//!   WinFsp callback as a plain method over `CerFs`, fs-core's errors as NTSTATUS;
//! - the `cfg(windows)` part (`windows` module): the `winfsp::FileSystemContext` impl,
//!   one line per callback into the neutral part, and [`mount`](crate::mount) for
//!   `cerfs mount` (a drive letter or a folder). Unverified until the Windows CI
//!   workflow has run (README.md).

mod adapter;
pub mod nt;
pub mod ntstatus;
#[cfg(windows)]
mod windows;

pub use adapter::{
    filetime, system_time, DirItem, FileContext, FileInfo, Security, WinFs, ALLOCATION_UNIT,
    VOLUME_SIZE,
};
pub use ntstatus::{NtError, NtResult};
#[cfg(windows)]
pub use windows::{mount, MountError, WinfspMount};
