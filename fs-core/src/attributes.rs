//! Attributes: what `stat` shows of each kind of node (synthesized files sized as a read
//! would return them now; permissions that make Samba's own checks agree with fs-core's),
//! and attribute changes, a size change going through the open handle's semantics.

use cerfs_db::{AttrChange, CabState, Ino, LogId, Node, NodeRole, SettingsScope};

use crate::handle::HandleKind;
use crate::sync::lock;
use crate::{count_file, settings_file, Attr, Caller, CerFs, FileKind, FsError, Result, SetAttr};

impl CerFs {
    /// Attributes of `ino`; with `fh`, as seen through that open handle (its unflushed size).
    pub fn getattr(&self, ino: Ino, fh: Option<u64>) -> Result<Attr> {
        let node = self.store.node(ino)?.ok_or(FsError::NotFound)?;
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
        let _ = caller;
        let node = self.store.node(ino)?.ok_or(FsError::NotFound)?;
        if let Some(size) = set.size {
            self.set_size(&node, fh, size)?;
        }
        let change = AttrChange {
            mode: set.mode,
            uid: set.uid,
            gid: set.gid,
            mtime: set.mtime,
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
        let (kind, size, volatile) = match node.role {
            NodeRole::Dir => (FileKind::Directory, 4096, false),
            NodeRole::File => (FileKind::RegularFile, node.size, false),
            NodeRole::Cab => (
                FileKind::RegularFile,
                node.size,
                node.cab_state != Some(CabState::Complete),
            ),
            NodeRole::Count => {
                let bucket = node.bucket.ok_or(FsError::NotFound)?;
                let text = count_file::render(self.store.counts(bucket)?);
                (FileKind::RegularFile, text.len() as u64, true)
            }
            NodeRole::Status | NodeRole::Policy => {
                let scope = match node.bucket {
                    Some(b) if node.role == NodeRole::Status => SettingsScope::Status(b),
                    _ => SettingsScope::Policy,
                };
                let len = settings_file::render(&self.store.settings(scope)?).len();
                (FileKind::RegularFile, len as u64, true)
            }
            NodeRole::CrashLog | NodeRole::HitsLog => {
                let log = match node.bucket {
                    Some(b) if node.role == NodeRole::HitsLog => LogId::Hits(b),
                    _ => LogId::Crash,
                };
                (FileKind::RegularFile, self.store.log_len(log)?, true)
            }
        };
        // What Samba's own permission checks see: everyone may create folders, cabs,
        // counts and log lines; settings belong to root; committed cabs are read-only.
        let (perm, uid, gid) = match (node.role, node.cab_state) {
            (NodeRole::Dir, _) => (0o777, node.uid, node.gid),
            (NodeRole::File, _) => ((node.mode & 0o7777) as u16, node.uid, node.gid),
            (NodeRole::Cab, Some(CabState::Complete)) => (0o444, node.uid, node.gid),
            (NodeRole::Status | NodeRole::Policy, _) => (0o644, 0, 0),
            _ => (0o666, node.uid, node.gid),
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
        })
    }
}
