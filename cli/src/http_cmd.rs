//! `cerfs http`: serve the Corporate Error Reporting V2 HTTP protocol ([MS-CER2]) into a
//! cerfs database until SIGINT/SIGTERM (Ctrl-C or Ctrl-Break on Windows).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tracing::info;

use crate::mount_cmd::{check_db_dir, open_share};
use crate::stop::StopSignals;

/// Arguments of `cerfs http`.
#[derive(Debug, Args)]
#[command(after_help = "\
Windows Vista and later clients whose Corporate Error Reporting server is set to
this host POST each report to /stage2.htm and PUT the cab to the DumpFile path the
answer names. Reports land in the same buckets, counters and cab storage as the
CER 1.0 file share (a crash reported both ways is one bucket): see them with
`cerfs buckets` or `cerfs query`, or on the share once it is mounted.

Only one cerfs process may serve a SQLite database at a time: to serve the share and
HTTP together, use `cerfs serve --http ADDR`. A PostgreSQL store takes any number of
servers (`--db postgres://...`), each its own head; one head's indexer at a time indexes.

Runs in the foreground until SIGINT (Ctrl-C) or SIGTERM; requests in progress are
finished (an upload cut off at shutdown keeps nothing). Exit status: 0 ok,
1 error, 2 usage error.

Example:
  cerfs http --db /var/lib/cerfs/cer.db --listen 0.0.0.0:80")]
pub struct HttpArgs {
    /// The store: a SQLite database file (created if missing), or a PostgreSQL store's
    /// postgres://USER@HOST:PORT/DBNAME (docs/scale-out.md), which several servers share.
    #[arg(long, value_name = "FILE|URL", default_value = "cer.db", value_parser = cerfs_db::StoreLocation::parse)]
    pub db: cerfs_db::StoreLocation,

    /// Address and port to listen on (Windows clients use port 80 unless their server
    /// setting names another).
    #[arg(long, value_name = "ADDR", default_value = cerfs_http::DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub limits: crate::mount_cmd::ShareLimits,

    #[command(flatten)]
    pub symbols: crate::symbols_cmd::SymbolArgs,

    #[command(flatten)]
    pub http_limits: HttpLimits,
}

/// What one client of the CER V2 server may send (`cerfs http`, `cerfs serve --http`).
#[derive(Debug, Args)]
pub struct HttpLimits {
    /// Largest level-1 report accepted (bytes; K, M, G suffixes).
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = parse_size)]
    pub max_report_size: u64,

    /// Seconds a level-1 report may take to arrive, and a cab upload may pause, before the
    /// request is dropped (408).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=86_400),
    )]
    pub body_timeout: u64,

    /// Most connections one client address may hold open; more are answered 503. Raise it
    /// when many clients reach the server through one address (a NAT, a proxy).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 16,
        value_parser = clap::value_parser!(u32).range(1..=65_536),
    )]
    pub max_connections_per_address: u32,

    /// Most new buckets the reports of one address may create per minute; past it a report
    /// of an unknown signature gets 429 (and is not counted). Raise it like the above.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..),
    )]
    pub new_buckets_per_minute: u32,
}

impl HttpLimits {
    /// The server's settings with these limits.
    pub fn config(&self) -> cerfs_http::Config {
        cerfs_http::Config {
            max_report_size: usize::try_from(self.max_report_size).unwrap_or(usize::MAX),
            body_timeout: Duration::from_secs(self.body_timeout),
            max_connections_per_address: self.max_connections_per_address as usize,
            new_buckets_per_minute: self.new_buckets_per_minute,
            ..cerfs_http::Config::default()
        }
    }
}

/// `123`, `64K`, `10M`, `1G` (powers of 1024; `KiB`, `MB`... and lowercase accepted).
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (examples: 1048576, 512K, 10M, 1G)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "unknown size unit {unit:?} in {text:?} (use K, M or G)"
            ))
        }
    };
    let size = number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))?;
    if size == 0 {
        return Err("the size must be at least 1 byte".into());
    }
    Ok(size)
}

/// Serves until told to stop.
pub fn run(args: &HttpArgs) -> Result<()> {
    if let Some(path) = args.db.sqlite_path() {
        check_db_dir(path)?;
    }
    let stop = StopSignals::install()?;
    let share = open_share(&args.db, &args.limits, &[])?;
    let (fs, maintenance, alerts) = (share.fs, share.maintenance, share.alerts);
    let store_watch = crate::store_watch::StoreWatch::spawn(&fs)?;
    let config = args.http_limits.config();
    let server =
        cerfs_http::spawn(fs, args.listen, config).context("cannot start the HTTP server")?;
    // Index what uploaded cabs hold, in the background, as `cerfs mount` does.
    let indexer = crate::mount_cmd::spawn_indexer(&args.db, &args.symbols)?;
    info!(
        "serving Corporate Error Reporting V2 on http://{}/stage2.htm into {}",
        server.local_addr(),
        args.db
    );
    if let Some(signal) = stop.wait() {
        info!("received {signal}, stopping");
    }
    indexer.stop();
    maintenance.stop();
    if let Some(alerts) = alerts {
        alerts.stop();
    }
    server.shutdown().context("stopping the HTTP server")?;
    info!("stopped, closed {}", args.db);
    store_watch.outcome()
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("64K"), Ok(65_536));
        assert_eq!(parse_size("10m"), Ok(10 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
