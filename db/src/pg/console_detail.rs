//! The web console's detail queries and signature lists on a PostgreSQL store: one cab,
//! one signature, search (PostgreSQL's full-text search over `cab_text_rows.search`, every
//! word required), and the signature lists from the summary rows kept by triggers
//! (`daily_signature_rows`, `signature_first_rows`), as on SQLite.

use super::console::{cab_row, get, PgConsole, CAB_SELECT};
use super::rows::iso;
use crate::console::{count, Page, SignatureSummary};
use crate::console_detail::{
    exception_code, like_pattern, search_page, CabDetail, DumpFacts, SearchHit, SearchResults,
    SignatureBucket, SignatureDetail, StackFrame, STACK_FRAMES,
};
use crate::{MemberRow, MinidumpRow, QueryError};

type Result<T> = std::result::Result<T, QueryError>;

fn small(v: Option<i64>) -> Option<u32> {
    v.and_then(|v| u32::try_from(v).ok())
}

impl PgConsole {
    pub(crate) fn cab_detail(&self, cab_id: i64) -> Result<Option<CabDetail>> {
        let Some(cab) = self.cab(cab_id)? else {
            return Ok(None);
        };
        let index_error: Option<String> = self
            .rows(
                "SELECT index_error FROM cab_rows WHERE ino = $1",
                &[&cab_id],
            )?
            .first()
            .map(|r| get(r, 0))
            .transpose()?
            .flatten();
        let members = self
            .rows(
                "SELECT name, size, compression, folder, modified, kind, error \
                 FROM cab_member_rows WHERE cab_id = $1 ORDER BY position",
                &[&cab_id],
            )?
            .iter()
            .map(|r| {
                Ok(MemberRow {
                    name: get(r, 0)?,
                    size: count(get(r, 1)?),
                    compression: get(r, 2)?,
                    folder: small(get(r, 3)?).unwrap_or(0),
                    modified: get(r, 4)?,
                    kind: get(r, 5)?,
                    error: get(r, 6)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let dumps = self
            .rows(
                "SELECT d.member, d.dump_time, d.exception_code, d.crash_reason, d.crash_address, \
                        d.crash_thread, d.crash_module, d.crash_module_version, d.crash_offset, \
                        d.os, d.os_version, d.cpu, d.process_name, d.thread_count, \
                        d.module_count, d.error, s.signature \
                 FROM minidump_rows d LEFT JOIN stack_rows s \
                      ON s.cab_id = d.cab_id AND s.member = d.member \
                 WHERE d.cab_id = $1 ORDER BY d.member",
                &[&cab_id],
            )?
            .iter()
            .map(|r| {
                Ok(DumpFacts {
                    facts: MinidumpRow {
                        member: get(r, 0)?,
                        dump_time: get(r, 1)?,
                        exception_code: get(r, 2)?,
                        crash_reason: get(r, 3)?,
                        crash_address: get(r, 4)?,
                        crash_thread: small(get(r, 5)?),
                        crash_module: get(r, 6)?,
                        crash_module_version: get(r, 7)?,
                        crash_offset: get(r, 8)?,
                        os: get(r, 9)?,
                        os_version: get(r, 10)?,
                        cpu: get(r, 11)?,
                        process_name: get(r, 12)?,
                        thread_count: small(get(r, 13)?),
                        module_count: small(get(r, 14)?),
                        error: get(r, 15)?,
                    },
                    signature: get(r, 16)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let stack = self.crashing_stack(cab_id)?;
        let texts = self
            .rows(
                "SELECT member, left(text, 4000), length(text) > 4000 OR truncated = 1 \
                 FROM cab_text_rows WHERE cab_id = $1 ORDER BY text_id",
                &[&cab_id],
            )?
            .iter()
            .map(|r| {
                Ok(crate::console_detail::TextExcerpt {
                    member: get(r, 0)?,
                    text: get(r, 1)?,
                    more: get(r, 2)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
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
        self.rows(
            "SELECT frame, module, function, file, line, module_offset, trust FROM frame_rows \
             WHERE cab_id = $1 AND crashed = 1 \
               AND member = (SELECT min(member) FROM stack_rows WHERE cab_id = $1) \
             ORDER BY frame LIMIT $2",
            &[&cab_id, &i64::from(STACK_FRAMES)],
        )?
        .iter()
        .map(|r| {
            Ok(StackFrame {
                frame: small(get(r, 0)?).unwrap_or(0),
                module: get(r, 1)?,
                function: get(r, 2)?,
                file: get(r, 3)?,
                line: small(get(r, 4)?),
                module_offset: get::<Option<i64>>(r, 5)?.map(|o| format!("{o:#x}")),
                trust: get(r, 6)?,
            })
        })
        .collect()
    }

    pub(crate) fn signature(&self, signature: &str, days: u32) -> Result<Option<SignatureDetail>> {
        let crashes: i64 = get(
            &self.row(
                "SELECT coalesce(sum(crashes), 0)::bigint FROM daily_signature_rows \
                 WHERE signature = $1",
                &[&signature],
            )?,
            0,
        )?;
        if crashes <= 0 {
            return Ok(None);
        }
        let buckets = self
            .rows(
                "SELECT d.bucket_id, b.subpath, sum(d.crashes)::bigint FROM daily_signature_rows d \
                 JOIN bucket_rows b ON b.bucket_id = d.bucket_id WHERE d.signature = $1 \
                 GROUP BY 1, 2 HAVING sum(d.crashes) > 0 ORDER BY 3 DESC, 1 LIMIT 100",
                &[&signature],
            )?
            .iter()
            .map(|r| {
                Ok(SignatureBucket {
                    bucket_id: get(r, 0)?,
                    subpath: get(r, 1)?,
                    crashes: count(get(r, 2)?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let cabs = self
            .rows(
                &format!(
                    "{CAB_SELECT} WHERE c.ino IN (SELECT cab_id FROM stack_rows \
                     WHERE signature = $1) AND c.state = 'complete' AND c.removal IS NULL \
                     ORDER BY c.created_at DESC, c.ino DESC LIMIT 20"
                ),
                &[&signature],
            )?
            .iter()
            .map(cab_row)
            .collect::<Result<Vec<_>>>()?;
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

    pub(crate) fn search(&self, q: &str, limit: u32, offset: u64) -> Result<SearchResults> {
        let q = q.trim();
        let limit = i64::from(limit.clamp(1, 500));
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
        // Every word required, none of them read as a query operator (plainto_tsquery).
        let total: i64 = get(
            &self.row(
                "SELECT count(*) FROM cab_text_rows \
                 WHERE search @@ plainto_tsquery('simple', $1)",
                &[&q],
            )?,
            0,
        )?;
        let found = self
            .rows(
                "SELECT t.cab_id, t.member, ts_headline('simple', t.text, w, \
                        'StartSel=[, StopSel=], MaxWords=12, MinWords=6') \
                 FROM cab_text_rows t CROSS JOIN plainto_tsquery('simple', $1) AS w \
                 WHERE t.search @@ w ORDER BY t.text_id DESC LIMIT $2 OFFSET $3",
                &[&q, &limit, &offset],
            )?
            .iter()
            .map(|r| Ok((get(r, 0)?, get(r, 1)?, get(r, 2)?)))
            .collect::<Result<Vec<_>>>()?;
        let texts = search_page(total, found, "text", |id| self.cab(id))?;
        let dumps = self.dump_hits(q, limit, offset)?;
        let signatures = self
            .rows(
                "SELECT DISTINCT signature FROM daily_signature_rows \
                 WHERE signature ILIKE $1 ESCAPE '\\' AND crashes > 0 ORDER BY 1 LIMIT 20",
                &[&like_pattern(q)],
            )?
            .iter()
            .map(|r| get(r, 0))
            .collect::<Result<Vec<_>>>()?;
        Ok(SearchResults {
            texts,
            dumps,
            signatures,
        })
    }

    fn dump_hits(&self, q: &str, limit: i64, offset: i64) -> Result<Page<SearchHit>> {
        let (found_in, column, sql_where, value) = match exception_code(q) {
            Some(code) => ("exception", "exception_code", "exception_code = $1", code),
            None => (
                "module",
                "crash_module",
                "lower(crash_module) = lower($1)",
                q.to_owned(),
            ),
        };
        let total: i64 = get(
            &self.row(
                &format!("SELECT count(*) FROM minidump_rows WHERE {sql_where}"),
                &[&value],
            )?,
            0,
        )?;
        let found = self
            .rows(
                &format!(
                    "SELECT cab_id, member, {column} || coalesce(' ' || crash_reason, '') \
                     FROM minidump_rows WHERE {sql_where} ORDER BY cab_id DESC \
                     LIMIT $2 OFFSET $3"
                ),
                &[&value, &limit, &offset],
            )?
            .iter()
            .map(|r| Ok((get(r, 0)?, get(r, 1)?, get(r, 2)?)))
            .collect::<Result<Vec<_>>>()?;
        search_page(total, found, found_in, |id| self.cab(id))
    }

    pub(crate) fn signature_count(&self, days: Option<u32>) -> Result<u64> {
        let start = days.map(|d| self.window_start(d)).transpose()?;
        let n: i64 = get(
            &self.row(
                "SELECT count(*) FROM (SELECT signature FROM daily_signature_rows \
                 WHERE $1::text IS NULL OR day >= $1::text::date \
                 GROUP BY signature HAVING sum(crashes) > 0) x",
                &[&start],
            )?,
            0,
        )?;
        Ok(count(n))
    }

    pub(crate) fn signature_page(
        &self,
        days: Option<u32>,
        limit: u32,
        offset: u64,
    ) -> Result<Page<SignatureSummary>> {
        let start = days.map(|d| self.window_start(d)).transpose()?;
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let mut total = None;
        let mut items = self
            .rows(
                concat!(
                    "SELECT signature, sum(crashes)::bigint, \
                            count(DISTINCT bucket_id) FILTER (WHERE crashes > 0), ",
                    iso!("min(first_at) FILTER (WHERE crashes > 0)"),
                    ", ",
                    iso!("max(last_at) FILTER (WHERE crashes > 0)"),
                    ", count(*) OVER () FROM daily_signature_rows \
                     WHERE $1::text IS NULL OR day >= $1::text::date \
                     GROUP BY signature HAVING sum(crashes) > 0 ORDER BY 2 DESC, 1 \
                     LIMIT $2 OFFSET $3"
                ),
                &[&start, &i64::from(limit), &offset],
            )?
            .iter()
            .map(|r| {
                total = Some(count(get(r, 5)?));
                Ok(SignatureSummary {
                    signature: get(r, 0)?,
                    crashes: count(get(r, 1)?),
                    buckets: count(get(r, 2)?),
                    trend: Vec::new(),
                    first_seen: get(r, 3)?,
                    last_seen: get(r, 4)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
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

    pub(crate) fn signature_per_day(&self, signature: &str, days: u32) -> Result<Vec<u64>> {
        self.series(
            "SELECT to_char(day, 'YYYY-MM-DD'), sum(crashes)::bigint FROM daily_signature_rows \
             WHERE signature = $1 AND day >= $2::text::date GROUP BY 1",
            &signature,
            days,
        )
    }

    pub(crate) fn new_signatures(&self, days: u32, limit: u32) -> Result<Vec<SignatureSummary>> {
        let start = self.window_start(days)?;
        self.rows(
            concat!(
                "SELECT f.signature, ",
                iso!("f.first_at"),
                ", (SELECT coalesce(sum(crashes), 0)::bigint FROM daily_signature_rows d \
                    WHERE d.signature = f.signature), \
                   (SELECT count(DISTINCT bucket_id) FROM daily_signature_rows d \
                    WHERE d.signature = f.signature AND d.crashes > 0), \
                   (SELECT ",
                iso!("max(last_at)"),
                " FROM daily_signature_rows d \
                    WHERE d.signature = f.signature AND d.crashes > 0) \
                 FROM signature_first_rows f WHERE f.first_at >= $1::text::timestamptz \
                 ORDER BY f.first_at DESC, f.signature LIMIT $2"
            ),
            &[&start, &i64::from(limit)],
        )?
        .iter()
        .map(|r| {
            Ok(SignatureSummary {
                signature: get(r, 0)?,
                first_seen: get(r, 1)?,
                crashes: count(get(r, 2)?),
                buckets: count(get(r, 3)?),
                last_seen: get(r, 4)?,
                trend: Vec::new(),
            })
        })
        // A signature whose cabs are all deleted stays in the history, not in the list.
        .filter(|s| !matches!(s, Ok(s) if s.crashes == 0))
        .collect()
    }
}
