//! The counter family of the SQLite store: buckets and their count.txt values.

use rusqlite::{params, OptionalExtension};

use super::rows::{ensure_bucket_in, find_bucket, get_u64};
use super::{finish, sql_now, SqliteStore};
use crate::store::{BucketId, BucketKey, CounterStore, Counts, Result};
use crate::store_rules::{counter_value, warn_at_ceiling};
use crate::StoreError;

impl CounterStore for SqliteStore {
    fn ensure_bucket(&self, key: &BucketKey) -> Result<BucketId> {
        // Usually it exists: look on a reader first and take the writer only to insert.
        if let Some(id) = finish(self.read(|tx| find_bucket(tx, &key.subpath)))? {
            return Ok(id);
        }
        finish(self.write(|tx| ensure_bucket_in(tx, key)))
    }

    fn find_bucket(&self, subpath: &str) -> Result<Option<BucketId>> {
        finish(self.read(|tx| find_bucket(tx, subpath)))
    }

    fn counts(&self, bucket: BucketId) -> Result<Counts> {
        finish(self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT cabs_gathered, total_hits FROM bucket_rows WHERE bucket_id = ?1",
            )?;
            stmt.query_row([bucket], |row| {
                Ok(Counts {
                    cabs_gathered: get_u64(row, 0)?,
                    total_hits: get_u64(row, 1)?,
                })
            })
            .optional()?
            .ok_or(StoreError::NoBucket(bucket))
        }))
    }

    fn add_counts(&self, bucket: BucketId, cabs: u64, hits: u64) -> Result<Counts> {
        finish(self.write(|tx| {
            let old = tx
                .prepare_cached(
                    "SELECT cabs_gathered, total_hits FROM bucket_rows WHERE bucket_id = ?1",
                )?
                .query_row([bucket], |row| Ok((get_u64(row, 0)?, get_u64(row, 1)?)))
                .optional()?
                .ok_or(StoreError::NoBucket(bucket))?;
            let ceiling = i64::MAX as u64;
            let new = Counts {
                cabs_gathered: old.0.saturating_add(cabs).min(ceiling),
                total_hits: old.1.saturating_add(hits).min(ceiling),
            };
            warn_at_ceiling(bucket, new);
            tx.prepare_cached(concat!(
                "UPDATE bucket_rows SET cabs_gathered = ?2, total_hits = ?3, last_seen = ",
                sql_now!(),
                ", first_seen = coalesce(first_seen, ",
                sql_now!(),
                ") WHERE bucket_id = ?1"
            ))?
            .execute(params![
                bucket,
                new.cabs_gathered as i64,
                new.total_hits as i64
            ])?;
            Ok(new)
        }))
    }

    fn set_counts(&self, bucket: BucketId, counts: Counts) -> Result<Counts> {
        let (cabs, hits) = (
            counter_value(counts.cabs_gathered)?,
            counter_value(counts.total_hits)?,
        );
        finish(self.write(|tx| {
            let old = tx
                .prepare_cached(
                    "SELECT cabs_gathered, total_hits FROM bucket_rows WHERE bucket_id = ?1",
                )?
                .query_row([bucket], |row| {
                    Ok(Counts {
                        cabs_gathered: get_u64(row, 0)?,
                        total_hits: get_u64(row, 1)?,
                    })
                })
                .optional()?
                .ok_or(StoreError::NoBucket(bucket))?;
            tx.prepare_cached(
                "UPDATE bucket_rows SET cabs_gathered = ?2, total_hits = ?3 WHERE bucket_id = ?1",
            )?
            .execute(params![bucket, cabs, hits])?;
            Ok(old)
        }))
    }
}
