//! One server per database: `serve`, `mount` and `http` hold an exclusive lock on
//! `<database>.lock` from before the start-up recovery until they close the store, so that
//! a second server refuses to start instead of purging the first one's uploads. The lock
//! file names its holder (pid and command line) for the second one's message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::OpenError;

/// The held lock; released when dropped (or when the process dies, whatever the way).
#[derive(Debug)]
pub(crate) struct ServerLock {
    _file: File,
}

/// `<database>.lock`.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl ServerLock {
    /// Takes the lock of the database at `db`, or says who holds it.
    pub(crate) fn acquire(db: &Path) -> Result<ServerLock, OpenError> {
        let path = lock_path(db);
        let unusable =
            |e: std::io::Error| OpenError::Unusable(format!("cannot use {}: {e}", path.display()));
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(unusable)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(OpenError::Locked {
                    path: db.to_path_buf(),
                    holder: if holder.is_empty() {
                        "another process".to_owned()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(unusable(e)),
        }
        let me = format!("pid {}: {}\n", std::process::id(), command_line());
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(me.as_bytes()))
            .map_err(unusable)?;
        Ok(ServerLock { _file: file })
    }
}

/// This process's command line, for the lock file.
fn command_line() -> String {
    let words: Vec<String> = std::env::args().collect();
    let line = words.join(" ");
    // One line, of printable characters: it is shown in another process's error message.
    line.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(512)
        .collect()
}
