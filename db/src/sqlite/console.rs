//! The web console's queries on a SQLite store (see [`crate::ConsoleDb`]): a WAL reader
//! like [`crate::QueryDb`], never blocking the server's writer. Lists read the tables with
//! their indexes and the totals that triggers keep (schema 9: `daily_report_rows`,
//! `cab_total_rows`, `daily_hit_rows`), and compute per-row details only for the rows of
//! the page, so a page costs the same with 100 buckets or 100,000.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::connection::open_read_only;
use crate::console::{
    count, per_day, report_totals_from, reports_by_day, BucketFilter, BucketSort, BucketSummary,
    CabSummary, DayReports, HitLine, MachineCount, Page, StoreFacts, KIND_SQL,
};
use crate::{OpenError, QueryError, SCHEMA_VERSION};

type Result<T> = std::result::Result<T, QueryError>;

/// A read-only connection for the console.
pub(crate) struct SqliteConsole {
    pub(crate) conn: Connection,
    /// The database file's folder (for its filesystem's free space).
    dir: std::path::PathBuf,
}

/// The first day of a window of `days` days ending today (UTC), as SQLite computes it.
pub(crate) fn window_start(conn: &Connection, days: u32) -> Result<String> {
    let back = format!("-{} days", days.saturating_sub(1));
    Ok(conn.query_row("SELECT date('now', ?1)", [back], |r| r.get(0))?)
}

/// The `days` dates of the window, oldest first.
fn window_days(conn: &Connection, days: u32) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "WITH RECURSIVE d(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM d WHERE n + 1 < ?1) \
         SELECT date('now', '-' || (?1 - 1 - n) || ' days') FROM d",
    )?;
    let rows = stmt.query_map([days.max(1)], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

impl SqliteConsole {
    /// Opens the database at `path` read-only; it must have this version's schema (a
    /// server of this version migrates it when it opens it).
    pub(crate) fn open(path: &Path) -> std::result::Result<SqliteConsole, OpenError> {
        Ok(SqliteConsole {
            conn: open_read_only(path, SCHEMA_VERSION)?,
            dir: path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
        })
    }

    /// Reports per UTC day over the last `days` days (today included), by kind: hits.log
    /// lines (CER 1.0) and CER2 reports. Every day of the window has its row.
    pub(crate) fn reports_per_day(&self, days: u32) -> Result<Vec<DayReports>> {
        let dates = window_days(&self.conn, days)?;
        let start = dates.first().cloned().unwrap_or_default();
        let rows = self.day_kind_counts(
            "SELECT day, {KIND}, protocol, sum(reports) FROM daily_report_rows b \
             WHERE day >= ?1 GROUP BY 1, 2, 3",
            &start,
        )?;
        Ok(reports_by_day(&dates, rows))
    }

    /// (day, kind, protocol, count) rows of `sql` (`{KIND}` stands for the kind's
    /// expression) from the window's first day `start`.
    fn day_kind_counts(
        &self,
        sql: &str,
        start: &str,
    ) -> Result<Vec<(String, String, String, u64)>> {
        let mut stmt = self.conn.prepare_cached(&sql.replace("{KIND}", KIND_SQL))?;
        let rows = stmt.query_map([start], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, count(r.get(3)?)))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The `limit` buckets with most hits over the last `days` days, each with its daily
    /// trend.
    pub(crate) fn top_buckets(&self, days: u32, limit: u32) -> Result<Vec<BucketSummary>> {
        let start = window_start(&self.conn, days)?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "WITH w AS (SELECT bucket_id, sum(hits) AS hits FROM daily_hit_rows WHERE day >= ?1 \
                        GROUP BY bucket_id ORDER BY hits DESC, bucket_id LIMIT ?2) \
             SELECT b.bucket_id, b.subpath, {KIND_SQL}, b.app, b.module, b.total_hits, \
                    b.cabs_gathered, w.hits, b.first_seen, b.last_seen \
             FROM w JOIN bucket_rows b ON b.bucket_id = w.bucket_id \
             ORDER BY w.hits DESC, b.bucket_id"
        ))?;
        let mut found = stmt
            .query_map(params![start, limit], summary_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for bucket in &mut found {
            bucket.trend = self.bucket_hits_per_day(bucket.bucket_id, days)?;
        }
        Ok(found)
    }

    /// A server setting (`cerfs quota`, `cerfs retention` ...), as stored.
    pub(crate) fn server_setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM server_setting_rows WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    /// Buckets first reported in the last `days` days, newest first.
    pub(crate) fn new_buckets(&self, days: u32, limit: u32) -> Result<Vec<BucketSummary>> {
        let start = window_start(&self.conn, days)?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT b.bucket_id, b.subpath, {KIND_SQL}, b.app, b.module, b.total_hits, \
                    b.cabs_gathered, b.total_hits, b.first_seen, b.last_seen \
             FROM bucket_rows b WHERE b.first_seen >= ?1 \
             ORDER BY b.first_seen DESC, b.bucket_id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![start, limit], summary_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Hits of bucket `id` per day over the last `days` days, oldest first.
    pub(crate) fn bucket_hits_per_day(&self, id: i64, days: u32) -> Result<Vec<u64>> {
        self.series(
            "SELECT day, hits FROM daily_hit_rows WHERE bucket_id = ?1 AND day >= ?2",
            &id,
            days,
        )
    }

    /// A value per day of the last `days` days (oldest first) from `sql`, which takes the
    /// key and the window's first day and returns (day, count) rows.
    pub(crate) fn series(
        &self,
        sql: &str,
        key: &dyn rusqlite::ToSql,
        days: u32,
    ) -> Result<Vec<u64>> {
        let dates = window_days(&self.conn, days)?;
        let start = dates.first().cloned().unwrap_or_default();
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt
            .query_map(params![key, start], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(per_day(&dates, rows))
    }

    /// The bucket list: filtered, sorted, one page. Only the conditions asked for are in
    /// the SQL, and the page's ids are found first (from the sort column's index alone when
    /// nothing filters), so a deep page skips index entries, not rows.
    pub(crate) fn buckets(&self, filter: &BucketFilter) -> Result<Page<BucketSummary>> {
        // Ties newest id first: the sort indexes hold the id, read backwards.
        let order = match filter.sort {
            BucketSort::Hits => "b.total_hits DESC, b.bucket_id DESC",
            BucketSort::LastSeen => "b.last_seen DESC, b.bucket_id DESC",
            BucketSort::FirstSeen => "b.first_seen DESC, b.bucket_id DESC",
            BucketSort::Subpath => "b.subpath, b.bucket_id",
        };
        let mut conditions: Vec<String> = Vec::new();
        let mut values: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        if let Some(t) = &filter.text {
            values.push(Box::new(crate::console_detail::like_pattern(t)));
            conditions.push(format!("b.subpath LIKE ?{} ESCAPE '\\'", values.len()));
        }
        if let Some(kind) = &filter.kind {
            values.push(Box::new(kind.clone()));
            conditions.push(format!("{KIND_SQL} = ?{}", values.len()));
        }
        if let Some(since) = &filter.since {
            values.push(Box::new(since.clone()));
            conditions.push(format!("b.last_seen >= ?{}", values.len()));
        }
        if let Some(until) = &filter.until {
            values.push(Box::new(until.clone()));
            conditions.push(format!("b.first_seen < ?{}", values.len()));
        }
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let args: Vec<&dyn rusqlite::ToSql> = values.iter().map(|v| v.as_ref()).collect();
        let total: i64 = self
            .conn
            .prepare_cached(&format!("SELECT count(*) FROM bucket_rows b {filter_sql}"))?
            .query_row(args.as_slice(), |r| r.get(0))?;
        let limit = i64::from(filter.limit.clamp(1, 500));
        let offset = i64::try_from(filter.offset).unwrap_or(i64::MAX);
        let n = args.len();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT b.bucket_id, b.subpath, {KIND_SQL}, b.app, b.module, b.total_hits, \
                    b.cabs_gathered, b.total_hits, b.first_seen, b.last_seen \
             FROM bucket_rows b WHERE b.bucket_id IN \
                 (SELECT b.bucket_id FROM bucket_rows b {filter_sql} ORDER BY {order} \
                  LIMIT ?{} OFFSET ?{}) \
             ORDER BY {order}",
            n + 1,
            n + 2
        ))?;
        let mut page_args = args.clone();
        page_args.push(&limit);
        page_args.push(&offset);
        let items = stmt
            .query_map(page_args.as_slice(), summary_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Page {
            total: count(total),
            items,
        })
    }

    /// One bucket, or `None`.
    pub(crate) fn bucket(&self, id: i64) -> Result<Option<BucketSummary>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT b.bucket_id, b.subpath, {KIND_SQL}, b.app, b.module, b.total_hits, \
                    b.cabs_gathered, b.total_hits, b.first_seen, b.last_seen \
             FROM bucket_rows b WHERE b.bucket_id = ?1"
        ))?;
        Ok(stmt.query_row([id], summary_row).optional()?)
    }

    /// The newest `limit` cabs of bucket `id` on the share, newest first.
    pub(crate) fn bucket_cabs(&self, id: i64, limit: u32) -> Result<Vec<CabSummary>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{CAB_SELECT} WHERE c.bucket_id = ?1 AND c.state = 'complete' AND c.removal IS NULL \
             ORDER BY c.created_at DESC, c.ino DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![id, limit], cab_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The complete cab `cab_id` on the share, or `None`.
    pub(crate) fn cab(&self, cab_id: i64) -> Result<Option<CabSummary>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{CAB_SELECT} WHERE c.ino = ?1 AND c.state = 'complete' AND c.removal IS NULL"
        ))?;
        Ok(stmt.query_row([cab_id], cab_row).optional()?)
    }

    /// Reports received in all: `(protocol, kind, count)` with protocol `cer1` (hits.log
    /// lines) or `cer2`, and kind one of [`KINDS`]; every pair, zeros included.
    pub(crate) fn report_totals(&self) -> Result<Vec<(&'static str, &'static str, u64)>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT protocol, {KIND_SQL}, sum(reports) FROM daily_report_rows b GROUP BY 1, 2"
        ))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(report_totals_from(rows))
    }

    /// The machines behind bucket `id`, most hits first, at most `limit`; and how many
    /// machines and users there are in all.
    pub(crate) fn bucket_machines(
        &self,
        id: i64,
        limit: u32,
    ) -> Result<(Vec<MachineCount>, u64, u64)> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT machine, count(*), count(DISTINCT user), max(received_at) FROM log_lines \
             WHERE log_id = ?1 AND machine IS NOT NULL \
             GROUP BY machine ORDER BY 2 DESC, machine LIMIT ?2",
        )?;
        let machines = stmt
            .query_map(params![id, limit], |r| {
                Ok(MachineCount {
                    machine: r.get(0)?,
                    hits: count(r.get(1)?),
                    users: count(r.get(2)?),
                    last_seen: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let (all_machines, all_users): (i64, i64) = self.conn.query_row(
            "SELECT count(DISTINCT machine), count(DISTINCT user) FROM log_lines WHERE log_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((machines, count(all_machines), count(all_users)))
    }

    /// The newest `limit` hits.log lines of bucket `id`, newest first.
    pub(crate) fn bucket_hits(&self, id: i64, limit: u32) -> Result<Vec<HitLine>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT received_at, machine, user, item, client_time, \
                    rtrim(CAST(bytes AS TEXT), char(13, 10)) \
             FROM log_lines WHERE log_id = ?1 ORDER BY start_offset DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![id, limit], |r| {
            Ok(HitLine {
                received_at: r.get(0)?,
                machine: r.get(1)?,
                user: r.get(2)?,
                item: r.get(3)?,
                client_time: r.get(4)?,
                line: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The store's counts and size.
    pub(crate) fn store_facts(&self) -> Result<StoreFacts> {
        let (buckets, cabs, cab_bytes, backlog, failed) = self.conn.query_row(
            "SELECT (SELECT count(*) FROM bucket_rows), cabs, bytes, backlog, failed \
             FROM cab_total_rows",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            },
        )?;
        let pragma = |name: &str| -> Result<i64> {
            Ok(self.conn.pragma_query_value(None, name, |r| r.get(0))?)
        };
        let (pages, free, size) = (
            pragma("page_count")?,
            pragma("freelist_count")?,
            pragma("page_size")?,
        );
        Ok(StoreFacts {
            buckets: count(buckets),
            cabs: count(cabs),
            cab_bytes: count(cab_bytes),
            index_backlog: count(backlog),
            index_failed: count(failed),
            used_bytes: count((pages - free) * size),
            free_bytes: count(free * size),
            disk_free_bytes: fs4::available_space(&self.dir).ok(),
        })
    }
}

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BucketSummary> {
    Ok(BucketSummary {
        bucket_id: r.get(0)?,
        subpath: r.get(1)?,
        kind: r.get(2)?,
        app: r.get(3)?,
        module: r.get(4)?,
        total_hits: count(r.get(5)?),
        cabs_gathered: count(r.get(6)?),
        hits: count(r.get(7)?),
        trend: Vec::new(),
        first_seen: r.get(8)?,
        last_seen: r.get(9)?,
    })
}

pub(crate) const CAB_SELECT: &str =
    "SELECT c.ino, c.bucket_id, b.subpath, c.name, c.size, c.sha256, \
     c.created_at, coalesce(c.index_status, 'pending'), \
     (SELECT s.signature FROM stack_rows s WHERE s.cab_id = c.ino ORDER BY s.member LIMIT 1) \
     FROM cab_rows c JOIN bucket_rows b ON b.bucket_id = c.bucket_id";

pub(crate) fn cab_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CabSummary> {
    Ok(CabSummary {
        cab_id: r.get(0)?,
        bucket_id: r.get(1)?,
        subpath: r.get(2)?,
        name: r.get(3)?,
        size: count(r.get::<_, Option<i64>>(4)?.unwrap_or(0)),
        sha256: r.get(5)?,
        created_at: r.get(6)?,
        index_status: r.get(7)?,
        signature: r.get(8)?,
    })
}
