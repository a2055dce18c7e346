//! Reading one cab: its directory (members, compression), then each member that is worth
//! it (minidumps, text files), within [`Limits`].

use std::collections::HashSet;
use std::io::{Read, Seek};
use std::panic::{catch_unwind, AssertUnwindSafe};

use cab::{Cabinet, CompressionType};
use cerfs_db::{CabIndex, MemberRow, TextRow};

use crate::{dump, text, Limits};
use cerfs_analysis::Walker;

/// Indexes the cab that `reader` holds. Never fails and never panics: a cab that cannot be
/// read at all gets [`CabIndex::error`], a member that cannot be read or parsed gets its
/// own `error`. Runs in the calling thread without a time bound: for cabs from clients use
/// [`crate::index_pending`], which runs this in bounded child processes.
pub fn index_cab<R: Read + Seek>(reader: R, limits: &Limits) -> CabIndex {
    index_cab_with(reader, limits, None)
}

/// [`index_cab`], and with `walker` every minidump's stacks are walked and signed too
/// ([`CabIndex::stacks`]).
pub fn index_cab_with<R: Read + Seek>(
    reader: R,
    limits: &Limits,
    walker: Option<&Walker>,
) -> CabIndex {
    match catch_unwind(AssertUnwindSafe(|| scan(reader, limits, walker))) {
        Ok(index) => index,
        Err(panic) => CabIndex {
            error: Some(format!("the cab reader failed: {}", panic_text(&panic))),
            ..CabIndex::default()
        },
    }
}

/// The message of a caught panic.
pub(crate) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

fn scan<R: Read + Seek>(reader: R, limits: &Limits, walker: Option<&Walker>) -> CabIndex {
    let mut index = CabIndex::default();
    let mut cabinet = match Cabinet::new(reader) {
        Ok(c) => c,
        Err(e) => {
            index.error = Some(format!("not a readable cabinet: {e}"));
            return index;
        }
    };
    let mut names = HashSet::new();
    let mut listed = 0usize;
    for (folder_idx, folder) in cabinet.folder_entries().enumerate() {
        let compression = compression_name(folder.compression_type());
        for file in folder.file_entries() {
            listed += 1;
            if index.members.len() >= limits.max_members {
                continue;
            }
            let name = file.name().to_owned();
            let kind = if dump::is_dump_name(&name) {
                "minidump"
            } else if text::is_text_name(&name) {
                "text"
            } else {
                "other"
            };
            let error = (!names.insert(name.clone()))
                .then(|| "another member has the same name: not read".to_owned());
            index.members.push(MemberRow {
                name,
                size: u64::from(file.uncompressed_size()),
                compression: compression.to_owned(),
                folder: u32::try_from(folder_idx).unwrap_or(u32::MAX),
                modified: file.datetime().map(|d| {
                    format!(
                        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                        d.year(),
                        u8::from(d.month()),
                        d.day(),
                        d.hour(),
                        d.minute(),
                        d.second()
                    )
                }),
                kind: kind.to_owned(),
                error,
            });
        }
    }
    if listed > limits.max_members {
        tracing::warn!(
            listed,
            kept = limits.max_members,
            "cab lists more members than the index keeps"
        );
    }

    if listed == 0 {
        index.error = Some("the cabinet lists no files".to_owned());
        return index;
    }

    let mut budget = limits.max_total_read;
    let mut text_budget = limits.max_total_text;
    for i in 0..index.members.len() {
        let Some(member) = index.members.get(i) else {
            break;
        };
        if member.error.is_some() {
            continue;
        }
        let (name, size, kind) = (member.name.clone(), member.size, member.kind.clone());
        let outcome = match kind.as_str() {
            "minidump" => read_dump(
                &mut cabinet,
                &name,
                size,
                limits,
                &mut budget,
                &mut index,
                walker,
            ),
            "text" => read_text(
                &mut cabinet,
                &name,
                limits,
                &mut budget,
                &mut text_budget,
                &mut index,
            ),
            // Decompressed and dropped: a member that cannot be read (a truncated upload,
            // Quantum) is found out and recorded.
            _ => check_member(&mut cabinet, &name, size, &mut budget),
        };
        if let (Err(e), Some(member)) = (outcome, index.members.get_mut(i)) {
            member.error = Some(e);
        }
    }
    index
}

fn compression_name(c: CompressionType) -> &'static str {
    match c {
        CompressionType::None => "none",
        CompressionType::MsZip => "mszip",
        CompressionType::Lzx(_) => "lzx",
        CompressionType::Quantum(_, _) => "quantum",
    }
}

/// Reads up to `limit` bytes of member `name`, charging them to `budget`.
fn read_member<R: Read + Seek>(
    cabinet: &mut Cabinet<R>,
    name: &str,
    limit: u64,
    budget: &mut u64,
) -> Result<Vec<u8>, String> {
    if *budget == 0 {
        return Err("not read: the cab's read budget is spent".to_owned());
    }
    let take = limit.min(*budget);
    let reader = cabinet
        .read_file(name)
        .map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::with_capacity(usize::try_from(take.min(1 << 20)).unwrap_or(0));
    reader
        .take(take)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    *budget = budget.saturating_sub(bytes.len() as u64);
    Ok(bytes)
}

/// Reads member `name` to its end without keeping it; errors when it is shorter than its
/// listed `size`.
fn check_member<R: Read + Seek>(
    cabinet: &mut Cabinet<R>,
    name: &str,
    size: u64,
    budget: &mut u64,
) -> Result<(), String> {
    if *budget < size {
        *budget = 0;
        return Err("not checked: the cab's read budget is spent".to_owned());
    }
    let reader = cabinet
        .read_file(name)
        .map_err(|e| format!("cannot read: {e}"))?;
    let n = std::io::copy(&mut reader.take(size), &mut std::io::sink())
        .map_err(|e| format!("cannot read: {e}"))?;
    *budget = budget.saturating_sub(n);
    if n < size {
        return Err(format!("holds {n} of its {size} bytes"));
    }
    Ok(())
}

fn read_dump<R: Read + Seek>(
    cabinet: &mut Cabinet<R>,
    name: &str,
    size: u64,
    limits: &Limits,
    budget: &mut u64,
    index: &mut CabIndex,
    walker: Option<&Walker>,
) -> Result<(), String> {
    if size > limits.max_dump_bytes {
        return Err(format!(
            "minidump of {size} bytes is over the indexer's limit of {} bytes: not parsed",
            limits.max_dump_bytes
        ));
    }
    let bytes = read_member(cabinet, name, size, budget)?;
    let row = dump::parse(name, &bytes);
    let failed = row.error.clone();
    index.minidumps.push(row);
    if let Some(walker) = walker {
        index.stacks.push(walker.walk(name, &bytes));
        index.symbol_fetches.extend(walker.take_fetch_problems());
    }
    match failed {
        // A dump that could not be read at all is the member's failure too.
        Some(e) if e.starts_with("not a readable minidump") => Err(e),
        _ => Ok(()),
    }
}

fn read_text<R: Read + Seek>(
    cabinet: &mut Cabinet<R>,
    name: &str,
    limits: &Limits,
    budget: &mut u64,
    text_budget: &mut usize,
    index: &mut CabIndex,
) -> Result<(), String> {
    if *text_budget == 0 {
        return Err("not read: the cab's text budget is spent".to_owned());
    }
    let keep = limits.max_text_bytes.min(*text_budget);
    // One byte more than kept tells whether the text was cut.
    let bytes = read_member(cabinet, name, keep as u64 + 1, budget)?;
    let truncated = bytes.len() > keep;
    let bytes = bytes.get(..keep.min(bytes.len())).unwrap_or_default();
    let decoded = text::decode(bytes);
    *text_budget = text_budget.saturating_sub(bytes.len());
    let room = limits.max_facts.saturating_sub(index.facts.len());
    index.facts.extend(text::facts(name, &decoded, room));
    index.texts.push(TextRow {
        member: name.to_owned(),
        text: decoded,
        truncated,
    });
    Ok(())
}
