//! One full pass of each lifecycle job: prune by the retention policy, sweep removed
//! cabs, verify every stored cab. Each reports progress through a callback and stops early
//! when `keep_going` says so (a server stopping).

use cerfs_db::{CabCheck, CabEntry, LifecycleStore, PruneCandidate};

use crate::Result;

/// Chunks (64 KiB each) deleted per transaction: about 16 MiB, a few milliseconds of the
/// writer.
const SWEEP_CHUNKS: usize = 256;
/// Cabs fetched per query by verify (an index seek each).
const BATCH: usize = 64;
/// Cabs taken off the share per transaction: the writer is taken once per group, not once
/// per cab (which, from `cerfs prune` beside a server, slowed the clients to a third).
const REMOVE_GROUP: usize = 64;
/// Prune candidates fetched per query: each query ranks every cab on the share, so pages
/// are large (a page of 64 made pruning 100,000 cabs quadratic: minutes of CPU).
const PRUNE_PAGE: usize = 2048;

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
/// `seen` gets each cab; `keep_going` is asked between groups of cabs.
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
        // Pages through the list, also when applying: removing a candidate changes
        // neither a bucket's first and last N nor the running total of newer cabs, so the
        // cabs after the cursor are judged the same. Cabs completed meanwhile wait for the
        // next run.
        let batch = store.prune_candidates(&policy, after.as_ref(), PRUNE_PAGE)?;
        if batch.is_empty() {
            break;
        }
        for group in batch.chunks(REMOVE_GROUP) {
            if !keep_going() {
                break;
            }
            let taken: Vec<&PruneCandidate> = if dry_run {
                group.iter().collect()
            } else {
                let inos: Vec<_> = group.iter().map(|c| c.cab.ino).collect();
                let pruned = store.prune_cabs(&inos)?;
                group
                    .iter()
                    .filter(|c| pruned.contains(&c.cab.ino))
                    .collect()
            };
            for candidate in taken {
                summary.cabs += 1;
                summary.bytes += candidate.cab.size;
                seen(candidate);
            }
            if !dry_run {
                sweep_all(store, &mut |_| {}, keep_going)?;
            }
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
