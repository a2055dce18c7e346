//! What the web console shows, as typed read-only queries: reports per day by kind and
//! protocol, top and new buckets and signatures with their daily trend, the bucket list
//! (filtered, sorted, paged), one bucket's page, the store's size and the indexer's
//! backlog. A WAL reader like [`crate::QueryDb`]: never blocks the server's writer.
//!
//! Lists read the tables with their indexes and compute per-row details (cabs stored, the
//! cab limit) only for the rows of the page, so a page costs the same with 100 buckets or
//! 100,000.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::sqlite::connection::open_read_only;
use crate::{OpenError, QueryError, SCHEMA_VERSION};

type Result<T> = std::result::Result<T, QueryError>;

/// Kinds of report, as the console groups them (buckets' `kind`).
pub const KINDS: [&str; 4] = ["application", "kernel", "shutdown", "other"];

/// SQL mapping `bucket_rows.kind` to [`KINDS`].
const KIND_SQL: &str = "CASE b.kind WHEN 'app' THEN 'application' WHEN 'blue' THEN 'kernel' \
                        WHEN 'shutdown' THEN 'shutdown' ELSE 'other' END";

/// Reports received on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DayReports {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Per kind, in the order of [`KINDS`]: CER 1.0 (hits.log lines) and CER2 reports.
    pub application: u64,
    /// Kernel faults (blue screens).
    pub kernel: u64,
    /// Unexpected shutdowns.
    pub shutdown: u64,
    /// Everything else.
    pub other: u64,
    /// Of all of them, how many came over CER2 (HTTP).
    pub cer2: u64,
}

impl DayReports {
    /// All reports of the day.
    pub fn total(&self) -> u64 {
        self.application + self.kernel + self.shutdown + self.other
    }

    fn add(&mut self, kind: &str, n: u64) {
        match kind {
            "application" => self.application += n,
            "kernel" => self.kernel += n,
            "shutdown" => self.shutdown += n,
            _ => self.other += n,
        }
    }
}

/// A bucket as lists show it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BucketSummary {
    /// Its id (`buckets.bucket_id`).
    pub bucket_id: i64,
    /// Its error subpath.
    pub subpath: String,
    /// One of [`KINDS`].
    pub kind: String,
    /// The application and faulting module of an application bucket.
    pub app: Option<String>,
    /// The faulting module.
    pub module: Option<String>,
    /// count.txt's Total Hits.
    pub total_hits: u64,
    /// count.txt's Cabs Gathered.
    pub cabs_gathered: u64,
    /// Hits in the window asked for (the whole history when none was).
    pub hits: u64,
    /// Hits per day over the window (oldest first), for a trend line; empty in lists
    /// that do not ask for it.
    pub trend: Vec<u64>,
    /// First and latest report (UTC).
    pub first_seen: Option<String>,
    /// The latest report (UTC).
    pub last_seen: Option<String>,
}

/// A signature as lists show it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SignatureSummary {
    /// The signature.
    pub signature: String,
    /// Walked dumps with it in the window (all time when none was).
    pub crashes: u64,
    /// Buckets holding it.
    pub buckets: u64,
    /// Dumps per day over the window, oldest first (empty when not asked for).
    pub trend: Vec<u64>,
    /// When its first and latest cab arrived (UTC).
    pub first_seen: Option<String>,
    /// When its latest cab arrived (UTC).
    pub last_seen: Option<String>,
}

/// The store at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct StoreFacts {
    /// Buckets.
    pub buckets: u64,
    /// Cabs on the share.
    pub cabs: u64,
    /// Their bytes.
    pub cab_bytes: u64,
    /// Complete cabs the indexer has not read yet.
    pub index_backlog: u64,
    /// Cabs whose indexing failed.
    pub index_failed: u64,
    /// Bytes the database file holds (pages in use).
    pub used_bytes: u64,
    /// Free pages inside the file, in bytes.
    pub free_bytes: u64,
    /// Free space on the database's filesystem, when it can be read.
    pub disk_free_bytes: Option<u64>,
}

/// A cab as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CabSummary {
    /// Its id (`cabs.cab_id`).
    pub cab_id: i64,
    /// Its bucket.
    pub bucket_id: i64,
    /// The bucket's subpath.
    pub subpath: String,
    /// File name under `cabs\<subpath>\`.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 recorded when the upload completed.
    pub sha256: Option<String>,
    /// When the upload completed (UTC).
    pub created_at: Option<String>,
    /// pending, indexed, partial or failed.
    pub index_status: Option<String>,
    /// The signature of its first walked minidump.
    pub signature: Option<String>,
}

/// A machine that reported to a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MachineCount {
    /// As the client wrote it.
    pub machine: String,
    /// Its hits.log lines in the bucket.
    pub hits: u64,
    /// Users seen on it.
    pub users: u64,
    /// Its latest line (UTC).
    pub last_seen: String,
}

/// A hits.log line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct HitLine {
    /// When cerfs stored it (UTC).
    pub received_at: String,
    /// The client's machine, user and item (NULL for a line that did not parse).
    pub machine: Option<String>,
    /// The user.
    pub user: Option<String>,
    /// The cab copied, or `No CAB`.
    pub item: Option<String>,
    /// The client's local time, `YYYY-MM-DDTHH:MM:SS`.
    pub client_time: Option<String>,
    /// The line as written (without its CRLF).
    pub line: String,
}

/// Which buckets a list shows, in which order, which page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketFilter {
    /// Part of the subpath (application, module, offset ...), case-insensitive.
    pub text: Option<String>,
    /// One of [`KINDS`].
    pub kind: Option<String>,
    /// Only buckets reported on or after this UTC date or time (`last_seen`).
    pub since: Option<String>,
    /// Only buckets first reported before this UTC date or time.
    pub until: Option<String>,
    /// Sort order.
    pub sort: BucketSort,
    /// Rows per page (at least 1, at most 500).
    pub limit: u32,
    /// Rows skipped.
    pub offset: u64,
}

/// Orders of the bucket list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BucketSort {
    /// Most hits first.
    #[default]
    Hits,
    /// Latest report first.
    LastSeen,
    /// Newest bucket first.
    FirstSeen,
    /// By subpath.
    Subpath,
}

/// One page of a list and how many rows the whole list has.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Page<T> {
    /// Rows matching the filter.
    pub total: u64,
    /// This page's rows.
    pub items: Vec<T>,
}

/// A read-only connection for the console.
pub struct ConsoleDb {
    pub(crate) conn: Connection,
    /// The database file's folder (for its filesystem's free space).
    dir: std::path::PathBuf,
}

impl std::fmt::Debug for ConsoleDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleDb").finish_non_exhaustive()
    }
}

pub(crate) fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
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

impl ConsoleDb {
    /// Opens the database at `path` read-only; it must have this version's schema (a
    /// server of this version migrates it when it opens it).
    pub fn open(path: &Path) -> std::result::Result<ConsoleDb, OpenError> {
        Ok(ConsoleDb {
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
    pub fn reports_per_day(&self, days: u32) -> Result<Vec<DayReports>> {
        let dates = window_days(&self.conn, days)?;
        let mut out: Vec<DayReports> = dates
            .iter()
            .map(|d| DayReports {
                day: d.clone(),
                ..DayReports::default()
            })
            .collect();
        let start = dates.first().cloned().unwrap_or_default();
        let at = |day: &str| dates.iter().position(|d| d == day);
        let rows = self.day_kind_counts(
            "SELECT day, {KIND}, protocol, sum(reports) FROM daily_report_rows b \
             WHERE day >= ?1 GROUP BY 1, 2, 3",
            &start,
        )?;
        for (day, kind, protocol, n) in rows {
            if let Some(i) = at(&day) {
                out[i].add(&kind, n);
                if protocol == "cer2" {
                    out[i].cer2 += n;
                }
            }
        }
        Ok(out)
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
    pub fn top_buckets(&self, days: u32, limit: u32) -> Result<Vec<BucketSummary>> {
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
    pub fn server_setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM server_setting_rows WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    /// Buckets first reported in the last `days` days, newest first.
    pub fn new_buckets(&self, days: u32, limit: u32) -> Result<Vec<BucketSummary>> {
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
    pub fn bucket_hits_per_day(&self, id: i64, days: u32) -> Result<Vec<u64>> {
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
        let mut values = vec![0; dates.len()];
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![key, start], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (day, n) = row?;
            if let Some(i) = dates.iter().position(|d| *d == day) {
                values[i] += count(n);
            }
        }
        Ok(values)
    }

    /// The bucket list: filtered, sorted, one page. Only the conditions asked for are in
    /// the SQL, and the page's ids are found first (from the sort column's index alone when
    /// nothing filters), so a deep page skips index entries, not rows.
    pub fn buckets(&self, filter: &BucketFilter) -> Result<Page<BucketSummary>> {
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
            let pattern = format!(
                "%{}%",
                t.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            values.push(Box::new(pattern));
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
    pub fn bucket(&self, id: i64) -> Result<Option<BucketSummary>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT b.bucket_id, b.subpath, {KIND_SQL}, b.app, b.module, b.total_hits, \
                    b.cabs_gathered, b.total_hits, b.first_seen, b.last_seen \
             FROM bucket_rows b WHERE b.bucket_id = ?1"
        ))?;
        Ok(stmt.query_row([id], summary_row).optional()?)
    }

    /// The newest `limit` cabs of bucket `id` on the share, newest first.
    pub fn bucket_cabs(&self, id: i64, limit: u32) -> Result<Vec<CabSummary>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{CAB_SELECT} WHERE c.bucket_id = ?1 AND c.state = 'complete' AND c.removal IS NULL \
             ORDER BY c.created_at DESC, c.ino DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![id, limit], cab_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The complete cab `cab_id` on the share, or `None`.
    pub fn cab(&self, cab_id: i64) -> Result<Option<CabSummary>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{CAB_SELECT} WHERE c.ino = ?1 AND c.state = 'complete' AND c.removal IS NULL"
        ))?;
        Ok(stmt.query_row([cab_id], cab_row).optional()?)
    }

    /// Reports received in all: `(protocol, kind, count)` with protocol `cer1` (hits.log
    /// lines) or `cer2`, and kind one of [`KINDS`]; every pair, zeros included.
    pub fn report_totals(&self) -> Result<Vec<(&'static str, &'static str, u64)>> {
        let mut out: Vec<(&'static str, &'static str, u64)> = ["cer1", "cer2"]
            .iter()
            .flat_map(|p| KINDS.iter().map(move |k| (*p, *k, 0)))
            .collect();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT protocol, {KIND_SQL}, sum(reports) FROM daily_report_rows b GROUP BY 1, 2"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (protocol, kind, n) = row?;
            if let Some(slot) = out
                .iter_mut()
                .find(|(p, k, _)| *p == protocol && *k == kind)
            {
                slot.2 += count(n);
            }
        }
        Ok(out)
    }

    /// The machines behind bucket `id`, most hits first, at most `limit`; and how many
    /// machines and users there are in all.
    pub fn bucket_machines(&self, id: i64, limit: u32) -> Result<(Vec<MachineCount>, u64, u64)> {
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
    pub fn bucket_hits(&self, id: i64, limit: u32) -> Result<Vec<HitLine>> {
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
    pub fn store_facts(&self) -> Result<StoreFacts> {
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
