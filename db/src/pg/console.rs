//! The web console's queries on a PostgreSQL store (see [`crate::ConsoleDb`]): a
//! connection of its own, read-only, in UTC. Like the SQLite store's, they read the totals
//! that triggers keep (schema 7: `daily_hit_rows`, `daily_report_rows` and `cab_total_rows`
//! in shards, summed here), and compute per-row details only for the rows of a page.

use std::cell::RefCell;
use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{NoTls, Row, Statement};

use super::pool::OwnedClient;
use super::rows::iso;
use super::schema::{require, PG_SCHEMA_VERSION};
use super::{connect_error, describe, parse_config, shown_url};
use crate::console::{
    count, per_day, report_totals_from, reports_by_day, BucketFilter, BucketSort, BucketSummary,
    CabSummary, DayReports, HitLine, MachineCount, Page, StoreFacts, KIND_SQL,
};
use crate::{OpenError, QueryError};

type Result<T> = std::result::Result<T, QueryError>;
pub(crate) type Params<'p> = [&'p (dyn ToSql + Sync)];

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
        let start = dates.first().cloned().unwrap_or_default();
        let sql = "SELECT to_char(day, 'YYYY-MM-DD'), {KIND}, protocol, sum(reports)::bigint \
                   FROM daily_report_rows b WHERE day >= $1::text::date GROUP BY 1, 2, 3"
            .replace("{KIND}", KIND_SQL);
        let rows = self
            .rows(&sql, &[&start])?
            .iter()
            .map(|r| Ok((get(r, 0)?, get(r, 1)?, get(r, 2)?, count(get(r, 3)?))))
            .collect::<Result<Vec<_>>>()?;
        Ok(reports_by_day(&dates, rows))
    }

    pub(crate) fn top_buckets(&self, days: u32, limit: u32) -> Result<Vec<BucketSummary>> {
        let start = self.window_start(days)?;
        let sql = select_summary!(
            "FROM (SELECT bucket_id, sum(hits)::bigint AS hits FROM daily_hit_rows \
                   WHERE day >= $1::text::date \
                   GROUP BY bucket_id ORDER BY hits DESC, bucket_id LIMIT $2) w \
             JOIN bucket_rows b ON b.bucket_id = w.bucket_id ORDER BY w.hits DESC, b.bucket_id"
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
                 ORDER BY b.first_seen DESC NULLS LAST, b.bucket_id DESC LIMIT $2"
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
            "SELECT to_char(day, 'YYYY-MM-DD'), hits FROM daily_hit_rows \
             WHERE bucket_id = $1 AND day >= $2::text::date",
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
        let rows = self
            .rows(sql, &[key, &start])?
            .iter()
            .map(|r| Ok((get(r, 0)?, get(r, 1)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(per_day(&dates, rows))
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
        let sql = "SELECT protocol, {KIND}, sum(reports)::bigint FROM daily_report_rows b \
                   GROUP BY 1, 2"
            .replace("{KIND}", KIND_SQL);
        let rows = self
            .rows(&sql, &[])?
            .iter()
            .map(|r| Ok((get(r, 0)?, get(r, 1)?, get(r, 2)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(report_totals_from(rows))
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
            "SELECT (SELECT count(*) FROM bucket_rows), sum(cabs)::bigint, sum(bytes)::bigint, \
                    sum(backlog)::bigint, sum(failed)::bigint, \
                    pg_database_size(current_database()) \
             FROM cab_total_rows",
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
