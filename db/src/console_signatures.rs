//! The console's signature lists: the most frequent of a window (paged, with their daily
//! trend), those first seen in a window, and one signature's dumps per day, all from the
//! summary rows kept by triggers (`daily_signature_rows`, `signature_first_rows`).

use rusqlite::params;

use crate::console::{count, window_start, ConsoleDb, Page, SignatureSummary};
use crate::QueryError;

type Result<T> = std::result::Result<T, QueryError>;

impl ConsoleDb {
    /// The signatures with most walked dumps among the cabs of the last `days` days
    /// (`None`: all time), each with its daily trend when a window is given.
    pub fn top_signatures(&self, days: Option<u32>, limit: u32) -> Result<Vec<SignatureSummary>> {
        self.signature_list(days, limit, 0)
    }

    /// [`ConsoleDb::top_signatures`] from row `offset` on.
    pub fn signature_list(
        &self,
        days: Option<u32>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<SignatureSummary>> {
        Ok(self.signature_page(days, limit, offset)?.items)
    }

    /// One page of the signatures of the last `days` days (all time: `None`), most
    /// crashes first, and how many there are: one pass over the summary rows.
    pub fn signature_page(
        &self,
        days: Option<u32>,
        limit: u32,
        offset: u64,
    ) -> Result<Page<SignatureSummary>> {
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let start = match days {
            Some(d) => Some(window_start(&self.conn, d)?),
            None => None,
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT signature, sum(crashes), count(DISTINCT bucket_id) FILTER (WHERE crashes > 0), \
                    min(first_at) FILTER (WHERE crashes > 0), \
                    max(last_at) FILTER (WHERE crashes > 0), count(*) OVER () \
             FROM daily_signature_rows WHERE ?1 IS NULL OR day >= substr(?1, 1, 10) \
             GROUP BY signature HAVING sum(crashes) > 0 ORDER BY 2 DESC, 1 LIMIT ?2 OFFSET ?3",
        )?;
        let mut total = None;
        let mut items = stmt
            .query_map(params![start, limit, offset], |r| {
                Ok((
                    SignatureSummary {
                        signature: r.get(0)?,
                        crashes: count(r.get(1)?),
                        buckets: count(r.get(2)?),
                        trend: Vec::new(),
                        first_seen: r.get(3)?,
                        last_seen: r.get(4)?,
                    },
                    count(r.get(5)?),
                ))
            })?
            .map(|row| {
                row.map(|(summary, n)| {
                    total = Some(n);
                    summary
                })
            })
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if let Some(days) = days {
            for sig in &mut items {
                sig.trend = self.signature_per_day(&sig.signature, days)?;
            }
        }
        let total = match total {
            Some(n) => n,
            // A page past the end: count them on their own.
            None => self.signature_count(days)?,
        };
        Ok(Page { total, items })
    }

    /// Walked dumps with `signature` per day over the last `days` days, oldest first.
    pub fn signature_per_day(&self, signature: &str, days: u32) -> Result<Vec<u64>> {
        self.series(
            "SELECT day, sum(crashes) FROM daily_signature_rows \
             WHERE signature = ?1 AND day >= ?2 GROUP BY 1",
            &signature,
            days,
        )
    }

    /// Signatures first seen in the last `days` days (their earliest cab), newest first,
    /// with their dumps so far.
    pub fn new_signatures(&self, days: u32, limit: u32) -> Result<Vec<SignatureSummary>> {
        let start = window_start(&self.conn, days)?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT f.signature, f.first_at, \
                    (SELECT coalesce(sum(crashes), 0) FROM daily_signature_rows d \
                      WHERE d.signature = f.signature), \
                    (SELECT count(DISTINCT bucket_id) FROM daily_signature_rows d \
                      WHERE d.signature = f.signature AND d.crashes > 0), \
                    (SELECT max(last_at) FROM daily_signature_rows d \
                      WHERE d.signature = f.signature AND d.crashes > 0) \
             FROM signature_first_rows f WHERE f.first_at >= ?1 \
             ORDER BY f.first_at DESC, f.signature LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![start, limit], |r| {
            Ok(SignatureSummary {
                signature: r.get(0)?,
                first_seen: r.get(1)?,
                crashes: count(r.get(2)?),
                buckets: count(r.get(3)?),
                last_seen: r.get(4)?,
                trend: Vec::new(),
            })
        })?;
        Ok(rows
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .filter(|s| s.crashes > 0)
            .collect())
    }
}
