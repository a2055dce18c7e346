//! Values every store backend shares: how a node's role is spelled in its table, times
//! as nanoseconds, the names a node may have, and copying the part of a stored piece
//! that a read asks for.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::{BucketKey, NodeRole, Result};
use crate::StoreError;

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
