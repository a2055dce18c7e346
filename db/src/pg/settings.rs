//! The settings family of the PostgreSQL store: policy.txt and every status.txt, as
//! ordered key/value rows, replaced whole under a lock of their scope.

use super::heads::notify_change;
use super::rows::require_bucket;
use super::{lock_key, PgStore};
use crate::store::{Result, SettingsScope, SettingsStore};
use crate::StoreError;

impl SettingsStore for PgStore {
    fn settings(&self, scope: SettingsScope) -> Result<Vec<(String, String)>> {
        self.read(|tx| {
            let rows = match scope {
                SettingsScope::Policy => tx.query(
                    "SELECT key, value FROM setting_rows WHERE bucket_id IS NULL ORDER BY position",
                    &[],
                )?,
                SettingsScope::Status(bucket) => {
                    require_bucket(tx, bucket)?;
                    tx.query(
                        "SELECT key, value FROM setting_rows WHERE bucket_id = $1 ORDER BY position",
                        &[&bucket],
                    )?
                }
            };
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn replace_settings(&self, scope: SettingsScope, pairs: &[(String, String)]) -> Result<()> {
        self.write(|tx| {
            // Two replacements of one scope (from two heads) follow each other whole.
            let bucket = match scope {
                SettingsScope::Policy => {
                    tx.lock(lock_key::POLICY)?;
                    None
                }
                SettingsScope::Status(bucket) => {
                    tx.query_opt(
                        "SELECT 1 FROM bucket_rows WHERE bucket_id = $1 FOR UPDATE",
                        &[&bucket],
                    )?
                    .ok_or(StoreError::NoBucket(bucket))?;
                    Some(bucket)
                }
            };
            tx.execute(
                "DELETE FROM setting_rows WHERE bucket_id IS NOT DISTINCT FROM $1",
                &[&bucket],
            )?;
            for (position, (key, value)) in (0i32..).zip(pairs) {
                tx.execute(
                    "INSERT INTO setting_rows (bucket_id, position, key, value) \
                     VALUES ($1, $2, $3, $4)",
                    &[&bucket, &position, key, value],
                )?;
            }
            notify_change(tx, self.head_id())
        })
    }
}
