//! What admins (the CLI) and the HTTP server do without a client's handle: counters,
//! settings and cab uploads by bucket subpath, under the same rules as the share.

use std::io::Read;

use cerfs_db::{Counts, Ino, NewNode, NodeRole, SettingsScope, COUNTS_INO, ROOT_INO, STATUS_INO};

use crate::{settings_file, share_path, Caller, CerFs, Content, FsError, OpenFlags, Result};

/// Server-side changes act as root (an admin).
const SERVER: Caller = Caller {
    pid: 0,
    uid: 0,
    gid: 0,
};

/// Which settings file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsTarget {
    /// policy.txt at the root.
    Policy,
    /// status.txt of the bucket with this subpath (`App\1.0\Mod\1.0\0000abcd`, `blue`).
    Status(String),
}

impl SettingsTarget {
    fn grammar(&self) -> settings_file::Scope {
        match self {
            SettingsTarget::Policy => settings_file::Scope::Policy,
            SettingsTarget::Status(_) => settings_file::Scope::Status,
        }
    }
}

/// Splits a bucket subpath (`\` or `/` separated) and checks every component (R3).
pub fn subpath_parts(subpath: &str) -> Result<Vec<String>> {
    let parts: Vec<String> = subpath
        .split(['\\', '/'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            share_path::check_component(p.as_bytes())
                .map(str::to_owned)
                .map_err(|e| FsError::InvalidName(format!("{p:?}: {e}")))
        })
        .collect::<Result<_>>()?;
    if parts.is_empty() {
        return Err(FsError::InvalidName("empty bucket subpath".into()));
    }
    Ok(parts)
}

impl CerFs {
    /// Ensures the folders `parts` exist below `top` (mkdir of each level, R5); returns the last.
    pub fn ensure_dirs(&self, top: Ino, parts: &[String]) -> Result<Ino> {
        let mut dir = top;
        for part in parts {
            dir = match self.mkdir(&SERVER, dir, part.as_bytes(), 0o777) {
                Ok(attr) => attr.ino,
                // Another client made it first: fine.
                Err(FsError::Exists) => self.lookup(&SERVER, dir, part.as_bytes())?.ino,
                Err(e) => return Err(e),
            };
        }
        Ok(dir)
    }

    /// Adds a report to a bucket's counters in one transaction, creating its
    /// `counts/<sub>/count.txt` first if needed; returns the new counters.
    pub fn count_report(&self, subpath: &str, cabs: u64, hits: u64) -> Result<Counts> {
        let parts = subpath_parts(subpath)?;
        let dir = self.ensure_dirs(COUNTS_INO, &parts)?;
        let node = self.bucket_file(dir, "count.txt", NodeRole::Count, &parts)?;
        let bucket = node.bucket.ok_or(FsError::NotFound)?;
        let now = self.store.add_counts(bucket, cabs, hits)?;
        self.changes.changed(Content::Counts(bucket));
        Ok(now)
    }

    /// Sets a bucket's counters back to zero; returns what they were.
    pub fn reset_counts(&self, subpath: &str) -> Result<Counts> {
        self.set_counts(subpath, Counts::default())
    }

    /// Sets a bucket's counters (an admin correcting them, or bringing over a share's
    /// history); returns what they were. The bucket must have its count.txt.
    pub fn set_counts(&self, subpath: &str, counts: Counts) -> Result<Counts> {
        let node = self.node_at(COUNTS_INO, &subpath_parts(subpath)?, "count.txt")?;
        let bucket = node.bucket.ok_or(FsError::NotFound)?;
        let old = self.store.set_counts(bucket, counts)?;
        self.changes.changed(Content::Counts(bucket));
        tracing::info!(subpath, ?old, new = ?counts, "counters set by an admin");
        Ok(old)
    }

    /// The stored parameters of a settings file, `None` when the file does not exist.
    pub fn settings_of(&self, target: &SettingsTarget) -> Result<Option<Vec<(String, String)>>> {
        let node = match target {
            SettingsTarget::Policy => self.store.lookup(ROOT_INO, "policy.txt")?,
            SettingsTarget::Status(sub) => {
                match self.node_at(STATUS_INO, &subpath_parts(sub)?, "status.txt") {
                    Ok(node) => Some(node),
                    Err(FsError::NotFound) => None,
                    Err(e) => return Err(e),
                }
            }
        };
        match node {
            None => Ok(None),
            Some(node) => Ok(Some(self.store.settings(scope_of(&node)?)?)),
        }
    }

    /// Sets parameters (validated by the same grammar as the share), keeping the others;
    /// creates the file if needed. Returns the stored parameters.
    pub fn set_settings(
        &self,
        target: &SettingsTarget,
        pairs: &[(String, String)],
    ) -> Result<Vec<(String, String)>> {
        let mut checked = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let pair = settings_file::parse_pair(target.grammar(), k, v)
                .map_err(|e| FsError::InvalidContent(e.to_string()))?;
            checked.push(pair);
        }
        let node = match target {
            SettingsTarget::Policy => self.root_file("policy.txt", NodeRole::Policy)?,
            SettingsTarget::Status(sub) => {
                let parts = subpath_parts(sub)?;
                let dir = self.ensure_dirs(STATUS_INO, &parts)?;
                self.bucket_file(dir, "status.txt", NodeRole::Status, &parts)?
            }
        };
        let scope = scope_of(&node)?;
        let mut stored = self.store.settings(scope)?;
        for (k, v) in checked {
            match stored.iter_mut().find(|(sk, _)| *sk == k) {
                Some(slot) => slot.1 = v,
                None => stored.push((k, v)),
            }
        }
        settings_file::sort_canonical(&mut stored);
        self.store.replace_settings(scope, &stored)?;
        self.changes.changed(Content::Settings(scope));
        tracing::info!(?target, "settings changed");
        Ok(stored)
    }

    /// Removes the named parameters, or the whole file when `keys` is empty (or when
    /// nothing is left).
    pub fn clear_settings(&self, target: &SettingsTarget, keys: &[String]) -> Result<()> {
        let node = match target {
            SettingsTarget::Policy => self
                .store
                .lookup(ROOT_INO, "policy.txt")?
                .ok_or(FsError::NotFound)?,
            SettingsTarget::Status(sub) => {
                self.node_at(STATUS_INO, &subpath_parts(sub)?, "status.txt")?
            }
        };
        let scope = scope_of(&node)?;
        let mut stored = self.store.settings(scope)?;
        stored.retain(|(k, _)| !keys.is_empty() && !keys.contains(k));
        if stored.is_empty() {
            self.store.remove_node(node.ino)?;
        } else {
            self.store.replace_settings(scope, &stored)?;
        }
        self.changes.changed(Content::Settings(scope));
        tracing::info!(?target, ?keys, "settings cleared");
        Ok(())
    }

    /// The parameters a client of this bucket obeys: status.txt over policy.txt (R7);
    /// FileTreeRoot is policy-only and left out.
    pub fn effective_settings(&self, subpath: &str) -> Result<Vec<(String, String)>> {
        let mut merged: Vec<(String, String)> = self
            .settings_of(&SettingsTarget::Policy)?
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k != "FileTreeRoot")
            .collect();
        for (k, v) in self
            .settings_of(&SettingsTarget::Status(subpath.to_owned()))?
            .unwrap_or_default()
        {
            match merged.iter_mut().find(|(mk, _)| *mk == k) {
                Some(slot) => slot.1 = v,
                None => merged.push((k, v)),
            }
        }
        settings_file::sort_canonical(&mut merged);
        Ok(merged)
    }

    /// Starts a cab upload at `cabs/<sub>/<name>` (folders created as needed); returns the
    /// handle to `write` to, then `flush(fh, None)` + `release` to commit, or
    /// `abort_upload` to drop it.
    pub fn begin_cab(&self, subpath: &str, name: &str) -> Result<u64> {
        let parts = subpath_parts(subpath)?;
        let dir = self.ensure_dirs(cerfs_db::CABS_INO, &parts)?;
        let flags = OpenFlags {
            read: true,
            write: true,
            truncate: false,
            append: false,
        };
        let (_, opened) = self.create(&SERVER, dir, name.as_bytes(), 0o644, flags, true)?;
        Ok(opened.fh)
    }

    /// Streams `reader` into a new cab at `cabs/<sub>/<name>` and commits it; returns its size.
    /// On any error nothing is kept.
    pub fn upload_cab(&self, subpath: &str, name: &str, reader: &mut dyn Read) -> Result<u64> {
        let fh = self.begin_cab(subpath, name)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0u64;
        let result = loop {
            match reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => match self.write(fh, at, &buf[..n]) {
                    Ok(_) => at += n as u64,
                    Err(e) => break Err(e),
                },
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(FsError::InvalidContent(format!("reading the upload: {e}"))),
            }
        };
        if let Err(e) = result {
            self.abort_upload(fh)?;
            return Err(e);
        }
        self.flush(fh, None)?;
        self.release(fh)?;
        Ok(at)
    }

    /// `name` in the folder `top/parts`, which must exist.
    fn node_at(&self, top: Ino, parts: &[String], name: &str) -> Result<cerfs_db::Node> {
        let mut dir = top;
        for part in parts {
            dir = self.store.lookup(dir, part)?.ok_or(FsError::NotFound)?.ino;
        }
        self.store.lookup(dir, name)?.ok_or(FsError::NotFound)
    }

    /// The bucket file `name` in `dir`, created with `role` if missing.
    fn bucket_file(
        &self,
        dir: Ino,
        name: &str,
        role: NodeRole,
        parts: &[String],
    ) -> Result<cerfs_db::Node> {
        if let Some(node) = self.store.lookup(dir, name)? {
            return Ok(node);
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let key = share_path::bucket_key(&refs);
        let new = NewNode {
            parent: dir,
            name,
            role,
            mode: 0o666,
            uid: 0,
            gid: 0,
            bucket: Some(&key),
        };
        match self.store.create_node(&new) {
            Ok(node) => Ok(node),
            Err(cerfs_db::StoreError::Exists(_)) => {
                self.store.lookup(dir, name)?.ok_or(FsError::NotFound)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn root_file(&self, name: &str, role: NodeRole) -> Result<cerfs_db::Node> {
        if let Some(node) = self.store.lookup(ROOT_INO, name)? {
            return Ok(node);
        }
        let new = NewNode {
            parent: ROOT_INO,
            name,
            role,
            mode: 0o644,
            uid: 0,
            gid: 0,
            bucket: None,
        };
        match self.store.create_node(&new) {
            Ok(node) => Ok(node),
            Err(cerfs_db::StoreError::Exists(_)) => {
                self.store.lookup(ROOT_INO, name)?.ok_or(FsError::NotFound)
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn scope_of(node: &cerfs_db::Node) -> Result<SettingsScope> {
    match (node.role, node.bucket) {
        (NodeRole::Policy, _) => Ok(SettingsScope::Policy),
        (NodeRole::Status, Some(b)) => Ok(SettingsScope::Status(b)),
        _ => Err(FsError::NotFound),
    }
}
