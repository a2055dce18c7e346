//! The database file as the server opened it: kept private to the server (mode 0600 for
//! the file, its -wal and its -shm), and known by device and inode, so that a file put in
//! its place while serving (a restore copied over with `mv`, a deleted file) is noticed
//! before two files get mixed through one WAL.

use std::path::{Path, PathBuf};

use crate::{OpenError, StoreError};

/// Device and inode of the database file when it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileIdentity {
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    /// The identity of the file at `path` now.
    pub(crate) fn of(path: &Path) -> Result<FileIdentity, OpenError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| OpenError::Unusable(format!("cannot stat {}: {e}", path.display())))?;
        Ok(FileIdentity::from_meta(&meta))
    }

    #[cfg(unix)]
    fn from_meta(meta: &std::fs::Metadata) -> FileIdentity {
        use std::os::unix::fs::MetadataExt;
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    // Windows has no stable file id in std: the check is a no-op there.
    #[cfg(not(unix))]
    fn from_meta(_meta: &std::fs::Metadata) -> FileIdentity {
        FileIdentity { dev: 0, ino: 0 }
    }

    /// Whether `path` still names the file that was opened.
    ///
    /// # Errors
    /// [`StoreError::Replaced`] when it is gone or is another file.
    pub(crate) fn check(&self, path: &Path) -> Result<(), StoreError> {
        let replaced = |why: String| StoreError::Replaced {
            path: path.to_path_buf(),
            why,
        };
        match std::fs::metadata(path) {
            Ok(meta) if FileIdentity::from_meta(&meta) == *self => Ok(()),
            Ok(meta) => {
                let now = FileIdentity::from_meta(&meta);
                Err(replaced(format!(
                    "it is now another file (inode {} on device {}, opened as inode {} on \
                     device {})",
                    now.ino, now.dev, self.ino, self.dev
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(replaced("it was deleted".to_owned()))
            }
            Err(e) => Err(replaced(format!("it cannot be looked at: {e}"))),
        }
    }
}

/// Makes the database file and its -wal and -shm private to their owner (mode 0600), and
/// creates the file empty with that mode when missing, so that SQLite (which gives the
/// -wal and -shm the mode of the database file) never creates anything others can read.
pub(crate) fn make_private(path: &Path, create: bool) -> Result<(), OpenError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if create && !path.exists() {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(_) => {}
                // Created meanwhile by someone else: made private below like any other.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(OpenError::Unusable(format!(
                        "cannot create {}: {e}",
                        path.display()
                    )))
                }
            }
        }
        for file in [
            path.to_path_buf(),
            sibling(path, "-wal"),
            sibling(path, "-shm"),
        ] {
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(
                    |e| {
                        OpenError::Unusable(format!(
                            "cannot make {} private (chmod 600): {e}",
                            file.display()
                        ))
                    },
                )?;
                tracing::info!(file = %file.display(), "made the database file private (0600)");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, create);
    Ok(())
}

/// `path` with `suffix` appended to its file name (`cer.db` → `cer.db-wal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
