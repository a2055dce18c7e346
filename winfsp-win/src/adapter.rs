//! The platform-neutral WinFsp file system: every WinFsp callback as a plain method over
//! [`CerFs`], taking and returning plain Rust types, so that all of it is tested on Linux.
//! The `cfg(windows)` glue (`windows.rs`) only converts UTF-16 names and WinFsp's
//! structs and calls one method here per callback. Kept as one file (about 650 lines):
//! it is that list of callbacks, each a few lines over fs-core, in WinFsp's order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use cerfs_fs_core::{Attr, Caller, CerFs, FileKind, FsError, Ino, OpenFlags, SetAttr};

use crate::nt::{
    open_flags, Disposition, WinPath, FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_NORMAL,
    FILE_ATTRIBUTE_READONLY, FILE_DELETE_ON_CLOSE, FILE_DIRECTORY_FILE, FILE_NON_DIRECTORY_FILE,
};
use crate::ntstatus::{
    NtError, NtResult, STATUS_ACCESS_DENIED, STATUS_END_OF_FILE, STATUS_FILE_IS_A_DIRECTORY,
    STATUS_INVALID_PARAMETER, STATUS_NOT_A_DIRECTORY, STATUS_OBJECT_NAME_COLLISION,
    STATUS_OBJECT_NAME_NOT_FOUND, STATUS_OBJECT_PATH_NOT_FOUND,
};

/// Size of the volume WinFsp reports (the store grows as needed; Explorer wants a number).
pub const VOLUME_SIZE: u64 = 1 << 40;
/// Cluster size reported for allocation sizes.
pub const ALLOCATION_UNIT: u64 = 4096;

/// WinFsp's `FSP_FSCTL_FILE_INFO`, neutral: what GetFileInfo and every open report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileInfo {
    /// FILE_ATTRIBUTE_* flags.
    pub file_attributes: u32,
    /// Allocation size (file size rounded up to [`ALLOCATION_UNIT`]).
    pub allocation_size: u64,
    /// Exact length (synthesized files: what a read returns now, or through this handle).
    pub file_size: u64,
    /// Creation time (FILETIME: 100 ns since 1601-01-01 UTC).
    pub creation_time: u64,
    /// Last access time (FILETIME).
    pub last_access_time: u64,
    /// Last write time (FILETIME).
    pub last_write_time: u64,
    /// Change time (FILETIME).
    pub change_time: u64,
    /// File id: fs-core's inode number (stable, never reused).
    pub index_number: u64,
}

impl FileInfo {
    /// The file info for fs-core attributes.
    pub fn from_attr(attr: &Attr) -> FileInfo {
        let (attributes, size) = match attr.kind {
            FileKind::Directory => (FILE_ATTRIBUTE_DIRECTORY, 0),
            FileKind::RegularFile if attr.perm & 0o222 == 0 => (FILE_ATTRIBUTE_READONLY, attr.size),
            FileKind::RegularFile => (FILE_ATTRIBUTE_NORMAL, attr.size),
        };
        FileInfo {
            file_attributes: attributes,
            allocation_size: size.div_ceil(ALLOCATION_UNIT) * ALLOCATION_UNIT,
            file_size: size,
            creation_time: filetime(attr.crtime),
            last_access_time: filetime(attr.atime),
            last_write_time: filetime(attr.mtime),
            change_time: filetime(attr.ctime),
            index_number: attr.ino,
        }
    }
}

/// A `SystemTime` as a Windows FILETIME (100 ns ticks since 1601-01-01 UTC).
pub fn filetime(t: SystemTime) -> u64 {
    const EPOCH_DIFF_SECS: u64 = 11_644_473_600;
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() + EPOCH_DIFF_SECS) * 10_000_000 + u64::from(d.subsec_nanos()) / 100,
        Err(_) => 0,
    }
}

/// The inverse of [`filetime`] (0 and values before 1970 give `None`: "leave it").
pub fn system_time(filetime: u64) -> Option<SystemTime> {
    const EPOCH_DIFF_TICKS: u64 = 11_644_473_600 * 10_000_000;
    let ticks = filetime
        .checked_sub(EPOCH_DIFF_TICKS)
        .filter(|_| filetime != 0)?;
    Some(UNIX_EPOCH + std::time::Duration::from_nanos(ticks.saturating_mul(100)))
}

/// Per-open state: what WinFsp keeps as the `FileContext` of one open (one
/// `FILE_OBJECT`), from Create/Open to Close. WinFsp hands it out by shared reference
/// from any dispatcher thread, so what changes is atomic or behind a mutex.
#[derive(Debug)]
pub struct FileContext {
    /// The path it was opened by (updated by rename).
    path: Mutex<WinPath>,
    /// fs-core inode.
    pub ino: Ino,
    /// File or directory.
    pub kind: FileKind,
    /// fs-core handle (files only; directories are listed by snapshot per ReadDirectory).
    pub fh: Option<u64>,
    /// The fs-core open flags derived from the granted access.
    pub flags: OpenFlags,
    /// Whether this open created the file.
    pub created: bool,
    /// FILE_DELETE_ON_CLOSE or a delete disposition is pending (cleared by set_delete(false)).
    delete_pending: AtomicBool,
    /// The fs-core handle is gone (released, or the upload aborted).
    released: AtomicBool,
}

impl FileContext {
    /// The path this context stands for now.
    pub fn path(&self) -> WinPath {
        lock(&self.path).clone()
    }

    /// Whether a delete is pending for Cleanup.
    pub fn delete_pending(&self) -> bool {
        self.delete_pending.load(Ordering::SeqCst)
    }
}

/// One entry of a ReadDirectory answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirItem {
    /// Entry name (`.` and `..` included below the root).
    pub name: String,
    /// Its file info.
    pub info: FileInfo,
}

/// Access and attributes of a path, as GetSecurityByName reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Security {
    /// FILE_ATTRIBUTE_* flags.
    pub file_attributes: u32,
}

/// The WinFsp file system over a [`CerFs`], platform-neutral.
pub struct WinFs {
    fs: Arc<CerFs>,
    caller: Caller,
}

impl WinFs {
    /// Serves `fs`, every request acting as `caller`.
    ///
    /// Behind Windows' SMB server every request comes from the System process and WinFsp
    /// does not say which SMB client sent it, so one caller stands for all: fs-core's
    /// per-process count.txt memory (pattern b) is shared by all clients (README.md).
    pub fn new(fs: Arc<CerFs>, caller: Caller) -> Self {
        WinFs { fs, caller }
    }

    /// The core.
    pub fn core(&self) -> &CerFs {
        &self.fs
    }

    /// The caller every request acts as.
    pub fn caller(&self) -> Caller {
        self.caller
    }

    /// Resolves a directory that must exist: a missing or non-directory component gives
    /// STATUS_OBJECT_PATH_NOT_FOUND (Win32 ERROR_PATH_NOT_FOUND), as on NTFS.
    fn resolve_dir(&self, path: &WinPath) -> NtResult<Attr> {
        match self.fs.resolve(&self.caller, &path.to_windows()) {
            Ok(a) if a.kind == FileKind::Directory => Ok(a),
            Ok(_) | Err(FsError::NotFound | FsError::NotDir) => Err(NtError::new(
                STATUS_OBJECT_PATH_NOT_FOUND,
                format!("no folder {path}"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Resolves a path: the parent must exist (else PATH_NOT_FOUND), then the name (else
    /// NAME_NOT_FOUND).
    fn resolve(&self, path: &WinPath) -> NtResult<Attr> {
        let Some((parent, name)) = path.split_last() else {
            return Ok(self.fs.getattr(cerfs_fs_core::ROOT_INO, None)?);
        };
        let dir = self.resolve_dir(&parent)?;
        self.fs
            .lookup(&self.caller, dir.ino, name.as_bytes())
            .map_err(|e| match e {
                FsError::NotFound => {
                    NtError::new(STATUS_OBJECT_NAME_NOT_FOUND, format!("no {path}"))
                }
                e => e.into(),
            })
    }

    /// GetSecurityByName: whether `path` exists, and its attributes. No security
    /// descriptor: access is cerfs' own (fs-core refuses what is not allowed).
    pub fn get_security_by_name(&self, path: &str) -> NtResult<Security> {
        let attr = self.resolve(&WinPath::parse(path)?)?;
        Ok(Security {
            file_attributes: FileInfo::from_attr(&attr).file_attributes,
        })
    }

    /// Open (WinFsp calls it for FILE_OPEN, and first for FILE_OPEN_IF, FILE_OVERWRITE,
    /// FILE_OVERWRITE_IF, FILE_SUPERSEDE): an existing file or directory.
    pub fn open(
        &self,
        path: &str,
        create_options: u32,
        granted_access: u32,
    ) -> NtResult<(FileContext, FileInfo)> {
        let path = WinPath::parse(path)?;
        let attr = self.resolve(&path)?;
        check_kind(&path, attr.kind, create_options)?;
        let flags = open_flags(granted_access);
        let fh = match attr.kind {
            FileKind::Directory => None,
            FileKind::RegularFile => Some(self.fs.open(&self.caller, attr.ino, flags)?.fh),
        };
        let ctx = FileContext {
            path: Mutex::new(path),
            ino: attr.ino,
            kind: attr.kind,
            fh,
            flags,
            created: false,
            delete_pending: AtomicBool::new(false),
            released: AtomicBool::new(false),
        };
        if create_options & FILE_DELETE_ON_CLOSE != 0 {
            // Refuse at open what Cleanup could only log.
            if let Err(e) = self.can_delete(&ctx) {
                self.close(ctx);
                return Err(e);
            }
            ctx.delete_pending.store(true, Ordering::SeqCst);
        }
        let info = self.file_info(&ctx)?;
        Ok((ctx, info))
    }

    /// Create (FILE_CREATE, or FILE_OPEN_IF / FILE_OVERWRITE_IF / FILE_SUPERSEDE of a
    /// missing name): a new directory with FILE_DIRECTORY_FILE, else a new file.
    /// `allocation_size` is a hint with nothing to reserve.
    pub fn create(
        &self,
        path: &str,
        create_options: u32,
        granted_access: u32,
        allocation_size: u64,
    ) -> NtResult<(FileContext, FileInfo)> {
        let _ = allocation_size;
        let path = WinPath::parse(path)?;
        let Some((parent, name)) = path.split_last() else {
            return Err(NtError::new(
                STATUS_OBJECT_NAME_COLLISION,
                "the root exists",
            ));
        };
        let dir = self.resolve_dir(&parent)?;
        let flags = open_flags(granted_access);
        let (attr, fh) = if create_options & FILE_DIRECTORY_FILE != 0 {
            (
                self.fs
                    .mkdir(&self.caller, dir.ino, name.as_bytes(), 0o777)?,
                None,
            )
        } else {
            let (attr, opened) =
                self.fs
                    .create(&self.caller, dir.ino, name.as_bytes(), 0o666, flags, true)?;
            (attr, Some(opened.fh))
        };
        let ctx = FileContext {
            path: Mutex::new(path),
            ino: attr.ino,
            kind: attr.kind,
            fh,
            flags,
            created: true,
            delete_pending: AtomicBool::new(create_options & FILE_DELETE_ON_CLOSE != 0),
            released: AtomicBool::new(false),
        };
        let info = self.file_info(&ctx)?;
        Ok((ctx, info))
    }

    /// Overwrite (after Open, for FILE_OVERWRITE, FILE_OVERWRITE_IF, FILE_SUPERSEDE of an
    /// existing file): truncate to zero through the handle, so each kind of file follows
    /// its own truncate rule (count.txt: the handle's buffer starts empty; logs: nothing
    /// stored is removed; committed cabs: refused). Attributes are not stored.
    pub fn overwrite(&self, ctx: &FileContext) -> NtResult<FileInfo> {
        let fh = file_handle(ctx)?;
        let set = SetAttr {
            size: Some(0),
            ..Default::default()
        };
        let attr = self.fs.setattr(&self.caller, ctx.ino, Some(fh), &set)?;
        Ok(FileInfo::from_attr(&attr))
    }

    /// GetFileInfo: attributes as seen through this open (its unflushed size).
    pub fn file_info(&self, ctx: &FileContext) -> NtResult<FileInfo> {
        Ok(FileInfo::from_attr(&self.fs.getattr(ctx.ino, ctx.fh)?))
    }

    /// Read: up to `len` bytes at `offset`; STATUS_END_OF_FILE at or past the end.
    pub fn read(&self, ctx: &FileContext, offset: u64, len: u32) -> NtResult<Vec<u8>> {
        let fh = file_handle(ctx)?;
        let data = self.fs.read(fh, offset, len)?;
        if data.is_empty() && len > 0 {
            return Err(NtError::new(
                STATUS_END_OF_FILE,
                format!("read at {offset}"),
            ));
        }
        Ok(data)
    }

    /// Write: `write_to_eof` writes at the end this handle sees; `constrained_io`
    /// (paging I/O) never extends the file. Returns the bytes taken and the new info.
    pub fn write(
        &self,
        ctx: &FileContext,
        data: &[u8],
        offset: u64,
        write_to_eof: bool,
        constrained_io: bool,
    ) -> NtResult<(u32, FileInfo)> {
        let fh = file_handle(ctx)?;
        let size = self.fs.getattr(ctx.ino, Some(fh))?.size;
        let offset = if write_to_eof { size } else { offset };
        let data = if constrained_io {
            if offset >= size {
                return Ok((0, self.file_info(ctx)?));
            }
            let room = usize::try_from(size - offset).unwrap_or(usize::MAX);
            &data[..data.len().min(room)]
        } else {
            data
        };
        let written = self.fs.write(fh, offset, data)?;
        Ok((written, self.file_info(ctx)?))
    }

    /// SetFileSize: with `set_allocation_size`, only a shrink below the current size
    /// truncates (allocation is a hint); otherwise the size is set through the handle.
    pub fn set_file_size(
        &self,
        ctx: &FileContext,
        new_size: u64,
        set_allocation_size: bool,
    ) -> NtResult<FileInfo> {
        let fh = file_handle(ctx)?;
        if set_allocation_size {
            let size = self.fs.getattr(ctx.ino, Some(fh))?.size;
            if new_size >= size {
                return self.file_info(ctx);
            }
        }
        let set = SetAttr {
            size: Some(new_size),
            ..Default::default()
        };
        let attr = self.fs.setattr(&self.caller, ctx.ino, Some(fh), &set)?;
        Ok(FileInfo::from_attr(&attr))
    }

    /// SetBasicInfo: the last write time is kept (plain files, cabs being written);
    /// attributes and the other times are not stored. Best effort: a time the core does
    /// not take is logged, not an error (Windows' copy engine sets times on everything).
    pub fn set_basic_info(&self, ctx: &FileContext, last_write_time: u64) -> NtResult<FileInfo> {
        if let (Some(mtime), FileKind::RegularFile) = (system_time(last_write_time), ctx.kind) {
            let set = SetAttr {
                mtime: Some(mtime),
                ..Default::default()
            };
            if let Err(e) = self.fs.setattr(&self.caller, ctx.ino, ctx.fh, &set) {
                tracing::info!(path = %ctx.path(), "last write time not kept: {e}");
            }
        }
        self.file_info(ctx)
    }

    /// Flush (FlushFileBuffers; `None`: the volume). For count.txt, settings and logs it
    /// applies what the handle wrote now and returns the verdict to the client — the one
    /// place a Windows client can see STATUS_INVALID_PARAMETER for garbage (Cleanup has
    /// no status). A cab is not committed by a flush (the upload may go on). Either way
    /// what is committed is then synced to disk, as FlushFileBuffers promises.
    pub fn flush(&self, ctx: Option<&FileContext>) -> NtResult<Option<FileInfo>> {
        let Some(ctx) = ctx else {
            self.fs.sync_all()?;
            return Ok(None);
        };
        if let Some(fh) = ctx.fh.filter(|_| !ctx.released.load(Ordering::SeqCst)) {
            self.fs.flush_buffers(fh)?;
        }
        Ok(Some(self.file_info(ctx)?))
    }

    /// SetDelete (a delete disposition, set or cleared): checks now whether the delete
    /// would be allowed, so the client gets the refusal at SetFileInformation; the delete
    /// itself happens at Cleanup.
    pub fn set_delete(&self, ctx: &FileContext, delete: bool) -> NtResult<()> {
        if delete {
            self.can_delete(ctx)?;
        }
        ctx.delete_pending.store(delete, Ordering::SeqCst);
        Ok(())
    }

    /// Whether fs-core would let this be deleted now (its dry run of unlink/rmdir); this
    /// open's own cab upload may be (it is then abandoned at Cleanup).
    fn can_delete(&self, ctx: &FileContext) -> NtResult<()> {
        let path = ctx.path();
        let Some((parent, name)) = path.split_last() else {
            return Err(NtError::new(
                STATUS_ACCESS_DENIED,
                "the root cannot be deleted",
            ));
        };
        let dir = self.resolve_dir(&parent)?;
        let uploading = ctx.fh.filter(|_| !ctx.released.load(Ordering::SeqCst));
        Ok(self
            .fs
            .check_delete(&self.caller, dir.ino, name.as_bytes(), uploading)?)
    }

    /// Cleanup (the last handle to this open is closed): applies what the handle wrote
    /// (`CerFs::flush`, as FUSE does at close), then deletes if `delete` (WinFsp's
    /// FspCleanupDelete). A cab this open was uploading and is asked to delete is
    /// abandoned, not committed. WinFsp's Cleanup has no status: the windows glue logs
    /// the error returned here; nothing else is undone.
    pub fn cleanup(&self, ctx: &FileContext, delete: bool) -> NtResult<()> {
        let live_fh = ctx.fh.filter(|_| !ctx.released.load(Ordering::SeqCst));
        // Deleting its own upload abandons it (fs-core refuses that for any other handle).
        if let (true, Some(fh)) = (delete, live_fh) {
            if self.fs.abort_upload(fh).is_ok() {
                ctx.released.store(true, Ordering::SeqCst);
                return Ok(());
            }
        }
        let applied = match live_fh {
            Some(fh) => self.fs.flush(fh, None).map_err(NtError::from),
            None => Ok(()),
        };
        if !delete {
            return applied;
        }
        let deleted = self.delete(ctx);
        applied.and(deleted)
    }

    fn delete(&self, ctx: &FileContext) -> NtResult<()> {
        let path = ctx.path();
        let Some((parent, name)) = path.split_last() else {
            return Err(NtError::new(
                STATUS_ACCESS_DENIED,
                "the root cannot be deleted",
            ));
        };
        let dir = self.resolve_dir(&parent)?;
        match ctx.kind {
            FileKind::Directory => self.fs.rmdir(&self.caller, dir.ino, name.as_bytes())?,
            FileKind::RegularFile => self.fs.unlink(&self.caller, dir.ino, name.as_bytes())?,
        }
        Ok(())
    }

    /// Close (the open is gone): releases the fs-core handle. Errors reach nobody and are
    /// logged (fs-core's release is the backstop that stores a trailing partial log line).
    pub fn close(&self, ctx: FileContext) {
        if let Some(fh) = ctx.fh {
            if !ctx.released.swap(true, Ordering::SeqCst) {
                if let Err(e) = self.fs.release(fh) {
                    tracing::warn!(path = %ctx.path(), "error at close (the client cannot see it): {e}");
                }
            }
        }
    }

    /// ReadDirectory: the entries after `marker` (the last name WinFsp already has; `None`
    /// from the start), sorted by name, `.` and `..` first below the root. The caller
    /// packs as many as fit and asks again with the last name it sent as the marker.
    pub fn read_directory(
        &self,
        ctx: &FileContext,
        marker: Option<&str>,
    ) -> NtResult<Vec<DirItem>> {
        if ctx.kind != FileKind::Directory {
            return Err(NtError::new(
                STATUS_NOT_A_DIRECTORY,
                format!("{} is a file", ctx.path()),
            ));
        }
        let dh = self.fs.opendir(ctx.ino)?;
        let entries = self.fs.readdir(dh, 0);
        self.fs.releasedir(dh);
        let mut entries = entries?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let mut items = Vec::with_capacity(entries.len() + 2);
        let path = ctx.path();
        if let Some((parent, _)) = path.split_last() {
            let me = self.fs.getattr(ctx.ino, None)?;
            let up = self.resolve_dir(&parent)?;
            items.push(DirItem {
                name: ".".into(),
                info: FileInfo::from_attr(&me),
            });
            items.push(DirItem {
                name: "..".into(),
                info: FileInfo::from_attr(&up),
            });
        }
        for e in entries {
            // An entry that vanished since the listing is simply left out.
            if let Ok(attr) = self.fs.getattr(e.ino, None) {
                items.push(DirItem {
                    name: e.name,
                    info: FileInfo::from_attr(&attr),
                });
            }
        }
        let start = match marker {
            None => 0,
            Some(".") => items.iter().position(|i| i.name == "..").unwrap_or(0),
            Some("..") => items
                .iter()
                .take_while(|i| i.name == "." || i.name == "..")
                .count(),
            Some(m) => items
                .iter()
                .position(|i| i.name != "." && i.name != ".." && i.name.as_str() > m)
                .unwrap_or(items.len()),
        };
        Ok(items.split_off(start))
    }

    /// Rename: `replace_if_exists` false refuses an existing target
    /// (STATUS_OBJECT_NAME_COLLISION). The context follows the file to its new path.
    pub fn rename(
        &self,
        ctx: &FileContext,
        new_path: &str,
        replace_if_exists: bool,
    ) -> NtResult<()> {
        let from = ctx.path();
        let to = WinPath::parse(new_path)?;
        let (Some((from_dir, from_name)), Some((to_dir, to_name))) =
            (from.split_last(), to.split_last())
        else {
            return Err(NtError::new(
                STATUS_INVALID_PARAMETER,
                "cannot rename the root",
            ));
        };
        let src = self.resolve_dir(&from_dir)?;
        let dst = self.resolve_dir(&to_dir)?;
        self.fs.rename(
            &self.caller,
            src.ino,
            from_name.as_bytes(),
            dst.ino,
            to_name.as_bytes(),
            !replace_if_exists,
        )?;
        *lock(&ctx.path) = to;
        Ok(())
    }

    /// GetVolumeInfo: (total, free) bytes.
    pub fn volume_size(&self) -> (u64, u64) {
        (VOLUME_SIZE, VOLUME_SIZE / 2)
    }

    /// What WinFsp's user-mode dispatcher (`FspFileSystemOpCreate`) does with one
    /// NtCreateFile, in terms of the callbacks above: FILE_OPEN → open; FILE_CREATE →
    /// create; FILE_OPEN_IF → open, else create; FILE_OVERWRITE → open + overwrite;
    /// FILE_OVERWRITE_IF and FILE_SUPERSEDE → open + overwrite, else create. Used by the
    /// tests to replay what a Windows client sends; on Windows WinFsp does this itself.
    pub fn nt_create(
        &self,
        path: &str,
        create_options: u32,
        granted_access: u32,
    ) -> NtResult<(FileContext, FileInfo)> {
        let disposition = Disposition::from_create_options(create_options)
            .ok_or_else(|| NtError::new(STATUS_INVALID_PARAMETER, "bad disposition"))?;
        let missing = |e: &NtError| e.status == STATUS_OBJECT_NAME_NOT_FOUND;
        match disposition {
            Disposition::Open => self.open(path, create_options, granted_access),
            Disposition::Create => {
                if self.get_security_by_name(path).is_ok() {
                    return Err(NtError::new(STATUS_OBJECT_NAME_COLLISION, path.to_owned()));
                }
                self.create(path, create_options, granted_access, 0)
            }
            Disposition::OpenIf => match self.open(path, create_options, granted_access) {
                Err(e) if missing(&e) => self.create(path, create_options, granted_access, 0),
                r => r,
            },
            Disposition::Overwrite | Disposition::OverwriteIf | Disposition::Supersede => {
                match self.open(path, create_options, granted_access) {
                    Err(e) if missing(&e) && disposition != Disposition::Overwrite => {
                        self.create(path, create_options, granted_access, 0)
                    }
                    Err(e) => Err(e),
                    Ok((ctx, _)) => match self.overwrite(&ctx) {
                        Ok(info) => Ok((ctx, info)),
                        Err(e) => {
                            self.close(ctx);
                            Err(e)
                        }
                    },
                }
            }
        }
    }
}

/// FILE_DIRECTORY_FILE / FILE_NON_DIRECTORY_FILE against what the path is.
fn check_kind(path: &WinPath, kind: FileKind, create_options: u32) -> NtResult<()> {
    match kind {
        FileKind::Directory if create_options & FILE_NON_DIRECTORY_FILE != 0 => Err(NtError::new(
            STATUS_FILE_IS_A_DIRECTORY,
            format!("{path} is a folder"),
        )),
        FileKind::RegularFile if create_options & FILE_DIRECTORY_FILE != 0 => Err(NtError::new(
            STATUS_NOT_A_DIRECTORY,
            format!("{path} is a file"),
        )),
        _ => Ok(()),
    }
}

/// The live fs-core handle of a file context.
fn file_handle(ctx: &FileContext) -> NtResult<u64> {
    match ctx.fh {
        Some(fh) if !ctx.released.load(Ordering::SeqCst) => Ok(fh),
        Some(_) => Err(FsError::BadHandle.into()),
        None => Err(NtError::new(
            STATUS_FILE_IS_A_DIRECTORY,
            format!("{} is a folder", ctx.path()),
        )),
    }
}

/// Locks a mutex, recovering from poisoning (a panicked thread must not take the share down).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetimes_round_trip() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_177_342_343);
        let ft = filetime(t);
        assert_eq!(ft, (1_177_342_343 + 11_644_473_600) * 10_000_000);
        assert_eq!(system_time(ft), Some(t));
        assert_eq!(system_time(0), None);
    }
}
