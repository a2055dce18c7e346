//! The test PostgreSQL server: `.ci/run` starts a throw-away cluster on a loopback port and
//! names it in `CERFS_TEST_POSTGRES` (`postgres://USER@HOST:PORT`, no database); each test
//! gets a database of its own ([`TestDatabase`]), dropped when the test ends. Without the
//! variable, or with a server that does not answer, a test skips by the one skip rule.

use std::sync::atomic::{AtomicU32, Ordering};

/// The variable naming the test server.
pub const POSTGRES_VAR: &str = "CERFS_TEST_POSTGRES";

/// A fresh database on the test server; dropped (connections and all) with the value.
#[derive(Debug)]
pub struct TestDatabase {
    server: String,
    name: String,
    /// `postgres://USER@HOST:PORT/NAME`: what `PgStore::open` and `--db` take.
    pub url: String,
}

impl TestDatabase {
    /// A new empty database, or `None` after [`crate::unavailable`] says why there is none
    /// (which fails the test under `CERFS_REQUIRE_FUSE=1`).
    pub fn create() -> Option<TestDatabase> {
        let Some(server) = std::env::var(POSTGRES_VAR).ok().filter(|s| !s.is_empty()) else {
            crate::unavailable(&format!(
                "{POSTGRES_VAR} is not set: start a PostgreSQL server (as .ci/run does) and \
                 set it to postgres://USER@HOST:PORT"
            ));
            return None;
        };
        let server = server.trim_end_matches('/').to_owned();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "cerfs_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let created = postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls)
            .and_then(|mut admin| {
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
                admin.batch_execute(&format!("CREATE DATABASE {name}"))
            });
        if let Err(e) = created {
            crate::unavailable(&format!(
                "cannot create a database on the PostgreSQL server {server} ({POSTGRES_VAR}): {e}"
            ));
            return None;
        }
        let url = format!("{server}/{name}");
        Some(TestDatabase { server, name, url })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let dropped =
            postgres::Client::connect(&format!("{}/postgres", self.server), postgres::NoTls)
                .and_then(|mut admin| {
                    admin.batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        self.name
                    ))
                });
        if let Err(e) = dropped {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}
