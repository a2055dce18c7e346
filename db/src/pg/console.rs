//! The web console's queries on a PostgreSQL store (see [`crate::ConsoleDb`]): a
//! connection of its own, read-only, in UTC. Where the SQLite store reads running totals
//! that its triggers keep, this one counts from the rows through the indexes of schema 7
//! (`log_lines (received_at)`, the bucket list's orders): one totals row per day would
//! serialize every head's reports on its lock. Reports per kind come from each log's
//! line count (`logs.line_count`), one row per bucket.

use std::cell::RefCell;
use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{NoTls, Row, Statement};

use super::pool::OwnedClient;
use super::rows::iso;
use super::schema::{require, PG_SCHEMA_VERSION};
use super::{connect_error, describe, parse_config, shown_url};
use crate::console::{
    count, BucketFilter, BucketSort, BucketSummary, CabSummary, DayReports, HitLine, MachineCount,
    Page, StoreFacts, KINDS, KIND_SQL,
};
use crate::{OpenError, QueryError};

type Result<T> = std::result::Result<T, QueryError>;
pub(crate) type Params<'p> = [&'p (dyn ToSql + Sync)];

/// The UTC day (`YYYY-MM-DD`) of a timestamptz column.
macro_rules! day {
    ($col:literal) => {
        concat!("to_char(", $col, " AT TIME ZONE 'UTC', 'YYYY-MM-DD')")
    };
}
pub(crate) use day;

/// A bucket as lists show it, read by [`summary_row`], followed by `$tail`.
macro_rules! select_summary {
    ($tail:literal) => {
        concat!(
            "SELECT b.bucket_id, b.subpath, {KIND}, b.app, b.module, b.total_hits, ",
            "b.cabs_gathered, {HITS}, ",
            iso!("b.first_seen"),
            ", ",
            iso!("b.last_seen"),
            " ",
            $tail
        )
    };
}

/// A cab as lists show it, read by [`cab_row`].
pub(crate) const CAB_SELECT: &str = concat!(
    "SELECT c.ino, c.bucket_id, b.subpath, c.name, c.size, c.sha256, ",
    iso!("c.created_at"),
    ", coalesce(c.index_status, 'pending'), ",
    "(SELECT s.signature FROM stack_rows s WHERE s.cab_id = c.ino ORDER BY s.member LIMIT 1) ",
    "FROM cab_rows c JOIN bucket_rows b ON b.bucket_id = c.bucket_id"
);

/// A read-only connection for the console, with its prepared statements.
pub(crate) struct PgConsole {
    conn: RefCell<(OwnedClient, HashMap<String, Statement>)>,
}

impl PgConsole {
    pub(crate) fn open(url: &str) -> std::result::Result<PgConsole, OpenError> {
        let config = parse_config(url)?;
        let shown = shown_url(url);
        let mut client = config
            .connect(NoTls)
            .map_err(|e| connect_error(&shown, &e))?;
        require(&mut client, &shown, PG_SCHEMA_VERSION)?;
        client
            .batch_execute(
                "SET default_transaction_read_only = on; SET TimeZone = 'UTC'; \
                 SET application_name = 'cerfs web'",
            )
            .map_err(|e| OpenError::Unusable(format!("PostgreSQL at {shown}: {}", describe(&e))))?;
        Ok(PgConsole {
            conn: RefCell::new((client.into(), HashMap::new())),
        })
    }

    /// The rows of `sql` (prepared once per connection).
    pub(crate) fn rows(&self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>> {
        let mut conn = self.conn.borrow_mut();
        let (client, stmts) = &mut *conn;
        let stmt = match stmts.get(sql) {
            Some(stmt) => stmt.clone(),
            None => {
                let stmt = client.prepare(sql).map_err(pg)?;
                stmts.insert(sql.to_owned(), stmt.clone());
                stmt
            }
        };
        client.query(&stmt, params).map_err(pg)
    }

    /// The one row of `sql`.
    pub(crate) fn row(&self, sql: &str, params: &Params<'_>) -> Result<Row> {
        self.rows(sql, params)?
            .into_iter()
            .next()
            .ok_or_else(|| QueryError::Postgres(format!("no row from {sql}")))
    }

    /// The `days` dates of the window ending today (UTC), oldest first.
    fn window_days(&self, days: u32) -> Result<Vec<String>> {
        let days = i32::try_from(days.max(1)).unwrap_or(i32::MAX);
        self.rows(
            "SELECT to_char(d, 'YYYY-MM-DD') FROM generate_series(current_date - ($1::int - 1), \
             current_date, interval '1 day') AS d ORDER BY d",
            &[&days],
        )?
        .iter()
        .map(|r| r.try_get(0).map_err(pg))
        .collect()
    }

    /// The first day of a window of `days` days ending today (UTC).
    pub(crate) fn window_start(&self, days: u32) -> Result<String> {
        Ok(self.window_days(days)?.swap_remove(0))
    }

    pub(crate) fn reports_per_day(&self, days: u32) -> Result<Vec<DayReports>> {
        let dates = self.window_days(days)?;
        let mut out: Vec<DayReports> = dates
            .iter()
            .map(|d| DayReports {
                day: d.clone(),
                ..DayReports::default()
            })
            .collect();
        let start = dates.first().cloned().unwrap_or_default();
        let sql = concat!(
            "SELECT day, kind, protocol, sum(n)::bigint FROM ( \
               SELECT ",
            day!("l.received_at"),
            " AS day, l.log_id, 'cer1' AS protocol, count(*) AS n FROM log_lines l \
               WHERE l.log_id > 0 AND l.received_at >= $1::text::timestamptz GROUP BY 1, 2 \
               UNION ALL \
               SELECT ",
            day!("r.received_at"),
            ", r.bucket_id, 'cer2', count(*) FROM cer2_report_rows r \
               WHERE r.received_at >= $1::text::timestamptz GROUP BY 1, 2) x \
             JOIN (SELECT bucket_id, {KIND} AS kind FROM bucket_rows b) k \
               ON k.bucket_id = x.log_id GROUP BY 1, 2, 3"
        )
        .replace("{KIND}", KIND_SQL);
        for row in self.rows(&sql, &[&start])? {
            let (day, kind, protocol, n): (String, String, String, i64) =
                (get(&row, 0)?, get(&row, 1)?, get(&row, 2)?, get(&row, 3)?);
            if let Some(i) = dates.iter().position(|d| *d == day) {
                out[i].add(&kind, count(n));
                if protocol == "cer2" {
                    out[i].cer2 += count(n);
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn top_buckets(&self, days: u32, limit: u32) -> Result<Vec<BucketSummary>> {
        let start = self.window_start(days)?;
        let sql = select_summary!(
            "FROM (SELECT log_id, count(*) AS hits FROM log_lines \
                   WHERE log_id > 0 AND received_at >= $1::text::timestamptz \
                   GROUP BY log_id ORDER BY hits DESC, log_id LIMIT $2) w \
             JOIN bucket_rows b ON b.bucket_id = w.log_id ORDER BY w.hits DESC, b.bucket_id"
        );
        let sql = summary_sql(sql, "w.hits");
        let mut found = self
            .rows(&sql, &[&start, &i64::from(limit)])?
            .iter()
            .map(summary_row)
            .collect::<Result<Vec<_>>>()?;
        for bucket in &mut found {
            bucket.trend = self.bucket_hits_per_day(bucket.bucket_id, days)?;
        }
        Ok(found)
    }

    pub(crate) fn server_setting(&self, key: &str) -> Result<Option<String>> {
        self.rows(
            "SELECT value FROM server_setting_rows WHERE key = $1",
            &[&key],
        )?
        .first()
        .map(|r| get(r, 0))
        .transpose()
    }

    pub(crate) fn new_buckets(&self, days: u32, limit: u32) -> Result<Vec<BucketSummary>> {
        let start = self.window_start(days)?;
        let sql = summary_sql(
            select_summary!(
                "FROM bucket_rows b WHERE b.first_seen >= $1::text::timestamptz \
                 ORDER BY b.first_seen DESC, b.bucket_id DESC LIMIT $2"
            ),
            "b.total_hits",
        );
        self.rows(&sql, &[&start, &i64::from(limit)])?
            .iter()
            .map(summary_row)
            .collect()
    }

    pub(crate) fn bucket_hits_per_day(&self, id: i64, days: u32) -> Result<Vec<u64>> {
        self.series(
            concat!(
                "SELECT ",
                day!("received_at"),
                ", count(*) FROM log_lines \
                 WHERE log_id = $1 AND received_at >= $2::text::timestamptz GROUP BY 1"
            ),
            &id,
            days,
        )
    }

    /// A value per day of the last `days` days (oldest first) from `sql`, which takes the
    /// key and the window's first day and returns (day, count) rows.
    pub(crate) fn series(
        &self,
        sql: &str,
        key: &(dyn ToSql + Sync),
        days: u32,
    ) -> Result<Vec<u64>> {
        let dates = self.window_days(days)?;
        let start = dates.first().cloned().unwrap_or_default();
        let mut values = vec![0; dates.len()];
        for row in self.rows(sql, &[key, &start])? {
            let (day, n): (String, i64) = (get(&row, 0)?, get(&row, 1)?);
            if let Some(i) = dates.iter().position(|d| *d == day) {
                values[i] += count(n);
            }
        }
        Ok(values)
    }

    pub(crate) fn buckets(&self, filter: &BucketFilter) -> Result<Page<BucketSummary>> {
        // As on SQLite: ties newest id first, and a bucket never reported sorts last.
        let order = match filter.sort {
            BucketSort::Hits => "b.total_hits DESC, b.bucket_id DESC",
            BucketSort::LastSeen => "b.last_seen DESC NULLS LAST, b.bucket_id DESC",
            BucketSort::FirstSeen => "b.first_seen DESC NULLS LAST, b.bucket_id DESC",
            BucketSort::Subpath => "b.subpath, b.bucket_id",
        };
        let mut conditions: Vec<String> = Vec::new();
        let mut values: Vec<String> = Vec::new();
        if let Some(t) = &filter.text {
            values.push(crate::console_detail::like_pattern(t));
            conditions.push(format!("b.subpath ILIKE ${} ESCAPE '\\'", values.len()));
        }
        if let Some(kind) = &filter.kind {
            values.push(kind.clone());
            conditions.push(format!("{KIND_SQL} = ${}", values.len()));
        }
        if let Some(since) = &filter.since {
            values.push(since.clone());
            conditions.push(format!(
                "b.last_seen >= ${}::text::timestamptz",
                values.len()
            ));
        }
        if let Some(until) = &filter.until {
            values.push(until.clone());
            conditions.push(format!(
                "b.first_seen < ${}::text::timestamptz",
                values.len()
            ));
        }
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let mut args: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let total: i64 = get(
            &self.row(
                &format!("SELECT count(*) FROM bucket_rows b {filter_sql}"),
                &args,
            )?,
            0,
        )?;
        let limit = i64::from(filter.limit.clamp(1, 500));
        let offset = i64::try_from(filter.offset).unwrap_or(i64::MAX);
        let n = args.len();
        let sql = summary_sql(
            select_summary!(
                "FROM bucket_rows b WHERE b.bucket_id IN \
                 (SELECT b.bucket_id FROM bucket_rows b {FILTER} ORDER BY {ORDER} \
                  LIMIT {LIMIT} OFFSET {OFFSET}) ORDER BY {ORDER}"
            ),
            "b.total_hits",
        )
        .replace("{FILTER}", &filter_sql)
        .replace("{ORDER}", order)
        .replace("{LIMIT}", &format!("${}", n + 1))
        .replace("{OFFSET}", &format!("${}", n + 2));
        args.push(&limit);
        args.push(&offset);
        let items = self
            .rows(&sql, &args)?
            .iter()
            .map(summary_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page {
            total: count(total),
            items,
        })
    }

    pub(crate) fn bucket(&self, id: i64) -> Result<Option<BucketSummary>> {
        let sql = summary_sql(
            select_summary!("FROM bucket_rows b WHERE b.bucket_id = $1"),
            "b.total_hits",
        );
        self.rows(&sql, &[&id])?
            .first()
            .map(summary_row)
            .transpose()
    }

    pub(crate) fn bucket_cabs(&self, id: i64, limit: u32) -> Result<Vec<CabSummary>> {
        self.rows(
            &format!(
                "{CAB_SELECT} WHERE c.bucket_id = $1 AND c.state = 'complete' \
                 AND c.removal IS NULL ORDER BY c.created_at DESC, c.ino DESC LIMIT $2"
            ),
            &[&id, &i64::from(limit)],
        )?
        .iter()
        .map(cab_row)
        .collect()
    }

    pub(crate) fn cab(&self, cab_id: i64) -> Result<Option<CabSummary>> {
        self.rows(
            &format!(
                "{CAB_SELECT} WHERE c.ino = $1 AND c.state = 'complete' AND c.removal IS NULL"
            ),
            &[&cab_id],
        )?
        .first()
        .map(cab_row)
        .transpose()
    }

    pub(crate) fn report_totals(&self) -> Result<Vec<(&'static str, &'static str, u64)>> {
        let mut out: Vec<(&'static str, &'static str, u64)> = ["cer1", "cer2"]
            .iter()
            .flat_map(|p| KINDS.iter().map(move |k| (*p, *k, 0)))
            .collect();
        let sql = "SELECT 'cer1', {KIND}, sum(l.line_count)::bigint FROM logs l \
                   JOIN bucket_rows b ON b.bucket_id = l.log_id GROUP BY 2 \
                   UNION ALL \
                   SELECT 'cer2', {KIND}, count(*) FROM cer2_report_rows r \
                   JOIN bucket_rows b ON b.bucket_id = r.bucket_id GROUP BY 2"
            .replace("{KIND}", KIND_SQL);
        for row in self.rows(&sql, &[])? {
            let (protocol, kind, n): (String, String, i64) =
                (get(&row, 0)?, get(&row, 1)?, get(&row, 2)?);
            if let Some(slot) = out
                .iter_mut()
                .find(|(p, k, _)| *p == protocol && *k == kind)
            {
                slot.2 += count(n);
            }
        }
        Ok(out)
    }

    pub(crate) fn bucket_machines(
        &self,
        id: i64,
        limit: u32,
    ) -> Result<(Vec<MachineCount>, u64, u64)> {
        let machines = self
            .rows(
                concat!(
                    "SELECT machine, count(*), count(DISTINCT \"user\"), ",
                    iso!("max(received_at)"),
                    " FROM log_lines WHERE log_id = $1 AND machine IS NOT NULL \
                     GROUP BY machine ORDER BY 2 DESC, machine LIMIT $2"
                ),
                &[&id, &i64::from(limit)],
            )?
            .iter()
            .map(|r| {
                Ok(MachineCount {
                    machine: get(r, 0)?,
                    hits: count(get(r, 1)?),
                    users: count(get(r, 2)?),
                    last_seen: get(r, 3)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let all = self.row(
            "SELECT count(DISTINCT machine), count(DISTINCT \"user\") FROM log_lines \
             WHERE log_id = $1",
            &[&id],
        )?;
        Ok((machines, count(get(&all, 0)?), count(get(&all, 1)?)))
    }

    pub(crate) fn bucket_hits(&self, id: i64, limit: u32) -> Result<Vec<HitLine>> {
        self.rows(
            concat!(
                "SELECT ",
                iso!("received_at"),
                ", machine, \"user\", item, client_time, rtrim(cerfs_text(bytes), E'\\r\\n') \
                 FROM log_lines WHERE log_id = $1 ORDER BY start_offset DESC LIMIT $2"
            ),
            &[&id, &i64::from(limit)],
        )?
        .iter()
        .map(|r| {
            Ok(HitLine {
                received_at: get(r, 0)?,
                machine: get(r, 1)?,
                user: get(r, 2)?,
                item: get(r, 3)?,
                client_time: get(r, 4)?,
                line: get(r, 5)?,
            })
        })
        .collect()
    }

    /// Counts, and the database's size (PostgreSQL's own: no free pages or disk of its
    /// files to read from a head).
    pub(crate) fn store_facts(&self) -> Result<StoreFacts> {
        let r = self.row(
            "SELECT (SELECT count(*) FROM bucket_rows), count(*), \
                    coalesce(sum(size), 0)::bigint, \
                    count(*) FILTER (WHERE index_status IS NULL), \
                    count(*) FILTER (WHERE index_status = 'failed'), \
                    pg_database_size(current_database()) \
             FROM cab_rows WHERE state = 'complete' AND removal IS NULL",
            &[],
        )?;
        Ok(StoreFacts {
            buckets: count(get(&r, 0)?),
            cabs: count(get(&r, 1)?),
            cab_bytes: count(get(&r, 2)?),
            index_backlog: count(get(&r, 3)?),
            index_failed: count(get(&r, 4)?),
            used_bytes: count(get(&r, 5)?),
            free_bytes: 0,
            disk_free_bytes: None,
        })
    }
}

/// PostgreSQL's error, in one line.
pub(crate) fn pg(e: postgres::Error) -> QueryError {
    QueryError::Postgres(describe(&e))
}

/// Column `idx` of `row`.
pub(crate) fn get<'a, T: postgres::types::FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T> {
    row.try_get(idx).map_err(pg)
}

/// `sql` of [`select_summary`] with the kind's expression and `hits` (the window's hits,
/// or the total).
fn summary_sql(sql: &str, hits: &str) -> String {
    sql.replace("{KIND}", KIND_SQL).replace("{HITS}", hits)
}

fn summary_row(r: &Row) -> Result<BucketSummary> {
    Ok(BucketSummary {
        bucket_id: get(r, 0)?,
        subpath: get(r, 1)?,
        kind: get(r, 2)?,
        app: get(r, 3)?,
        module: get(r, 4)?,
        total_hits: count(get(r, 5)?),
        cabs_gathered: count(get(r, 6)?),
        hits: count(get(r, 7)?),
        trend: Vec::new(),
        first_seen: get(r, 8)?,
        last_seen: get(r, 9)?,
    })
}

pub(crate) fn cab_row(r: &Row) -> Result<CabSummary> {
    Ok(CabSummary {
        cab_id: get(r, 0)?,
        bucket_id: get(r, 1)?,
        subpath: get(r, 2)?,
        name: get(r, 3)?,
        size: count(get::<Option<i64>>(r, 4)?.unwrap_or(0)),
        sha256: get(r, 5)?,
        created_at: get(r, 6)?,
        index_status: get(r, 7)?,
        signature: get(r, 8)?,
    })
}
