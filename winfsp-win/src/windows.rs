//! The Windows-only glue: winfsp-rs 0.13's `FileSystemContext`, each callback one call into
//! the neutral [`WinFs`], and the mount used by `cerfs mount` on Windows.
//!
//! UNVERIFIED: this module is compiled only for Windows targets and has not been built
//! here (no Windows target, no WinFsp SDK on the development machine). It was written
//! against the winfsp 0.13.2 sources (`filesystem/context.rs`, `host/fshost.rs`,
//! `host/volumeparams.rs`); `.github/workflows/windows.yml` builds and exercises it.

use std::ffi::{c_void, OsString};
use std::path::Path;
use std::sync::Arc;

use cerfs_fs_core::{Caller, CerFs};
use winfsp::constants::FspCleanupFlags;
use winfsp::filesystem::{
    DirInfo, DirMarker, FileInfo as FspFileInfo, FileSecurity, FileSystemContext, OpenFileInfo,
    VolumeInfo, WideNameInfo,
};
use winfsp::host::{FileSystemHost, VolumeParams};
use winfsp::{FspError, FspInit, U16CStr};

use crate::adapter::{FileContext, FileInfo, WinFs};
use crate::ntstatus::NtError;

/// The identity every request acts as on Windows: the System process (Windows' SMB
/// server opens files from it) and no admin rights (settings change through the CLI).
const WINDOWS_CALLER: Caller = Caller {
    pid: 4,
    uid: 65534,
    gid: 65534,
};

/// The `FileSystemContext` WinFsp drives.
struct CerWinFsp(WinFs);

fn name(p: &U16CStr) -> String {
    p.to_string_lossy()
}

fn fsp(op: &'static str, e: NtError) -> FspError {
    tracing::info!(op, status = e.status, "{op}: {e}");
    FspError::NTSTATUS(e.status as i32)
}

fn fill(out: &mut FspFileInfo, info: &FileInfo) {
    out.file_attributes = info.file_attributes;
    out.reparse_tag = 0;
    out.allocation_size = info.allocation_size;
    out.file_size = info.file_size;
    out.creation_time = info.creation_time;
    out.last_access_time = info.last_access_time;
    out.last_write_time = info.last_write_time;
    out.change_time = info.change_time;
    out.index_number = info.index_number;
    out.hard_links = 0;
    out.ea_size = 0;
}

impl FileSystemContext for CerWinFsp {
    type FileContext = FileContext;

    fn get_security_by_name(
        &self,
        file_name: &U16CStr,
        _security_descriptor: Option<&mut [c_void]>,
        _reparse_point_resolver: impl FnOnce(&U16CStr) -> Option<FileSecurity>,
    ) -> winfsp::Result<FileSecurity> {
        let s = self
            .0
            .get_security_by_name(&name(file_name))
            .map_err(|e| fsp("lookup", e))?;
        Ok(FileSecurity {
            reparse: false,
            sz_security_descriptor: 0,
            attributes: s.file_attributes,
        })
    }

    fn open(
        &self,
        file_name: &U16CStr,
        create_options: u32,
        granted_access: u32,
        file_info: &mut OpenFileInfo,
    ) -> winfsp::Result<FileContext> {
        let (ctx, info) = self
            .0
            .open(&name(file_name), create_options, granted_access)
            .map_err(|e| fsp("open", e))?;
        fill(file_info.as_mut(), &info);
        Ok(ctx)
    }

    fn close(&self, context: FileContext) {
        self.0.close(context)
    }

    fn create(
        &self,
        file_name: &U16CStr,
        create_options: u32,
        granted_access: u32,
        _file_attributes: u32,
        _security_descriptor: Option<&[c_void]>,
        allocation_size: u64,
        _extra_buffer: Option<&[u8]>,
        _extra_buffer_is_reparse_point: bool,
        file_info: &mut OpenFileInfo,
    ) -> winfsp::Result<FileContext> {
        let (ctx, info) = self
            .0
            .create(
                &name(file_name),
                create_options,
                granted_access,
                allocation_size,
            )
            .map_err(|e| fsp("create", e))?;
        fill(file_info.as_mut(), &info);
        Ok(ctx)
    }

    fn cleanup(&self, context: &FileContext, _file_name: Option<&U16CStr>, flags: u32) {
        let delete = flags & FspCleanupFlags::FspCleanupDelete as u32 != 0;
        if let Err(e) = self.0.cleanup(context, delete) {
            // Cleanup has no status: the client's CloseHandle succeeds (README.md).
            tracing::warn!(path = %context.path(), "cleanup (the client cannot see it): {e}");
        }
    }

    fn flush(
        &self,
        context: Option<&FileContext>,
        file_info: &mut FspFileInfo,
    ) -> winfsp::Result<()> {
        if let Some(info) = self.0.flush(context).map_err(|e| fsp("flush", e))? {
            fill(file_info, &info);
        }
        Ok(())
    }

    fn get_file_info(
        &self,
        context: &FileContext,
        file_info: &mut FspFileInfo,
    ) -> winfsp::Result<()> {
        fill(
            file_info,
            &self.0.file_info(context).map_err(|e| fsp("getattr", e))?,
        );
        Ok(())
    }

    fn overwrite(
        &self,
        context: &FileContext,
        _file_attributes: u32,
        _replace_file_attributes: bool,
        _allocation_size: u64,
        _extra_buffer: Option<&[u8]>,
        file_info: &mut FspFileInfo,
    ) -> winfsp::Result<()> {
        fill(
            file_info,
            &self.0.overwrite(context).map_err(|e| fsp("overwrite", e))?,
        );
        Ok(())
    }

    fn read_directory(
        &self,
        context: &FileContext,
        _pattern: Option<&U16CStr>,
        marker: DirMarker,
        buffer: &mut [u8],
    ) -> winfsp::Result<u32> {
        let marker = marker.inner_as_cstr().map(|m| m.to_string_lossy());
        let items = self
            .0
            .read_directory(context, marker.as_deref())
            .map_err(|e| fsp("readdir", e))?;
        let mut cursor = 0u32;
        for item in items {
            let mut entry: DirInfo = DirInfo::new();
            fill(entry.file_info_mut(), &item.info);
            entry.set_name(&item.name)?;
            if !entry.append_to_buffer(buffer, &mut cursor) {
                // Full: WinFsp asks again with the last name it got as the marker.
                return Ok(cursor);
            }
        }
        DirInfo::<255>::finalize_buffer(buffer, &mut cursor);
        Ok(cursor)
    }

    fn rename(
        &self,
        context: &FileContext,
        _file_name: &U16CStr,
        new_file_name: &U16CStr,
        replace_if_exists: bool,
    ) -> winfsp::Result<()> {
        self.0
            .rename(context, &name(new_file_name), replace_if_exists)
            .map_err(|e| fsp("rename", e))
    }

    fn set_basic_info(
        &self,
        context: &FileContext,
        _file_attributes: u32,
        _creation_time: u64,
        _last_access_time: u64,
        last_write_time: u64,
        _last_change_time: u64,
        file_info: &mut FspFileInfo,
    ) -> winfsp::Result<()> {
        let info = self
            .0
            .set_basic_info(context, last_write_time)
            .map_err(|e| fsp("setattr", e))?;
        fill(file_info, &info);
        Ok(())
    }

    fn set_delete(
        &self,
        context: &FileContext,
        _file_name: &U16CStr,
        delete_file: bool,
    ) -> winfsp::Result<()> {
        self.0
            .set_delete(context, delete_file)
            .map_err(|e| fsp("delete", e))
    }

    fn set_file_size(
        &self,
        context: &FileContext,
        new_size: u64,
        set_allocation_size: bool,
        file_info: &mut FspFileInfo,
    ) -> winfsp::Result<()> {
        let info = self
            .0
            .set_file_size(context, new_size, set_allocation_size)
            .map_err(|e| fsp("truncate", e))?;
        fill(file_info, &info);
        Ok(())
    }

    fn read(&self, context: &FileContext, buffer: &mut [u8], offset: u64) -> winfsp::Result<u32> {
        let len = u32::try_from(buffer.len()).unwrap_or(u32::MAX);
        let data = self
            .0
            .read(context, offset, len)
            .map_err(|e| fsp("read", e))?;
        buffer[..data.len()].copy_from_slice(&data);
        Ok(data.len() as u32)
    }

    fn write(
        &self,
        context: &FileContext,
        buffer: &[u8],
        offset: u64,
        write_to_eof: bool,
        constrained_io: bool,
        file_info: &mut FspFileInfo,
    ) -> winfsp::Result<u32> {
        let (written, info) = self
            .0
            .write(context, buffer, offset, write_to_eof, constrained_io)
            .map_err(|e| fsp("write", e))?;
        fill(file_info, &info);
        Ok(written)
    }

    fn get_volume_info(&self, out_volume_info: &mut VolumeInfo) -> winfsp::Result<()> {
        let (total, free) = self.0.volume_size();
        out_volume_info.total_size = total;
        out_volume_info.free_size = free;
        out_volume_info.set_volume_label("cer");
        Ok(())
    }
}

/// Why mounting failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// WinFsp is not installed (winfsp-x64.dll not found) or failed to initialise.
    #[error("WinFsp is not available (install it: winget install WinFsp.WinFsp): {0}")]
    Init(FspError),
    /// The WinFsp file system could not be created.
    #[error("cannot create the WinFsp file system: {0}")]
    Create(FspError),
    /// The drive letter or folder could not be used.
    #[error(
        "cannot mount at {mountpoint} (a free drive letter like X:, or a new folder in an \
         existing one): {source}"
    )]
    Mount {
        /// The mount point asked for.
        mountpoint: String,
        /// WinFsp's error.
        source: FspError,
    },
    /// The dispatcher did not start.
    #[error("cannot start the WinFsp dispatcher: {0}")]
    Start(FspError),
}

/// A mounted cerfs volume; dropping it stops the dispatcher and unmounts.
pub struct WinfspMount {
    host: FileSystemHost<CerWinFsp>,
    _init: FspInit,
}

impl WinfspMount {
    /// Stops serving and removes the mount point.
    pub fn unmount(self) {
        drop(self)
    }
}

impl Drop for WinfspMount {
    fn drop(&mut self) {
        self.host.stop();
        self.host.unmount();
    }
}

/// Mounts `fs` (a `CerFs`, or an `Arc` of one shared with admin tooling) at `mountpoint`:
/// a drive letter (`X:`) or a folder path (WinFsp creates it; its parent must exist).
/// Then serves until the returned mount is dropped. Metadata is never cached by the
/// kernel (file_info_timeout 0: count.txt and the logs change behind the client's back),
/// and every Cleanup reaches cerfs (that is where changes are applied).
pub fn mount(fs: impl Into<Arc<CerFs>>, mountpoint: &Path) -> Result<WinfspMount, MountError> {
    let init = winfsp::winfsp_init().map_err(MountError::Init)?;
    let mut params = VolumeParams::new();
    params
        .filesystem_name("cerfs")
        .sector_size(4096)
        .sectors_per_allocation_unit(1)
        .max_component_length(255)
        .volume_serial_number(0xCE4F_0001)
        .case_sensitive_search(false)
        .case_preserved_names(true)
        .unicode_on_disk(true)
        .persistent_acls(false)
        .post_cleanup_when_modified_only(false)
        .flush_and_purge_on_cleanup(true)
        .file_info_timeout(0);
    let context = CerWinFsp(WinFs::new(fs.into(), WINDOWS_CALLER));
    let mut host = FileSystemHost::new(params, context).map_err(MountError::Create)?;
    let point: OsString = mountpoint.as_os_str().to_os_string();
    host.mount(point).map_err(|source| MountError::Mount {
        mountpoint: mountpoint.display().to_string(),
        source,
    })?;
    if let Err(e) = host.start() {
        host.unmount();
        return Err(MountError::Start(e));
    }
    Ok(WinfspMount { host, _init: init })
}
