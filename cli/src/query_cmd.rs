//! `cerfs query` (read-only SQL over the documented views) and `cerfs buckets` (the
//! buckets view, sorted by hits). Both read through a read-only WAL connection (a READ
//! ONLY transaction on PostgreSQL): safe beside a running `cerfs mount` / `cerfs serve`.

use std::io::Read;

use anyhow::{Context, Result};
use cerfs_db::{QueryDb, Value};
use clap::Args;

use crate::output::{printer, DbArg, Format};

/// Arguments of `cerfs query`.
#[derive(Debug, Args)]
#[command(after_help = "\
The views (docs/sql.md lists every column): buckets, cabs, cab_files, minidumps,
cab_texts, cab_facts, hits, crashes, settings; full-text search in cab_text_search.
Statements that would change the database are refused. On a PostgreSQL store (--db
postgres://USER@HOST:PORT/DBNAME) the same views, in a READ ONLY transaction, and
cab_text_search with PostgreSQL's full-text search (docs/sql.md, On a PostgreSQL
store). Exit status: 0 ok,
1 error (bad SQL, a write, no database), 2 usage error.

Examples:
  cerfs query \"SELECT subpath, total_hits FROM buckets ORDER BY total_hits DESC LIMIT 10\"
  cerfs query --format csv \"SELECT * FROM hits WHERE received_at >= date('now', '-7 days')\"
  cerfs query - < report.sql")]
pub struct QueryArgs {
    #[command(flatten)]
    pub db: DbArg,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Stop a statement that runs longer than this many seconds (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TIMEOUT)]
    pub timeout: u64,

    /// One SQL statement (SELECT, WITH ... SELECT, or a PRAGMA that reads); `-` reads it
    /// from stdin.
    #[arg(value_name = "SQL")]
    pub sql: String,
}

/// Default of `--timeout`: generous for every documented query on a large store (they
/// take milliseconds), short enough that a runaway statement ends on its own.
const DEFAULT_TIMEOUT: u64 = 30;

/// Runs `cerfs query`.
pub fn run_query(args: &QueryArgs) -> Result<()> {
    let sql = if args.sql == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(16 << 20)
            .read_to_string(&mut text)
            .context("cannot read the SQL from stdin")?;
        text
    } else {
        args.sql.clone()
    };
    let db = open(&args.db, args.timeout)?;
    print(&db, &sql, &[], args.format)
}

/// Arguments of `cerfs buckets`.
#[derive(Debug, Args)]
#[command(after_help = "\
Columns: subpath, kind, total_hits, cabs_gathered (count.txt), cabs_stored (complete
cabs in storage), cab_limit (Crashes per bucket from status.txt, else policy.txt, else 5),
first_seen, last_seen (UTC). Sorted by total_hits, highest first.
Exit status: 0 ok, 1 error, 2 usage error.

Examples:
  cerfs buckets --top 10
  cerfs buckets --since 7d --format json
  cerfs buckets --since 2024-03-01")]
pub struct BucketsArgs {
    #[command(flatten)]
    pub db: DbArg,

    /// Only the N buckets with the most hits.
    #[arg(long, value_name = "N")]
    pub top: Option<u32>,

    /// Only buckets that reported since DATE (their last_seen, UTC): YYYY-MM-DD,
    /// YYYY-MM-DDTHH:MM[:SS], or a relative time such as 7d or 12h.
    #[arg(long, value_name = "DATE", value_parser = parse_since)]
    pub since: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Stop the listing if it runs longer than this many seconds (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TIMEOUT)]
    pub timeout: u64,
}

/// Runs `cerfs buckets`.
pub fn run_buckets(args: &BucketsArgs) -> Result<()> {
    let db = open(&args.db, args.timeout)?;
    // No LIMIT without --top: SQLite's "no limit" (-1) is an error on PostgreSQL.
    let sql = format!(
        "SELECT subpath, kind, total_hits, cabs_gathered, cabs_stored, cab_limit, \
         first_seen, last_seen FROM buckets \
         WHERE ?1 IS NULL OR last_seen >= ?1 \
         ORDER BY total_hits DESC, subpath{}",
        args.top.map_or_else(String::new, |n| format!(" LIMIT {n}"))
    );
    let since = args.since.clone().map_or(Value::Null, Value::Text);
    print(&db, &sql, &[since], args.format)
}

fn open(db: &DbArg, timeout: u64) -> Result<QueryDb> {
    let mut db = db.query_db()?;
    db.set_time_limit((timeout > 0).then(|| std::time::Duration::from_secs(timeout)));
    Ok(db)
}

/// Runs `sql` and prints its result in `format` on stdout.
pub fn print(db: &QueryDb, sql: &str, params: &[Value], format: Format) -> Result<()> {
    let mut out = printer(format, std::io::stdout().lock());
    match db.query(sql, params, &mut out) {
        Ok(_) => {}
        // A reader that went away (`| head`) is not an error.
        Err(cerfs_db::QueryError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(())
        }
        Err(e) => return Err(e).context("query failed"),
    }
    match out.finish() {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e).context("cannot write the result"),
    }
}

/// `--since`: a date, a date and time, or `<N>d` / `<N>h` before now; as text that compares
/// with the stored ISO-8601 UTC times.
pub fn parse_since(s: &str) -> std::result::Result<String, String> {
    let s = s.trim();
    let relative = |n: &str, unit: i64| -> std::result::Result<String, String> {
        let n: i64 = n
            .parse()
            .map_err(|_| format!("{s:?}: expected a number before the unit"))?;
        let t = time::OffsetDateTime::now_utc() - time::Duration::seconds(n.saturating_mul(unit));
        Ok(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ))
    };
    if let Some(n) = s.strip_suffix('d') {
        return relative(n, 86_400);
    }
    if let Some(n) = s.strip_suffix('h') {
        return relative(n, 3_600);
    }
    let shape_ok = |pattern: &str, v: &str| {
        v.len() == pattern.len()
            && v.bytes().zip(pattern.bytes()).all(|(c, p)| match p {
                b'9' => c.is_ascii_digit(),
                _ => c == p,
            })
    };
    let body = s.strip_suffix('Z').unwrap_or(s);
    let valid = ["9999-99-99", "9999-99-99T99:99", "9999-99-99T99:99:99"]
        .iter()
        .any(|p| shape_ok(p, body));
    let date_ok = body
        .get(..10)
        .and_then(|d| {
            time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]")).ok()
        })
        .is_some();
    if !valid || !date_ok {
        return Err(format!(
            "{s:?} is not a date: write YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (UTC), or 7d / 12h"
        ));
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::parse_since;

    #[test]
    fn since_accepts_dates_and_relative_times() {
        assert_eq!(parse_since("2024-03-01").unwrap(), "2024-03-01");
        assert_eq!(parse_since("2024-03-01T12:30").unwrap(), "2024-03-01T12:30");
        assert_eq!(
            parse_since("2024-03-01T12:30:05Z").unwrap(),
            "2024-03-01T12:30:05"
        );
        let week = parse_since("7d").unwrap();
        assert_eq!(week.len(), 19);
        assert!(week < parse_since("1h").unwrap());
        for bad in [
            "yesterday",
            "2024-13-01",
            "2024-3-1",
            "xd",
            "2024-03-01 12:00",
        ] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }
}
