//! The PostgreSQL store's schema and its migrations, applied by whichever head opens the
//! database first, under a session advisory lock that the other heads wait for.

use postgres::Client;

use super::{describe, lock_key};
use crate::OpenError;

/// The migrations, in order; `cerfs_schema.version` counts those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_core.sql"),
    include_str!("migrations/0002_cer2_reports.sql"),
    include_str!("migrations/0003_lifecycle.sql"),
    include_str!("migrations/0004_views.sql"),
    include_str!("migrations/0005_alerts.sql"),
    include_str!("migrations/0006_cab_index.sql"),
    include_str!("migrations/0007_console.sql"),
];

/// The first schema version with the views for SQL users.
pub(crate) const PG_VIEWS_VERSION: i64 = 4;

/// The schema version this build writes.
pub const PG_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn pg(shown: &str) -> impl Fn(postgres::Error) -> OpenError + '_ {
    move |e| OpenError::Unusable(format!("PostgreSQL at {shown}: {}", describe(&e)))
}

/// Checks, without changing anything, that the database holds a cerfs store of at least
/// schema version `needed` that this build knows: what a command that must not migrate
/// (an admin's, a reader's) needs before it goes on.
pub(crate) fn require(client: &mut Client, shown: &str, needed: i64) -> Result<(), OpenError> {
    let found = match client.query_opt("SELECT version FROM cerfs_schema", &[]) {
        Ok(row) => row.map_or(0, |row| row.get::<_, i64>(0)),
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => 0,
        Err(e) => return Err(pg(shown)(e)),
    };
    if found == 0 {
        return Err(OpenError::Unusable(format!(
            "no cerfs store in PostgreSQL at {shown}: `cerfs serve --db URL` (or `cerfs mount \
             --db URL`) creates it when it first starts"
        )));
    }
    if found > PG_SCHEMA_VERSION {
        return Err(OpenError::TooNew {
            found,
            known: PG_SCHEMA_VERSION,
        });
    }
    if found < needed {
        return Err(OpenError::SchemaTooOld { found, needed });
    }
    Ok(())
}

/// Brings the schema of the database `client` is connected to up to [`PG_SCHEMA_VERSION`].
pub(crate) fn migrate(client: &mut Client, shown: &str) -> Result<(), OpenError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&lock_key::SCHEMA])
        .map_err(pg(shown))?;
    let done = apply(client, shown);
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&lock_key::SCHEMA])
        .map_err(pg(shown));
    done.and(unlocked.map(|_| ()))
}

fn apply(client: &mut Client, shown: &str) -> Result<(), OpenError> {
    // Created when missing, asked first: `CREATE TABLE IF NOT EXISTS` would make the
    // server send a notice, which the client logs, at every start of every command.
    let exists: bool = client
        .query_one("SELECT to_regclass('cerfs_schema') IS NOT NULL", &[])
        .map_err(pg(shown))?
        .get(0);
    if !exists {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS cerfs_schema (
                     one     boolean PRIMARY KEY DEFAULT true CHECK (one),
                     version bigint  NOT NULL
                 )",
            )
            .map_err(pg(shown))?;
    }
    let found: i64 = client
        .query_opt("SELECT version FROM cerfs_schema", &[])
        .map_err(pg(shown))?
        .map_or(0, |row| row.get(0));
    if found > PG_SCHEMA_VERSION {
        return Err(OpenError::TooNew {
            found,
            known: PG_SCHEMA_VERSION,
        });
    }
    for (at, sql) in (found..).zip(MIGRATIONS.iter().skip(found as usize)) {
        let mut tx = client.transaction().map_err(pg(shown))?;
        tx.batch_execute(sql).map_err(pg(shown))?;
        tx.execute(
            "INSERT INTO cerfs_schema (version) VALUES ($1) \
             ON CONFLICT (one) DO UPDATE SET version = excluded.version",
            &[&(at + 1)],
        )
        .map_err(pg(shown))?;
        tx.commit().map_err(pg(shown))?;
        tracing::info!(version = at + 1, db = shown, "PostgreSQL schema migrated");
    }
    Ok(())
}
