//! A stored cab read out of the share in pieces, hashed as it goes: what `cerfs cab get`
//! and the web console's downloads share. Opened as the admin (uid 0) through the share's
//! own open and read, so a cab being written or already removed is refused as it would be
//! to a client; the handle is released when the reader is dropped.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::{Caller, CerFs, FsError, OpenFlags};

/// Bytes per piece.
const PIECE: u32 = 256 * 1024;

/// An open stored cab.
pub struct StoredCab {
    fs: Arc<CerFs>,
    fh: u64,
    at: u64,
    hasher: Sha256,
    path: String,
}

impl std::fmt::Debug for StoredCab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCab")
            .field("path", &self.path)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

impl StoredCab {
    /// Opens `cabs\<subpath>\<name>` for reading.
    pub fn open(fs: Arc<CerFs>, subpath: &str, name: &str) -> Result<StoredCab, FsError> {
        let caller = Caller {
            pid: std::process::id(),
            uid: 0,
            gid: 0,
        };
        let path = format!("cabs\\{subpath}\\{name}");
        let attr = fs.resolve(&caller, &path)?;
        let flags = OpenFlags {
            read: true,
            write: false,
            truncate: false,
            append: false,
        };
        let fh = fs.open(&caller, attr.ino, flags)?.fh;
        Ok(StoredCab {
            fs,
            fh,
            at: 0,
            hasher: Sha256::new(),
            path,
        })
    }

    /// Its path on the share (`cabs\…`), for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The next piece, or `None` at the end.
    pub fn next_piece(&mut self) -> Result<Option<Vec<u8>>, FsError> {
        let piece = self.fs.read(self.fh, self.at, PIECE)?;
        if piece.is_empty() {
            return Ok(None);
        }
        self.hasher.update(&piece);
        self.at += piece.len() as u64;
        Ok(Some(piece))
    }

    /// Bytes read so far, and the lowercase hex sha256 of them.
    pub fn finish(self) -> (u64, String) {
        let hasher = self.hasher.clone();
        (self.at, hex::encode(hasher.finalize()))
    }
}

impl Drop for StoredCab {
    fn drop(&mut self) {
        if let Err(e) = self.fs.release(self.fh) {
            tracing::warn!(path = %self.path, "releasing a stored cab's handle: {e}");
        }
    }
}
