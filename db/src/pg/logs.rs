//! The log family of the PostgreSQL store: crash.log and every hits.log, one row per line,
//! read back byte-exact by offset. An append locks its log's row: appends from every head
//! follow each other, each line at the offset where the one before it ended.

use super::heads::notify_change;
use super::pool::Tx;
use super::rows::{get_u64, require_bucket, size_param};
use super::PgStore;
use crate::store::{LogId, LogLine, LogStore, Result};
use crate::store_rules::copy_overlap;
use crate::StoreError;

/// The largest length a log may have.
const MAX_LOG_LEN: u64 = i64::MAX as u64;

impl LogStore for PgStore {
    fn log_len(&self, log: LogId) -> Result<u64> {
        self.read(|tx| {
            require_log(tx, log)?;
            log_length(tx, log)
        })
    }

    fn read_log(&self, log: LogId, offset: u64, len: u32) -> Result<Vec<u8>> {
        self.read(|tx| {
            require_log(tx, log)?;
            let length = log_length(tx, log)?;
            if offset >= length || len == 0 {
                return Ok(Vec::new());
            }
            let end = length.min(offset + u64::from(len));
            let mut out = vec![0u8; (end - offset) as usize];
            // The line holding `offset`, then every line starting before `end`.
            let rows = tx.query(
                "SELECT start_offset, bytes FROM log_lines \
                 WHERE log_id = $1 AND start_offset < $3 AND start_offset >= coalesce(( \
                     SELECT start_offset FROM log_lines WHERE log_id = $1 AND start_offset <= $2 \
                     ORDER BY start_offset DESC LIMIT 1), 0) \
                 ORDER BY start_offset",
                &[
                    &log_key(log),
                    &size_param(offset, "offset")?,
                    &size_param(end, "offset")?,
                ],
            )?;
            for row in rows {
                let start = get_u64(&row, 0)?;
                let bytes: &[u8] = row.try_get(1)?;
                copy_overlap(&mut out, offset, bytes, start);
            }
            Ok(out)
        })
    }

    fn append_log(&self, log: LogId, lines: &[LogLine]) -> Result<u64> {
        self.write(|tx| {
            require_log(tx, log)?;
            let key = log_key(log);
            tx.execute(
                "INSERT INTO logs (log_id, bucket_id) VALUES ($1::bigint, nullif($1::bigint, 0)) \
                 ON CONFLICT (log_id) DO NOTHING",
                &[&key],
            )?;
            let row = tx.query_one(
                "SELECT length, line_count FROM logs WHERE log_id = $1 FOR UPDATE",
                &[&key],
            )?;
            let (mut length, mut count) = (get_u64(&row, 0)?, get_u64(&row, 1)?);
            for line in lines {
                // An empty line adds nothing to the rendered log: there is no row for it.
                if line.bytes.is_empty() {
                    continue;
                }
                let f = line.fields.as_ref();
                tx.execute(
                    "INSERT INTO log_lines (log_id, start_offset, bytes, time_text, date_text, \
                     machine, \"user\", item, client_time, flagged) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    &[
                        &key,
                        &size_param(length, "log length")?,
                        &line.bytes,
                        &f.map(|f| &f.time),
                        &f.map(|f| &f.date),
                        &f.map(|f| &f.machine),
                        &f.map(|f| &f.user),
                        &f.map(|f| &f.item),
                        &f.map(|f| &f.client_time),
                        &f.is_none(),
                    ],
                )?;
                length = length
                    .checked_add(line.bytes.len() as u64)
                    .filter(|l| *l <= MAX_LOG_LEN)
                    .ok_or_else(|| StoreError::Invalid("log too long".into()))?;
                count += 1;
            }
            tx.execute(
                "UPDATE logs SET length = $2, line_count = $3 WHERE log_id = $1",
                &[
                    &key,
                    &size_param(length, "log length")?,
                    &size_param(count, "line count")?,
                ],
            )?;
            notify_change(tx, self.head_id())?;
            Ok(length)
        })
    }
}

/// `log_id` of a log: 0 for crash.log, the bucket id for a hits.log.
fn log_key(log: LogId) -> i64 {
    match log {
        LogId::Crash => 0,
        LogId::Hits(bucket) => bucket,
    }
}

fn require_log(tx: &mut Tx<'_>, log: LogId) -> Result<()> {
    match log {
        LogId::Crash => Ok(()),
        LogId::Hits(bucket) if bucket > 0 => require_bucket(tx, bucket),
        LogId::Hits(bucket) => Err(StoreError::NoBucket(bucket)),
    }
}

fn log_length(tx: &mut Tx<'_>, log: LogId) -> Result<u64> {
    tx.query_opt(
        "SELECT length FROM logs WHERE log_id = $1",
        &[&log_key(log)],
    )?
    .map_or(Ok(0), |row| get_u64(&row, 0))
}
