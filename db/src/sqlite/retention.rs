//! Retention in the SQLite store: the policy and the server's other settings in
//! `server_setting_rows`, and which cabs the policy prunes now (one query with window
//! functions: per-bucket ranks and a running total of what is kept).

use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{get_u64, size_param};
use super::{finish, SqliteStore};
use crate::lifecycle::{CabEntry, PruneCandidate, PruneReason, RetentionPolicy};
use crate::store::Result;
use crate::store_rules::{retention_from, retention_settings};

pub(crate) fn setting(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT value FROM server_setting_rows WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()?)
}

pub(crate) fn set_setting(conn: &Connection, key: &str, value: Option<&str>) -> Result<()> {
    match value {
        Some(value) => conn.execute(
            "INSERT INTO server_setting_rows (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?,
        None => conn.execute("DELETE FROM server_setting_rows WHERE key = ?1", [key])?,
    };
    Ok(())
}

pub(crate) fn load_policy(conn: &Connection) -> Result<RetentionPolicy> {
    retention_from(|key| setting(conn, key))
}

pub(crate) fn store_policy(conn: &Connection, policy: &RetentionPolicy) -> Result<()> {
    for (key, value) in retention_settings(policy) {
        set_setting(conn, key, value.as_deref())?;
    }
    Ok(())
}

/// Cabs on the share, ranked in their bucket from the oldest (`first_rank`) and from the
/// newest (`last_rank`); `why` is the first rule that prunes the cab; `kept` whether the
/// per-bucket rule keeps it whatever the total; the running total of what is kept, newest
/// first (kept ones before all others), decides the total-size rule.
const CANDIDATES: &str = "
WITH live AS (
    SELECT c.ino, c.bucket_id, c.name, c.size, c.created_at, c.sha256,
           row_number() OVER (PARTITION BY c.bucket_id ORDER BY c.created_at, c.ino) AS first_rank,
           row_number() OVER (PARTITION BY c.bucket_id ORDER BY c.created_at DESC, c.ino DESC) AS last_rank
    FROM cab_rows c
    WHERE c.state = 'complete' AND c.removal IS NULL
), judged AS (
    SELECT *,
           CASE
               WHEN ?1 IS NOT NULL
                    AND created_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || ?1 || ' days') THEN 1
               WHEN ?2 IS NOT NULL AND first_rank > ?2 AND last_rank > ?3 THEN 2
           END AS why,
           coalesce(?2 IS NOT NULL AND (first_rank <= ?2 OR last_rank <= ?3), 0) AS kept
    FROM live
), sized AS (
    SELECT *, sum(size) OVER (ORDER BY kept DESC, created_at DESC, ino DESC
                              ROWS UNBOUNDED PRECEDING) AS running
    FROM judged WHERE why IS NULL
)
SELECT j.ino, b.subpath, j.name, j.size, j.created_at, j.sha256, j.why
FROM (SELECT ino, bucket_id, name, size, created_at, sha256, why FROM judged WHERE why IS NOT NULL
      UNION ALL
      SELECT ino, bucket_id, name, size, created_at, sha256, 3 FROM sized
      WHERE ?4 IS NOT NULL AND running > ?4 AND NOT kept) j
JOIN bucket_rows b ON b.bucket_id = j.bucket_id
WHERE ?6 IS NULL OR (j.created_at, j.ino) > (?6, ?7)
ORDER BY j.created_at, j.ino
LIMIT ?5";

pub(crate) fn candidates(
    conn: &Connection,
    policy: &RetentionPolicy,
    after: Option<&CabEntry>,
    limit: usize,
) -> Result<Vec<PruneCandidate>> {
    if policy.is_empty() {
        return Ok(Vec::new());
    }
    let per_bucket = policy.keep_first.is_some() || policy.keep_last.is_some();
    let first = per_bucket.then(|| policy.keep_first.unwrap_or(0));
    let last = per_bucket.then(|| policy.keep_last.unwrap_or(0));
    let max_bytes = policy
        .max_cab_bytes
        .map(|b| size_param(b, "retention total"))
        .transpose()?;
    let mut stmt = conn.prepare_cached(CANDIDATES)?;
    let rows = stmt.query_map(
        params![
            policy.max_age_days,
            first,
            last,
            max_bytes,
            i64::try_from(limit).unwrap_or(i64::MAX),
            after.map(|c| c.created_at.as_str()),
            after.map(|c| super::rows::ino_param(c.ino)),
        ],
        |row| {
            let why: i64 = row.get(6)?;
            Ok(PruneCandidate {
                cab: CabEntry {
                    ino: get_u64(row, 0)?,
                    subpath: row.get(1)?,
                    name: row.get(2)?,
                    size: get_u64(row, 3)?,
                    created_at: row.get(4)?,
                    sha256: row.get(5)?,
                },
                reason: match why {
                    1 => PruneReason::Age,
                    2 => PruneReason::PerBucket,
                    _ => PruneReason::TotalSize,
                },
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

impl SqliteStore {
    /// The retention policy (read on the pool).
    pub(crate) fn load_retention(&self) -> Result<RetentionPolicy> {
        finish(self.read(load_policy))
    }
}
