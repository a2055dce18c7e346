//! Attributes: what `stat` shows of each kind of node (synthesized files sized as a read
//! would return them now; permissions that make Samba's own checks agree with fs-core's),
//! and attribute changes, a size change going through the open handle's semantics.

use cerfs_db::{AttrChange, CabState, Ino, LogId, Node, NodeRole, SettingsScope, ROOT_INO};

use crate::area;
use crate::handle::HandleKind;
use crate::sync::lock;
use crate::{
    count_file, settings_file, Attr, Caller, CerFs, Content, FileKind, FsError, Result, SetAttr,
};

impl CerFs {
    /// Attributes of `ino`; with `fh`, as seen through that open handle (its unflushed size).
    pub fn getattr(&self, ino: Ino, fh: Option<u64>) -> Result<Attr> {
        let node = self.live_node(ino)?;
        let mut attr = self.attr_of(&node)?;
        if let Some(h) = fh.and_then(|fh| self.handle(fh).ok()) {
            let h = lock(&h);
            if h.ino == ino {
                match &h.kind {
                    HandleKind::Count(c) => attr.size = c.buf.bytes.len() as u64,
                    HandleKind::Settings(s) => attr.size = s.buf.bytes.len() as u64,
                    HandleKind::Log(l) => attr.size = l.size(),
                    HandleKind::CabWriter(w) => attr.size = w.size(),
                    HandleKind::Plain => {}
                }
            }
        }
        Ok(attr)
    }

    /// Changes attributes; a size change on a handle goes through the handle's semantics.
    pub fn setattr(
        &self,
        caller: &Caller,
        ino: Ino,
        fh: Option<u64>,
        set: &SetAttr,
    ) -> Result<Attr> {
        let node = self.live_node(ino)?;
        let plain = self.check_attr_change(caller, &node, set)?;
        if let Some(size) = set.size {
            self.set_size(&node, fh, size)?;
        }
        // CER nodes show modes and owners of their role: nothing of those is stored. Nor
        // the times of synthesized files: smbd sets a written file's time at every close
        // (a write transaction each, five per report cycle), and their content keeps its
        // own times (a bucket's last report, each log line's).
        let synthesized = !matches!(node.role, NodeRole::Dir | NodeRole::File | NodeRole::Cab);
        let change = AttrChange {
            mode: set.mode.filter(|_| plain),
            uid: set.uid.filter(|_| plain),
            gid: set.gid.filter(|_| plain),
            mtime: set.mtime.filter(|_| !synthesized),
        };
        if change.mode.is_some()
            || change.uid.is_some()
            || change.gid.is_some()
            || change.mtime.is_some()
        {
            self.store.set_attr(ino, &change)?;
        }
        self.getattr(ino, fh)
    }

    /// Who may change a node's mode, owner and times: on plain files and folders the
    /// POSIX rules (mode by the owner or root, owner and group by root). The modes and
    /// owners of CER files and folders are the share's rules made visible: their owner's
    /// (or root's) chmod succeeds and changes nothing (smbd applies the mode it computes
    /// from DOS attributes to files it just created, and must not fail there), anybody
    /// else's is refused, and their owner never changes. A stored cab's time stays.
    /// Returns whether the node is a plain file or folder.
    fn check_attr_change(&self, caller: &Caller, node: &Node, set: &SetAttr) -> Result<bool> {
        let plain = match node.role {
            NodeRole::File => true,
            NodeRole::Dir => !self.in_cer_tree(node)?,
            _ => false,
        };
        let refuse = |why: &'static str| {
            tracing::info!(
                ino = node.ino,
                uid = caller.uid,
                ?set,
                "refused an attribute change: {why}"
            );
            Err(FsError::NotPermitted(why))
        };
        let (root, owner) = (caller.uid == 0, caller.uid == node.uid);
        if !plain {
            let shown = self.attr_of(node)?;
            if set.uid.is_some_and(|u| u != shown.uid) || set.gid.is_some_and(|g| g != shown.gid) {
                return refuse("the owners of CER files and folders are the share's rules");
            }
            if set.mode.is_some() && !root && caller.uid != shown.uid && !owner {
                return refuse("only its owner may change a file's mode");
            }
        }
        if node.role == NodeRole::Cab
            && node.cab_state == Some(CabState::Complete)
            && set.mtime.is_some()
        {
            return refuse("a stored cab cannot change");
        }
        // The kernel checks group membership for a chgrp (default_permissions); fs-core
        // keeps what it can tell from the caller alone.
        if plain && set.uid.is_some_and(|u| u != node.uid) && !root {
            return refuse("only root may give a file to another owner");
        }
        // Clearing set-user-ID / set-group-ID is what the kernel asks for when someone
        // other than the owner writes the file (it checked the write permission).
        let kills_privileges = node.mode & 0o6000 != 0
            && set
                .mode
                .is_some_and(|m| m & 0o7777 == node.mode & 0o7777 & !0o6000);
        let mode_change = set.mode.is_some() && !kills_privileges;
        if plain && (mode_change || set.gid.is_some_and(|g| g != node.gid)) && !root && !owner {
            return refuse("only its owner may change a file's mode or group");
        }
        Ok(plain)
    }

    fn set_size(&self, node: &Node, fh: Option<u64>, size: u64) -> Result<()> {
        if node.role == NodeRole::Dir {
            return Err(FsError::IsDir);
        }
        // A truncate through a handle follows that handle's semantics.
        if let Some(h) = fh.and_then(|fh| self.handle(fh).ok()) {
            let mut h = lock(&h);
            if h.ino == node.ino {
                if !h.writable {
                    return Err(FsError::BadHandle);
                }
                return match &mut h.kind {
                    HandleKind::Count(c) => c.buf.truncate(size),
                    HandleKind::Settings(s) => s.buf.truncate(size),
                    HandleKind::Log(l) => {
                        l.truncate(size);
                        Ok(())
                    }
                    HandleKind::CabWriter(w) => w.truncate(&*self.store, node.ino, size),
                    HandleKind::Plain => self.truncate_plain(node, size),
                };
            }
        }
        match node.role {
            NodeRole::File => Ok(self.store.truncate(node.ino, size)?),
            NodeRole::Cab => match self.cab_writer_of(node.ino) {
                Some(writer) => {
                    let h = self.handle(writer)?;
                    let mut h = lock(&h);
                    match &mut h.kind {
                        HandleKind::CabWriter(w) => w.truncate(&*self.store, node.ino, size),
                        _ => Err(FsError::Busy),
                    }
                }
                None => Err(FsError::NotPermitted("a committed cab cannot be truncated")),
            },
            // Truncating a synthesized file by path is meaningful only as a no-op.
            _ if size == self.attr_of(node)?.size => Ok(()),
            _ => Err(FsError::NotPermitted(
                "synthesized files change only through an open handle",
            )),
        }
    }

    fn truncate_plain(&self, node: &Node, size: u64) -> Result<()> {
        match node.role {
            NodeRole::File => Ok(self.store.truncate(node.ino, size)?),
            _ => Err(FsError::NotPermitted("a committed cab cannot be truncated")),
        }
    }

    pub(crate) fn attr_of(&self, node: &Node) -> Result<Attr> {
        let (kind, size, volatile, content) = match node.role {
            NodeRole::Dir => (FileKind::Directory, 4096, false, None),
            NodeRole::File => (FileKind::RegularFile, node.size, false, None),
            NodeRole::Cab => (
                FileKind::RegularFile,
                node.size,
                node.cab_state != Some(CabState::Complete),
                None,
            ),
            NodeRole::Count => {
                let bucket = node.bucket.ok_or(FsError::NotFound)?;
                let text = count_file::render(self.store.counts(bucket)?);
                let content = Content::Counts(bucket);
                (
                    FileKind::RegularFile,
                    text.len() as u64,
                    true,
                    Some(content),
                )
            }
            NodeRole::Status | NodeRole::Policy => {
                let scope = match node.bucket {
                    Some(b) if node.role == NodeRole::Status => SettingsScope::Status(b),
                    _ => SettingsScope::Policy,
                };
                let len = settings_file::render(&self.store.settings(scope)?).len();
                let content = Content::Settings(scope);
                (FileKind::RegularFile, len as u64, true, Some(content))
            }
            NodeRole::CrashLog | NodeRole::HitsLog => {
                let log = match node.bucket {
                    Some(b) if node.role == NodeRole::HitsLog => LogId::Hits(b),
                    _ => LogId::Crash,
                };
                let len = self.store.log_len(log)?;
                (FileKind::RegularFile, len, true, Some(Content::Log(log)))
            }
        };
        // What the kernel's checks (default_permissions) and Samba's see: CER folders are
        // root's and sticky, so anyone may create in them but nobody may delete or rename
        // what is not his; the files fs-core protects belong to root (settings to the
        // admin), so smbd itself refuses a guest's DELETE open of them (docs/security.md).
        let (perm, uid, gid) = match (node.role, node.cab_state) {
            (NodeRole::Dir, _) if self.in_cer_tree(node)? => (0o1777, 0, 0),
            (NodeRole::Dir | NodeRole::File, _) => {
                ((node.mode & 0o7777) as u16, node.uid, node.gid)
            }
            (NodeRole::Cab, Some(CabState::Complete)) => (0o444, 0, 0),
            // An upload is its writer's: its client may abandon (delete) it.
            (NodeRole::Cab, _) => (0o666, node.uid, node.gid),
            (NodeRole::Status | NodeRole::Policy, _) => (0o644, self.settings_owner(), 0),
            (NodeRole::Count | NodeRole::CrashLog | NodeRole::HitsLog, _) => (0o666, 0, 0),
        };
        Ok(Attr {
            ino: node.ino,
            size,
            kind,
            perm,
            nlink: if kind == FileKind::Directory { 2 } else { 1 },
            uid,
            gid,
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.ctime,
            crtime: node.crtime,
            volatile,
            content,
        })
    }

    /// Whether directory `node` is the root or inside `cabs`, `status` or `counts` (where
    /// names are CER names). Folders never move into or out of those trees, so the answer
    /// is cached for the folder's life.
    pub(crate) fn in_cer_tree(&self, node: &Node) -> Result<bool> {
        if area::is_fixed(node.ino) {
            return Ok(true);
        }
        if node.parent == ROOT_INO {
            return Ok(false);
        }
        if let Some(known) = lock(&self.cer_dirs).get(&node.ino) {
            return Ok(*known);
        }
        let parent = self.store.node(node.parent)?.ok_or(FsError::NotFound)?;
        let inside = self.in_cer_tree(&parent)?;
        let mut known = lock(&self.cer_dirs);
        if known.len() >= CER_DIRS_CACHED {
            known.clear();
        }
        known.insert(node.ino, inside);
        Ok(inside)
    }

    /// Who policy.txt and status.txt are shown to belong to: the admin account (the first
    /// admin uid other than root), else root.
    fn settings_owner(&self) -> u32 {
        self.admin_uids
            .iter()
            .copied()
            .find(|u| *u != 0)
            .unwrap_or(0)
    }
}

/// Folders whose place [`CerFs::in_cer_tree`] remembers (about 1 MiB at most).
const CER_DIRS_CACHED: usize = 65_536;
