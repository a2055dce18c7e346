//! The content family of the PostgreSQL store: bytes of files and cabs in 256 KiB chunks
//! (`chunks`), written under the node's row lock, and a cab's commit.

use super::heads::{given_up, still_registered};
use super::pool::Tx;
use super::rows::{get_u64, ino_param, lock_node, require_node, size_param};
use super::{PgStore, PG_CHUNK};
use crate::store::{CabState, ContentStore, Ino, Node, NodeRole, Result};
use crate::store_rules::{
    check_cab_commit, chunk_pieces, copy_overlap, now_ns, patched, role_str, write_end,
};
use crate::StoreError;

impl ContentStore for PgStore {
    fn read_at(&self, ino: Ino, offset: u64, len: u32) -> Result<Vec<u8>> {
        self.read(|tx| {
            let node = content_node(require_node(tx, ino)?)?;
            if offset >= node.size || len == 0 {
                return Ok(Vec::new());
            }
            let end = node.size.min(offset + u64::from(len));
            let mut out = vec![0u8; (end - offset) as usize];
            let rows = tx.query(
                "SELECT idx, data FROM chunks WHERE ino = $1 AND idx BETWEEN $2 AND $3 ORDER BY idx",
                &[
                    &ino_param(ino),
                    &size_param(offset / PG_CHUNK, "chunk")?,
                    &size_param((end - 1) / PG_CHUNK, "chunk")?,
                ],
            )?;
            for row in rows {
                let idx = get_u64(&row, 0)?;
                let data: &[u8] = row.try_get(1)?;
                copy_overlap(&mut out, offset, data, idx * PG_CHUNK);
            }
            Ok(out)
        })
    }

    fn write_at(&self, ino: Ino, offset: u64, data: &[u8]) -> Result<u64> {
        self.write(|tx| write_in(tx, ino, offset, data, self.head.id()))
    }

    fn write_alignment(&self, _offset: u64) -> u64 {
        PG_CHUNK
    }

    fn truncate(&self, ino: Ino, size: u64) -> Result<()> {
        self.write(|tx| {
            let node = writable(lock_own(tx, ino, self.head.id())?)?;
            if size < node.size {
                let key = ino_param(ino);
                tx.execute(
                    "DELETE FROM chunks WHERE ino = $1 AND idx >= $2",
                    &[&key, &size_param(size.div_ceil(PG_CHUNK), "chunk")?],
                )?;
                let tail = size % PG_CHUNK;
                if tail != 0 {
                    tx.execute(
                        "UPDATE chunks SET data = substring(data FROM 1 FOR $3) \
                         WHERE ino = $1 AND idx = $2 AND length(data) > $3",
                        &[&key, &size_param(size / PG_CHUNK, "chunk")?, &(tail as i32)],
                    )?;
                }
            }
            set_size(tx, ino, size)
        })
    }

    fn outside_changes(&self) -> Result<u64> {
        self.heard_changes()
    }

    fn sync(&self) -> Result<()> {
        // Every commit was durable when it returned (synchronous_commit).
        Ok(())
    }

    fn commit_cab(&self, ino: Ino, size: u64, sha256_hex: &str) -> Result<()> {
        self.write(|tx| complete_in(tx, ino, size, sha256_hex, self.head.id()))
    }

    fn commit_whole_cab(&self, ino: Ino, data: &[u8], sha256_hex: &str) -> Result<()> {
        // One transaction, so one synced commit instead of two.
        self.write(|tx| {
            let size = write_in(tx, ino, 0, data, self.head.id())?;
            complete_in(tx, ino, size, sha256_hex, self.head.id())
        })
    }
}

/// Writes `data` at `offset` of `ino` (this head's) in the caller's transaction; the new size.
fn write_in(tx: &mut Tx, ino: Ino, offset: u64, data: &[u8], head: i64) -> Result<u64> {
    let node = writable(lock_own(tx, ino, head)?)?;
    if data.is_empty() {
        return Ok(node.size);
    }
    let end = write_end(offset, data.len())?;
    let key = ino_param(ino);
    for piece in chunk_pieces(offset, data, PG_CHUNK, node.size) {
        let idx = size_param(piece.idx, "chunk")?;
        let bytes = if piece.whole {
            piece.bytes.to_vec()
        } else {
            let stored: Vec<u8> = tx
                .query_opt(
                    "SELECT data FROM chunks WHERE ino = $1 AND idx = $2",
                    &[&key, &idx],
                )?
                .map(|row| row.get(0))
                .unwrap_or_default();
            patched(stored, &piece)
        };
        tx.execute(
            "INSERT INTO chunks (ino, idx, data) VALUES ($1, $2, $3) \
             ON CONFLICT (ino, idx) DO UPDATE SET data = excluded.data",
            &[&key, &idx, &bytes],
        )?;
    }
    let size = node.size.max(end);
    set_size(tx, ino, size)?;
    Ok(size)
}

/// Marks writing cab `ino` (this head's) complete after checking its size and hash, in
/// the caller's transaction.
fn complete_in(tx: &mut Tx, ino: Ino, size: u64, sha256_hex: &str, head: i64) -> Result<()> {
    check_cab_commit(&lock_own(tx, ino, head)?, size, sha256_hex)?;
    tx.execute(
        "UPDATE cab_rows SET state = 'complete', size = $2, sha256 = $3, \
         created_at = now(), head_id = NULL WHERE ino = $1",
        &[
            &ino_param(ino),
            &size_param(size, "size")?,
            &sha256_hex.to_ascii_lowercase(),
        ],
    )?;
    Ok(())
}

/// Node `ino`, locked for a change of its bytes: an upload only by the head writing it,
/// while that head is still registered (its row shared until the transaction ends).
fn lock_own(tx: &mut Tx<'_>, ino: Ino, head: i64) -> Result<Node> {
    let registered = still_registered(tx, head)?;
    let node = lock_node(tx, ino)?;
    if node.cab_state == Some(CabState::Writing) {
        let owner: Option<i64> = tx
            .query_opt(
                "SELECT head_id FROM cab_rows WHERE ino = $1",
                &[&ino_param(ino)],
            )?
            .and_then(|row| row.get(0));
        if !registered || owner != Some(head) {
            return Err(given_up(ino));
        }
    }
    Ok(node)
}

/// A node whose bytes are stored (`File` or `Cab`).
fn content_node(node: Node) -> Result<Node> {
    match node.role {
        NodeRole::File | NodeRole::Cab => Ok(node),
        NodeRole::Dir => Err(StoreError::IsDir(node.ino)),
        other => Err(StoreError::Invalid(format!(
            "inode {} ({}) has no stored bytes",
            node.ino,
            role_str(other)
        ))),
    }
}

/// A node whose bytes may change: a `File`, or a `Cab` still being written.
fn writable(node: Node) -> Result<Node> {
    let node = content_node(node)?;
    if node.cab_state == Some(CabState::Complete) {
        return Err(StoreError::CabComplete(node.ino));
    }
    Ok(node)
}

fn set_size(tx: &mut Tx<'_>, ino: Ino, size: u64) -> Result<()> {
    tx.execute(
        "UPDATE nodes SET size = $2, mtime_ns = $3, ctime_ns = $3 WHERE ino = $1",
        &[&ino_param(ino), &size_param(size, "size")?, &now_ns()],
    )?;
    Ok(())
}
