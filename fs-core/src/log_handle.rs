//! An open crash.log or hits.log: the log is append-only; a handle's writes at or past the
//! end it saw are its own lines, earlier bytes may only be rewritten with what is there.
//! What a handle holds in memory is bounded per handle, per line, and for all handles
//! together (a [`crate::MemoryBudget`]).

use cerfs_db::{LogId, Store};

use crate::handle::slice_at;
use crate::memory_budget::Held;
use crate::{log_line, FsError, Result};

/// Largest amount a client may append to a log through one handle.
pub(crate) const MAX_LOG_APPEND: usize = 1024 * 1024;

/// Longest line a client may write: an MS-CER line is a few hundred bytes (2.2.2); longer
/// ones are refused rather than held and stored.
pub(crate) const MAX_LOG_LINE: usize = 64 * 1024;

/// Default budget of what all open log handles together may hold of unfinished lines.
pub const DEFAULT_LOG_BUDGET: usize = 16 * 1024 * 1024;

/// crash.log / hits.log through one handle.
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
    /// A write reached this handle (even one that only rewrote stored bytes).
    pub wrote: bool,
    /// `own`'s share of the budget of all log handles.
    pub held: Held,
}

/// Bytes a log line may not hold: control characters other than TAB (a line is shown on
/// terminals and pages as it is); CR and LF only end lines (checked apart).
fn forbidden(b: u8) -> bool {
    (b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n')) || b == 0x7f
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
        let first = !self.wrote;
        self.wrote = true;
        if at < self.base && first && self.is_stale_append(store, at, data)? {
            // A first write of one whole line below the end: the writer's idea of the end
            // is stale (the kernel's size of the log, shared by every open,
            // can lag behind what others appended). It is an append: this handle's own
            // bytes start where the writer believes the end is.
            tracing::debug!(log = ?self.log, offset = at, base = self.base, "a line written at a stale end is appended");
            self.base = at;
        }
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
        if let Some(&b) = data_rest.iter().find(|b| forbidden(**b)) {
            tracing::warn!(log = ?self.log, byte = b, "rejected a log write holding a control character");
            return Err(FsError::InvalidContent(format!(
                "log lines may not hold control character 0x{b:02X} (only TAB, and CR LF at the end)"
            )));
        }
        let rel = (at - self.base) as usize;
        let new_end = rel + data_rest.len();
        if new_end > MAX_LOG_APPEND {
            tracing::warn!(log = ?self.log, bytes = new_end, "rejected a log write past the per-handle limit");
            return Err(FsError::InvalidContent(format!(
                "one handle appends at most {MAX_LOG_APPEND} bytes to a log: close it and open it again"
            )));
        }
        // Bytes already stored as lines may only be rewritten identically.
        let overlap_end = self.committed.min(new_end);
        if rel < overlap_end && self.own[rel..overlap_end] != data_rest[..overlap_end - rel] {
            return Err(FsError::InvalidContent(
                "log lines already stored cannot be changed".into(),
            ));
        }
        let mut next = self.own.clone();
        if next.len() < new_end {
            next.resize(new_end, 0);
        }
        next[rel..new_end].copy_from_slice(data_rest);
        if let Err(e) = check_lines(&next, rel, new_end) {
            tracing::warn!(log = ?self.log, "rejected a log write: {e}");
            if let LineProblem::TooLong = e {
                // The line is refused as a whole: what the handle held of it goes too,
                // rather than into the log at close.
                let kept = self
                    .own
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1)
                    .max(self.committed);
                if kept < self.own.len() {
                    tracing::warn!(log = ?self.log, dropped = self.own.len() - kept, "dropped the start of the refused line");
                    self.own.truncate(kept);
                }
            }
            return Err(FsError::InvalidContent(e.to_string()));
        }
        self.held.grow_to(next.len())?;
        self.own = next;
        Ok(data.len() as u32)
    }

    /// Whether the handle's first write, `data` at `at` (below the end this handle saw),
    /// is a writer appending one line at a stale end: `data` is exactly one line, and it
    /// lands past the log's start or differs from the bytes there. (Stale ends land
    /// anywhere: the kernel's size may come from another open's view, part of a line
    /// included.) A line equal to the stored one at its offset is a new report all the
    /// same (one machine, one program, one second): only a re-save from the start, which
    /// begins at offset 0, rewrites what is there.
    fn is_stale_append(&self, store: &dyn Store, at: u64, data: &[u8]) -> Result<bool> {
        let one_line =
            data.last() == Some(&b'\n') && data.iter().filter(|b| **b == b'\n').count() == 1;
        if !one_line {
            return Ok(false);
        }
        if at > 0 {
            return Ok(true);
        }
        let n = ((self.base - at) as usize).min(data.len());
        Ok(store.read_log(self.log, at, n as u32)? != data[..n])
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

/// What is wrong with the lines a write made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum LineProblem {
    #[error("a carriage return inside a log line (only CR LF ends a line)")]
    BareCr,
    #[error("a log line of more than {MAX_LOG_LINE} bytes (MS-CER lines are a few hundred)")]
    TooLong,
}

/// Checks the lines of `own` that a write to `own[from..to]` touched: no CR except right
/// before LF (or last, where LF may follow in the next write), and no line longer than
/// [`MAX_LOG_LINE`].
fn check_lines(own: &[u8], from: usize, to: usize) -> std::result::Result<(), LineProblem> {
    let start = own[..from]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let stop = own[to..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(own.len(), |i| to + i + 1);
    let region = &own[start..stop];
    for (i, b) in region.iter().enumerate() {
        if *b == b'\r' && region.get(i + 1).is_some_and(|next| *next != b'\n') {
            return Err(LineProblem::BareCr);
        }
    }
    for line in region.split_inclusive(|b| *b == b'\n') {
        if line.len() > MAX_LOG_LINE {
            return Err(LineProblem::TooLong);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carriage_returns_only_end_lines() {
        let ok = b"a\tb\r\nc\r";
        assert!(check_lines(ok, 0, ok.len()).is_ok());
        let bad = b"a\rb\r\n";
        assert!(check_lines(bad, 0, bad.len()).is_err());
        // A CR written last may get its LF from the next write.
        assert!(check_lines(b"abc\r", 3, 4).is_ok());
        assert!(forbidden(0x1b) && forbidden(0) && forbidden(0x7f));
        assert!(!forbidden(b'\t') && !forbidden(b'A') && !forbidden(0xe9));
    }

    #[test]
    fn long_lines_are_refused_where_they_are_written() {
        let mut own = vec![b'x'; MAX_LOG_LINE];
        assert!(check_lines(&own, 0, own.len()).is_ok());
        own.push(b'y');
        let end = own.len();
        assert!(check_lines(&own, end - 1, end).is_err());
        own.extend_from_slice(b"\r\nshort\r\n");
        let end = own.len();
        // Only the lines a write touched are checked.
        assert!(check_lines(&own, end - 7, end).is_ok());
    }
}
