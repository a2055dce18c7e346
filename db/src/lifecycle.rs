//! Running a store for years: what retention, deletion, quotas, scrubbing and backups ask
//! of a store ([`LifecycleStore`]), and the values they exchange. Every method is a small
//! transaction, so that callers can work through a large store in steps while clients are
//! served.

use std::path::Path;

use crate::store::{BucketId, Ino, Result};

/// How long stored cabs are kept (`cerfs retention`). Counters, hits and logs are never
/// pruned; a pruned cab keeps its row (name, size, sha256, times, index results).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Prune every cab completed more than this many days ago.
    pub max_age_days: Option<u32>,
    /// Per bucket, keep the first this many cabs (the oldest).
    pub keep_first: Option<u32>,
    /// Per bucket, keep the last this many cabs (the newest). With `keep_first`, every
    /// cab of a bucket between the first and the last is pruned.
    pub keep_last: Option<u32>,
    /// Keep the stored cab bytes under this total: the oldest cabs that the per-bucket
    /// rules do not keep are pruned first.
    pub max_cab_bytes: Option<u64>,
}

impl RetentionPolicy {
    /// Whether the policy prunes anything at all.
    pub fn is_empty(&self) -> bool {
        *self == RetentionPolicy::default()
    }
}

/// Why retention picked a cab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneReason {
    /// Older than `max_age_days`.
    Age,
    /// Neither among the first nor the last cabs its bucket keeps.
    PerBucket,
    /// Among the oldest while the total is over `max_cab_bytes`.
    TotalSize,
}

impl PruneReason {
    /// A word for listings.
    pub fn as_str(self) -> &'static str {
        match self {
            PruneReason::Age => "age",
            PruneReason::PerBucket => "per-bucket",
            PruneReason::TotalSize => "total-size",
        }
    }
}

/// A stored cab, as lifecycle commands name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CabEntry {
    /// Its inode (`cab_id` in SQL).
    pub ino: Ino,
    /// Its bucket's subpath.
    pub subpath: String,
    /// Its file name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was completed (ISO 8601, UTC).
    pub created_at: String,
    /// Its sha256 (lowercase hex).
    pub sha256: String,
}

/// A cab retention would prune, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneCandidate {
    /// The cab.
    pub cab: CabEntry,
    /// The first rule that picked it.
    pub reason: PruneReason,
}

/// How a cab leaves the share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Retention: its bytes go, its row stays (state `pruned`).
    Pruned,
    /// An admin's deletion: its bytes and rows go.
    Deleted,
}

/// What one sweep step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepStep {
    /// Chunks (of up to 64 KiB) deleted.
    pub chunks: u64,
    /// Removed cabs finished (no bytes left; a deleted cab's rows gone too).
    pub finished: u64,
    /// Whether removed cabs still hold bytes.
    pub more: bool,
}

/// Who deletes what, and why: one row of the `deletions` view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// The unix account that ran the command.
    pub by: String,
    /// Why (a ticket, a PII request).
    pub reason: String,
}

/// What a bucket deletion removes (or, in a dry run, would).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketContents {
    /// The bucket.
    pub bucket: BucketId,
    /// Its cabs.
    pub cabs: u64,
    /// Their bytes.
    pub cab_bytes: u64,
    /// Lines of its hits.log.
    pub hits_lines: u64,
    /// Lines of crash.log naming it (they are blanked, not removed: the log's offsets stay).
    pub crash_lines: u64,
    /// CER V2 reports.
    pub reports: u64,
    /// Its Total Hits.
    pub total_hits: u64,
}

impl BucketContents {
    /// What it holds, in one line: the deletion's audit detail, and what an admin is asked
    /// to confirm.
    pub fn summary(&self) -> String {
        format!(
            "{} cabs ({} bytes), {} hits.log lines, {} crash.log lines blanked, {} CER2 \
             reports, Total Hits {}",
            self.cabs,
            self.cab_bytes,
            self.hits_lines,
            self.crash_lines,
            self.reports,
            self.total_hits
        )
    }
}

/// How big the store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreUsage {
    /// Bytes of the database file in use (pages in use times page size).
    pub used_bytes: u64,
    /// Bytes of free pages inside the file (reused by new data; `cerfs compact` gives
    /// them back to the filesystem).
    pub free_bytes: u64,
    /// Bytes still available on the filesystem holding the database, if known.
    pub fs_available: Option<u64>,
    /// Size of that filesystem, if known.
    pub fs_total: Option<u64>,
}

/// What [`LifecycleStore::check_cab`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CabCheck {
    /// The bytes hash to the recorded sha256.
    Sound,
    /// They do not (or chunks are missing): what is wrong.
    Corrupt(String),
}

/// What lifecycle work needs of a store.
pub trait LifecycleStore: Send + Sync {
    /// Whether this process runs the background jobs (sweep, retention, scrub) now: always
    /// on a store one server owns; on a store several servers share, one at a time.
    fn leads_background(&self) -> Result<bool> {
        Ok(true)
    }
    /// The stored retention policy.
    fn retention(&self) -> Result<RetentionPolicy>;
    /// Replaces the stored retention policy.
    fn set_retention(&self, policy: &RetentionPolicy) -> Result<()>;
    /// A stored server setting (quotas, ...).
    fn server_setting(&self, key: &str) -> Result<Option<String>>;
    /// Sets (`Some`) or clears (`None`) a server setting.
    fn set_server_setting(&self, key: &str, value: Option<&str>) -> Result<()>;

    /// Up to `limit` cabs the policy prunes now, oldest first; with `after`, those that
    /// come after that cab in that order (to page through a long list).
    fn prune_candidates(
        &self,
        policy: &RetentionPolicy,
        after: Option<&CabEntry>,
        limit: usize,
    ) -> Result<Vec<PruneCandidate>>;
    /// Takes cab `ino` off the share at once (one transaction); its bytes go in later
    /// [`LifecycleStore::sweep`] steps. A deletion also records `audit`. Returns false if
    /// the cab was already removed or is not a complete cab.
    fn remove_cab(&self, ino: Ino, removal: Removal, audit: Option<&Audit>) -> Result<bool>;
    /// Prunes the cabs `inos` in one transaction (as [`LifecycleStore::remove_cab`] each):
    /// one writer turn for a batch instead of one per cab. Returns those it pruned.
    fn prune_cabs(&self, inos: &[Ino]) -> Result<Vec<Ino>>;
    /// Deletes up to `max_chunks` chunks of removed cabs, and finishes the cabs that hold
    /// none any more.
    fn sweep(&self, max_chunks: usize) -> Result<SweepStep>;

    /// The complete cab `name` of bucket `subpath`, removed or not, with its removal.
    fn find_cab(&self, subpath: &str, name: &str) -> Result<Option<(CabEntry, Option<Removal>)>>;
    /// What deleting bucket `subpath` removes; `None` if there is no such bucket.
    fn bucket_contents(&self, subpath: &str) -> Result<Option<BucketContents>>;
    /// Deletes bucket `subpath`: its cabs are removed (bytes swept later), its hits.log,
    /// counters, settings, CER V2 reports and folders go, and crash.log lines naming it are
    /// blanked; recorded in the audit. One transaction. Returns what it removed.
    fn delete_bucket(&self, subpath: &str, audit: &Audit) -> Result<Option<BucketContents>>;

    /// Complete cabs on the share after inode `after`, in inode order, up to `limit`.
    fn cabs_after(&self, after: Ino, limit: usize) -> Result<Vec<CabEntry>>;
    /// Re-hashes cab `ino` against its sha256 (streamed) and records the result.
    fn check_cab(&self, ino: Ino) -> Result<CabCheck>;
    /// `PRAGMA integrity_check`: `"ok"` or SQLite's findings.
    fn integrity(&self) -> Result<String>;
    /// The structure of the file holding big cabs' bytes, where the store has one
    /// (SQLite's `<db>-cabs`, `PRAGMA quick_check`): `"ok"` or the findings; `None` when it
    /// cannot be checked now (a server holds it: a long check would hold up its uploads).
    fn cab_file_integrity(&self) -> Result<Option<String>>;

    /// How big the store is.
    fn usage(&self) -> Result<StoreUsage>;
    /// Gives about `max_bytes` of free pages back to the filesystem (one transaction, in
    /// one file). Returns how many bytes were freed (0: nothing left to give); `None` if
    /// the files were not created for that (`cerfs compact --full` with the server
    /// stopped converts them).
    fn release_free_space(&self, max_bytes: u64) -> Result<Option<u64>>;
    /// Writes a consistent copy of the whole store to `dest` (which must not exist), while
    /// it is in use.
    fn backup_to(&self, dest: &Path) -> Result<()>;
}
