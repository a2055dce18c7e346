//! The log family of the SQLite store: crash.log and every hits.log, one row per line,
//! read back byte-exact by offset.

use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{copy_overlap, get_u64, require_bucket, size_param};
use super::{finish, sql_now, SqliteStore, MAX_FILE_SIZE};
use crate::store::{LogId, LogLine, LogStore, Result};
use crate::StoreError;

impl LogStore for SqliteStore {
    fn log_len(&self, log: LogId) -> Result<u64> {
        finish(self.read(|tx| {
            require_log(tx, log)?;
            log_length(tx, log)
        }))
    }

    fn read_log(&self, log: LogId, offset: u64, len: u32) -> Result<Vec<u8>> {
        finish(self.read(|tx| {
            require_log(tx, log)?;
            let length = log_length(tx, log)?;
            if offset >= length || len == 0 {
                return Ok(Vec::new());
            }
            let end = length.min(offset + u64::from(len));
            let mut out = vec![0u8; (end - offset) as usize];
            // The line holding `offset` (the last one starting at or before it), then every
            // line starting before `end`: one index seek and a range scan.
            let mut stmt = tx.prepare_cached(
                "SELECT start_offset, bytes FROM log_lines \
                 WHERE log_id = ?1 AND start_offset < ?3 AND start_offset >= coalesce(( \
                     SELECT start_offset FROM log_lines WHERE log_id = ?1 AND start_offset <= ?2 \
                     ORDER BY start_offset DESC LIMIT 1), 0) \
                 ORDER BY start_offset",
            )?;
            let mut rows = stmt.query(params![
                log_key(log),
                size_param(offset, "offset")?,
                size_param(end, "offset")?
            ])?;
            while let Some(row) = rows.next()? {
                let start = get_u64(row, 0)?;
                let bytes = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                copy_overlap(&mut out, offset, bytes, start);
            }
            Ok(out)
        }))
    }

    fn append_log(&self, log: LogId, lines: &[LogLine]) -> Result<u64> {
        finish(self.write(|tx| {
            require_log(tx, log)?;
            let key = log_key(log);
            tx.prepare_cached(
                "INSERT INTO logs (log_id, bucket_id) VALUES (?1, nullif(?1, 0)) \
                 ON CONFLICT (log_id) DO NOTHING",
            )?
            .execute([key])?;
            let (mut length, mut count) = tx
                .prepare_cached("SELECT length, line_count FROM logs WHERE log_id = ?1")?
                .query_row([key], |row| Ok((get_u64(row, 0)?, get_u64(row, 1)?)))?;
            let mut insert = tx.prepare_cached(concat!(
                "INSERT INTO log_lines (log_id, start_offset, bytes, time_text, date_text, ",
                "machine, user, item, client_time, flagged, received_at) ",
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ",
                sql_now!(),
                ")"
            ))?;
            for line in lines {
                // An empty line adds nothing to the rendered log: there is no row for it.
                if line.bytes.is_empty() {
                    continue;
                }
                let f = line.fields.as_ref();
                insert.execute(params![
                    key,
                    size_param(length, "log length")?,
                    line.bytes,
                    f.map(|f| &f.time),
                    f.map(|f| &f.date),
                    f.map(|f| &f.machine),
                    f.map(|f| &f.user),
                    f.map(|f| &f.item),
                    f.map(|f| &f.client_time),
                    f.is_none()
                ])?;
                length = length
                    .checked_add(line.bytes.len() as u64)
                    .filter(|l| *l <= MAX_FILE_SIZE)
                    .ok_or_else(|| StoreError::Invalid("log too long".into()))?;
                count += 1;
            }
            tx.prepare_cached("UPDATE logs SET length = ?2, line_count = ?3 WHERE log_id = ?1")?
                .execute(params![
                    key,
                    size_param(length, "log length")?,
                    size_param(count, "line count")?
                ])?;
            Ok(length)
        }))
    }
}

/// `log_id` of a log: 0 for crash.log, the bucket id for a hits.log.
fn log_key(log: LogId) -> i64 {
    match log {
        LogId::Crash => 0,
        LogId::Hits(bucket) => bucket,
    }
}

/// Checks that a hits.log's bucket exists.
fn require_log(conn: &Connection, log: LogId) -> Result<()> {
    match log {
        LogId::Crash => Ok(()),
        LogId::Hits(bucket) if bucket > 0 => require_bucket(conn, bucket),
        LogId::Hits(bucket) => Err(StoreError::NoBucket(bucket)),
    }
}

fn log_length(conn: &Connection, log: LogId) -> Result<u64> {
    let mut stmt = conn.prepare_cached("SELECT length FROM logs WHERE log_id = ?1")?;
    Ok(stmt
        .query_row([log_key(log)], |row| get_u64(row, 0))
        .optional()?
        .unwrap_or(0))
}
