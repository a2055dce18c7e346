//! The cab database's upkeep: which cabs have bytes in it, reading a cab chunk by chunk,
//! its structure check, the store id it carries, and its space (usage, giving free pages
//! back, a full rewrite). The writing side is in the parent module.

use rusqlite::{params, OptionalExtension};

use super::{sqlite, CabDb, Writer};
use crate::store::Result;

impl CabDb {
    /// The cabs that have bytes here.
    pub(crate) fn inos(&self) -> Result<Vec<u64>> {
        let w = self.lock();
        let mut stmt = w
            .conn
            .prepare_cached("SELECT DISTINCT ino FROM cab_chunks ORDER BY ino")
            .map_err(sqlite)?;
        let rows = stmt.query_map([], |r| r.get::<_, i64>(0)).map_err(sqlite)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(u64::try_from(row.map_err(sqlite)?).unwrap_or(0));
        }
        Ok(out)
    }

    /// Calls `each` with cab `ino`'s chunks in order (`idx`, bytes), reading `BATCH` chunks
    /// per turn of the lock so that a long cab does not hold up the writers.
    pub(crate) fn for_each_chunk(
        &self,
        ino: u64,
        each: &mut dyn FnMut(u64, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        const BATCH: i64 = 16;
        let key = i64::try_from(ino).unwrap_or(i64::MAX);
        let mut next = 0i64;
        loop {
            let batch: Vec<(i64, Vec<u8>)> = {
                let w = self.lock();
                let mut stmt = w
                    .conn
                    .prepare_cached(
                        "SELECT idx, data FROM cab_chunks WHERE ino = ?1 AND idx >= ?2 \
                         ORDER BY idx LIMIT ?3",
                    )
                    .map_err(sqlite)?;
                let rows = stmt
                    .query_map(params![key, next, BATCH], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(sqlite)?;
                rows.collect::<rusqlite::Result<_>>().map_err(sqlite)?
            };
            let Some(last) = batch.last().map(|(i, _)| *i) else {
                return Ok(());
            };
            for (idx, data) in &batch {
                if !each(u64::try_from(*idx).unwrap_or(0), data)? {
                    return Ok(());
                }
            }
            next = last + 1;
        }
    }

    /// `PRAGMA quick_check` of the file: `"ok"` or SQLite's findings, one per line.
    pub(crate) fn quick_check(&self) -> Result<String> {
        let w = self.lock();
        let mut stmt = w.conn.prepare("PRAGMA quick_check").map_err(sqlite)?;
        let lines = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(sqlite)?;
        Ok(lines.join("\n"))
    }

    /// The id of the store this file belongs to, if it has one.
    pub(crate) fn store_id(&self) -> Result<Option<String>> {
        let w = self.lock();
        w.conn
            .prepare_cached("SELECT value FROM cab_store WHERE key = 'store.id'")
            .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
            .map_err(sqlite)
    }

    /// Marks the file as `id`'s (committed at once).
    pub(crate) fn set_store_id(&self, id: &str) -> Result<()> {
        self.in_group(|conn| {
            conn.execute(
                "INSERT INTO cab_store (key, value) VALUES ('store.id', ?1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [id],
            )?;
            Ok(())
        })?;
        self.commit()
    }

    /// Gives up to `max_pages` free pages back to the filesystem, in a transaction of its
    /// own (the open group is committed first); how many went. `None` if the file was made
    /// without incremental vacuum ([`CabDb::vacuum_full`] converts it).
    pub(crate) fn release_free_pages(&self, max_pages: u64) -> Result<Option<u64>> {
        let mut w = self.lock();
        w.commit()?;
        let count = |w: &Writer, pragma: &str| -> Result<i64> {
            w.conn
                .pragma_query_value(None, pragma, |r| r.get(0))
                .map_err(sqlite)
        };
        if count(&w, "auto_vacuum")? != 2 {
            return Ok(None);
        }
        let before = count(&w, "freelist_count")?;
        let n = i64::try_from(max_pages).unwrap_or(i64::MAX);
        // Not in a group: no cab's bytes depend on it. incremental_vacuum must be stepped.
        let vacuumed = w
            .conn
            .prepare(&format!("PRAGMA incremental_vacuum({n})"))
            .and_then(|mut stmt| {
                let mut rows = stmt.query([])?;
                while rows.next()?.is_some() {}
                Ok(())
            })
            .map_err(sqlite);
        vacuumed?;
        let after = count(&w, "freelist_count")?;
        Ok(Some(u64::try_from(before - after).unwrap_or(0)))
    }

    /// Rewrites the whole file (`VACUUM`) with incremental vacuum on. Only with the store
    /// opened alone.
    pub(crate) fn vacuum_full(&self) -> Result<()> {
        let mut w = self.lock();
        w.commit()?;
        w.conn
            .pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(sqlite)?;
        w.conn.execute_batch("VACUUM").map_err(sqlite)
    }

    /// Bytes in use and free inside the file (its pages).
    pub(crate) fn usage(&self) -> Result<(u64, u64)> {
        let w = self.lock();
        let get = |pragma: &str| -> Result<u64> {
            let v: i64 = w
                .conn
                .pragma_query_value(None, pragma, |r| r.get(0))
                .map_err(sqlite)?;
            Ok(u64::try_from(v).unwrap_or(0))
        };
        let (pages, free, size) = (
            get("page_count")?,
            get("freelist_count")?,
            get("page_size")?,
        );
        Ok((pages.saturating_sub(free) * size, free * size))
    }
}
