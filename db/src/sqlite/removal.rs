//! Taking cabs and buckets off the store: a cab is first marked removed (it leaves the
//! share at once, in one transaction), then its chunks are deleted in small steps (the
//! sweep), so that no transaction holds the writer for long and a crash anywhere leaves
//! every cab either whole or marked. Deletions are recorded in `deletion_rows`.

use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{get_u64, ino_param};
use super::sql_now;
use crate::lifecycle::{Audit, BucketContents, CabEntry, Removal, SweepStep};
use crate::store::{BucketId, Ino, Result};
use crate::store_rules::{removal_from, removal_str};
use crate::StoreError;

/// What `remove_cab` reads of a cab: state, removal, subpath, name, size.
type CabFacts = (String, Option<String>, String, String, Option<i64>);

/// Marks complete cab `ino` removed and hides its node (renamed `.removed-<ino>`, so that
/// its name is free for a new upload); records `audit` for a deletion.
pub(crate) fn remove_cab(
    tx: &Connection,
    ino: Ino,
    removal: Removal,
    audit: Option<&Audit>,
) -> Result<bool> {
    let key = ino_param(ino);
    let found: Option<CabFacts> = tx
        .prepare_cached(
            "SELECT c.state, c.removal, b.subpath, c.name, c.size FROM cab_rows c \
             JOIN bucket_rows b ON b.bucket_id = c.bucket_id WHERE c.ino = ?1",
        )?
        .query_row([key], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let Some((state, current, subpath, name, size)) = found else {
        return Ok(false);
    };
    // A pruned cab may still be deleted (its row then goes too).
    let allowed = match removal_from(current.as_deref()) {
        None => true,
        Some(Removal::Pruned) => removal == Removal::Deleted,
        Some(Removal::Deleted) => false,
    };
    if state != "complete" || !allowed {
        return Ok(false);
    }
    tx.prepare_cached(concat!(
        "UPDATE cab_rows SET removal = ?2, swept_at = NULL, removed_at = ",
        sql_now!(),
        " WHERE ino = ?1"
    ))?
    .execute(params![key, removal_str(removal)])?;
    tx.prepare_cached("UPDATE nodes SET name = '.removed-' || ino WHERE ino = ?1")?
        .execute([key])?;
    if let Some(audit) = audit {
        let detail = format!("{} bytes", size.unwrap_or(0));
        record(tx, audit, "cab", &subpath, Some(&name), &detail)?;
    }
    Ok(true)
}

fn record(
    tx: &Connection,
    audit: &Audit,
    kind: &str,
    subpath: &str,
    name: Option<&str>,
    detail: &str,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO deletion_rows (deleted_by, kind, subpath, name, reason, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![audit.by, kind, subpath, name, audit.reason, detail])?;
    Ok(())
}

/// Deletes up to `max_chunks` chunks of removed cabs, oldest removal first, and finishes
/// the cabs left without chunks: a pruned cab's row stays (`swept_at` set), a deleted one's
/// rows and node go.
pub(crate) fn sweep(tx: &Connection, max_chunks: usize) -> Result<SweepStep> {
    let pending: Vec<(Ino, Option<String>)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT ino, removal FROM cab_rows \
             WHERE removal IS NOT NULL AND swept_at IS NULL ORDER BY ino LIMIT 64",
        )?;
        let rows = stmt.query_map([], |r| Ok((get_u64(r, 0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut step = SweepStep::default();
    let mut budget = max_chunks as u64;
    for (ino, removal) in pending {
        let key = ino_param(ino);
        if budget > 0 {
            let deleted = tx
                .prepare_cached(
                    "DELETE FROM chunks WHERE rowid IN \
                     (SELECT rowid FROM chunks WHERE ino = ?1 LIMIT ?2)",
                )?
                .execute(params![key, i64::try_from(budget).unwrap_or(i64::MAX)])?
                as u64;
            step.chunks += deleted;
            budget -= deleted.min(budget);
        }
        let left: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM chunks WHERE ino = ?1)")?
            .query_row([key], |r| r.get(0))?;
        if left {
            step.more = true;
            break;
        }
        match removal_from(removal.as_deref()) {
            Some(Removal::Deleted) => {
                tx.prepare_cached("DELETE FROM cab_rows WHERE ino = ?1")?
                    .execute([key])?;
                tx.prepare_cached("DELETE FROM nodes WHERE ino = ?1")?
                    .execute([key])?;
            }
            _ => {
                tx.prepare_cached(concat!(
                    "UPDATE cab_rows SET swept_at = ",
                    sql_now!(),
                    " WHERE ino = ?1"
                ))?
                .execute([key])?;
                tx.prepare_cached("UPDATE nodes SET size = 0 WHERE ino = ?1")?
                    .execute([key])?;
            }
        }
        step.finished += 1;
    }
    if !step.more {
        step.more = tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM cab_rows WHERE removal IS NOT NULL AND swept_at IS NULL)",
            )?
            .query_row([], |r| r.get(0))?;
    }
    Ok(step)
}

/// The complete (or removed) cab `name` of bucket `subpath`.
pub(crate) fn find_cab(
    conn: &Connection,
    subpath: &str,
    name: &str,
) -> Result<Option<(CabEntry, Option<Removal>)>> {
    Ok(conn
        .prepare_cached(
            "SELECT c.ino, b.subpath, c.name, c.size, c.created_at, c.sha256, c.removal, \
                    c.removed_at \
             FROM cab_rows c JOIN bucket_rows b ON b.bucket_id = c.bucket_id \
             WHERE b.subpath = ?1 AND c.name = ?2 AND c.state = 'complete' \
             ORDER BY c.removal IS NOT NULL, c.ino DESC LIMIT 1",
        )?
        .query_row(params![subpath, name], |r| {
            let removal: Option<String> = r.get(6)?;
            let removed_at: Option<String> = r.get(7)?;
            let created_at: String = r.get(4)?;
            Ok((
                CabEntry {
                    ino: get_u64(r, 0)?,
                    subpath: r.get(1)?,
                    name: r.get(2)?,
                    size: get_u64(r, 3)?,
                    // For a removed cab, when it was removed is what the caller reports.
                    created_at: removed_at.unwrap_or(created_at),
                    sha256: r.get(5)?,
                },
                removal_from(removal.as_deref()),
            ))
        })
        .optional()?)
}

/// What bucket `subpath` holds, for a deletion.
pub(crate) fn bucket_contents(conn: &Connection, subpath: &str) -> Result<Option<BucketContents>> {
    let Some((bucket, total_hits)): Option<(BucketId, i64)> = conn
        .prepare_cached("SELECT bucket_id, total_hits FROM bucket_rows WHERE subpath = ?1")?
        .query_row([subpath], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
    else {
        return Ok(None);
    };
    let by_bucket = |sql: &str| -> Result<i64> {
        Ok(conn
            .prepare_cached(sql)?
            .query_row([bucket], |r| r.get(0))?)
    };
    let (cabs, cab_bytes): (i64, i64) = conn
        .prepare_cached(
            "SELECT count(*), coalesce(sum(size), 0) FROM cab_rows \
             WHERE bucket_id = ?1 AND state = 'complete' AND removal IS NULL",
        )?
        .query_row([bucket], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let hits_lines = by_bucket("SELECT coalesce(sum(line_count), 0) FROM logs WHERE log_id = ?1")?;
    let reports = by_bucket("SELECT count(*) FROM cer2_report_rows WHERE bucket_id = ?1")?;
    let crash_lines: i64 = conn
        .prepare_cached("SELECT count(*) FROM crashes WHERE bucket_id = ?1")?
        .query_row([bucket], |r| r.get(0))?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(Some(BucketContents {
        bucket,
        cabs: n(cabs),
        cab_bytes: n(cab_bytes),
        hits_lines: n(hits_lines),
        crash_lines: n(crash_lines),
        reports: n(reports),
        total_hits: n(total_hits),
    }))
}

/// Deletes bucket `subpath` in one transaction: its cabs are marked deleted (their bytes
/// go in later sweeps, their rows then), everything else goes now; crash.log lines naming
/// it are blanked in place (same length, so the log's offsets stay).
pub(crate) fn delete_bucket(
    tx: &Connection,
    subpath: &str,
    audit: &Audit,
) -> Result<Option<BucketContents>> {
    let Some(contents) = bucket_contents(tx, subpath)? else {
        return Ok(None);
    };
    let bucket = contents.bucket;
    let uploading: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM cab_rows WHERE bucket_id = ?1 AND state = 'writing')",
        )?
        .query_row([bucket], |r| r.get(0))?;
    if uploading {
        return Err(StoreError::Invalid(format!(
            "a cab of {subpath} is being uploaded right now: try again when it is complete"
        )));
    }
    let detail = contents.summary();
    record(tx, audit, "bucket", subpath, None, &detail)?;
    let cabs: Vec<Ino> = {
        let mut stmt =
            tx.prepare_cached("SELECT ino FROM cab_rows WHERE bucket_id = ?1 AND removal IS NULL")?;
        let rows = stmt.query_map([bucket], |r| get_u64(r, 0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for ino in cabs {
        // A pruned cab's row goes too: this is a deletion.
        tx.prepare_cached(concat!(
            "UPDATE cab_rows SET removal = 'deleted', swept_at = NULL, removed_at = ",
            sql_now!(),
            " WHERE ino = ?1"
        ))?
        .execute([ino_param(ino)])?;
        tx.prepare_cached("UPDATE nodes SET name = '.removed-' || ino WHERE ino = ?1")?
            .execute([ino_param(ino)])?;
    }
    tx.execute(
        "UPDATE cab_rows SET removal = 'deleted', swept_at = NULL WHERE bucket_id = ?1",
        [bucket],
    )?;
    // Blank the crash.log lines that name the bucket (by subpath or by its status.txt's
    // Bucket= id, as the crashes view resolves them): machine and user are personal data.
    // Same length, so that crash.log's offsets stay.
    tx.execute(
        "UPDATE log_lines SET \
             bytes = CAST(substr('[deleted]' || printf('%*s', length(bytes), ''), 1, length(bytes) - 2) || char(13, 10) AS BLOB), \
             time_text = NULL, date_text = NULL, machine = NULL, user = NULL, item = NULL, \
             client_time = NULL, flagged = 1 \
         WHERE seq IN (SELECT crash_id FROM crashes WHERE bucket_id = ?1)",
        [bucket],
    )?;
    tx.execute("DELETE FROM log_lines WHERE log_id = ?1", [bucket])?;
    tx.execute("DELETE FROM logs WHERE log_id = ?1", [bucket])?;
    tx.execute("DELETE FROM daily_hit_rows WHERE bucket_id = ?1", [bucket])?;
    tx.execute("DELETE FROM setting_rows WHERE bucket_id = ?1", [bucket])?;
    tx.execute(
        "DELETE FROM cer2_report_rows WHERE bucket_id = ?1",
        [bucket],
    )?;
    // Its files on the share (count.txt, status.txt, hits.log; the cabs are hidden), and
    // its own folders once empty. The bucket row goes when the last of its cabs is swept.
    tx.execute(
        "DELETE FROM nodes WHERE bucket_id = ?1 AND role IN ('count', 'status', 'hitslog')",
        [bucket],
    )?;
    tx.execute(
        "UPDATE bucket_rows SET total_hits = 0, cabs_gathered = 0 WHERE bucket_id = ?1",
        [bucket],
    )?;
    Ok(Some(contents))
}

/// Removes the rows of deleted buckets whose cabs are all swept: the bucket row, and its
/// empty folders in the three trees. Returns how many buckets went.
pub(crate) fn finish_deleted_buckets(tx: &Connection) -> Result<u64> {
    // A bucket deleted by `delete_bucket`: no hits log left, counters zero, and every cab
    // (if any) deleted; once no cab row is left it can go.
    let done: Vec<(BucketId, String)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT b.bucket_id, b.subpath FROM bucket_rows b \
             WHERE EXISTS (SELECT 1 FROM deletion_rows d WHERE d.kind = 'bucket' AND d.subpath = b.subpath) \
               AND NOT EXISTS (SELECT 1 FROM logs l WHERE l.log_id = b.bucket_id) \
               AND NOT EXISTS (SELECT 1 FROM cab_rows c WHERE c.bucket_id = b.bucket_id) \
               AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.bucket_id = b.bucket_id AND n.role <> 'dir') \
               AND b.total_hits = 0",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (bucket, subpath) in &done {
        for top in [crate::CABS_INO, crate::COUNTS_INO, crate::STATUS_INO] {
            if let Some(dir) = folder_of(tx, top, subpath)? {
                let empty: bool = tx
                    .prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM nodes WHERE parent = ?1)")?
                    .query_row([ino_param(dir)], |r| r.get(0))?;
                if empty {
                    tx.execute("DELETE FROM nodes WHERE ino = ?1", [ino_param(dir)])?;
                }
            }
        }
        tx.execute(
            "UPDATE nodes SET bucket_id = NULL WHERE bucket_id = ?1 AND role = 'dir'",
            [bucket],
        )?;
        tx.execute(
            "DELETE FROM cer2_report_rows WHERE bucket_id = ?1",
            [bucket],
        )?;
        tx.execute("DELETE FROM bucket_rows WHERE bucket_id = ?1", [bucket])?;
    }
    Ok(done.len() as u64)
}

/// The folder of bucket `subpath` under tree `top`, if it exists.
fn folder_of(conn: &Connection, top: Ino, subpath: &str) -> Result<Option<Ino>> {
    let mut dir = top;
    for part in subpath.split('\\') {
        let next: Option<i64> = conn
            .prepare_cached(
                "SELECT ino FROM nodes WHERE parent = ?1 AND name = ?2 COLLATE NOCASE AND role = 'dir'",
            )?
            .query_row(params![ino_param(dir), part], |r| r.get(0))
            .optional()?;
        match next {
            Some(ino) => dir = u64::try_from(ino).unwrap_or(0),
            None => return Ok(None),
        }
    }
    Ok(Some(dir))
}
