//! The content family of the SQLite store: the bytes of plain files and cabs, in 64 KiB
//! chunks; committing a cab; syncing to disk.

use std::path::PathBuf;

use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{copy_overlap, get_u64, ino_param, now_ns, require_node, role_str, size_param};
use super::{finish, sql_now, SqliteStore, CHUNK, MAX_FILE_SIZE};
use crate::store::{CabState, ContentStore, Ino, Node, NodeRole, Result};
use crate::store_rules::{check_cab_commit, chunk_pieces, patched, write_end};
use crate::StoreError;

/// Where cab `ino`'s bytes move to the cab database, if they do.
fn cab_split(conn: &Connection, ino: Ino) -> Result<Option<u64>> {
    let v: Option<Option<i64>> = conn
        .prepare_cached("SELECT bytes_from FROM cab_rows WHERE ino = ?1")?
        .query_row([ino_param(ino)], |r| r.get(0))
        .optional()?;
    Ok(v.flatten().and_then(|b| u64::try_from(b).ok()))
}

impl ContentStore for SqliteStore {
    fn read_at(&self, ino: Ino, offset: u64, len: u32) -> Result<Vec<u8>> {
        let (mut out, split, size) = finish(self.read(|tx| {
            let split = cab_split(tx, ino)?;
            let node = content_node(tx, ino)?;
            Ok((self.read_chunks(tx, ino, offset, len)?, split, node.size))
        }))?;
        if let Some(split) = split {
            let end = size.min(offset.saturating_add(u64::from(len)));
            if end > split && !out.is_empty() {
                let from = offset.max(split);
                let at = (from - offset) as usize;
                self.cab_db
                    .read_into(ino, from - split, &mut out[at..(end - offset) as usize])?;
            }
        }
        Ok(out)
    }

    fn write_alignment(&self, _offset: u64) -> u64 {
        // Cabs' bytes are in the cab database, in chunks of this size.
        super::cab_db::CAB_CHUNK
    }

    fn check_identity(&self) -> Result<()> {
        self.identity.check(&self.path)
    }

    fn outside_changes(&self) -> Result<u64> {
        Ok(self.change_mark.read())
    }

    fn sync(&self) -> Result<()> {
        self.cab_db.commit()?;
        self.sync_meta()
    }

    fn write_at(&self, ino: Ino, offset: u64, data: &[u8]) -> Result<u64> {
        let split = finish(self.read(|tx| {
            writable_node(tx, ino)?;
            cab_split(tx, ino)
        }))?;
        let Some(end) = offset
            .checked_add(data.len() as u64)
            .filter(|end| *end <= MAX_FILE_SIZE)
        else {
            return self.write_chunks(ino, offset, data); // refuses it, saying why
        };
        match split {
            Some(split) if end > split && !data.is_empty() => {
                if offset < split {
                    self.write_chunks(ino, offset, &data[..(split - offset) as usize])?;
                }
                let from = offset.max(split);
                self.cab_db
                    .write(ino, from - split, &data[(from - offset) as usize..])?;
                finish(self.write(|tx| {
                    let node = writable_node(tx, ino)?;
                    let size = node.size.max(end);
                    set_size(tx, ino, size_param(size, "size")?, now_ns())?;
                    Ok(size)
                }))
            }
            _ => self.write_chunks(ino, offset, data),
        }
    }

    fn truncate(&self, ino: Ino, size: u64) -> Result<()> {
        // A complete cab is refused before any of its bytes go.
        let split = finish(self.read(|tx| {
            writable_node(tx, ino)?;
            cab_split(tx, ino)
        }))?;
        if let Some(split) = split {
            // Bytes past the new size go from the cab database first: a crash in between
            // leaves a size that still counts them, never bytes the size does not cover.
            self.cab_db.truncate(ino, size.saturating_sub(split))?;
        }
        self.truncate_chunks(ino, size)
    }

    fn commit_cab(&self, ino: Ino, size: u64, sha256_hex: &str) -> Result<()> {
        // The cab's bytes durable in the cab database before its row says complete.
        self.cab_db.commit_cab(ino)?;
        finish(self.write(|tx| complete_cab_in(tx, ino, size, sha256_hex)))
    }

    fn commit_whole_cab(&self, ino: Ino, data: &[u8], sha256_hex: &str) -> Result<()> {
        // Under one cab-database chunk, the bytes go to `chunks` in the transaction that
        // completes the cab: the WAL orders them, so no second file has to be synced first
        // (five fdatasyncs, most of a small cab's close). Bigger ones are stored once, there.
        let in_one = (data.len() as u64) < super::cab_db::CAB_CHUNK
            && finish(self.write(|tx| {
                if writable_node(tx, ino)?.size != 0 {
                    return Ok(false); // bytes stored already: where its split says
                }
                tx.prepare_cached("UPDATE cab_rows SET bytes_from = NULL WHERE ino = ?1")?
                    .execute([ino_param(ino)])?;
                let size = write_chunks_in(tx, ino, 0, data)?;
                complete_cab_in(tx, ino, size, sha256_hex)?;
                Ok(true)
            }))?;
        if !in_one {
            let size = self.write_at(ino, 0, data)?;
            self.commit_cab(ino, size, sha256_hex)?;
        }
        Ok(())
    }
}

impl SqliteStore {
    fn read_chunks(&self, tx: &Connection, ino: Ino, offset: u64, len: u32) -> Result<Vec<u8>> {
        {
            let node = content_node(tx, ino)?;
            if offset >= node.size || len == 0 {
                return Ok(Vec::new());
            }
            // offset < size <= i64::MAX, so no overflow.
            let end = node.size.min(offset + u64::from(len));
            let mut out = vec![0u8; (end - offset) as usize];
            let mut stmt = tx.prepare_cached(
                "SELECT idx, data FROM chunks WHERE ino = ?1 AND idx BETWEEN ?2 AND ?3 \
                 ORDER BY idx",
            )?;
            let mut rows = stmt.query(params![
                ino_param(ino),
                size_param(offset / CHUNK, "chunk")?,
                size_param((end - 1) / CHUNK, "chunk")?
            ])?;
            while let Some(row) = rows.next()? {
                let idx = get_u64(row, 0)?;
                let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                copy_overlap(&mut out, offset, data, idx * CHUNK);
            }
            Ok(out)
        }
    }

    fn sync_meta(&self) -> Result<()> {
        // synchronous=NORMAL: commits reach the -wal file by write(2) alone, and every
        // checkpoint syncs the database file before the WAL is used again. So syncing the
        // WAL makes every commit so far durable, without a checkpoint (or the database file
        // if there is no WAL: the last checkpoint synced it).
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let path = if wal.exists() { wal } else { self.path.clone() };
        std::fs::File::open(&path)
            .and_then(|file| file.sync_data())
            .map_err(|source| StoreError::Sync { path, source })
    }

    fn write_chunks(&self, ino: Ino, offset: u64, data: &[u8]) -> Result<u64> {
        finish(self.write(|tx| write_chunks_in(tx, ino, offset, data)))
    }

    fn truncate_chunks(&self, ino: Ino, size: u64) -> Result<()> {
        finish(self.write(|tx| {
            let node = writable_node(tx, ino)?;
            let size_sql = size_param(size, "size")?;
            if size < node.size {
                let key = ino_param(ino);
                let keep = size.div_ceil(CHUNK);
                tx.prepare_cached("DELETE FROM chunks WHERE ino = ?1 AND idx >= ?2")?
                    .execute(params![key, size_param(keep, "chunk")?])?;
                let tail = size % CHUNK;
                if tail != 0 {
                    tx.prepare_cached(
                        "UPDATE chunks SET data = substr(data, 1, ?3) \
                         WHERE ino = ?1 AND idx = ?2 AND length(data) > ?3",
                    )?
                    .execute(params![
                        key,
                        size_param(size / CHUNK, "chunk")?,
                        tail as i64
                    ])?;
                }
            }
            set_size(tx, ino, size_sql, now_ns())
        }))
    }
}

/// A node whose bytes live in `chunks` (`File` or `Cab`), for reading.
fn content_node(conn: &Connection, ino: Ino) -> Result<Node> {
    let node = require_node(conn, ino)?;
    match node.role {
        NodeRole::File | NodeRole::Cab => Ok(node),
        NodeRole::Dir => Err(StoreError::IsDir(ino)),
        other => Err(StoreError::Invalid(format!(
            "inode {ino} ({}) has no stored bytes",
            role_str(other)
        ))),
    }
}

/// A node whose bytes may change: a `File`, or a `Cab` still being written.
fn writable_node(conn: &Connection, ino: Ino) -> Result<Node> {
    let node = content_node(conn, ino)?;
    if node.cab_state == Some(CabState::Complete) {
        return Err(StoreError::CabComplete(ino));
    }
    Ok(node)
}

fn set_size(conn: &Connection, ino: Ino, size: i64, now: i64) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE nodes SET size = ?2, mtime_ns = ?3, ctime_ns = ?3 WHERE ino = ?1",
    )?;
    stmt.execute(params![ino_param(ino), size, now])?;
    Ok(())
}

/// Writes `data` at `offset` of `ino` in `chunks`, in the caller's transaction; the new size.
fn write_chunks_in(tx: &Connection, ino: Ino, offset: u64, data: &[u8]) -> Result<u64> {
    let node = writable_node(tx, ino)?;
    if data.is_empty() {
        return Ok(node.size);
    }
    let end = write_end(offset, data.len())?;
    let key = ino_param(ino);
    let mut read_chunk =
        tx.prepare_cached("SELECT data FROM chunks WHERE ino = ?1 AND idx = ?2")?;
    let mut put_chunk = tx.prepare_cached(
        "INSERT INTO chunks (ino, idx, data) VALUES (?1, ?2, ?3) \
         ON CONFLICT (ino, idx) DO UPDATE SET data = excluded.data",
    )?;
    for piece in chunk_pieces(offset, data, CHUNK, node.size) {
        let idx = size_param(piece.idx, "chunk")?;
        if piece.whole {
            put_chunk.execute(params![key, idx, piece.bytes])?;
        } else {
            let stored: Vec<u8> = read_chunk
                .query_row(params![key, idx], |row| row.get(0))
                .optional()?
                .unwrap_or_default();
            put_chunk.execute(params![key, idx, patched(stored, &piece)])?;
        }
    }
    let size = node.size.max(end);
    set_size(tx, ino, size_param(size, "size")?, now_ns())?;
    Ok(size)
}

/// Marks writing cab `ino` complete (after checking its size and hash), in the caller's
/// transaction.
fn complete_cab_in(tx: &Connection, ino: Ino, size: u64, sha256_hex: &str) -> Result<()> {
    check_cab_commit(&require_node(tx, ino)?, size, sha256_hex)?;
    tx.prepare_cached(concat!(
        "UPDATE cab_rows SET state = 'complete', size = ?2, sha256 = ?3, created_at = ",
        sql_now!(),
        " WHERE ino = ?1"
    ))?
    .execute(params![
        ino_param(ino),
        size_param(size, "size")?,
        sha256_hex.to_ascii_lowercase()
    ])?;
    Ok(())
}
