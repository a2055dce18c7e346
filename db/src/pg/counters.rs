//! The counter family of the PostgreSQL store: buckets and their count.txt values. An
//! increment is one `UPDATE`: heads that add at once wait for each other's row lock and
//! every delta counts.

use super::heads::notify_change;
use super::rows::{ensure_bucket_in, find_bucket, get_u64};
use super::PgStore;
use crate::store::{BucketId, BucketKey, CounterStore, Counts, Result};
use crate::store_rules::{counter_value, warn_at_ceiling};
use crate::StoreError;

fn counts_of(row: &postgres::Row) -> Result<Counts> {
    Ok(Counts {
        cabs_gathered: get_u64(row, 0)?,
        total_hits: get_u64(row, 1)?,
    })
}

impl CounterStore for PgStore {
    fn ensure_bucket(&self, key: &BucketKey) -> Result<BucketId> {
        if let Some(id) = self.read(|tx| find_bucket(tx, &key.subpath))? {
            return Ok(id);
        }
        self.write(|tx| ensure_bucket_in(tx, key))
    }

    fn find_bucket(&self, subpath: &str) -> Result<Option<BucketId>> {
        self.read(|tx| find_bucket(tx, subpath))
    }

    fn counts(&self, bucket: BucketId) -> Result<Counts> {
        self.read(|tx| {
            tx.query_opt(
                "SELECT cabs_gathered, total_hits FROM bucket_rows WHERE bucket_id = $1",
                &[&bucket],
            )?
            .map(|row| counts_of(&row))
            .transpose()?
            .ok_or(StoreError::NoBucket(bucket))
        })
    }

    fn add_counts(&self, bucket: BucketId, cabs: u64, hits: u64) -> Result<Counts> {
        // Counters stop at 2^63 - 1 instead of failing, as in the SQLite store.
        let cabs = i64::try_from(cabs).unwrap_or(i64::MAX);
        let hits = i64::try_from(hits).unwrap_or(i64::MAX);
        let new = self.write(|tx| {
            tx.query_opt(
                "UPDATE bucket_rows SET \
                 cabs_gathered = least(cabs_gathered::numeric + $2::bigint, 9223372036854775807)::bigint, \
                 total_hits = least(total_hits::numeric + $3::bigint, 9223372036854775807)::bigint, \
                 last_seen = now(), first_seen = coalesce(first_seen, now()) \
                 WHERE bucket_id = $1 RETURNING cabs_gathered, total_hits",
                &[&bucket, &cabs, &hits],
            )?
            .map(|row| counts_of(&row))
            .transpose()?
            .ok_or(StoreError::NoBucket(bucket))
            .and_then(|new| notify_change(tx, self.head_id()).map(|()| new))
        })?;
        warn_at_ceiling(bucket, new);
        Ok(new)
    }

    fn set_counts(&self, bucket: BucketId, counts: Counts) -> Result<Counts> {
        let (cabs, hits) = (
            counter_value(counts.cabs_gathered)?,
            counter_value(counts.total_hits)?,
        );
        self.write(|tx| {
            let old = tx
                .query_opt(
                    "SELECT cabs_gathered, total_hits FROM bucket_rows WHERE bucket_id = $1 \
                     FOR UPDATE",
                    &[&bucket],
                )?
                .map(|row| counts_of(&row))
                .transpose()?
                .ok_or(StoreError::NoBucket(bucket))?;
            tx.execute(
                "UPDATE bucket_rows SET cabs_gathered = $2, total_hits = $3 WHERE bucket_id = $1",
                &[&bucket, &cabs, &hits],
            )?;
            notify_change(tx, self.head_id())?;
            Ok(old)
        })
    }
}
