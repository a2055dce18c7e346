//! Open-handle state per kind of file: what a handle saw at open, what it wrote, and how
//! that becomes a change in the store at flush.

use cerfs_db::{BucketId, Counts, Ino, LogId, SettingsScope, Store, StoreError};
use sha2::{Digest, Sha256};

use crate::{count_file, log_line, settings_file, FsError, Result};

/// Largest content a client may write to count.txt through one handle.
pub(crate) const MAX_COUNT_FILE: usize = 4 * 1024;
/// Largest content a client may write to status.txt / policy.txt through one handle.
pub(crate) const MAX_SETTINGS_FILE: usize = 64 * 1024;
/// Largest amount a client may append to a log through one handle.
pub(crate) const MAX_LOG_APPEND: usize = 1024 * 1024;

/// One open file.
pub(crate) struct Handle {
    /// The node this handle is on.
    pub ino: Ino,
    /// Process that opened it (reads/writes may come from other threads, release from pid 0).
    pub pid: u32,
    /// Opened with write access.
    pub writable: bool,
    /// What kind of file, with its state.
    pub kind: HandleKind,
    /// fsync was called on it: what its close commits is synced to disk too.
    pub sync_on_close: bool,
}

/// Per-kind state.
pub(crate) enum HandleKind {
    /// A plain file or a committed cab: reads and writes go straight to the store.
    Plain,
    /// A cab being uploaded by this handle.
    CabWriter(CabWriter),
    /// count.txt.
    Count(CountHandle),
    /// status.txt or policy.txt.
    Settings(SettingsHandle),
    /// crash.log or hits.log.
    Log(LogHandle),
}

/// A text buffer holding the whole file as this handle sees it.
pub(crate) struct TextBuf {
    pub bytes: Vec<u8>,
    pub dirty: bool,
    limit: usize,
}

impl TextBuf {
    pub(crate) fn new(bytes: Vec<u8>, limit: usize) -> Self {
        TextBuf {
            bytes,
            dirty: false,
            limit,
        }
    }

    pub(crate) fn read(&self, offset: u64, size: u32) -> Vec<u8> {
        slice_at(&self.bytes, offset, size).to_vec()
    }

    pub(crate) fn write(&mut self, offset: u64, data: &[u8]) -> Result<u32> {
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|e| *e <= self.limit as u64)
            .ok_or(FsError::TooLarge)? as usize;
        let start = end - data.len();
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        self.bytes[start..end].copy_from_slice(data);
        self.dirty = true;
        Ok(data.len() as u32)
    }

    pub(crate) fn truncate(&mut self, size: u64) -> Result<()> {
        if size > self.limit as u64 {
            return Err(FsError::TooLarge);
        }
        self.bytes.resize(size as usize, 0);
        self.dirty = true;
        Ok(())
    }
}

fn slice_at(bytes: &[u8], offset: u64, size: u32) -> &[u8] {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let end = start.saturating_add(size as usize).min(bytes.len());
    &bytes[start..end]
}

/// count.txt: the values served at open and the client's rewrite.
pub(crate) struct CountHandle {
    pub bucket: BucketId,
    /// The counts directory (key of the per-client "last served" memory).
    pub dir: Ino,
    /// Values rendered into `buf` at open (what reads through this handle show).
    pub snapshot: Counts,
    /// Whether this handle served a read: then its writes are relative to `snapshot`.
    pub read_done: bool,
    /// The handle created count.txt: with no read, its writes are relative to zero.
    pub created: bool,
    pub buf: TextBuf,
}

impl CountHandle {
    /// Whether the handle holds written content to apply (not merely a truncation).
    pub(crate) fn has_content(&self) -> bool {
        self.buf.dirty && !self.buf.bytes.is_empty()
    }

    /// Takes the written content for applying: the counters it asks for. Whatever
    /// happens, the content is dealt with now (release must not retry it).
    pub(crate) fn take_wanted(&mut self) -> Result<Counts> {
        self.buf.dirty = false;
        count_file::parse(&self.buf.bytes).map_err(|e| {
            tracing::warn!(bucket = self.bucket, "rejected count.txt write: {e}");
            FsError::InvalidContent(format!("count.txt: {e}"))
        })
    }

    /// Applies `wanted` as a delta from `base` in one transaction; returns the new counters.
    pub(crate) fn apply(
        &mut self,
        store: &dyn Store,
        base: Counts,
        wanted: Counts,
    ) -> Result<Counts> {
        let (Some(cabs), Some(hits)) = (
            wanted.cabs_gathered.checked_sub(base.cabs_gathered),
            wanted.total_hits.checked_sub(base.total_hits),
        ) else {
            tracing::warn!(
                bucket = self.bucket,
                "rejected count.txt write: it would lower the counters from {:?} to {:?}",
                base,
                wanted
            );
            return Err(FsError::InvalidContent(
                "count.txt: counters can only grow".into(),
            ));
        };
        let now = store.add_counts(self.bucket, cabs, hits)?;
        self.snapshot = wanted;
        self.read_done = true;
        Ok(now)
    }
}

/// Whether `wanted` is what a client writes after reading `seen`: one more hit, and zero or
/// one more cab (MS-CER 3.1.7 step 8).
pub(crate) fn is_one_report_after(seen: Counts, wanted: Counts) -> bool {
    seen.total_hits.checked_add(1) == Some(wanted.total_hits)
        && wanted
            .cabs_gathered
            .checked_sub(seen.cabs_gathered)
            .is_some_and(|d| d <= 1)
}

/// status.txt or policy.txt: the whole file in a buffer.
pub(crate) struct SettingsHandle {
    pub scope: SettingsScope,
    pub buf: TextBuf,
}

impl SettingsHandle {
    /// Stores the good lines (replacing the scope); errors if any line was bad.
    pub(crate) fn apply(&mut self, store: &dyn Store) -> Result<()> {
        if !self.buf.dirty {
            return Ok(());
        }
        self.buf.dirty = false;
        let file_scope = match self.scope {
            SettingsScope::Policy => settings_file::Scope::Policy,
            SettingsScope::Status(_) => settings_file::Scope::Status,
        };
        let parsed = settings_file::parse(file_scope, &self.buf.bytes);
        store.replace_settings(self.scope, &parsed.pairs)?;
        for bad in &parsed.rejected {
            tracing::warn!(
                scope = ?self.scope,
                line = bad.line,
                text = ?bad.text,
                "rejected settings line: {}",
                bad.reason
            );
        }
        match parsed.rejected.first() {
            None => Ok(()),
            Some(first) => Err(FsError::InvalidContent(format!(
                "{} bad line(s), first at line {}: {}",
                parsed.rejected.len(),
                first.line,
                first.reason
            ))),
        }
    }
}

/// crash.log / hits.log: the log is append-only; a handle's writes at or past the end it
/// saw are its own lines, earlier bytes may only be rewritten with what is there.
pub(crate) struct LogHandle {
    pub log: LogId,
    /// Where this handle's own data starts: the log length at open, or less after a truncate.
    pub base: u64,
    /// Opened O_APPEND: every write goes to the end.
    pub append: bool,
    /// Bytes this handle wrote at `base..`.
    pub own: Vec<u8>,
    /// How much of `own` is already stored as lines.
    pub committed: usize,
}

impl LogHandle {
    /// Size as seen through this handle.
    pub(crate) fn size(&self) -> u64 {
        self.base + self.own.len() as u64
    }

    pub(crate) fn read(&self, store: &dyn Store, offset: u64, size: u32) -> Result<Vec<u8>> {
        if offset < self.base {
            let len = (self.base - offset).min(u64::from(size)) as u32;
            return Ok(store.read_log(self.log, offset, len)?);
        }
        Ok(slice_at(&self.own, offset - self.base, size).to_vec())
    }

    pub(crate) fn write(&mut self, store: &dyn Store, offset: u64, data: &[u8]) -> Result<u32> {
        let end = self.size();
        let offset = if self.append || offset > end {
            end
        } else {
            offset
        };
        let mut data_rest = data;
        let mut at = offset;
        if at < self.base {
            // Rewriting history is allowed only byte-for-byte (a client re-saving the file).
            let n = ((self.base - at) as usize).min(data_rest.len());
            let existing = store.read_log(self.log, at, n as u32)?;
            if existing != data_rest[..n] {
                tracing::warn!(log = ?self.log, offset = at, "rejected a rewrite of stored log lines");
                return Err(FsError::InvalidContent(
                    "log lines already stored cannot be changed".into(),
                ));
            }
            data_rest = &data_rest[n..];
            at += n as u64;
        }
        if data_rest.is_empty() {
            return Ok(data.len() as u32);
        }
        let rel = (at - self.base) as usize;
        let new_end = rel + data_rest.len();
        if new_end > MAX_LOG_APPEND {
            return Err(FsError::TooLarge);
        }
        // Bytes already stored as lines may only be rewritten identically.
        let overlap_end = self.committed.min(new_end);
        if rel < overlap_end && self.own[rel..overlap_end] != data_rest[..overlap_end - rel] {
            return Err(FsError::InvalidContent(
                "log lines already stored cannot be changed".into(),
            ));
        }
        if self.own.len() < new_end {
            self.own.resize(new_end, 0);
        }
        self.own[rel..new_end].copy_from_slice(data_rest);
        Ok(data.len() as u32)
    }

    pub(crate) fn truncate(&mut self, size: u64) {
        if size < self.base {
            // "Create it empty" (FILE_OVERWRITE_IF): the stored lines stay, this handle's
            // lines start at the new end it believes in.
            self.base = size;
            self.own.clear();
            self.committed = 0;
        } else {
            let rel = ((size - self.base) as usize).max(self.committed);
            if rel < self.own.len() {
                self.own.truncate(rel);
            }
        }
    }

    /// Stores every complete line not stored yet; with `finish`, also a trailing partial
    /// line (kept verbatim and flagged).
    pub(crate) fn apply(&mut self, store: &dyn Store, finish: bool) -> Result<()> {
        let pending = &self.own[self.committed..];
        let (complete, rest) = log_line::split_lines(pending);
        let mut lines: Vec<_> = complete.iter().map(|l| log_line::to_log_line(l)).collect();
        let mut consumed: usize = complete.iter().map(|l| l.len()).sum();
        if finish && !rest.is_empty() {
            lines.push(log_line::to_log_line(rest));
            consumed += rest.len();
        }
        if lines.is_empty() {
            return Ok(());
        }
        for l in lines.iter().filter(|l| l.fields.is_none()) {
            tracing::warn!(
                log = ?self.log,
                line = %String::from_utf8_lossy(&l.bytes).trim_end(),
                "log line does not parse: kept verbatim and flagged"
            );
        }
        store.append_log(self.log, &lines)?;
        self.committed += consumed;
        Ok(())
    }
}

/// A cab being uploaded: bytes go to the store as they come, in whole storage units
/// ([`Store::write_alignment`]) while the writes are sequential; the hash is kept while the
/// writes are sequential, else recomputed from the store at commit.
pub(crate) struct CabWriter {
    hasher: Option<Sha256>,
    hashed: u64,
    /// The size the writer sees: stored bytes plus `tail`.
    size: u64,
    /// Bytes received past the last whole storage unit, not stored yet (less than a unit).
    /// SMB clients write 60 KiB pieces: stored as they come, every 64 KiB chunk would be
    /// written twice. Losing them in a crash loses nothing: an uncommitted cab is purged.
    tail: Vec<u8>,
    /// Sequential writes are buffered into whole units until the first other write or
    /// truncate; from then on every write goes straight to the store.
    buffering: bool,
    pub committed: bool,
    /// The first write or truncate that failed: such a cab is never committed.
    failed: Option<FsError>,
    /// Nothing was written or truncated yet.
    untouched: bool,
}

impl CabWriter {
    pub(crate) fn new() -> Self {
        CabWriter {
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
        if let Err(e) = self.store_data(store, ino, offset, data) {
            return Err(self.fail(e.into()));
        }
        match &mut self.hasher {
            Some(h) if offset == self.hashed => {
                h.update(data);
                self.hashed += data.len() as u64;
            }
            _ => self.hasher = None,
        }
        Ok(data.len() as u32)
    }

    fn store_data(
        &mut self,
        store: &dyn Store,
        ino: Ino,
        offset: u64,
        data: &[u8],
    ) -> std::result::Result<(), StoreError> {
        let unit = store.write_alignment().max(1);
        if !(self.buffering && unit > 1 && offset == self.size) {
            self.flush_tail(store, ino)?;
            self.buffering = false;
            self.size = store.write_at(ino, offset, data)?;
            return Ok(());
        }
        let unit = usize::try_from(unit).unwrap_or(usize::MAX);
        // Stored bytes end at a unit boundary; the tail follows them.
        let mut at = self.size - self.tail.len() as u64;
        let mut rest = data;
        if !self.tail.is_empty() {
            let take = (unit - self.tail.len()).min(rest.len());
            let (head, after) = rest.split_at(take);
            self.tail.extend_from_slice(head);
            rest = after;
            if self.tail.len() == unit {
                store.write_at(ino, at, &self.tail)?;
                at += unit as u64;
                self.tail.clear();
            }
        }
        if self.tail.is_empty() {
            let whole = rest.len() / unit * unit;
            let (units, left) = rest.split_at(whole);
            if !units.is_empty() {
                store.write_at(ino, at, units)?;
            }
            self.tail.extend_from_slice(left);
        }
        self.size += data.len() as u64;
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
        }
        Ok(())
    }

    pub(crate) fn truncate(&mut self, store: &dyn Store, ino: Ino, size: u64) -> Result<()> {
        if self.committed {
            return Err(FsError::NotPermitted("the cab is committed and read-only"));
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
            if let Err(e) = self.flush_tail(store, ino) {
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
