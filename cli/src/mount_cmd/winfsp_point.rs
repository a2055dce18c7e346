//! Where `cerfs mount` mounts on Windows, by WinFsp's rules: `X:` is a drive letter; any
//! other path is a folder, which WinFsp creates itself (as a mount point) and removes at
//! unmount, and which therefore must not exist. `cerfs mount` also takes an existing empty
//! folder, as a Unix mountpoint is: it is removed for the mount and created again after.
//!
//! Only std: compiled for Windows, where `windows.rs` uses it, and for the unit tests on
//! every platform.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A mount point ready for WinFsp.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MountPoint {
    /// A drive letter, `X:`.
    Drive(PathBuf),
    /// A folder that does not exist (WinFsp creates it).
    NewFolder(PathBuf),
    /// An empty folder the user gave, removed for the mount: [`MountPoint::restore`]
    /// creates it again.
    EmptyFolder(PathBuf),
}

impl MountPoint {
    /// Reads the `MOUNTPOINT` argument. An existing empty folder is removed here; a file or
    /// a folder with entries is refused (nothing is changed).
    pub(crate) fn prepare(arg: &Path) -> Result<MountPoint> {
        let path = trim_separators(arg);
        if is_drive(&path) {
            return Ok(MountPoint::Drive(path));
        }
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(MountPoint::NewFolder(path))
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot use mountpoint {}", path.display()))
            }
        };
        if !meta.is_dir() {
            bail!(
                "mountpoint {} is a file: give a free drive letter (X:) or a folder that is \
                 empty or does not exist yet",
                path.display()
            );
        }
        let mut entries = fs::read_dir(&path)
            .with_context(|| format!("cannot list mountpoint {}", path.display()))?;
        if entries.next().is_some() {
            bail!(
                "mountpoint {} is not empty: give a free drive letter (X:) or a folder that is \
                 empty or does not exist yet",
                path.display()
            );
        }
        // WinFsp creates the folder itself and refuses one that exists.
        fs::remove_dir(&path).with_context(|| {
            format!(
                "cannot remove the empty folder {} for WinFsp to mount there",
                path.display()
            )
        })?;
        Ok(MountPoint::EmptyFolder(path))
    }

    /// The path to hand to WinFsp.
    pub(crate) fn path(&self) -> &Path {
        match self {
            MountPoint::Drive(p) | MountPoint::NewFolder(p) | MountPoint::EmptyFolder(p) => p,
        }
    }

    /// After the unmount (or a failed mount): the empty folder the user gave exists again.
    pub(crate) fn restore(&self) -> Result<()> {
        match self {
            MountPoint::EmptyFolder(path) => match fs::create_dir(path) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    Err(e).with_context(|| format!("cannot create folder {} again", path.display()))
                }
                _ => Ok(()),
            },
            MountPoint::Drive(_) | MountPoint::NewFolder(_) => Ok(()),
        }
    }
}

/// `X:\` is the drive `X:`, `C:\cer\` the folder `C:\cer`: WinFsp reads a path with a
/// trailing separator as a folder it cannot use.
fn trim_separators(arg: &Path) -> PathBuf {
    match arg.to_str().map(|s| s.trim_end_matches(['\\', '/'])) {
        Some(trimmed) if !trimmed.is_empty() => PathBuf::from(trimmed),
        _ => arg.to_path_buf(),
    }
}

/// `X:`: what WinFsp takes as a drive letter.
fn is_drive(path: &Path) -> bool {
    matches!(path.to_str().map(str::as_bytes), Some([letter, b':']) if letter.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn drive_letters_with_or_without_a_separator() {
        for arg in ["X:", "x:", "X:\\", "X:/"] {
            let point = MountPoint::prepare(Path::new(arg)).unwrap();
            assert_eq!(point.path(), Path::new(&arg[..2]), "{arg}");
            assert!(matches!(point, MountPoint::Drive(_)), "{arg}");
        }
    }

    #[test]
    fn a_missing_folder_is_left_for_winfsp_to_create() {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("share");
        let arg = format!("{}/", share.display());
        let point = MountPoint::prepare(Path::new(&arg)).unwrap();
        assert_eq!(point, MountPoint::NewFolder(share.clone()));
        point.restore().unwrap();
        assert!(!share.exists());
    }

    #[test]
    fn an_empty_folder_is_removed_for_the_mount_and_restored() {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("share");
        fs::create_dir(&share).unwrap();
        let point = MountPoint::prepare(&share).unwrap();
        assert_eq!(point, MountPoint::EmptyFolder(share.clone()));
        assert!(!share.exists());
        point.restore().unwrap();
        assert!(share.is_dir());
        // WinFsp may leave it behind: restoring then changes nothing.
        point.restore().unwrap();
        assert!(share.is_dir());
    }

    #[test]
    fn a_file_or_a_folder_with_entries_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let full = dir.path().join("full");
        fs::create_dir(&full).unwrap();
        fs::write(full.join("a.txt"), b"a").unwrap();
        let err = MountPoint::prepare(&full).unwrap_err().to_string();
        assert!(err.contains("is not empty"), "{err}");
        assert!(full.join("a.txt").is_file());

        let file = dir.path().join("file");
        fs::write(&file, b"f").unwrap();
        let err = MountPoint::prepare(&file).unwrap_err().to_string();
        assert!(err.contains("is a file"), "{err}");
        assert!(file.is_file());
    }
}
