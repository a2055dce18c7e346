//! The web console's detail queries and signature lists on a SQLite store: one cab
//! (members, minidump facts, the crashing thread's stack, its text files), one signature
//! (trend, buckets, cabs, a stack), search over the indexed text of cabs (FTS5), crashing
//! modules, exception codes and signatures, and the signature lists from the summary rows
//! kept by triggers (`daily_signature_rows`, `signature_first_rows`).

use rusqlite::{params, OptionalExtension};

use super::console::{cab_row, window_start, SqliteConsole, CAB_SELECT};
use crate::console::{count, Page, SignatureSummary};
use crate::console_detail::{
    exception_code, fts_query, like_pattern, search_page, CabDetail, DumpFacts, SearchHit,
    SearchResults, SignatureBucket, SignatureDetail, StackFrame, TextExcerpt, STACK_FRAMES,
};
use crate::{MemberRow, MinidumpRow, QueryError};

type Result<T> = std::result::Result<T, QueryError>;

impl SqliteConsole {
    /// The complete cab `cab_id` with its members, dumps, stack and texts, or `None`.
    pub(crate) fn cab_detail(&self, cab_id: i64) -> Result<Option<CabDetail>> {
        let Some(cab) = self.cab(cab_id)? else {
            return Ok(None);
        };
        let conn = &self.conn;
        let index_error: Option<String> = conn
            .prepare_cached("SELECT index_error FROM cab_rows WHERE ino = ?1")?
            .query_row([cab_id], |r| r.get(0))
            .optional()?
            .flatten();
        let members = conn
            .prepare_cached(
                "SELECT name, size, compression, folder, modified, kind, error \
                 FROM cab_member_rows WHERE cab_id = ?1 ORDER BY position",
            )?
            .query_map([cab_id], |r| {
                Ok(MemberRow {
                    name: r.get(0)?,
                    size: count(r.get(1)?),
                    compression: r.get(2)?,
                    folder: r.get(3)?,
                    modified: r.get(4)?,
                    kind: r.get(5)?,
                    error: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let dumps = conn
            .prepare_cached(
                "SELECT d.member, d.dump_time, d.exception_code, d.crash_reason, d.crash_address, \
                        d.crash_thread, d.crash_module, d.crash_module_version, d.crash_offset, \
                        d.os, d.os_version, d.cpu, d.process_name, d.thread_count, \
                        d.module_count, d.error, s.signature \
                 FROM minidump_rows d LEFT JOIN stack_rows s \
                      ON s.cab_id = d.cab_id AND s.member = d.member \
                 WHERE d.cab_id = ?1 ORDER BY d.member",
            )?
            .query_map([cab_id], |r| {
                Ok(DumpFacts {
                    facts: MinidumpRow {
                        member: r.get(0)?,
                        dump_time: r.get(1)?,
                        exception_code: r.get(2)?,
                        crash_reason: r.get(3)?,
                        crash_address: r.get(4)?,
                        crash_thread: r.get(5)?,
                        crash_module: r.get(6)?,
                        crash_module_version: r.get(7)?,
                        crash_offset: r.get(8)?,
                        os: r.get(9)?,
                        os_version: r.get(10)?,
                        cpu: r.get(11)?,
                        process_name: r.get(12)?,
                        thread_count: r.get(13)?,
                        module_count: r.get(14)?,
                        error: r.get(15)?,
                    },
                    signature: r.get(16)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let stack = self.crashing_stack(cab_id)?;
        let texts = conn
            .prepare_cached(
                "SELECT member, substr(text, 1, 4000), length(text) > 4000 OR truncated \
                 FROM cab_text_rows WHERE cab_id = ?1 ORDER BY text_id",
            )?
            .query_map([cab_id], |r| {
                Ok(TextExcerpt {
                    member: r.get(0)?,
                    text: r.get(1)?,
                    more: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(CabDetail {
            cab,
            index_error,
            members,
            dumps,
            stack,
            texts,
        }))
    }

    /// The crashing thread of the first walked dump of cab `cab_id`, innermost first.
    fn crashing_stack(&self, cab_id: i64) -> Result<Vec<StackFrame>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT frame, module, function, file, line, module_offset, trust FROM frame_rows \
             WHERE cab_id = ?1 AND crashed = 1 \
               AND member = (SELECT min(member) FROM stack_rows WHERE cab_id = ?1) \
             ORDER BY frame LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![cab_id, STACK_FRAMES], |r| {
            Ok(StackFrame {
                frame: r.get(0)?,
                module: r.get(1)?,
                function: r.get(2)?,
                file: r.get(3)?,
                line: r.get(4)?,
                module_offset: r.get::<_, Option<i64>>(5)?.map(|o| format!("{o:#x}")),
                trust: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Signature `signature` with its trend over `days` days, or `None` when no walked
    /// dump has it.
    pub(crate) fn signature(&self, signature: &str, days: u32) -> Result<Option<SignatureDetail>> {
        let crashes: i64 = self
            .conn
            .prepare_cached(
                "SELECT coalesce(sum(crashes), 0) FROM daily_signature_rows WHERE signature = ?1",
            )?
            .query_row([signature], |r| r.get(0))?;
        if crashes <= 0 {
            return Ok(None);
        }
        let buckets = self
            .conn
            .prepare_cached(
                "SELECT d.bucket_id, b.subpath, sum(d.crashes) FROM daily_signature_rows d \
                 JOIN bucket_rows b ON b.bucket_id = d.bucket_id WHERE d.signature = ?1 \
                 GROUP BY d.bucket_id HAVING sum(d.crashes) > 0 ORDER BY 3 DESC, 1 LIMIT 100",
            )?
            .query_map([signature], |r| {
                Ok(SignatureBucket {
                    bucket_id: r.get(0)?,
                    subpath: r.get(1)?,
                    crashes: count(r.get(2)?),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let cabs = self
            .conn
            .prepare_cached(&format!(
                "{CAB_SELECT} WHERE c.ino IN (SELECT cab_id FROM stack_rows WHERE signature = ?1) \
                 AND c.state = 'complete' AND c.removal IS NULL \
                 ORDER BY c.created_at DESC, c.ino DESC LIMIT 20"
            ))?
            .query_map([signature], cab_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let stack = match cabs.first() {
            Some(c) => self.crashing_stack(c.cab_id)?,
            None => Vec::new(),
        };
        Ok(Some(SignatureDetail {
            signature: signature.to_owned(),
            crashes: count(crashes),
            trend: self.signature_per_day(signature, days)?,
            buckets,
            cabs,
            stack,
        }))
    }

    /// Searches the cabs' text members (every word of `q`), their dumps' crashing module
    /// and exception code, and the signatures; `limit` and `offset` page the first two.
    pub(crate) fn search(&self, q: &str, limit: u32, offset: u64) -> Result<SearchResults> {
        let q = q.trim();
        let limit = limit.clamp(1, 500);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let empty = || Page {
            total: 0,
            items: Vec::new(),
        };
        if q.is_empty() {
            return Ok(SearchResults {
                texts: empty(),
                dumps: empty(),
                signatures: Vec::new(),
            });
        }
        let texts = match fts_query(q) {
            Some(fts) => self.text_hits(&fts, limit, offset)?,
            None => empty(),
        };
        let dumps = self.dump_hits(q, limit, offset)?;
        let signatures = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT signature FROM daily_signature_rows \
                 WHERE signature LIKE ?1 ESCAPE '\\' AND crashes > 0 ORDER BY 1 LIMIT 20",
            )?
            .query_map([like_pattern(q)], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(SearchResults {
            texts,
            dumps,
            signatures,
        })
    }

    fn text_hits(&self, fts: &str, limit: u32, offset: i64) -> Result<Page<SearchHit>> {
        let total: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM cab_text_search WHERE cab_text_search MATCH ?1")?
            .query_row([fts], |r| r.get(0))?;
        let found: Vec<(i64, String, String)> = self
            .conn
            .prepare_cached(
                "SELECT t.cab_id, t.member, \
                        snippet(cab_text_search, 0, '[', ']', '…', 12) \
                 FROM cab_text_search s JOIN cab_text_rows t ON t.text_id = s.rowid \
                 WHERE cab_text_search MATCH ?1 ORDER BY s.rowid DESC LIMIT ?2 OFFSET ?3",
            )?
            .query_map(params![fts, limit, offset], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        search_page(total, found, "text", |id| self.cab(id))
    }

    fn dump_hits(&self, q: &str, limit: u32, offset: i64) -> Result<Page<SearchHit>> {
        let (found_in, sql_where, value) = match exception_code(q) {
            Some(code) => ("exception", "exception_code = ?1", code),
            None => ("module", "crash_module = ?1 COLLATE NOCASE", q.to_owned()),
        };
        let column = if found_in == "exception" {
            "exception_code"
        } else {
            "crash_module"
        };
        let total: i64 = self
            .conn
            .prepare_cached(&format!(
                "SELECT count(*) FROM minidump_rows WHERE {sql_where}"
            ))?
            .query_row([&value], |r| r.get(0))?;
        let found: Vec<(i64, String, String)> = self
            .conn
            .prepare_cached(&format!(
                "SELECT cab_id, member, {column} || coalesce(' ' || crash_reason, '') \
                 FROM minidump_rows WHERE {sql_where} ORDER BY cab_id DESC LIMIT ?2 OFFSET ?3"
            ))?
            .query_map(params![value, limit, offset], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        search_page(total, found, found_in, |id| self.cab(id))
    }

    /// How many signatures the list of the last `days` days (all time: `None`) has.
    pub(crate) fn signature_count(&self, days: Option<u32>) -> Result<u64> {
        let start = match days {
            Some(d) => Some(window_start(&self.conn, d)?),
            None => None,
        };
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM (SELECT signature FROM daily_signature_rows \
                 WHERE ?1 IS NULL OR day >= ?1 GROUP BY signature HAVING sum(crashes) > 0)",
            )?
            .query_row([start], |r| r.get(0))?;
        Ok(count(n))
    }

    /// One page of the signatures of the last `days` days (all time: `None`), most
    /// crashes first, and how many there are: one pass over the summary rows.
    pub(crate) fn signature_page(
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
    pub(crate) fn signature_per_day(&self, signature: &str, days: u32) -> Result<Vec<u64>> {
        self.series(
            "SELECT day, sum(crashes) FROM daily_signature_rows \
             WHERE signature = ?1 AND day >= ?2 GROUP BY 1",
            &signature,
            days,
        )
    }

    /// Signatures first seen in the last `days` days (their earliest cab), newest first,
    /// with their dumps so far.
    pub(crate) fn new_signatures(&self, days: u32, limit: u32) -> Result<Vec<SignatureSummary>> {
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
