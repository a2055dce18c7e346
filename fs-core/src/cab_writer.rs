//! A cab being uploaded: its bytes, its running hash, its limit, and its commit.

use cerfs_db::{Ino, Store, StoreError};
use sha2::{Digest, Sha256};

use crate::memory_budget::Held;
use crate::{FsError, Result};

/// Default of the largest cab the share accepts (`--max-cab-size`), over SMB and HTTP.
pub const DEFAULT_MAX_CAB_SIZE: u64 = 1 << 30;

/// Default budget of what all uploads together may hold of bytes not stored yet: 64 whole
/// storage units of 1 MiB. An upload that finds it spent stores its writes as they come.
pub const DEFAULT_CAB_TAIL_BUDGET: usize = 64 << 20;

/// Writes from this size on are hashed on a thread of their own while they are stored.
const PARALLEL_HASH_FROM: usize = 256 << 10;

/// A cab being uploaded: bytes go to the store as they come, in whole storage units
/// ([`Store::write_alignment`]) while the writes are sequential; the hash is kept while the
/// writes are sequential, else recomputed from the store at commit.
pub(crate) struct CabWriter {
    hasher: Option<Sha256>,
    hashed: u64,
    /// The size the writer sees: stored bytes plus `tail`.
    size: u64,
    /// Bytes received past the last whole storage unit, not stored yet (less than a unit).
    /// SMB clients write 60 KiB pieces: stored as they come, every chunk would be written
    /// several times. Losing them in a crash loses nothing: an uncommitted cab is purged.
    tail: Vec<u8>,
    /// The tail's share of the uploads' budget.
    held: Held,
    /// Sequential writes are buffered into whole units until the first other write or
    /// truncate; from then on every write goes straight to the store.
    buffering: bool,
    pub committed: bool,
    /// The first write or truncate that failed: such a cab is never committed.
    failed: Option<FsError>,
    /// Nothing was written or truncated yet.
    untouched: bool,
    /// The largest cab the share accepts: a write past it fails the upload.
    max_size: u64,
}

impl CabWriter {
    pub(crate) fn new(max_size: u64, held: Held) -> Self {
        CabWriter {
            max_size,
            held,
            hasher: Some(Sha256::new()),
            hashed: 0,
            size: 0,
            tail: Vec::new(),
            buffering: true,
            committed: false,
            failed: None,
            untouched: true,
        }
    }

    /// Whether a write or truncate has reached this cab (even a failed one).
    pub(crate) fn is_untouched(&self) -> bool {
        self.untouched
    }

    /// The size as the writer sees it (what is stored may lag by less than a unit).
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn write(
        &mut self,
        store: &dyn Store,
        ino: Ino,
        offset: u64,
        data: &[u8],
    ) -> Result<u32> {
        if self.committed {
            return Err(FsError::NotPermitted("the cab is committed and read-only"));
        }
        self.untouched = false;
        let end = offset.checked_add(data.len() as u64);
        if end.is_none_or(|end| end > self.max_size) {
            tracing::warn!(
                ino,
                offset,
                len = data.len(),
                max = self.max_size,
                "refused a cab write past the largest cab accepted: the upload fails"
            );
            return Err(self.fail(FsError::TooLarge(self.max_size)));
        }
        let mut hasher = match self.hasher.take() {
            Some(h) if offset == self.hashed => Some(h),
            _ => None,
        };
        // A big write is hashed on another core while the store takes it.
        let stored = if hasher.is_some() && data.len() >= PARALLEL_HASH_FROM {
            let (stored, aside) = std::thread::scope(|s| {
                let target = &mut hasher;
                let hashing = std::thread::Builder::new().spawn_scoped(s, move || {
                    if let Some(h) = target.as_mut() {
                        h.update(data);
                    }
                });
                let stored = self.store_data(store, ino, offset, data);
                let aside = match hashing {
                    Ok(hashing) => Some(hashing.join().is_ok()),
                    Err(e) => {
                        tracing::debug!(ino, "no thread to hash on ({e}): hashing in turn");
                        None
                    }
                };
                (stored, aside)
            });
            match aside {
                Some(true) => {}
                // A lost hasher is recomputed from the store at commit.
                Some(false) => hasher = None,
                None => {
                    if let Some(h) = hasher.as_mut() {
                        h.update(data);
                    }
                }
            }
            stored
        } else {
            if let Some(h) = hasher.as_mut() {
                h.update(data);
            }
            self.store_data(store, ino, offset, data)
        };
        if let Err(e) = stored {
            return Err(self.fail(e.into()));
        }
        if hasher.is_some() {
            self.hashed += data.len() as u64;
        }
        self.hasher = hasher;
        Ok(data.len() as u32)
    }

    fn store_data(
        &mut self,
        store: &dyn Store,
        ino: Ino,
        offset: u64,
        data: &[u8],
    ) -> std::result::Result<(), StoreError> {
        let largest = store.write_alignment(u64::MAX).max(1);
        let unit = usize::try_from(store.write_alignment(self.size).max(1)).unwrap_or(usize::MAX);
        let sequential = self.buffering && largest > 1 && offset == self.size;
        // The tail never holds more than a unit, nor more than it and this write.
        if !(sequential
            && self
                .held
                .try_grow_to((self.tail.len() + data.len()).min(unit)))
        {
            if sequential {
                tracing::debug!(ino, "uploads hold their whole budget: stored as written");
            }
            self.flush_tail(store, ino)?;
            self.buffering = false;
            self.size = store.write_at(ino, offset, data)?;
            return Ok(());
        }
        // Stored bytes end at a unit boundary; the tail follows them.
        let mut at = self.size - self.tail.len() as u64;
        let mut rest = data;
        while !rest.is_empty() {
            let unit = usize::try_from(store.write_alignment(at).max(1)).unwrap_or(usize::MAX);
            if !self.tail.is_empty() || rest.len() < unit {
                let take = (unit - self.tail.len()).min(rest.len());
                let (head, after) = rest.split_at(take);
                self.tail.extend_from_slice(head);
                rest = after;
                if self.tail.len() == unit {
                    store.write_at(ino, at, &self.tail)?;
                    at += unit as u64;
                    self.tail.clear();
                }
                continue;
            }
            // Whole units, but a smaller unit only up to the next multiple of the largest
            // (where the unit may change).
            let mut whole = rest.len() / unit * unit;
            if (unit as u64) < largest {
                let to_boundary = (largest - at % largest) as usize;
                whole = whole.min(to_boundary);
            }
            let (units, after) = rest.split_at(whole);
            store.write_at(ino, at, units)?;
            at += whole as u64;
            rest = after;
        }
        self.size += data.len() as u64;
        self.held.shrink_to(self.tail.len());
        Ok(())
    }

    /// Stores the buffered tail (before a read through this handle, a truncate, a commit).
    pub(crate) fn flush_tail(
        &mut self,
        store: &dyn Store,
        ino: Ino,
    ) -> std::result::Result<(), StoreError> {
        if !self.tail.is_empty() {
            store.write_at(ino, self.size - self.tail.len() as u64, &self.tail)?;
            self.tail.clear();
            self.held.shrink_to(0);
        }
        Ok(())
    }

    /// Sets the size of the upload. A size beyond the bytes written is taken as what it is
    /// on Windows, a preallocation hint (the copy engine announces the final size before it
    /// writes): nothing changes, so that no cab holds bytes nobody sent and no close has to
    /// hash gigabytes of zeros.
    pub(crate) fn truncate(&mut self, store: &dyn Store, ino: Ino, size: u64) -> Result<()> {
        if self.committed {
            return Err(FsError::NotPermitted("the cab is committed and read-only"));
        }
        if size > self.size {
            tracing::debug!(
                ino,
                size,
                written = self.size,
                "cab size beyond the bytes written: a hint, ignored"
            );
            return Ok(());
        }
        self.untouched = false;
        let truncated = self
            .flush_tail(store, ino)
            .and_then(|()| store.truncate(ino, size));
        self.buffering = false;
        if let Err(e) = truncated {
            return Err(self.fail(e.into()));
        }
        self.size = size;
        if size != self.hashed {
            self.hasher = None;
        }
        Ok(())
    }

    /// Remembers the first failure (the client saw it) and returns it.
    /// Fails the upload with `e` (a quota refused it): nothing of it is kept.
    pub(crate) fn refuse(&mut self, e: FsError) -> FsError {
        self.fail(e)
    }

    fn fail(&mut self, e: FsError) -> FsError {
        if self.failed.is_none() {
            self.failed = Some(match &e {
                FsError::NoSpace => FsError::NoSpace,
                other => FsError::InvalidContent(format!("an earlier write failed: {other}")),
            });
        }
        e
    }

    /// Marks the cab complete with its sha256; a cab with a failed write is deleted
    /// instead (its bytes are not what the client sent) and the failure returned.
    pub(crate) fn commit(&mut self, store: &dyn Store, ino: Ino) -> Result<()> {
        if self.committed {
            return Ok(());
        }
        self.committed = true;
        if self.failed.is_none() {
            if self.buffering && self.tail.len() as u64 == self.size {
                // Nothing stored yet (a cab under one storage unit): the store takes it whole.
                let data = std::mem::take(&mut self.tail);
                self.held.shrink_to(0);
                let digest = match self.hasher.take() {
                    Some(h) if self.hashed == self.size => h.finalize(),
                    _ => Sha256::digest(&data),
                };
                match store.commit_whole_cab(ino, &data, &hex::encode(digest)) {
                    Ok(()) => return Ok(()),
                    Err(e) => self.failed = Some(e.into()),
                }
            } else if let Err(e) = self.flush_tail(store, ino) {
                self.fail(e.into());
            }
        }
        if let Some(failed) = self.failed.take() {
            tracing::warn!(ino, "cab upload failed ({failed}): not kept");
            // If even the delete fails (disk still full), the row stays `writing` and the
            // next start purges it.
            if let Err(e) = store.remove_node(ino) {
                tracing::warn!(ino, "could not delete the failed cab now: {e}");
            }
            return Err(failed);
        }
        let size = store.node(ino)?.map(|n| n.size).unwrap_or(self.size);
        let digest = match self.hasher.take() {
            Some(h) if self.hashed == size => h.finalize(),
            _ => hash_from_store(store, ino, size)?,
        };
        store.commit_cab(ino, size, &hex::encode(digest))?;
        Ok(())
    }
}

/// Hashes stored content piece by piece (bounded memory).
fn hash_from_store(store: &dyn Store, ino: Ino, size: u64) -> Result<sha2::digest::Output<Sha256>> {
    const PIECE: u32 = 1024 * 1024;
    let mut h = Sha256::new();
    let mut at = 0;
    while at < size {
        let piece = store.read_at(ino, at, PIECE)?;
        if piece.is_empty() {
            break;
        }
        at += piece.len() as u64;
        h.update(&piece);
    }
    Ok(h.finalize())
}
