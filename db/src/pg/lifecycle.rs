//! The lifecycle family of the PostgreSQL store: retention, removal in steps (mark, then
//! sweep the bytes), deletions with their audit, the scrub's re-hash, and what the store
//! says of its size. Backups, integrity and free space are PostgreSQL's own business
//! (docs/scale-out.md): those calls say so instead of pretending.

use super::pool::Tx;
use super::rows::{get_u64, ino_param, iso, size_param};
use super::{PgStore, PG_CHUNK};
use crate::lifecycle::{
    Audit, BucketContents, CabCheck, CabEntry, LifecycleStore, PruneCandidate, PruneReason,
    Removal, RetentionPolicy, StoreUsage, SweepStep,
};
use crate::store::{BucketId, Ino, Result, CABS_INO, COUNTS_INO, STATUS_INO};
use crate::store_rules::{
    removal_from, removal_str, retention_from, retention_settings, ChunkCheck,
};
use crate::StoreError;

pub(crate) fn setting(tx: &mut Tx<'_>, key: &str) -> Result<Option<String>> {
    Ok(tx
        .query_opt(
            "SELECT value FROM server_setting_rows WHERE key = $1",
            &[&key],
        )?
        .map(|r| r.get(0)))
}

pub(crate) fn set_setting(tx: &mut Tx<'_>, key: &str, value: Option<&str>) -> Result<()> {
    match value {
        Some(value) => tx.execute(
            "INSERT INTO server_setting_rows (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )?,
        None => tx.execute("DELETE FROM server_setting_rows WHERE key = $1", &[&key])?,
    };
    Ok(())
}

fn cab_entry(row: &postgres::Row) -> Result<CabEntry> {
    Ok(CabEntry {
        ino: get_u64(row, 0)?,
        subpath: row.try_get(1)?,
        name: row.try_get(2)?,
        size: get_u64(row, 3)?,
        created_at: row.try_get(4)?,
        sha256: row.try_get(5)?,
    })
}

/// The SQLite store's retention query (sqlite/retention.rs), in PostgreSQL's dialect.
const CANDIDATES: &str = concat!(
    "WITH live AS (
    SELECT c.ino, c.bucket_id, c.name, c.size, c.created_at, c.sha256,
           row_number() OVER (PARTITION BY c.bucket_id ORDER BY c.created_at, c.ino) AS first_rank,
           row_number() OVER (PARTITION BY c.bucket_id ORDER BY c.created_at DESC, c.ino DESC) AS last_rank
    FROM cab_rows c
    WHERE c.state = 'complete' AND c.removal IS NULL
), judged AS (
    SELECT *,
           CASE
               WHEN $1::bigint IS NOT NULL AND created_at < now() - make_interval(days => $1::bigint::int) THEN 1
               WHEN $2::bigint IS NOT NULL AND first_rank > $2 AND last_rank > $3::bigint THEN 2
           END AS why,
           coalesce($2::bigint IS NOT NULL AND (first_rank <= $2 OR last_rank <= $3::bigint), false) AS kept
    FROM live
), sized AS (
    SELECT *, sum(size) OVER (ORDER BY kept DESC, created_at DESC, ino DESC
                              ROWS UNBOUNDED PRECEDING) AS running
    FROM judged WHERE why IS NULL
)
SELECT j.ino, b.subpath, j.name, j.size, ",
    iso!("j.created_at"),
    ", j.sha256, j.why
FROM (SELECT ino, bucket_id, name, size, created_at, sha256, why FROM judged WHERE why IS NOT NULL
      UNION ALL
      SELECT ino, bucket_id, name, size, created_at, sha256, 3 FROM sized
      WHERE $4::bigint IS NOT NULL AND running > $4::bigint AND NOT kept) j
JOIN bucket_rows b ON b.bucket_id = j.bucket_id
WHERE $6::text IS NULL
   OR (date_trunc('milliseconds', j.created_at), j.ino) > ($6::text::timestamptz, $7::bigint)
ORDER BY j.created_at, j.ino
LIMIT $5"
);

/// Marks complete cab `ino` removed and hides its node; records `audit` for a deletion.
fn remove_cab(tx: &mut Tx<'_>, ino: Ino, removal: Removal, audit: Option<&Audit>) -> Result<bool> {
    let key = ino_param(ino);
    let Some(row) = tx.query_opt(
        "SELECT c.state, c.removal, b.subpath, c.name, c.size FROM cab_rows c \
         JOIN bucket_rows b ON b.bucket_id = c.bucket_id WHERE c.ino = $1 FOR UPDATE OF c",
        &[&key],
    )?
    else {
        return Ok(false);
    };
    let (state, current): (String, Option<String>) = (row.try_get(0)?, row.try_get(1)?);
    // A pruned cab may still be deleted (its row then goes too).
    let allowed = match removal_from(current.as_deref()) {
        None => true,
        Some(Removal::Pruned) => removal == Removal::Deleted,
        Some(Removal::Deleted) => false,
    };
    if state != "complete" || !allowed {
        return Ok(false);
    }
    tx.execute(
        "UPDATE cab_rows SET removal = $2, swept_at = NULL, removed_at = now() WHERE ino = $1",
        &[&key, &removal_str(removal)],
    )?;
    tx.execute(
        "UPDATE nodes SET name = '.removed-' || ino WHERE ino = $1",
        &[&key],
    )?;
    if let Some(audit) = audit {
        let size: Option<i64> = row.try_get(4)?;
        let (subpath, name): (String, String) = (row.try_get(2)?, row.try_get(3)?);
        let detail = format!("{} bytes", size.unwrap_or(0));
        record(tx, audit, "cab", &subpath, Some(&name), &detail)?;
    }
    Ok(true)
}

fn record(
    tx: &mut Tx<'_>,
    audit: &Audit,
    kind: &str,
    subpath: &str,
    name: Option<&str>,
    detail: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO deletion_rows (deleted_by, kind, subpath, name, reason, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&audit.by, &kind, &subpath, &name, &audit.reason, &detail],
    )?;
    Ok(())
}

fn bucket_contents(tx: &mut Tx<'_>, subpath: &str) -> Result<Option<BucketContents>> {
    let Some(row) = tx.query_opt(
        "SELECT bucket_id, total_hits FROM bucket_rows WHERE subpath = $1",
        &[&subpath],
    )?
    else {
        return Ok(None);
    };
    let (bucket, total_hits): (BucketId, i64) = (row.try_get(0)?, row.try_get(1)?);
    let row = tx.query_one(
        "SELECT (SELECT count(*) FROM cab_rows WHERE bucket_id = $1 AND state = 'complete' \
                 AND removal IS NULL), \
                (SELECT coalesce(sum(size), 0)::bigint FROM cab_rows WHERE bucket_id = $1 \
                 AND state = 'complete' AND removal IS NULL), \
                (SELECT coalesce(sum(line_count), 0)::bigint FROM logs WHERE log_id = $1), \
                (SELECT count(*) FROM crashes WHERE bucket_id = $1), \
                (SELECT count(*) FROM cer2_report_rows WHERE bucket_id = $1)",
        &[&bucket],
    )?;
    let n = |i: usize| -> Result<u64> { Ok(u64::try_from(row.try_get::<_, i64>(i)?).unwrap_or(0)) };
    Ok(Some(BucketContents {
        bucket,
        cabs: n(0)?,
        cab_bytes: n(1)?,
        hits_lines: n(2)?,
        crash_lines: n(3)?,
        reports: n(4)?,
        total_hits: u64::try_from(total_hits).unwrap_or(0),
    }))
}

/// The folder of bucket `subpath` under tree `top`, if it exists.
fn folder_of(tx: &mut Tx<'_>, top: Ino, subpath: &str) -> Result<Option<Ino>> {
    let mut dir = top;
    for part in subpath.split('\\') {
        let next = tx.query_opt(
            "SELECT ino FROM nodes WHERE parent = $1 AND lower(name) = lower($2) AND role = 'dir'",
            &[&ino_param(dir), &part],
        )?;
        match next {
            Some(row) => dir = get_u64(&row, 0)?,
            None => return Ok(None),
        }
    }
    Ok(Some(dir))
}

/// Removes the rows of deleted buckets whose cabs are all swept, and their empty folders.
fn finish_deleted_buckets(tx: &mut Tx<'_>) -> Result<u64> {
    let done: Vec<(BucketId, String)> = tx
        .query(
            "SELECT b.bucket_id, b.subpath FROM bucket_rows b \
             WHERE EXISTS (SELECT 1 FROM deletion_rows d WHERE d.kind = 'bucket' AND d.subpath = b.subpath) \
               AND NOT EXISTS (SELECT 1 FROM logs l WHERE l.log_id = b.bucket_id) \
               AND NOT EXISTS (SELECT 1 FROM cab_rows c WHERE c.bucket_id = b.bucket_id) \
               AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.bucket_id = b.bucket_id AND n.role <> 'dir') \
               AND b.total_hits = 0",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (bucket, subpath) in &done {
        for top in [CABS_INO, COUNTS_INO, STATUS_INO] {
            if let Some(dir) = folder_of(tx, top, subpath)? {
                let dir = ino_param(dir);
                if tx
                    .query_opt("SELECT 1 FROM nodes WHERE parent = $1 LIMIT 1", &[&dir])?
                    .is_none()
                {
                    tx.execute("DELETE FROM nodes WHERE ino = $1", &[&dir])?;
                }
            }
        }
        tx.execute(
            "UPDATE nodes SET bucket_id = NULL WHERE bucket_id = $1 AND role = 'dir'",
            &[bucket],
        )?;
        tx.execute(
            "DELETE FROM cer2_report_rows WHERE bucket_id = $1",
            &[bucket],
        )?;
        tx.execute("DELETE FROM bucket_rows WHERE bucket_id = $1", &[bucket])?;
    }
    Ok(done.len() as u64)
}

impl LifecycleStore for PgStore {
    fn leads_background(&self) -> Result<bool> {
        self.background_lead()
    }

    fn retention(&self) -> Result<RetentionPolicy> {
        self.read(|tx| retention_from(|key| setting(tx, key)))
    }

    fn set_retention(&self, policy: &RetentionPolicy) -> Result<()> {
        self.write(|tx| {
            for (key, value) in retention_settings(policy) {
                set_setting(tx, key, value.as_deref())?;
            }
            Ok(())
        })
    }

    fn server_setting(&self, key: &str) -> Result<Option<String>> {
        self.read(|tx| setting(tx, key))
    }

    fn set_server_setting(&self, key: &str, value: Option<&str>) -> Result<()> {
        self.write(|tx| set_setting(tx, key, value))
    }

    fn prune_candidates(
        &self,
        policy: &RetentionPolicy,
        after: Option<&CabEntry>,
        limit: usize,
    ) -> Result<Vec<PruneCandidate>> {
        if policy.is_empty() {
            return Ok(Vec::new());
        }
        let per_bucket = policy.keep_first.is_some() || policy.keep_last.is_some();
        let first = per_bucket.then(|| i64::from(policy.keep_first.unwrap_or(0)));
        let last = per_bucket.then(|| i64::from(policy.keep_last.unwrap_or(0)));
        let age = policy.max_age_days.map(i64::from);
        let max_bytes = policy
            .max_cab_bytes
            .map(|b| size_param(b, "retention total"))
            .transpose()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let after_at = after.map(|c| c.created_at.clone());
        let after_ino = after.map(|c| ino_param(c.ino));
        self.read(|tx| {
            tx.query(
                CANDIDATES,
                &[
                    &age, &first, &last, &max_bytes, &limit, &after_at, &after_ino,
                ],
            )?
            .iter()
            .map(|row| {
                let why: i32 = row.try_get(6)?;
                Ok(PruneCandidate {
                    cab: cab_entry(row)?,
                    reason: match why {
                        1 => PruneReason::Age,
                        2 => PruneReason::PerBucket,
                        _ => PruneReason::TotalSize,
                    },
                })
            })
            .collect()
        })
    }

    fn remove_cab(&self, ino: Ino, removal: Removal, audit: Option<&Audit>) -> Result<bool> {
        self.write(|tx| remove_cab(tx, ino, removal, audit))
    }

    fn prune_cabs(&self, inos: &[Ino]) -> Result<Vec<Ino>> {
        self.write(|tx| {
            let mut pruned = Vec::with_capacity(inos.len());
            for &ino in inos {
                if remove_cab(tx, ino, Removal::Pruned, None)? {
                    pruned.push(ino);
                }
            }
            Ok(pruned)
        })
    }

    fn sweep(&self, max_chunks: usize) -> Result<SweepStep> {
        self.write(|tx| {
            let pending: Vec<(i64, Option<String>)> = tx
                .query(
                    "SELECT ino, removal FROM cab_rows \
                     WHERE removal IS NOT NULL AND swept_at IS NULL ORDER BY ino LIMIT 64 \
                     FOR UPDATE SKIP LOCKED",
                    &[],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let mut step = SweepStep::default();
            let mut budget = max_chunks as u64;
            for (key, removal) in pending {
                if budget > 0 {
                    let deleted = tx.execute(
                        "DELETE FROM chunks WHERE (ino, idx) IN \
                         (SELECT ino, idx FROM chunks WHERE ino = $1 LIMIT $2)",
                        &[&key, &i64::try_from(budget).unwrap_or(i64::MAX)],
                    )?;
                    step.chunks += deleted;
                    budget -= deleted.min(budget);
                }
                if tx.query_opt("SELECT 1 FROM chunks WHERE ino = $1 LIMIT 1", &[&key])?.is_some() {
                    step.more = true;
                    break;
                }
                if removal_from(removal.as_deref()) == Some(Removal::Deleted) {
                    tx.execute("DELETE FROM cab_rows WHERE ino = $1", &[&key])?;
                    tx.execute("DELETE FROM nodes WHERE ino = $1", &[&key])?;
                } else {
                    tx.execute("UPDATE cab_rows SET swept_at = now() WHERE ino = $1", &[&key])?;
                    tx.execute("UPDATE nodes SET size = 0 WHERE ino = $1", &[&key])?;
                }
                step.finished += 1;
            }
            if !step.more {
                step.more = tx
                    .query_opt(
                        "SELECT 1 FROM cab_rows WHERE removal IS NOT NULL AND swept_at IS NULL LIMIT 1",
                        &[],
                    )?
                    .is_some();
            }
            if !step.more {
                step.finished += finish_deleted_buckets(tx)?;
            }
            Ok(step)
        })
    }

    fn find_cab(&self, subpath: &str, name: &str) -> Result<Option<(CabEntry, Option<Removal>)>> {
        self.read(|tx| {
            let Some(row) = tx.query_opt(
                concat!(
                    "SELECT c.ino, b.subpath, c.name, c.size, ",
                    iso!("coalesce(c.removed_at, c.created_at)"),
                    ", c.sha256, c.removal \
                     FROM cab_rows c JOIN bucket_rows b ON b.bucket_id = c.bucket_id \
                     WHERE b.subpath = $1 AND c.name = $2 AND c.state = 'complete' \
                     ORDER BY c.removal IS NOT NULL, c.ino DESC LIMIT 1"
                ),
                &[&subpath, &name],
            )?
            else {
                return Ok(None);
            };
            // For a removed cab, when it was removed is what the caller reports.
            let removal: Option<String> = row.try_get(6)?;
            Ok(Some((cab_entry(&row)?, removal_from(removal.as_deref()))))
        })
    }

    fn bucket_contents(&self, subpath: &str) -> Result<Option<BucketContents>> {
        self.read(|tx| bucket_contents(tx, subpath))
    }

    fn delete_bucket(&self, subpath: &str, audit: &Audit) -> Result<Option<BucketContents>> {
        self.write(|tx| {
            let Some(contents) = bucket_contents(tx, subpath)? else {
                return Ok(None);
            };
            let bucket = contents.bucket;
            // The bucket's row locked: its counters, logs and reports wait for the deletion.
            tx.execute("SELECT 1 FROM bucket_rows WHERE bucket_id = $1 FOR UPDATE", &[&bucket])?;
            if tx
                .query_opt(
                    "SELECT 1 FROM cab_rows WHERE bucket_id = $1 AND state = 'writing' LIMIT 1",
                    &[&bucket],
                )?
                .is_some()
            {
                return Err(StoreError::Invalid(format!(
                    "a cab of {subpath} is being uploaded right now: try again when it is complete"
                )));
            }
            let detail = contents.summary();
            record(tx, audit, "bucket", subpath, None, &detail)?;
            tx.execute(
                "UPDATE nodes SET name = '.removed-' || ino WHERE ino IN \
                 (SELECT ino FROM cab_rows WHERE bucket_id = $1 AND removal IS NULL)",
                &[&bucket],
            )?;
            tx.execute(
                "UPDATE cab_rows SET removal = 'deleted', swept_at = NULL, \
                 removed_at = coalesce(removed_at, now()) WHERE bucket_id = $1",
                &[&bucket],
            )?;
            // Blank the crash.log lines naming it (machine and user are personal data),
            // same length, so that crash.log's offsets stay.
            tx.execute(
                "UPDATE log_lines SET \
                     bytes = convert_to(rpad('[deleted]', length(bytes) - 2, ' '), 'UTF8') || '\\x0d0a'::bytea, \
                     time_text = NULL, date_text = NULL, machine = NULL, \"user\" = NULL, item = NULL, \
                     client_time = NULL, flagged = true \
                 WHERE seq IN (SELECT crash_id FROM crashes WHERE bucket_id = $1)",
                &[&bucket],
            )?;
            tx.execute("DELETE FROM log_lines WHERE log_id = $1", &[&bucket])?;
            tx.execute("DELETE FROM logs WHERE log_id = $1", &[&bucket])?;
            tx.execute("DELETE FROM setting_rows WHERE bucket_id = $1", &[&bucket])?;
            tx.execute("DELETE FROM cer2_report_rows WHERE bucket_id = $1", &[&bucket])?;
            tx.execute(
                "DELETE FROM nodes WHERE bucket_id = $1 AND role IN ('count', 'status', 'hitslog')",
                &[&bucket],
            )?;
            tx.execute(
                "UPDATE bucket_rows SET total_hits = 0, cabs_gathered = 0 WHERE bucket_id = $1",
                &[&bucket],
            )?;
            super::heads::notify_change(tx, self.head_id())?;
            Ok(Some(contents))
        })
    }

    fn cabs_after(&self, after: Ino, limit: usize) -> Result<Vec<CabEntry>> {
        self.read(|tx| {
            tx.query(
                concat!(
                    "SELECT c.ino, b.subpath, c.name, c.size, ",
                    iso!("c.created_at"),
                    ", c.sha256 FROM cab_rows c JOIN bucket_rows b ON b.bucket_id = c.bucket_id \
                     WHERE c.ino > $1 AND c.state = 'complete' AND c.removal IS NULL \
                     ORDER BY c.ino LIMIT $2"
                ),
                &[&ino_param(after), &i64::try_from(limit).unwrap_or(i64::MAX)],
            )?
            .iter()
            .map(cab_entry)
            .collect()
        })
    }

    fn check_cab(&self, ino: Ino) -> Result<CabCheck> {
        let key = ino_param(ino);
        let Some((size, sha256)) = self.read(|tx| {
            tx.query_opt(
                "SELECT size, sha256 FROM cab_rows \
                 WHERE ino = $1 AND state = 'complete' AND removal IS NULL",
                &[&key],
            )?
            .map(|r| Ok((get_u64(&r, 0)?, r.try_get::<_, String>(1)?)))
            .transpose()
        })?
        else {
            return Ok(CabCheck::Sound); // removed meanwhile: nothing to check
        };
        // A few chunks per statement: bounded memory whatever the cab's size.
        let mut check = ChunkCheck::new("chunk", PG_CHUNK, size);
        let mut from = 0i64;
        let verdict = loop {
            let rows = self.read(|tx| {
                tx.query(
                    "SELECT idx, data FROM chunks WHERE ino = $1 AND idx >= $2 ORDER BY idx LIMIT 16",
                    &[&key, &from],
                )
            })?;
            if rows.is_empty() {
                break check.finish(&sha256);
            }
            let mut problem = None;
            for row in &rows {
                let idx = get_u64(row, 0)?;
                if let Err(why) = check.feed(idx, row.try_get(1)?) {
                    problem = Some(why);
                    break;
                }
                from = i64::try_from(idx + 1).unwrap_or(i64::MAX);
            }
            if let Some(why) = problem {
                break CabCheck::Corrupt(why);
            }
        };
        let corrupt = match &verdict {
            CabCheck::Sound => None,
            CabCheck::Corrupt(why) => Some(why.as_str()),
        };
        self.write(|tx| {
            tx.execute(
                "UPDATE cab_rows SET verified_at = CASE WHEN $2::text IS NULL THEN now() \
                 ELSE verified_at END, corrupt = $2 WHERE ino = $1",
                &[&key, &corrupt],
            )?;
            Ok(())
        })?;
        Ok(verdict)
    }

    fn integrity(&self) -> Result<String> {
        // PostgreSQL checks its own pages (checksums, amcheck); what cerfs can check is
        // that every complete cab's stored size adds up, which the scrub does per cab.
        self.read(|tx| {
            let bad = tx.query_one(
                "SELECT count(*) FROM cab_rows c JOIN nodes n ON n.ino = c.ino \
                 WHERE c.state = 'complete' AND c.removal IS NULL AND n.size <> c.size",
                &[],
            )?;
            let bad: i64 = bad.try_get(0)?;
            Ok(if bad == 0 {
                "ok".to_owned()
            } else {
                format!("{bad} complete cabs whose node size differs from their recorded size")
            })
        })
    }

    fn cab_file_integrity(&self) -> Result<Option<String>> {
        Ok(None) // no file of its own beside the database
    }

    fn usage(&self) -> Result<StoreUsage> {
        self.read(|tx| {
            let row = tx.query_one("SELECT pg_database_size(current_database())", &[])?;
            let used: i64 = row.try_get(0)?;
            Ok(StoreUsage {
                used_bytes: u64::try_from(used).unwrap_or(0),
                // Dead rows are PostgreSQL's to reclaim (autovacuum), and the server's disk
                // is not this machine's.
                free_bytes: 0,
                fs_available: None,
                fs_total: None,
            })
        })
    }

    fn release_free_space(&self, _max_bytes: u64) -> Result<Option<u64>> {
        // Autovacuum reuses dead rows' space; giving it back to the filesystem is a
        // `VACUUM FULL` for the database's administrator, not a step beside a server.
        Ok(Some(0))
    }

    fn backup_to(&self, _dest: &std::path::Path) -> Result<()> {
        Err(StoreError::Invalid(format!(
            "a PostgreSQL store ({}) is backed up with PostgreSQL's own tools: pg_basebackup \
             with WAL archiving, or pg_dump -Fc (docs/scale-out.md, Running PostgreSQL for cerfs)",
            self.shown
        )))
    }
}
