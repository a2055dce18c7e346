//! Versioned migrations: SQL scripts applied in order, tracked by `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use crate::OpenError;

/// The migration scripts; script `i` (0-based) brings the schema from version `i` to `i + 1`.
/// Append only: a released script is never edited.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_views_and_cab_index.sql"),
    include_str!("../migrations/0003_cer2_reports.sql"),
    include_str!("../migrations/0004_covering_received_index.sql"),
    include_str!("../migrations/0005_daily_hits.sql"),
    include_str!("../migrations/0006_lifecycle.sql"),
    include_str!("../migrations/0007_stacks.sql"),
    include_str!("../migrations/0008_alerts.sql"),
    include_str!("../migrations/0009_console_totals.sql"),
    include_str!("../migrations/0010_signature_first_seen.sql"),
    include_str!("../migrations/0011_covering_signature_index.sql"),
    include_str!("../migrations/0012_cab_bytes_from.sql"),
];

/// The first schema version with the documented SQL views and the cab index tables.
pub(crate) const VIEWS_VERSION: i64 = 2;

/// The newest schema version this build knows (`PRAGMA user_version` of an up-to-date file).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`], each script with its `user_version` bump in
/// one immediate transaction (so two processes opening a new file at once cannot both
/// migrate it). A database with a newer version is refused with [`OpenError::TooNew`].
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), OpenError> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(OpenError::TooNew {
                found,
                known: SCHEMA_VERSION,
            });
        }
        let Ok(current) = usize::try_from(found) else {
            // Only a hand edit makes it negative: refuse rather than guess.
            return Err(OpenError::Unusable(format!(
                "the database has schema version {found}, which cerfs never writes"
            )));
        };
        let Some(script) = MIGRATIONS.get(current) else {
            return Ok(()); // up to date
        };
        tx.execute_batch(script)?;
        tx.pragma_update(None, "user_version", found + 1)?;
        tx.commit()?;
        tracing::info!(version = found + 1, "database schema migrated");
    }
}

/// Refuses a database whose schema is not exactly [`SCHEMA_VERSION`] (for connections that
/// must not migrate: admin commands beside a server that may be of another version).
pub(crate) fn require_current(conn: &Connection) -> Result<(), OpenError> {
    let found = version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(OpenError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    if found < SCHEMA_VERSION {
        return Err(OpenError::SchemaTooOld {
            found,
            needed: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// The schema version of the database behind `conn` (`PRAGMA user_version`).
pub(crate) fn version(conn: &Connection) -> Result<i64, OpenError> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}
