//! What crash analysis (crate `cerfs-analysis`, run by the indexer) records for each
//! minidump: the walked stacks (`frame_rows`), the dump's signature (`stack_rows`), the
//! modules of its crashing stack that had no symbols (`missing_symbol_rows`), and what the
//! symbol sources answered (`symbol_fetch_rows`). Schema version 7; views `frames`,
//! `stacks`, `signatures`, `bucket_signatures`, `missing_symbols`, `symbol_fetches`.

use rusqlite::{params, Connection};

use crate::store::Result;

/// One frame of a walked thread.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FrameRow {
    /// Index of the thread in the dump's thread list (0-based).
    pub thread: u32,
    /// Whether it is the crashing thread.
    pub crashed: bool,
    /// Position in the stack, 0 = top (inline frames count, innermost first).
    pub frame: u32,
    /// File name of the module holding the instruction.
    pub module: Option<String>,
    /// Instruction's offset in that module.
    pub module_offset: Option<u64>,
    /// Function name, when symbols gave one.
    pub function: Option<String>,
    /// Instruction's offset in that function.
    pub function_offset: Option<u64>,
    /// Source file.
    pub file: Option<String>,
    /// Source line.
    pub line: Option<u32>,
    /// How the frame was found: `context`, `cfi`, `cfi_scan`, `frame_pointer`, `scan`,
    /// `inlining`, ...
    pub trust: String,
}

/// A module of a crashing stack that had no symbols.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MissingSymbol {
    /// The module's file name.
    pub module: String,
    /// Its debug file (`name.pdb`).
    pub debug_file: String,
    /// Its debug id (GUID and age, as symbol stores name it).
    pub debug_id: String,
}

/// What one symbol source answered (problems only: slow, hostile or broken sources).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SymbolFetch {
    /// What was asked for.
    pub url: String,
    /// `timeout`, `too_large`, `bad_status`, `redirects`, `unreadable`, `error`.
    pub outcome: String,
    /// More about it.
    pub detail: String,
}

/// The analysis of one minidump member.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StackRow {
    /// Member name.
    pub member: String,
    /// Crash reason (`EXCEPTION_ACCESS_VIOLATION_WRITE`, ...).
    pub crash_reason: Option<String>,
    /// Crash address.
    pub crash_address: Option<u64>,
    /// Index of the crashing (or requesting) thread.
    pub crashing_thread: Option<u32>,
    /// The crash's signature (see `cerfs signature-rules`).
    pub signature: String,
    /// Frames stored (the crashing thread's, and others' when configured).
    pub frames: Vec<FrameRow>,
    /// Modules of the crashing stack without symbols.
    pub missing_symbols: Vec<MissingSymbol>,
    /// Why the dump could not be walked (it still gets a signature).
    pub error: Option<String>,
}

pub(crate) fn clear(conn: &Connection, cab_id: i64) -> Result<()> {
    for table in ["frame_rows", "missing_symbol_rows", "stack_rows"] {
        conn.prepare_cached(&format!("DELETE FROM {table} WHERE cab_id = ?1"))?
            .execute([cab_id])?;
    }
    Ok(())
}

/// Records the stacks of cab `cab_id` (its earlier rows already cleared).
pub(crate) fn insert(conn: &Connection, cab_id: i64, stacks: &[StackRow]) -> Result<()> {
    let mut stack = conn.prepare_cached(
        "INSERT OR REPLACE INTO stack_rows (cab_id, member, crash_reason, crash_address, \
         crashing_thread, signature, error, walked_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
    )?;
    let mut frame = conn.prepare_cached(
        "INSERT OR REPLACE INTO frame_rows (cab_id, member, thread, crashed, frame, module, \
         module_offset, function, function_offset, file, line, trust) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let mut missing = conn.prepare_cached(
        "INSERT OR IGNORE INTO missing_symbol_rows (cab_id, member, module, debug_file, debug_id) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for s in stacks {
        stack.execute(params![
            cab_id,
            s.member,
            s.crash_reason,
            s.crash_address.map(signed),
            s.crashing_thread,
            s.signature,
            s.error
        ])?;
        for f in &s.frames {
            frame.execute(params![
                cab_id,
                s.member,
                f.thread,
                f.crashed,
                f.frame,
                f.module,
                f.module_offset.map(signed),
                f.function,
                f.function_offset.map(signed),
                f.file,
                f.line,
                f.trust
            ])?;
        }
        for m in &s.missing_symbols {
            missing.execute(params![
                cab_id,
                s.member,
                m.module,
                m.debug_file,
                m.debug_id
            ])?;
        }
    }
    Ok(())
}

/// Records what symbol sources answered (the latest answer per URL).
pub(crate) fn record_fetches(conn: &Connection, fetches: &[SymbolFetch]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO symbol_fetch_rows (url, outcome, detail, at) \
         VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
         ON CONFLICT (url) DO UPDATE SET outcome = excluded.outcome, detail = excluded.detail, \
         at = excluded.at, times = times + 1",
    )?;
    for f in fetches {
        stmt.execute(params![f.url, f.outcome, f.detail])?;
    }
    Ok(())
}
