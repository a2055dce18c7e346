//! Start-up recovery of a server: cab uploads that a previous process left unfinished
//! (it died before their writer closed them) are deleted, so that a cab is either complete
//! or gone.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::rows::{get_u64, ino_param};
use crate::store::Ino;
use crate::OpenError;

/// A cab upload found unfinished (state `writing`) when the store was opened, and deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgedCab {
    /// Inode the cab had.
    pub ino: Ino,
    /// Subpath of its bucket.
    pub subpath: String,
    /// Its file name.
    pub name: String,
    /// How many bytes had been received.
    pub bytes: u64,
}

/// Deletes the cabs still in state `writing` (node, chunks and cabs row), in one transaction.
pub(crate) fn purge_incomplete_cabs(conn: &mut Connection) -> Result<Vec<PurgedCab>, OpenError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let purged = {
        let mut stmt = tx.prepare(
            "SELECT c.ino, b.subpath, n.name, n.size FROM cab_rows c \
             JOIN nodes n ON n.ino = c.ino JOIN bucket_rows b ON b.bucket_id = c.bucket_id \
             WHERE c.state = 'writing' ORDER BY c.ino",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(PurgedCab {
                ino: get_u64(row, 0)?,
                subpath: row.get(1)?,
                name: row.get(2)?,
                bytes: get_u64(row, 3)?,
            })
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    for cab in &purged {
        let ino = ino_param(cab.ino);
        tx.execute("DELETE FROM chunks WHERE ino = ?1", [ino])?;
        tx.execute("DELETE FROM cab_rows WHERE ino = ?1", [ino])?;
        tx.execute("DELETE FROM nodes WHERE ino = ?1", [ino])?;
        tracing::warn!(
            subpath = %cab.subpath,
            name = %cab.name,
            bytes = cab.bytes,
            "deleted an unfinished cab upload (its writer never closed it)"
        );
    }
    tx.commit()?;
    Ok(purged)
}

/// Deletes the cab database's bytes of cabs that are not on the share (no row, or removed):
/// those of the uploads purged above, and any a crash left between a removal and its
/// bytes' deletion, or between bytes and a row that a power cut lost.
pub(crate) fn drop_orphan_cab_bytes(
    conn: &Connection,
    cab_db: &super::cab_db::CabDb,
) -> crate::store::Result<()> {
    let mut live = conn.prepare(
        "SELECT EXISTS (SELECT 1 FROM cab_rows WHERE ino = ?1 AND removal IS NULL \
         AND bytes_from IS NOT NULL)",
    )?;
    let mut orphans = Vec::new();
    for ino in cab_db.inos()? {
        if !live.query_row([ino_param(ino)], |r| r.get::<_, bool>(0))? {
            orphans.push(ino);
        }
    }
    if !orphans.is_empty() {
        tracing::info!(
            cabs = orphans.len(),
            "dropping the bytes of cabs no longer on the share"
        );
        cab_db.delete(&orphans)?;
    }
    cab_db.commit()
}

/// Checks that the cab database beside `db` is this store's (both carry the same
/// `store.id`), giving both one when neither has one yet. A cab database that is missing
/// (made empty just now) while the database counts cabs with bytes in it, or that carries
/// another store's id, is refused: a half restore would otherwise serve those cabs broken.
pub(crate) fn pair_cab_db(
    conn: &Connection,
    db: &std::path::Path,
    cab_db: &super::cab_db::CabDb,
    may_write: bool,
) -> Result<(), OpenError> {
    let fail = |reason: String| OpenError::CabFileMismatch {
        db: db.to_path_buf(),
        cabs: super::cab_db::cab_db_path(db),
        reason,
    };
    let unusable = |e: crate::StoreError| OpenError::Unusable(e.to_string());
    let ours: Option<String> = conn
        .query_row(
            "SELECT value FROM server_setting_rows WHERE key = 'store.id'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let theirs = cab_db.store_id().map_err(unusable)?;
    match (ours, theirs) {
        (Some(a), Some(b)) if a == b => Ok(()),
        (Some(a), Some(b)) => Err(fail(format!(
            "it is store {b}'s, the database is store {a}'s"
        ))),
        (ours, None) => {
            let big: i64 = conn.query_row(
                "SELECT count(*) FROM cab_rows WHERE bytes_from IS NOT NULL \
                 AND size > bytes_from AND removal IS NULL",
                [],
                |r| r.get(0),
            )?;
            if big > 0 {
                return Err(fail(format!(
                    "it holds no store's bytes, and {big} cabs of the database have bytes there"
                )));
            }
            if !may_write {
                return Ok(());
            }
            let id = match ours {
                Some(id) => id,
                None => {
                    let id: String =
                        conn.query_row("SELECT lower(hex(randomblob(16)))", [], |r| r.get(0))?;
                    conn.execute(
                        "INSERT INTO server_setting_rows (key, value) VALUES ('store.id', ?1)",
                        [&id],
                    )?;
                    id
                }
            };
            cab_db.set_store_id(&id).map_err(unusable)
        }
        (None, Some(b)) => Err(fail(format!(
            "it is store {b}'s, and the database has no store id (a database from before it \
             was paired)"
        ))),
    }
}
