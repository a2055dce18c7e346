//! Keeping the SQLite store healthy: re-hashing stored cabs (the scrub), its size and the
//! filesystem's free space (quotas), giving free pages back (compact), consistent copies
//! while serving (backup, `VACUUM INTO`), and the [`LifecycleStore`] glue.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::rows::{get_u64, ino_param};
use super::{connection, finish, removal, retention, sql_now, SqliteStore, CHUNK};
use crate::lifecycle::{
    Audit, BucketContents, CabCheck, CabEntry, LifecycleStore, PruneCandidate, Removal,
    RetentionPolicy, StoreUsage, SweepStep,
};
use crate::store::{Ino, Result};
use crate::store_rules::ChunkCheck;
use crate::{OpenError, StoreError};

impl LifecycleStore for SqliteStore {
    fn retention(&self) -> Result<RetentionPolicy> {
        self.load_retention()
    }

    fn set_retention(&self, policy: &RetentionPolicy) -> Result<()> {
        self.write(|tx| retention::store_policy(tx, policy))
    }

    fn server_setting(&self, key: &str) -> Result<Option<String>> {
        finish(self.read(|tx| retention::setting(tx, key)))
    }

    fn set_server_setting(&self, key: &str, value: Option<&str>) -> Result<()> {
        self.write(|tx| retention::set_setting(tx, key, value))
    }

    fn prune_candidates(
        &self,
        policy: &RetentionPolicy,
        after: Option<&CabEntry>,
        limit: usize,
    ) -> Result<Vec<PruneCandidate>> {
        finish(self.read(|tx| retention::candidates(tx, policy, after, limit)))
    }

    fn remove_cab(&self, ino: Ino, removal: Removal, audit: Option<&Audit>) -> Result<bool> {
        self.write(|tx| removal::remove_cab(tx, ino, removal, audit))
    }

    fn prune_cabs(&self, inos: &[Ino]) -> Result<Vec<Ino>> {
        self.write(|tx| {
            let mut pruned = Vec::with_capacity(inos.len());
            for &ino in inos {
                if removal::remove_cab(tx, ino, Removal::Pruned, None)? {
                    pruned.push(ino);
                }
            }
            Ok(pruned)
        })
    }

    fn sweep(&self, max_chunks: usize) -> Result<SweepStep> {
        // The cab database's bytes of removed cabs first (they are off the share already);
        // then their chunks and rows below, as before.
        let removed: Vec<Ino> = finish(self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT ino FROM cab_rows WHERE removal IS NOT NULL AND swept_at IS NULL \
                 AND bytes_from IS NOT NULL ORDER BY ino LIMIT 64",
            )?;
            let rows = stmt.query_map([], |r| get_u64(r, 0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        }))?;
        if !removed.is_empty() {
            self.cab_db.delete(&removed)?;
            self.cab_db.commit()?;
        }
        self.write(|tx| {
            let mut step = removal::sweep(tx, max_chunks)?;
            if !step.more {
                step.finished += removal::finish_deleted_buckets(tx)?;
            }
            Ok(step)
        })
    }

    fn find_cab(&self, subpath: &str, name: &str) -> Result<Option<(CabEntry, Option<Removal>)>> {
        finish(self.read(|tx| removal::find_cab(tx, subpath, name)))
    }

    fn bucket_contents(&self, subpath: &str) -> Result<Option<BucketContents>> {
        finish(self.read(|tx| removal::bucket_contents(tx, subpath)))
    }

    fn delete_bucket(&self, subpath: &str, audit: &Audit) -> Result<Option<BucketContents>> {
        self.write(|tx| removal::delete_bucket(tx, subpath, audit))
    }

    fn cabs_after(&self, after: Ino, limit: usize) -> Result<Vec<CabEntry>> {
        finish(self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT c.ino, b.subpath, c.name, c.size, c.created_at, c.sha256 \
                 FROM cab_rows c JOIN bucket_rows b ON b.bucket_id = c.bucket_id \
                 WHERE c.ino > ?1 AND c.state = 'complete' AND c.removal IS NULL \
                 ORDER BY c.ino LIMIT ?2",
            )?;
            let rows = stmt.query_map(
                params![ino_param(after), i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| {
                    Ok(CabEntry {
                        ino: get_u64(r, 0)?,
                        subpath: r.get(1)?,
                        name: r.get(2)?,
                        size: get_u64(r, 3)?,
                        created_at: r.get(4)?,
                        sha256: r.get(5)?,
                    })
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        }))
    }

    fn check_cab(&self, ino: Ino) -> Result<CabCheck> {
        let check = finish(self.read(|tx| hash_cab(tx, ino, &self.cab_db)))?;
        let Some(check) = check else {
            return Ok(CabCheck::Sound); // removed meanwhile: nothing to check
        };
        let corrupt = match &check {
            CabCheck::Sound => None,
            CabCheck::Corrupt(why) => Some(why.as_str()),
        };
        self.write(|tx| {
            tx.prepare_cached(concat!(
                "UPDATE cab_rows SET verified_at = CASE WHEN ?2 IS NULL THEN ",
                sql_now!(),
                " ELSE verified_at END, corrupt = ?2 WHERE ino = ?1"
            ))?
            .execute(params![ino_param(ino), corrupt])?;
            Ok(())
        })?;
        Ok(check)
    }

    fn integrity(&self) -> Result<String> {
        self.integrity_check()
    }

    fn cab_file_integrity(&self) -> Result<Option<String>> {
        // A server's own store, or an admin's while no server runs (the lock, held for
        // the check, keeps one from starting meanwhile).
        let _held = if self.holds_server_lock() {
            None
        } else {
            match super::server_lock::ServerLock::acquire(&self.path) {
                Ok(lock) => Some(lock),
                Err(OpenError::Locked { .. }) => return Ok(None),
                Err(e) => return Err(StoreError::Invalid(e.to_string())),
            }
        };
        self.cab_db.quick_check().map(Some)
    }

    fn usage(&self) -> Result<StoreUsage> {
        let (pages, free, page_size) = finish(self.read(|tx| {
            let get = |pragma: &str| -> Result<i64> {
                Ok(tx.pragma_query_value(None, pragma, |r| r.get(0))?)
            };
            Ok((
                get("page_count")?,
                get("freelist_count")?,
                get("page_size")?,
            ))
        }))?;
        let bytes = |n: i64| u64::try_from(n.max(0)).unwrap_or(0);
        let dir = self.path.parent().unwrap_or(Path::new("."));
        // The cab database's pages count too: the store is both files.
        let (cab_used, cab_free) = self.cab_db.usage()?;
        Ok(StoreUsage {
            used_bytes: bytes((pages - free) * page_size) + cab_used,
            free_bytes: bytes(free * page_size) + cab_free,
            fs_available: fs4::available_space(dir).ok(),
            fs_total: fs4::total_space(dir).ok(),
        })
    }

    fn release_free_space(&self, max_bytes: u64) -> Result<Option<u64>> {
        // The metadata database first; the cab database once it has nothing left to give.
        let meta = finish(self.write(|tx| {
            let mode: i64 = tx.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
            if mode != 2 {
                return Ok(None); // not INCREMENTAL: only a full VACUUM can shrink it
            }
            let page: i64 = tx.pragma_query_value(None, "page_size", |r| r.get(0))?;
            let page = u64::try_from(page).unwrap_or(4096).max(1);
            let before: i64 = tx.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
            let n = i64::try_from((max_bytes / page).max(1)).unwrap_or(i64::MAX);
            // incremental_vacuum returns no rows but must be stepped to run.
            let mut stmt = tx.prepare(&format!("PRAGMA incremental_vacuum({n})"))?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
            drop(rows);
            let after: i64 = tx.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
            Ok(Some(u64::try_from(before - after).unwrap_or(0) * page))
        }))?;
        match meta {
            None => Ok(None),
            Some(0) => {
                let page = super::cab_db::CAB_DB_PAGE;
                let pages = self.cab_db.release_free_pages((max_bytes / page).max(1))?;
                Ok(pages.map(|n| n * page))
            }
            freed => Ok(freed),
        }
    }

    fn backup_to(&self, dest: &Path) -> Result<()> {
        if dest.exists() {
            return Err(StoreError::Invalid(format!(
                "{} exists: give a new file name (a backup never overwrites)",
                dest.display()
            )));
        }
        let partial = partial_path(dest);
        let _ = std::fs::remove_file(&partial);
        // One read transaction: a consistent snapshot, without blocking the writer (WAL).
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection::configure_common(&conn)?;
        let text = partial
            .to_str()
            .ok_or_else(|| StoreError::Invalid(format!("{} is not UTF-8", partial.display())))?;
        if let Err(e) = conn.execute("VACUUM INTO ?1", [text]) {
            let _ = std::fs::remove_file(&partial);
            return Err(if super::is_disk_full(&e) {
                StoreError::Full
            } else {
                e.into()
            });
        }
        drop(conn);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600)).map_err(
                |e| StoreError::Invalid(format!("cannot chmod {}: {e}", partial.display())),
            )?;
        }
        // The cab database's bytes of the cabs in the snapshot, then the snapshot itself
        // into place: a backup is complete once `dest` exists.
        let copied = self.backup_cab_bytes(&partial, dest);
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_file(super::cab_db::cab_db_path(&partial));
            return Err(e);
        }
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&partial, dest))
            .map_err(|source| StoreError::Sync {
                path: dest.to_path_buf(),
                source,
            })
    }
}

impl SqliteStore {
    /// Copies into `<dest>-cabs` the cab database's bytes of every cab on the share in the
    /// metadata snapshot at `snapshot`, a cab at a time (short reads: the writer is never
    /// held up for long). A cab removed since the snapshot is marked pruned in it.
    fn backup_cab_bytes(&self, snapshot: &Path, dest: &Path) -> Result<()> {
        let snap = Connection::open(snapshot)?;
        let cabs: Vec<(Ino, u64)> = {
            let mut stmt = snap.prepare(
                "SELECT ino, size - bytes_from FROM cab_rows WHERE state = 'complete' \
                 AND removal IS NULL AND bytes_from IS NOT NULL AND size > bytes_from",
            )?;
            let rows = stmt.query_map([], |r| Ok((get_u64(r, 0)?, get_u64(r, 1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let partial_cabs = super::cab_db::cab_db_path(snapshot);
        let _ = std::fs::remove_file(&partial_cabs);
        let out = super::cab_db::CabDb::open(snapshot)?;
        // The copy is the same store as the snapshot: the pair opens together.
        let id: Option<String> = snap
            .query_row(
                "SELECT value FROM server_setting_rows WHERE key = 'store.id'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = id {
            out.set_store_id(&id)?;
        }
        for (ino, high) in cabs {
            let mut copied = 0u64;
            self.cab_db.for_each_chunk(ino, &mut |idx, data| {
                out.write(ino, idx * super::cab_db::CAB_CHUNK, data)?;
                copied += data.len() as u64;
                Ok(true)
            })?;
            if copied != high {
                tracing::warn!(
                    ino,
                    "a cab removed while it was backed up: marked pruned in the backup"
                );
                out.delete(&[ino])?;
                snap.execute(
                    concat!(
                        "UPDATE cab_rows SET removal = 'pruned', removed_at = ",
                        sql_now!(),
                        ", swept_at = ",
                        sql_now!(),
                        " WHERE ino = ?1"
                    ),
                    [ino_param(ino)],
                )?;
                snap.execute("DELETE FROM chunks WHERE ino = ?1", [ino_param(ino)])?;
                snap.execute("UPDATE nodes SET size = 0 WHERE ino = ?1", [ino_param(ino)])?;
            }
        }
        out.commit()?;
        drop(out);
        drop(snap);
        std::fs::rename(&partial_cabs, super::cab_db::cab_db_path(dest)).map_err(|source| {
            StoreError::Sync {
                path: super::cab_db::cab_db_path(dest),
                source,
            }
        })
    }
}

/// Where a backup is written before it is renamed into place.
pub fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Hashes the stored bytes of a complete cab on the share; `None` if it is not one.
fn hash_cab(tx: &Connection, ino: Ino, cab_db: &super::cab_db::CabDb) -> Result<Option<CabCheck>> {
    let key = ino_param(ino);
    let Some((size, sha256, split)): Option<(i64, String, Option<i64>)> = tx
        .prepare_cached(
            "SELECT size, sha256, bytes_from FROM cab_rows \
             WHERE ino = ?1 AND state = 'complete' AND removal IS NULL",
        )?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
    else {
        return Ok(None);
    };
    let total = u64::try_from(size).unwrap_or(0);
    // Bytes below `split` are in chunks, the rest in the cab database (no split: all in
    // chunks; new cabs: split 0).
    let split = split
        .and_then(|b| u64::try_from(b).ok())
        .map_or(total, |b| total.min(b));
    let mut check = ChunkCheck::new("chunk", CHUNK, split);
    let mut stmt = tx.prepare_cached("SELECT idx, data FROM chunks WHERE ino = ?1 ORDER BY idx")?;
    let mut rows = stmt.query([key])?;
    while let Some(row) = rows.next()? {
        let idx = get_u64(row, 0)?;
        let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
        if let Err(why) = check.feed(idx, data) {
            return Ok(Some(CabCheck::Corrupt(why)));
        }
    }
    let mut check = match check.then(
        "cab database chunk",
        super::cab_db::CAB_CHUNK,
        total - split,
    ) {
        Ok(check) => check,
        Err(why) => return Ok(Some(CabCheck::Corrupt(why))),
    };
    if total > split {
        let mut problem = None;
        cab_db.for_each_chunk(ino, &mut |idx, data| match check.feed(idx, data) {
            Ok(()) => Ok(true),
            Err(why) => {
                problem = Some(why);
                Ok(false)
            }
        })?;
        if let Some(problem) = problem {
            return Ok(Some(CabCheck::Corrupt(problem)));
        }
    }
    Ok(Some(check.finish(&sha256)))
}

impl SqliteStore {
    /// Opens an existing database for a command that needs it alone (a full
    /// `cerfs compact`): takes the server lock ([`OpenError::Locked`] while a server runs).
    pub fn open_exclusive(path: &Path) -> std::result::Result<SqliteStore, OpenError> {
        Self::open_locked_admin(path)
    }

    /// Rewrites both files (`VACUUM`), switching them to incremental vacuum so that later
    /// compactions run in small steps beside a server. Needs [`SqliteStore::open_exclusive`]
    /// and as much free disk as the database's size.
    pub fn vacuum_full(&self) -> Result<()> {
        let conn = super::pool::lock(&self.writer);
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        conn.execute_batch("VACUUM")?;
        drop(conn);
        self.cab_db.vacuum_full()
    }
}
