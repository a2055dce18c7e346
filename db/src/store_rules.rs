//! What every store backend decides the same way, whatever its SQL: how a node's role is
//! spelled in its table, times as nanoseconds, numbers as SQL values, the names a node may
//! have and where a directory may move, a new node's attributes, how a write falls into
//! stored chunks, counter values, copying the part of a stored piece a read asks for, and
//! when a cab may be committed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::{
    BucketId, BucketKey, CabState, Counts, Ino, NewNode, Node, NodeRole, Result, ROOT_INO,
};
use crate::StoreError;

/// The largest size a file or log may have (sizes are signed 64-bit in SQL).
pub(crate) const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// An inode number as an SQL value. Numbers above `i64::MAX` cannot exist; they become
/// -1, which matches no row.
pub(crate) fn ino_param(ino: Ino) -> i64 {
    i64::try_from(ino).unwrap_or(-1)
}

/// A byte offset or size as an SQL value, or `Invalid` past `i64::MAX`.
pub(crate) fn size_param(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Invalid(format!("{what} {v} is beyond 2^63 - 1")))
}

pub(crate) fn time_to_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos())
            .map(|n| -n)
            .unwrap_or(i64::MIN),
    }
}

pub(crate) fn ns_to_time(ns: i64) -> SystemTime {
    let d = Duration::from_nanos(ns.unsigned_abs());
    let t = if ns >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    };
    t.unwrap_or(UNIX_EPOCH)
}

pub(crate) fn now_ns() -> i64 {
    time_to_ns(SystemTime::now())
}

pub(crate) fn role_str(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Dir => "dir",
        NodeRole::File => "file",
        NodeRole::Cab => "cab",
        NodeRole::Count => "count",
        NodeRole::Status => "status",
        NodeRole::Policy => "policy",
        NodeRole::CrashLog => "crashlog",
        NodeRole::HitsLog => "hitslog",
    }
}

pub(crate) fn role_from_str(s: &str) -> Option<NodeRole> {
    Some(match s {
        "dir" => NodeRole::Dir,
        "file" => NodeRole::File,
        "cab" => NodeRole::Cab,
        "count" => NodeRole::Count,
        "status" => NodeRole::Status,
        "policy" => NodeRole::Policy,
        "crashlog" => NodeRole::CrashLog,
        "hitslog" => NodeRole::HitsLog,
        _ => return None,
    })
}

/// Copies the part of `src` (which holds bytes `[src_start, src_start + src.len())` of a
/// file or log) that falls inside `out` (bytes `[out_start, out_start + out.len())`).
pub(crate) fn copy_overlap(out: &mut [u8], out_start: u64, src: &[u8], src_start: u64) {
    let out_end = out_start + out.len() as u64;
    let src_end = src_start + src.len() as u64;
    let lo = out_start.max(src_start);
    let hi = out_end.min(src_end);
    if lo >= hi {
        return;
    }
    // All four differences are below out.len() or src.len(), so they fit in usize.
    let (o, s, n) = (
        (lo - out_start) as usize,
        (lo - src_start) as usize,
        (hi - lo) as usize,
    );
    if let (Some(dst), Some(src)) = (out.get_mut(o..o + n), src.get(s..s + n)) {
        dst.copy_from_slice(src);
    }
}

/// A name a node may have: not empty (that is the root's), no `/`, no NUL.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(['/', '\0']) {
        return Err(StoreError::Invalid(format!("bad node name {name:?}")));
    }
    Ok(())
}

/// A bucket key a store accepts: a subpath, and the five app fields for kind `app` only.
pub(crate) fn check_bucket_key(key: &BucketKey) -> Result<()> {
    if key.subpath.is_empty() {
        return Err(StoreError::Invalid("empty bucket subpath".into()));
    }
    if (key.kind == "app") != key.app.is_some() {
        return Err(StoreError::Invalid(format!(
            "bucket {:?} of kind {:?}: the five app fields are required for kind \"app\" \
             and only for it",
            key.subpath, key.kind
        )));
    }
    Ok(())
}

/// The node `create_node` just stored as row `ino`, created at `now` (ns).
pub(crate) fn new_node(
    ino: i64,
    new: &NewNode<'_>,
    bucket: Option<BucketId>,
    now: i64,
) -> Result<Node> {
    let time = ns_to_time(now);
    Ok(Node {
        ino: u64::try_from(ino).map_err(|_| StoreError::Invalid("negative inode number".into()))?,
        parent: new.parent,
        name: new.name.to_owned(),
        role: new.role,
        size: 0,
        mode: new.mode,
        uid: new.uid,
        gid: new.gid,
        mtime: time,
        ctime: time,
        crtime: time,
        bucket,
        cab_state: (new.role == NodeRole::Cab).then_some(CabState::Writing),
    })
}

/// Refuses to move directory `ino` under `new_parent` when that is the directory itself or
/// inside it; `parent_of` walks up from `new_parent` to the root.
pub(crate) fn check_move(
    ino: Ino,
    new_parent: Ino,
    mut parent_of: impl FnMut(Ino) -> Result<Ino>,
) -> Result<()> {
    let mut cur = new_parent;
    let mut depth = 0u32;
    while cur != ROOT_INO {
        if cur == ino {
            return Err(StoreError::Invalid(format!(
                "cannot move directory inode {ino} into itself"
            )));
        }
        depth += 1;
        if depth > 100_000 {
            return Err(StoreError::Invalid("directory cycle".into()));
        }
        cur = parent_of(cur)?;
    }
    Ok(())
}

/// Where a write of `len` bytes at `offset` ends, or why it may not be made.
pub(crate) fn write_end(offset: u64, len: usize) -> Result<u64> {
    offset
        .checked_add(len as u64)
        .filter(|end| *end <= MAX_FILE_SIZE)
        .ok_or_else(|| {
            StoreError::Invalid(format!(
                "write of {len} bytes at {offset} goes past the largest file size"
            ))
        })
}

/// Whether cab `node` may be marked complete with `size` and `sha256_hex`: it is a cab
/// still being written, holding exactly `size` bytes, and the hash is 64 hex digits.
pub(crate) fn check_cab_commit(node: &Node, size: u64, sha256_hex: &str) -> Result<()> {
    match node.cab_state {
        None => {
            return Err(StoreError::Invalid(format!(
                "inode {} is not a cab",
                node.ino
            )))
        }
        Some(CabState::Complete | CabState::Removed) => {
            return Err(StoreError::CabComplete(node.ino))
        }
        Some(CabState::Writing) => {}
    }
    if sha256_hex.len() != 64 || !sha256_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::Invalid(format!(
            "{sha256_hex:?} is not a hex SHA-256"
        )));
    }
    if size != node.size {
        return Err(StoreError::Invalid(format!(
            "cab inode {} holds {} bytes, not {size}",
            node.ino, node.size
        )));
    }
    Ok(())
}

/// The part of a write that falls into one stored chunk.
pub(crate) struct ChunkPiece<'a> {
    /// The chunk's index.
    pub(crate) idx: u64,
    /// Where in the chunk the piece starts.
    pub(crate) at: usize,
    /// The piece's bytes.
    pub(crate) bytes: &'a [u8],
    /// The piece is all the chunk may hold (it starts the chunk and fills it, or ends at
    /// or past the file's old end): stored as it is, without reading the chunk first.
    pub(crate) whole: bool,
}

/// The pieces of a write of `data` at `offset` into chunks of `chunk` bytes, for a file
/// of `old_size` bytes.
pub(crate) fn chunk_pieces(
    offset: u64,
    data: &[u8],
    chunk: u64,
    old_size: u64,
) -> impl Iterator<Item = ChunkPiece<'_>> {
    let end = offset + data.len() as u64;
    let mut pos = offset;
    std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let idx = pos / chunk;
        let start = idx * chunk;
        let at = (pos - start) as usize;
        let take = (chunk - (pos - start)).min(end - pos) as usize;
        let from = (pos - offset) as usize;
        let bytes = data.get(from..from + take).unwrap_or_default();
        let whole = at == 0 && (take as u64 == chunk || start + take as u64 >= old_size);
        pos += take as u64;
        Some(ChunkPiece {
            idx,
            at,
            bytes,
            whole,
        })
    })
}

/// `stored` (a chunk as it was, or empty) with `piece` written into it.
pub(crate) fn patched(mut stored: Vec<u8>, piece: &ChunkPiece<'_>) -> Vec<u8> {
    let end = piece.at + piece.bytes.len();
    if stored.len() < end {
        stored.resize(end, 0);
    }
    if let Some(dst) = stored.get_mut(piece.at..end) {
        dst.copy_from_slice(piece.bytes);
    }
    stored
}

/// A counter value a reset may set (up to 2^63 - 1).
pub(crate) fn counter_value(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Invalid(format!("counter {v} is beyond 2^63 - 1")))
}

/// Counters stop at 2^63 - 1 instead of failing (no counter state, however reached, may
/// refuse a report); says so when one got there.
pub(crate) fn warn_at_ceiling(bucket: BucketId, new: Counts) {
    let ceiling = i64::MAX as u64;
    if new.total_hits == ceiling || new.cabs_gathered == ceiling {
        tracing::warn!(bucket, ?new, "a counter of this bucket is at its largest value and stays there: reset it with `cerfs counts reset`");
    }
}

/// What a rename of `node` onto the existing `target` does: `Ok(false)` nothing (it is
/// the node itself), `Ok(true)` replace it, or why not (not asked to, or a directory and
/// a file).
pub(crate) fn may_replace(node: &Node, target: &Node, replace: bool) -> Result<bool> {
    if target.ino == node.ino {
        return Ok(false);
    }
    if !replace {
        return Err(StoreError::Exists(target.name.clone()));
    }
    match (node.role == NodeRole::Dir, target.role == NodeRole::Dir) {
        (true, false) => Err(StoreError::NotDir(target.ino)),
        (false, true) => Err(StoreError::IsDir(target.ino)),
        _ => Ok(true),
    }
}

/// A cab row's `coalesce(removal, state)` as the node's cab state (`None`: no cab row);
/// `Err` with the text when it is none of them.
pub(crate) fn cab_state_from(text: Option<&str>) -> std::result::Result<Option<CabState>, String> {
    Ok(match text {
        None => None,
        Some("writing") => Some(CabState::Writing),
        Some("complete") => Some(CabState::Complete),
        Some("pruned" | "deleted") => Some(CabState::Removed),
        Some(other) => return Err(other.to_owned()),
    })
}

/// The server settings a retention policy is kept in.
const RETENTION_KEYS: [&str; 4] = [
    "retention.max_age_days",
    "retention.keep_first",
    "retention.keep_last",
    "retention.max_cab_bytes",
];

/// The retention policy from the server settings `get` reads.
pub(crate) fn retention_from(
    mut get: impl FnMut(&str) -> Result<Option<String>>,
) -> Result<crate::RetentionPolicy> {
    fn number<T: std::str::FromStr>(key: &str, text: Option<String>) -> Result<Option<T>> {
        text.map(|text| {
            text.parse().map_err(|_| {
                StoreError::Invalid(format!("server setting {key} holds {text:?}, not a number"))
            })
        })
        .transpose()
    }
    let [age, first, last, bytes] = RETENTION_KEYS;
    Ok(crate::RetentionPolicy {
        max_age_days: number(age, get(age)?)?,
        keep_first: number(first, get(first)?)?,
        keep_last: number(last, get(last)?)?,
        max_cab_bytes: number(bytes, get(bytes)?)?,
    })
}

/// The server settings that keep `policy` (`None`: the setting goes).
pub(crate) fn retention_settings(
    policy: &crate::RetentionPolicy,
) -> [(&'static str, Option<String>); 4] {
    let [age, first, last, bytes] = RETENTION_KEYS;
    [
        (age, policy.max_age_days.map(|n| n.to_string())),
        (first, policy.keep_first.map(|n| n.to_string())),
        (last, policy.keep_last.map(|n| n.to_string())),
        (bytes, policy.max_cab_bytes.map(|n| n.to_string())),
    ]
}

/// Re-hashes a cab's stored chunks as they come, in order, checking that none is missing
/// or of the wrong length (the scrub, `cerfs verify`). A cab may be stored in segments of
/// different chunk sizes (the SQLite store's older cabs: `chunks`, then the cab database),
/// checked one after the other ([`ChunkCheck::then`]) into one hash.
pub(crate) struct ChunkCheck {
    /// What a chunk of this segment is called in a finding.
    what: &'static str,
    chunk: u64,
    /// Where the segment starts and ends in the cab.
    start: u64,
    end: u64,
    next: u64,
    seen: u64,
    hasher: sha2::Sha256,
}

impl ChunkCheck {
    /// The first `size` bytes, in chunks (called `what`) of `chunk` bytes.
    pub(crate) fn new(what: &'static str, chunk: u64, size: u64) -> ChunkCheck {
        ChunkCheck {
            what,
            chunk,
            start: 0,
            end: size,
            next: 0,
            seen: 0,
            hasher: <sha2::Sha256 as sha2::Digest>::new(),
        }
    }

    /// The next `size` bytes, in chunks (`what`) of `chunk` bytes counted from where this
    /// segment ended; what is wrong if this segment is short.
    pub(crate) fn then(
        self,
        what: &'static str,
        chunk: u64,
        size: u64,
    ) -> std::result::Result<ChunkCheck, String> {
        self.complete()?;
        Ok(ChunkCheck {
            what,
            chunk,
            start: self.end,
            end: self.end + size,
            next: 0,
            ..self
        })
    }

    /// Takes chunk `idx` of the segment; what is wrong with it, if anything.
    pub(crate) fn feed(&mut self, idx: u64, data: &[u8]) -> std::result::Result<(), String> {
        if idx != self.next {
            return Err(format!(
                "{} {} (bytes from {}) is missing",
                self.what,
                self.next,
                self.start + self.next * self.chunk
            ));
        }
        let wanted = (self.end - self.seen.min(self.end)).min(self.chunk) as usize;
        if data.len() != wanted {
            return Err(format!(
                "{} {idx} holds {} bytes, {wanted} expected",
                self.what,
                data.len()
            ));
        }
        sha2::Digest::update(&mut self.hasher, data);
        self.seen += data.len() as u64;
        self.next += 1;
        Ok(())
    }

    fn complete(&self) -> std::result::Result<(), String> {
        if self.seen == self.end {
            Ok(())
        } else {
            Err(format!("{} bytes stored, {} recorded", self.seen, self.end))
        }
    }

    /// The verdict once every chunk was fed: the bytes make the size and `sha256_hex`.
    pub(crate) fn finish(self, sha256_hex: &str) -> crate::CabCheck {
        if let Err(why) = self.complete() {
            return crate::CabCheck::Corrupt(why);
        }
        let got = hex_lower(&sha2::Digest::finalize(self.hasher));
        if got.eq_ignore_ascii_case(sha256_hex) {
            crate::CabCheck::Sound
        } else {
            crate::CabCheck::Corrupt(format!("sha256 is {got}, {sha256_hex} recorded"))
        }
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How a removal is spelled in `cab_rows.removal`.
pub(crate) fn removal_str(removal: crate::Removal) -> &'static str {
    match removal {
        crate::Removal::Pruned => "pruned",
        crate::Removal::Deleted => "deleted",
    }
}

/// A `cab_rows.removal` value as a removal (`None`: on the share).
pub(crate) fn removal_from(text: Option<&str>) -> Option<crate::Removal> {
    match text {
        Some("pruned") => Some(crate::Removal::Pruned),
        Some("deleted") => Some(crate::Removal::Deleted),
        _ => None,
    }
}
