//! Where a directory sits in the share, and what role a new file there takes.

use cerfs_db::{Ino, NodeRole, Store, CABS_INO, COUNTS_INO, ROOT_INO, STATUS_INO};

use crate::{FsError, Result};

/// The part of the share a directory belongs to, with the bucket subpath below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Area {
    /// The share root.
    Root,
    /// `cabs/<sub>` (`sub` empty for `cabs/` itself).
    Cabs(Vec<String>),
    /// `status/<sub>`.
    Status(Vec<String>),
    /// `counts/<sub>`.
    Counts(Vec<String>),
    /// Anywhere else: plain files and folders.
    Other,
}

impl Area {
    /// Whether CER naming rules (R3, R4) apply to names created here.
    pub(crate) fn is_cer(&self) -> bool {
        !matches!(self, Area::Other)
    }

    /// The bucket subpath components, for the three CER trees.
    pub(crate) fn sub(&self) -> Option<&[String]> {
        match self {
            Area::Cabs(s) | Area::Status(s) | Area::Counts(s) => Some(s),
            Area::Root | Area::Other => None,
        }
    }

    /// The role a new file called `name` takes in a directory of this area.
    pub(crate) fn file_role(&self, name: &str) -> NodeRole {
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        match self {
            Area::Root if is("policy.txt") => NodeRole::Policy,
            Area::Root if is("crash.log") => NodeRole::CrashLog,
            Area::Counts(sub) if !sub.is_empty() && is("count.txt") => NodeRole::Count,
            Area::Status(sub) if !sub.is_empty() && is("status.txt") => NodeRole::Status,
            Area::Cabs(sub) if !sub.is_empty() && is("hits.log") => NodeRole::HitsLog,
            Area::Cabs(sub) if !sub.is_empty() => NodeRole::Cab,
            _ => NodeRole::File,
        }
    }
}

/// Path components of directory `dir` from the root (empty for the root).
pub(crate) fn dir_path(store: &dyn Store, dir: Ino) -> Result<Vec<String>> {
    let mut parts = Vec::new();
    let mut cur = dir;
    // Bounded walk: a cycle in a damaged store must not hang the caller.
    for _ in 0..4096 {
        if cur == ROOT_INO {
            parts.reverse();
            return Ok(parts);
        }
        let node = store.node(cur)?.ok_or(FsError::NotFound)?;
        parts.push(node.name);
        cur = node.parent;
    }
    Err(FsError::NotFound)
}

/// The area of directory `dir`, with its path from the root.
pub(crate) fn area_of(store: &dyn Store, dir: Ino) -> Result<(Area, Vec<String>)> {
    let path = dir_path(store, dir)?;
    let area = classify(&path, dir);
    Ok((area, path))
}

fn classify(path: &[String], dir: Ino) -> Area {
    if dir == ROOT_INO {
        return Area::Root;
    }
    let sub = || path.get(1..).unwrap_or_default().to_vec();
    match path.first().map(String::as_str) {
        Some("cabs") => Area::Cabs(sub()),
        Some("status") => Area::Status(sub()),
        Some("counts") => Area::Counts(sub()),
        _ => Area::Other,
    }
}

/// The fixed directories, which can be neither removed nor renamed.
pub(crate) fn is_fixed(ino: Ino) -> bool {
    matches!(ino, ROOT_INO | CABS_INO | STATUS_INO | COUNTS_INO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn roles_follow_the_share_layout() {
        let counts = classify(&v(&["counts", "blue"]), 9);
        assert_eq!(counts, Area::Counts(v(&["blue"])));
        assert_eq!(counts.file_role("count.txt"), NodeRole::Count);
        assert_eq!(counts.file_role("Count.TXT"), NodeRole::Count);
        assert_eq!(counts.file_role("notes.txt"), NodeRole::File);
        let cabs = classify(&v(&["cabs", "blue"]), 9);
        assert_eq!(cabs.file_role("x.cab"), NodeRole::Cab);
        assert_eq!(cabs.file_role("hits.log"), NodeRole::HitsLog);
        // Directly under cabs/ there is no bucket yet: a plain file.
        assert_eq!(
            classify(&v(&["cabs"]), CABS_INO).file_role("x.cab"),
            NodeRole::File
        );
        assert_eq!(
            classify(&[], ROOT_INO).file_role("policy.txt"),
            NodeRole::Policy
        );
        assert_eq!(
            classify(&[], ROOT_INO).file_role("crash.log"),
            NodeRole::CrashLog
        );
        assert_eq!(
            classify(&v(&["scratch"]), 9).file_role("policy.txt"),
            NodeRole::File
        );
        assert_eq!(
            classify(&v(&["status", "a"]), 9).file_role("status.txt"),
            NodeRole::Status
        );
    }
}
