//! Folders and names: mkdir, unlink, rmdir, rename, listings, and the name rules (R3, R4)
//! of every name created inside the CER trees.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cerfs_db::{CabState, Ino, NewNode, Node, NodeRole};

use crate::area::{self, Area};
use crate::sync::lock;
use crate::{share_path, Attr, Caller, CerFs, DirEntry, FileKind, FsError, Result};

/// Longest name, in bytes: what the mount reports as `NAME_MAX` (Windows allows 255 UTF-16
/// units, which fit: CER names are ASCII).
pub(crate) const MAX_NAME_BYTES: usize = 255;

/// What [`CerFs::refuse_special`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialNode {
    /// `link(2)`.
    HardLink,
    /// `symlink(2)`.
    SymbolicLink,
    /// `mknod(2)` of anything but a regular file: FIFO, socket, character or block device.
    Device,
}

impl CerFs {
    /// Creates a directory (R3 names, R4 path length).
    pub fn mkdir(&self, caller: &Caller, parent: Ino, name: &[u8], mode: u32) -> Result<Attr> {
        let (_, _, name) = self.check_new_name(parent, name)?;
        let node = self.store.create_node(&NewNode {
            parent,
            name,
            role: NodeRole::Dir,
            mode: mode & 0o7777,
            uid: caller.uid,
            gid: caller.gid,
            bucket: None,
        })?;
        self.attr_of(&node)
    }

    /// Node kinds a CER share does not keep: hard links, symbolic links, FIFOs, sockets and
    /// device nodes. Always `EPERM` (what POSIX says a file system without them answers),
    /// with a log line naming what was asked.
    pub fn refuse_special(&self, caller: &Caller, what: SpecialNode) -> FsError {
        let why = match what {
            SpecialNode::HardLink => "a CER share keeps no hard links",
            SpecialNode::SymbolicLink => "a CER share keeps no symbolic links",
            SpecialNode::Device => {
                "a CER share keeps only files and folders (no FIFO, socket or device)"
            }
        };
        tracing::info!(uid = caller.uid, ?what, "refused: {why}");
        FsError::NotPermitted(why)
    }

    /// Removes a file.
    pub fn unlink(&self, caller: &Caller, parent: Ino, name: &[u8]) -> Result<()> {
        let node = self.child(parent, name)?;
        if node.role == NodeRole::Dir {
            return Err(FsError::IsDir);
        }
        self.deletable(caller, &node, None)?;
        Ok(self.store.remove_node(node.ino)?)
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, caller: &Caller, parent: Ino, name: &[u8]) -> Result<()> {
        let node = self.child(parent, name)?;
        if node.role != NodeRole::Dir {
            return Err(FsError::NotDir);
        }
        self.deletable(caller, &node, None)?;
        Ok(self.store.remove_node(node.ino)?)
    }

    /// Whether `caller` may delete `name` in `parent` now, file or folder: the error that
    /// [`CerFs::unlink`] or [`CerFs::rmdir`] would give, without deleting anything. For
    /// adapters that learn of a delete before it happens (WinFsp's delete disposition and
    /// FILE_DELETE_ON_CLOSE), so that the client gets the refusal when it asks. `uploading`
    /// is the handle through which the caller itself writes a cab: that upload may be
    /// abandoned ([`CerFs::abort_upload`]), where anyone else gets [`FsError::Busy`].
    pub fn check_delete(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &[u8],
        uploading: Option<u64>,
    ) -> Result<()> {
        let node = self.child(parent, name)?;
        self.deletable(caller, &node, uploading)?;
        if node.role == NodeRole::Dir && !self.store.children(node.ino)?.is_empty() {
            return Err(FsError::NotEmpty);
        }
        Ok(())
    }

    /// The share's rules on deleting `node` (a non-empty folder is left to the store).
    fn deletable(&self, caller: &Caller, node: &Node, uploading: Option<u64>) -> Result<()> {
        match node.role {
            NodeRole::Dir if area::is_fixed(node.ino) => Err(FsError::NotPermitted(
                "cabs, status and counts are part of the share",
            )),
            NodeRole::Dir | NodeRole::File => Ok(()),
            NodeRole::Status | NodeRole::Policy => self.check_admin(caller, node.role),
            NodeRole::Cab => match self.cab_writer_of(node.ino) {
                Some(fh) if Some(fh) == uploading => Ok(()),
                Some(_) => Err(FsError::Busy),
                None => {
                    tracing::warn!(name = %node.name, uid = caller.uid, "refused to delete a stored cab");
                    Err(FsError::NotPermitted("stored cabs cannot be deleted"))
                }
            },
            NodeRole::Count => Err(FsError::NotPermitted(
                "count.txt cannot be deleted (use `cerfs counts reset`)",
            )),
            NodeRole::CrashLog | NodeRole::HitsLog => {
                Err(FsError::NotPermitted("logs are append-only"))
            }
        }
    }

    /// Renames; `no_replace` refuses to overwrite an existing target. Only plain files and
    /// folders move: the CER files' identity is their path.
    pub fn rename(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        no_replace: bool,
    ) -> Result<()> {
        let _ = caller;
        let node = self.child(parent, name)?;
        if area::is_fixed(node.ino) {
            return Err(FsError::NotPermitted(
                "cabs, status and counts are part of the share",
            ));
        }
        let (src_area, _) = area::area_of(&*self.store, parent)?;
        let (dst_area, _, new_name) = self.check_new_name(new_parent, new_name)?;
        let movable = match node.role {
            NodeRole::File => dst_area.file_role(new_name) == NodeRole::File,
            // A folder inside a CER tree is part of a bucket path; one at the root or
            // outside the trees is a plain folder.
            NodeRole::Dir => src_area.sub().is_none() && dst_area.sub().is_none(),
            _ => false,
        };
        if !movable {
            return Err(FsError::NotPermitted(
                "CER files and bucket folders cannot be moved",
            ));
        }
        if let Some(target) = self.store.lookup(new_parent, new_name)? {
            if target.ino == node.ino {
                return Ok(());
            }
            if area::is_fixed(target.ino) {
                return Err(FsError::NotPermitted(
                    "cabs, status and counts are part of the share",
                ));
            }
            if no_replace {
                return Err(FsError::Exists);
            }
            if target.role != node.role {
                return Err(if target.role == NodeRole::Dir {
                    FsError::IsDir
                } else {
                    FsError::NotDir
                });
            }
            if target.role != NodeRole::File && target.role != NodeRole::Dir {
                return Err(FsError::NotPermitted(
                    "CER files cannot be replaced by rename",
                ));
            }
        }
        Ok(self
            .store
            .rename_node(node.ino, new_parent, new_name, !no_replace)?)
    }

    /// Opens a directory listing: a snapshot that `readdir` pages through.
    pub fn opendir(&self, ino: Ino) -> Result<u64> {
        let node = self.store.node(ino)?.ok_or(FsError::NotFound)?;
        if node.role != NodeRole::Dir {
            return Err(FsError::NotDir);
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.dirs).insert(fh, (ino, None));
        Ok(fh)
    }

    /// Starts an open listing again (`rewinddir`, a read from offset 0): the next read
    /// takes a new snapshot, with what was created or removed since. smbd keeps a folder
    /// open across many requests and rewinds it for each new search.
    pub fn rewinddir(&self, fh: u64) -> Result<()> {
        match lock(&self.dirs).get_mut(&fh) {
            Some((_, entries)) => {
                *entries = None;
                Ok(())
            }
            None => Err(FsError::BadHandle),
        }
    }

    /// Entries of an open listing from index `offset` on ("." and ".." not included).
    pub fn readdir(&self, fh: u64, offset: usize) -> Result<Vec<DirEntry>> {
        let nodes = self.listing(fh)?;
        Ok(nodes
            .get(offset..)
            .unwrap_or_default()
            .iter()
            .map(dir_entry)
            .collect())
    }

    /// Entries of an open listing from index `offset` on, each with its attributes (what
    /// lookup would answer), handed to `add` until it returns `true` (its buffer is full):
    /// attributes are computed only for the entries the caller takes.
    pub fn readdir_plus(
        &self,
        fh: u64,
        offset: usize,
        mut add: impl FnMut(&DirEntry, &Attr) -> bool,
    ) -> Result<()> {
        let nodes = self.listing(fh)?;
        for node in nodes.get(offset..).unwrap_or_default() {
            if add(&dir_entry(node), &self.attr_of(node)?) {
                break;
            }
        }
        Ok(())
    }

    /// The snapshot of an open listing, taken at its first read (after a rewind).
    fn listing(&self, fh: u64) -> Result<Arc<Vec<Node>>> {
        let ino = match lock(&self.dirs).get(&fh) {
            Some((_, Some(entries))) => return Ok(Arc::clone(entries)),
            Some((ino, None)) => *ino,
            None => return Err(FsError::BadHandle),
        };
        let entries: Arc<Vec<Node>> = Arc::new(
            self.store
                .children(ino)?
                .into_iter()
                // A cab still being written is not part of the share yet, a removed one
                // (pruned, deleted) no longer.
                .filter(|n| !matches!(n.cab_state, Some(CabState::Writing | CabState::Removed)))
                .collect(),
        );
        if let Some((_, slot)) = lock(&self.dirs).get_mut(&fh) {
            *slot = Some(Arc::clone(&entries));
        }
        Ok(entries)
    }

    /// Drops an open listing.
    pub fn releasedir(&self, fh: u64) {
        lock(&self.dirs).remove(&fh);
    }

    pub(crate) fn child(&self, parent: Ino, name: &[u8]) -> Result<Node> {
        let name = std::str::from_utf8(name).map_err(|_| FsError::NotFound)?;
        self.store.lookup(parent, name)?.ok_or(FsError::NotFound)
    }

    /// Validates a name about to be created in `parent`: R3 and R4 inside the CER trees
    /// and at the root, valid UTF-8 anywhere.
    pub(crate) fn check_new_name<'n>(
        &self,
        parent: Ino,
        name: &'n [u8],
    ) -> Result<(Area, Vec<String>, &'n str)> {
        if name.len() > MAX_NAME_BYTES {
            tracing::info!(len = name.len(), "refused a name longer than 255 bytes");
            return Err(FsError::ComponentTooLong(name.len()));
        }
        let parent_node = self.store.node(parent)?.ok_or(FsError::NotFound)?;
        if parent_node.role != NodeRole::Dir {
            return Err(FsError::NotDir);
        }
        let (area, path) = area::area_of(&*self.store, parent)?;
        let name = if area.is_cer() {
            let name = share_path::check_component(name).map_err(|e| {
                tracing::warn!(name = %String::from_utf8_lossy(name), "refused name: {e}");
                FsError::InvalidName(e.to_string())
            })?;
            let len = share_path::client_path_len(path.iter().map(String::as_str).chain([name]));
            if len > share_path::MAX_CLIENT_PATH {
                tracing::warn!(len, name, "refused path longer than 260 characters (R4)");
                return Err(FsError::NameTooLong(len));
            }
            name
        } else {
            std::str::from_utf8(name)
                .map_err(|_| FsError::InvalidName("names must be valid UTF-8".into()))?
        };
        Ok((area, path, name))
    }
}

/// A listed node as a directory entry.
fn dir_entry(node: &Node) -> DirEntry {
    DirEntry {
        ino: node.ino,
        kind: if node.role == NodeRole::Dir {
            FileKind::Directory
        } else {
            FileKind::RegularFile
        },
        name: node.name.clone(),
    }
}
