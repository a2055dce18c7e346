//! One full pass of each lifecycle job: prune by the retention policy, sweep removed
//! cabs, verify every stored cab. Each reports progress through a callback and stops early
//! when `keep_going` says so (a server stopping).

use cerfs_db::{CabCheck, CabEntry, LifecycleStore, PruneCandidate, Removal};

use crate::Result;

/// Chunks (64 KiB each) deleted per transaction: about 16 MiB, a few milliseconds of the
/// writer.
const SWEEP_CHUNKS: usize = 256;
/// Candidates fetched per query.
const BATCH: usize = 64;

/// What a prune did (or, dry, would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneSummary {
    /// Cabs pruned.
    pub cabs: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// What a verify found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifySummary {
    /// Cabs re-hashed.
    pub cabs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The corrupt ones, with what is wrong.
    pub corrupt: Vec<(CabEntry, String)>,
}

/// Applies the stored retention policy: each cab it picks leaves the share at once, and
/// its bytes are swept right after. With `dry_run`, only reports what it would prune.
/// `seen` gets each cab; `keep_going` is asked between cabs.
pub fn prune(
    store: &dyn LifecycleStore,
    dry_run: bool,
    seen: &mut dyn FnMut(&PruneCandidate),
    keep_going: &dyn Fn() -> bool,
) -> Result<PruneSummary> {
    let policy = store.retention()?;
    let mut summary = PruneSummary::default();
    let mut after: Option<CabEntry> = None;
    while keep_going() {
        // Applying removes what it prunes, so each batch is the head of the list again;
        // a dry run pages through the list instead.
        let cursor = if dry_run { after.as_ref() } else { None };
        let batch = store.prune_candidates(&policy, cursor, BATCH)?;
        if batch.is_empty() {
            break;
        }
        let before = summary.cabs;
        for candidate in &batch {
            if !keep_going() {
                break;
            }
            if dry_run || store.remove_cab(candidate.cab.ino, Removal::Pruned, None)? {
                summary.cabs += 1;
                summary.bytes += candidate.cab.size;
                seen(candidate);
            }
            if !dry_run {
                sweep_all(store, &mut |_| {}, keep_going)?;
            }
        }
        if summary.cabs == before {
            break; // nothing of this batch could be removed: do not spin
        }
        after = batch.last().map(|c| c.cab.clone());
    }
    if summary.cabs > 0 && !dry_run {
        tracing::info!(
            cabs = summary.cabs,
            bytes = summary.bytes,
            "retention pruned cabs (their rows stay, marked pruned)"
        );
    }
    Ok(summary)
}

/// Deletes the bytes of every removed cab, in small transactions; `chunks` gets the number
/// deleted by each step.
pub fn sweep_all(
    store: &dyn LifecycleStore,
    chunks: &mut dyn FnMut(u64),
    keep_going: &dyn Fn() -> bool,
) -> Result<()> {
    while keep_going() {
        let step = store.sweep(SWEEP_CHUNKS)?;
        chunks(step.chunks);
        if !step.more {
            break;
        }
    }
    Ok(())
}

/// Re-hashes every stored cab (streamed: memory stays bounded) and records the result;
/// `seen` gets each cab and its bytes as it goes.
pub fn verify(
    store: &dyn LifecycleStore,
    seen: &mut dyn FnMut(&CabEntry, &CabCheck),
    keep_going: &dyn Fn() -> bool,
) -> Result<VerifySummary> {
    let mut summary = VerifySummary::default();
    let mut after = 0;
    while keep_going() {
        let batch = store.cabs_after(after, BATCH)?;
        let Some(last) = batch.last() else {
            break;
        };
        after = last.ino;
        for cab in &batch {
            if !keep_going() {
                break;
            }
            let check = store.check_cab(cab.ino)?;
            summary.cabs += 1;
            summary.bytes += cab.size;
            if let CabCheck::Corrupt(why) = &check {
                tracing::error!(subpath = %cab.subpath, name = %cab.name, "stored cab is corrupt: {why}");
                summary.corrupt.push((cab.clone(), why.clone()));
            }
            seen(cab, &check);
        }
    }
    Ok(summary)
}
