//! The settings family of the SQLite store: policy.txt and every status.txt, as ordered
//! key/value rows.

use rusqlite::{params, Row};

use super::rows::require_bucket;
use super::{finish, SqliteStore};
use crate::store::{Result, SettingsScope, SettingsStore};

impl SettingsStore for SqliteStore {
    fn settings(&self, scope: SettingsScope) -> Result<Vec<(String, String)>> {
        finish(self.read(|tx| {
            let pair = |row: &Row<'_>| Ok((row.get(0)?, row.get(1)?));
            let rows = match scope {
                SettingsScope::Policy => tx
                    .prepare_cached(
                        "SELECT key, value FROM setting_rows WHERE bucket_id IS NULL \
                         ORDER BY position",
                    )?
                    .query_map([], pair)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                SettingsScope::Status(bucket) => {
                    require_bucket(tx, bucket)?;
                    tx.prepare_cached(
                        "SELECT key, value FROM setting_rows WHERE bucket_id = ?1 ORDER BY position",
                    )?
                    .query_map([bucket], pair)?
                    .collect::<rusqlite::Result<Vec<_>>>()?
                }
            };
            Ok(rows)
        }))
    }

    fn replace_settings(&self, scope: SettingsScope, pairs: &[(String, String)]) -> Result<()> {
        finish(self.write(|tx| {
            let bucket = match scope {
                SettingsScope::Policy => None,
                SettingsScope::Status(bucket) => {
                    require_bucket(tx, bucket)?;
                    Some(bucket)
                }
            };
            tx.prepare_cached("DELETE FROM setting_rows WHERE bucket_id IS ?1")?
                .execute([bucket])?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO setting_rows (bucket_id, position, key, value) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (position, (key, value)) in (0i64..).zip(pairs) {
                insert.execute(params![bucket, position, key, value])?;
            }
            Ok(())
        }))
    }
}
