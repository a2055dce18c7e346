//! The narrow storage interface fs-core talks to, and the value types it exchanges.
//!
//! [`Store`] is the sum of one trait per family of methods (the namespace, file bytes,
//! buckets and counters, settings, logs, CER V2 reports), so that an implementation keeps
//! each family in a file of its own (`sqlite/namespace.rs`, ...).

use std::time::SystemTime;

use crate::lifecycle::LifecycleStore;
use crate::reports::ReportStore;
use crate::StoreError;

/// Inode number of a node. Stable for the life of the node; never reused while the store lives.
pub type Ino = u64;

/// Inode of the share root.
pub const ROOT_INO: Ino = 1;
/// Inode of `cabs/`.
pub const CABS_INO: Ino = 2;
/// Inode of `status/`.
pub const STATUS_INO: Ino = 3;
/// Inode of `counts/`.
pub const COUNTS_INO: Ino = 4;

/// Row id of a bucket (one error signature, keyed by its subpath).
pub type BucketId = i64;

/// What a node in the namespace is; decides where its content comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRole {
    /// A directory.
    Dir,
    /// A plain file whose bytes are stored in the chunk table.
    File,
    /// A cab report under `cabs/<sub>/`; bytes in the chunk table, a row in `cabs`.
    Cab,
    /// `counts/<sub>/count.txt`, rendered from the bucket's counters.
    Count,
    /// `status/<sub>/status.txt`, rendered from the bucket's settings.
    Status,
    /// `policy.txt` at the root, rendered from the global settings.
    Policy,
    /// `crash.log` at the root, rendered from log rows.
    CrashLog,
    /// `cabs/<sub>/hits.log`, rendered from the bucket's log rows.
    HitsLog,
}

/// State of a cab's upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CabState {
    /// Its writer has not closed it yet.
    Writing,
    /// Closed by its writer: immutable from now on.
    Complete,
    /// Pruned by retention or deleted by an admin: gone from the share (its bytes are
    /// removed; a pruned cab's row stays for SQL).
    Removed,
}

/// One entry of the namespace as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Inode number.
    pub ino: Ino,
    /// Parent directory (the root is its own parent).
    pub parent: Ino,
    /// Name within the parent (ASCII for CER paths, any UTF-8 elsewhere).
    pub name: String,
    /// What the node is.
    pub role: NodeRole,
    /// Stored byte length: meaningful for `File` and `Cab` only (synthesized files are sized by fs-core).
    pub size: u64,
    /// Permission bits (e.g. 0o644).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Last modification.
    pub mtime: SystemTime,
    /// Last status change.
    pub ctime: SystemTime,
    /// Creation.
    pub crtime: SystemTime,
    /// The bucket a `Count`, `Status`, `HitsLog` or `Cab` node belongs to.
    pub bucket: Option<BucketId>,
    /// For `Cab` nodes: the upload state.
    pub cab_state: Option<CabState>,
}

/// What fs-core knows about a bucket when it first touches it (parsed from the subpath, R1/R2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketKey {
    /// The error subpath with backslashes, as a Windows client writes it in crash.log
    /// (`TestApplication\1.0.0.0\TestModule\1.0.0.0\00000000`, `blue`).
    pub subpath: String,
    /// `app`, `blue`, `shutdown` or `generic`.
    pub kind: String,
    /// For `app` buckets: AppName, AppVer, ModName, ModVer, Offset.
    pub app: Option<[String; 5]>,
}

/// A new node to create.
#[derive(Debug, Clone)]
pub struct NewNode<'a> {
    /// Parent directory.
    pub parent: Ino,
    /// Name within the parent.
    pub name: &'a str,
    /// What it is.
    pub role: NodeRole,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Bucket for Count / Status / HitsLog / Cab nodes: created if missing.
    pub bucket: Option<&'a BucketKey>,
}

/// Cabs Gathered and Total Hits of one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// `Cabs Gathered=`.
    pub cabs_gathered: u64,
    /// `Total Hits=`.
    pub total_hits: u64,
}

/// Which settings: the global policy or one bucket's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SettingsScope {
    /// policy.txt.
    Policy,
    /// status.txt of one bucket.
    Status(BucketId),
}

/// Which log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogId {
    /// The root crash.log.
    Crash,
    /// The hits.log of one bucket.
    Hits(BucketId),
}

/// Parsed fields of a well-formed log line (MS-CER 2.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFields {
    /// `HH:MM:SS`, client local time.
    pub time: String,
    /// `MM-DD-YYYY`.
    pub date: String,
    /// Machine name.
    pub machine: String,
    /// User name.
    pub user: String,
    /// hits.log: report file name or `No CAB`; crash.log: bucket id or subpath.
    pub item: String,
    /// `date` and `time` as `YYYY-MM-DDTHH:MM:SS` (the client's local time, no zone), as
    /// the parser that checked them wrote it (`log_lines.client_time`).
    pub client_time: String,
}

/// One line to append to a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The exact bytes rendered for this line, line ending included.
    pub bytes: Vec<u8>,
    /// The parsed fields, or `None` when the line did not parse and is kept verbatim (flagged).
    pub fields: Option<LogFields>,
}

/// Attribute changes; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct AttrChange {
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New modification time.
    pub mtime: Option<SystemTime>,
}

/// Result type of the store.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Everything fs-core needs from storage. Each method of each family is atomic (one
/// transaction).
pub trait Store:
    NamespaceStore
    + ContentStore
    + CounterStore
    + SettingsStore
    + LogStore
    + ReportStore
    + LifecycleStore
{
}

impl<T> Store for T where
    T: NamespaceStore
        + ContentStore
        + CounterStore
        + SettingsStore
        + LogStore
        + ReportStore
        + LifecycleStore
{
}

/// The namespace: folders and files, their names and attributes.
pub trait NamespaceStore: Send + Sync {
    /// The child `name` of `parent`, if any.
    fn lookup(&self, parent: Ino, name: &str) -> Result<Option<Node>>;
    /// The node `ino`, if it exists.
    fn node(&self, ino: Ino) -> Result<Option<Node>>;
    /// All children of `parent`, ordered by name.
    fn children(&self, parent: Ino) -> Result<Vec<Node>>;
    /// Creates a node; `StoreError::Exists` if the name is taken. Creates the bucket row
    /// when `new.bucket` names one that does not exist yet; a `Count` node starts at 0/0.
    fn create_node(&self, new: &NewNode<'_>) -> Result<Node>;
    /// Removes a node and what it owns (chunks; a Count node's counters stay with the bucket
    /// but the bucket's count.txt disappears; a Status/Policy node's settings are cleared).
    /// `StoreError::NotEmpty` for a directory with children.
    fn remove_node(&self, ino: Ino) -> Result<()>;
    /// Moves/renames `ino` to (`new_parent`, `new_name`), replacing a node there when
    /// `replace` (the replaced node is removed as by `remove_node`), else `Exists`.
    fn rename_node(&self, ino: Ino, new_parent: Ino, new_name: &str, replace: bool) -> Result<()>;
    /// Changes attributes and bumps ctime.
    fn set_attr(&self, ino: Ino, change: &AttrChange) -> Result<Node>;
}

/// The byte content of `File` and `Cab` nodes (chunked), and durability.
pub trait ContentStore: Send + Sync {
    /// Reads up to `len` bytes at `offset` (short at end of file).
    fn read_at(&self, ino: Ino, offset: u64, len: u32) -> Result<Vec<u8>>;
    /// Writes `data` at `offset`, extending (with zeros in any gap); sets mtime. Returns the new size.
    fn write_at(&self, ino: Ino, offset: u64, data: &[u8]) -> Result<u64>;
    /// Writes at `offset` that start and end on a multiple of this many bytes are the
    /// cheapest: they replace whole storage units instead of rewriting part of one (1: no
    /// such unit). Units are powers of two, grow with the offset, and change only at
    /// offsets that are multiples of every unit.
    fn write_alignment(&self, offset: u64) -> u64 {
        let _ = offset;
        1
    }
    /// Sets the size, dropping or zero-extending content; sets mtime.
    fn truncate(&self, ino: Ino, size: u64) -> Result<()>;
    /// Makes every committed change durable: it then survives a power cut, not only a crash
    /// of the process (which every commit survives as it returns). What `fsync` asks for.
    fn sync(&self) -> Result<()>;
    /// Checks that the storage is still the one opened: for a database file, that its path
    /// was not deleted or given to another file while serving ([`StoreError::Replaced`]).
    fn check_identity(&self) -> Result<()> {
        Ok(())
    }
    /// A number that moves whenever another process (an admin's command) has committed a
    /// change since the last call, so that a server can drop what it caches; it never
    /// moves for this store's own commits. A store no other process writes keeps it at 0.
    fn outside_changes(&self) -> Result<u64> {
        Ok(0)
    }
    /// Marks a cab complete with its final size and sha256 (hex), stamping its created time.
    fn commit_cab(&self, ino: Ino, size: u64, sha256_hex: &str) -> Result<()>;
    /// Stores `data` as the whole content of cab `ino`, which has no bytes stored yet, and
    /// commits it as [`commit_cab`](Self::commit_cab) does: what a small upload's close
    /// asks for, in one step where the store can.
    fn commit_whole_cab(&self, ino: Ino, data: &[u8], sha256_hex: &str) -> Result<()> {
        let size = self.write_at(ino, 0, data)?;
        self.commit_cab(ino, size, sha256_hex)
    }
}

/// Buckets and their counters (count.txt).
pub trait CounterStore: Send + Sync {
    /// The bucket with this subpath, creating its row if missing.
    fn ensure_bucket(&self, key: &BucketKey) -> Result<BucketId>;
    /// The bucket with this subpath, if it exists.
    fn find_bucket(&self, subpath: &str) -> Result<Option<BucketId>>;
    /// Current counters of a bucket.
    fn counts(&self, bucket: BucketId) -> Result<Counts>;
    /// Adds to the counters in one transaction and returns the new values; updates last_seen
    /// (and first_seen when it was unset). A counter stops at 2^63 - 1 rather than fail.
    fn add_counts(&self, bucket: BucketId, cabs: u64, hits: u64) -> Result<Counts>;
    /// Sets both counters of a bucket (an admin's reset or correction); returns what they
    /// were. Values past 2^63 - 1 are `StoreError::Invalid`.
    fn set_counts(&self, bucket: BucketId, counts: Counts) -> Result<Counts>;
}

/// Settings: policy.txt and each bucket's status.txt.
pub trait SettingsStore: Send + Sync {
    /// The stored `(key, value)` pairs of a scope, in insertion order.
    fn settings(&self, scope: SettingsScope) -> Result<Vec<(String, String)>>;
    /// Replaces all settings of a scope.
    fn replace_settings(&self, scope: SettingsScope, pairs: &[(String, String)]) -> Result<()>;
}

/// crash.log and each bucket's hits.log.
pub trait LogStore: Send + Sync {
    /// Byte length of the rendered log.
    fn log_len(&self, log: LogId) -> Result<u64>;
    /// Up to `len` bytes of the rendered log at `offset`.
    fn read_log(&self, log: LogId, offset: u64, len: u32) -> Result<Vec<u8>>;
    /// Appends lines in arrival order, in one transaction; returns the new length.
    fn append_log(&self, log: LogId, lines: &[LogLine]) -> Result<u64>;
}
