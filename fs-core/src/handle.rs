//! Open-handle state per kind of file: what a handle saw at open, what it wrote, and how
//! that becomes a change in the store at flush.

use cerfs_db::{BucketId, Counts, Ino, SettingsScope, Store};

pub(crate) use crate::cab_writer::CabWriter;
pub(crate) use crate::log_handle::LogHandle;
use crate::{count_file, settings_file, FsError, Result};

/// Largest content a client may write to count.txt through one handle.
pub(crate) const MAX_COUNT_FILE: usize = 4 * 1024;
/// Largest content a client may write to status.txt / policy.txt through one handle.
pub(crate) const MAX_SETTINGS_FILE: usize = 64 * 1024;

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
    /// The file's name, for the refusal of content past `limit`.
    what: &'static str,
}

impl TextBuf {
    pub(crate) fn new(bytes: Vec<u8>, limit: usize, what: &'static str) -> Self {
        TextBuf {
            bytes,
            dirty: false,
            limit,
            what,
        }
    }

    /// The refusal of content past the limit (not EFBIG: smbd would tell an SMB client
    /// its disk is full).
    fn too_large(&self) -> FsError {
        tracing::warn!(
            file = self.what,
            limit = self.limit,
            "refused content past the limit"
        );
        FsError::InvalidContent(format!("{} holds at most {} bytes", self.what, self.limit))
    }

    pub(crate) fn read(&self, offset: u64, size: u32) -> Vec<u8> {
        slice_at(&self.bytes, offset, size).to_vec()
    }

    pub(crate) fn write(&mut self, offset: u64, data: &[u8]) -> Result<u32> {
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|e| *e <= self.limit as u64)
            .ok_or_else(|| self.too_large())? as usize;
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
            return Err(self.too_large());
        }
        self.bytes.resize(size as usize, 0);
        self.dirty = true;
        Ok(())
    }
}

/// The part of `bytes` a read of `size` at `offset` returns.
pub(crate) fn slice_at(bytes: &[u8], offset: u64, size: u32) -> &[u8] {
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
        if hits > 1 || cabs > hits {
            tracing::warn!(
                bucket = self.bucket,
                "rejected count.txt write: it adds {hits} hits and {cabs} cabs to what the \
                 client read ({:?} to {:?}); one report adds one hit and at most one cab",
                base,
                wanted
            );
            return Err(FsError::InvalidContent(
                "count.txt: one write adds at most one report (Total Hits + 1, Cabs \
                 Gathered + 0 or 1) to what the client read"
                    .into(),
            ));
        }
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
