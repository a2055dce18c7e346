//! `cerfs`: serves a Microsoft Corporate Error Reporting file share backed by SQLite.
//!
//! This file is glue only: argument parsing, logging setup, exit codes. Each subcommand
//! lives in its own module.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod alerts_cmd;
mod cab_cmd;
mod counts_cmd;
mod deletion_cmd;
mod http_cmd;
mod maintenance_cmd;
mod mount_cmd;
mod output;
mod progress;
mod query_cmd;
mod quota_cmd;
mod reindex_cmd;
mod retention_cmd;
#[cfg(unix)]
mod samba_config_cmd;
#[cfg(unix)]
mod serve_cmd;
mod settings_cmd;
mod signature_cmd;
mod stack_cmd;
mod stop;
mod store_watch;
mod symbols_cmd;
mod web_cmd;

/// Serve a Microsoft Corporate Error Reporting (CER) file share backed by SQLite.
///
/// Logging goes to stderr; set RUST_LOG (for example RUST_LOG=debug or
/// RUST_LOG=cerfs_fuse=trace) to change what is logged (default: info).
#[derive(Debug, Parser)]
#[command(name = "cerfs", version)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands. `serve` and `samba-config` exist on Unix only (FUSE and Samba); on
/// Windows, Windows' own SMB server shares what `mount` mounts.
#[derive(Debug, Subcommand)]
enum Command {
    #[cfg_attr(
        unix,
        doc = "Mount a cerfs database as a FUSE filesystem and serve it until SIGINT or SIGTERM."
    )]
    #[cfg_attr(
        windows,
        doc = "Mount a cerfs database with WinFsp on a drive letter (X:) or a new folder and \
               serve it until Ctrl-C."
    )]
    Mount(mount_cmd::MountArgs),
    /// Serve the share over SMB: mount it and run Samba (smbd) in front of it until SIGINT
    /// or SIGTERM.
    #[cfg(unix)]
    Serve(Box<serve_cmd::ServeArgs>),
    /// Serve the Corporate Error Reporting V2 HTTP protocol (Windows Vista and later) into
    /// the database until SIGINT or SIGTERM.
    Http(http_cmd::HttpArgs),
    /// Serve the web console (pages and a JSON API) over a database, beside any running
    /// server, until SIGINT or SIGTERM.
    Web(web_cmd::WebArgs),
    /// Add, remove or list the web console's accounts (viewer, admin).
    WebUser(web_cmd::WebUserArgs),
    /// Show or change who is told about new buckets, new signatures, spikes and a store
    /// near its quota (webhooks), or send a test alert.
    Alerts(alerts_cmd::AlertsArgs),
    /// Print the smb.conf share stanza of a cerfs share, for your own Samba.
    #[cfg(unix)]
    SambaConfig(samba_config_cmd::SambaConfigArgs),
    /// Run one read-only SQL statement on the database (views: buckets, cabs, hits, ...).
    Query(query_cmd::QueryArgs),
    /// List the buckets (error signatures) with their hits and cabs, most hits first.
    Buckets(query_cmd::BucketsArgs),
    /// Show or change a bucket's status.txt (what its clients are asked to send).
    Status(settings_cmd::StatusArgs),
    /// Show or change policy.txt (what every client is asked to send by default).
    Policy(settings_cmd::PolicyArgs),
    /// Copy stored cabs out of the database.
    Cab(cab_cmd::CabArgs),
    /// Reset or set a bucket's counters (count.txt).
    Counts(counts_cmd::CountsArgs),
    /// Index cabs again: members, minidumps, text files, stacks and signatures.
    Reindex(reindex_cmd::ReindexArgs),
    /// Print a stored minidump's stack as minidump-stackwalk does.
    Stack(stack_cmd::StackArgs),
    /// Crashes grouped by signature, most crashes first.
    Signatures(signature_cmd::SignaturesArgs),
    /// Show or change the rules crash signatures are built with.
    SignatureRules(signature_cmd::SignatureRulesArgs),
    /// Show or change where symbols come from (local stores, symbol servers).
    Symbols(symbols_cmd::SymbolsArgs),
    /// Show or change how long cabs are kept (the retention policy).
    Retention(retention_cmd::RetentionArgs),
    /// Apply the retention policy now (--dry-run: only list what it would prune).
    Prune(retention_cmd::PruneArgs),
    /// Show or change the stored limits new cabs must fit (store size, free space).
    Quota(quota_cmd::QuotaArgs),
    /// Delete a whole bucket (PII requests), recorded in the audit.
    Bucket(deletion_cmd::BucketArgs),
    /// Write a consistent copy of the database while it is served.
    Backup(maintenance_cmd::BackupArgs),
    /// Check the database and re-hash every stored cab; exit 1 if anything is corrupt.
    Verify(maintenance_cmd::VerifyArgs),
    /// Give free space inside the database file back to the filesystem.
    Compact(maintenance_cmd::CompactArgs),
    /// The cab indexer's worker process (run by the indexer, not by hand).
    #[command(hide = true)]
    IndexOne(reindex_cmd::IndexOneArgs),
}

fn main() -> ExitCode {
    // Usage errors exit with 2 (and --help/--version with 0) inside parse().
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Mount(args) => mount_cmd::run(&args),
        #[cfg(unix)]
        Command::Serve(args) => serve_cmd::run(&args),
        Command::Http(args) => http_cmd::run(&args),
        Command::Web(args) => web_cmd::run(&args),
        Command::WebUser(args) => web_cmd::run_user(&args),
        Command::Alerts(args) => alerts_cmd::run(&args),
        #[cfg(unix)]
        Command::SambaConfig(args) => samba_config_cmd::print_samba_config(&args),
        Command::Query(args) => query_cmd::run_query(&args),
        Command::Buckets(args) => query_cmd::run_buckets(&args),
        Command::Status(args) => settings_cmd::run_status(&args),
        Command::Policy(args) => settings_cmd::run_policy(&args),
        Command::Cab(args) => cab_cmd::run(&args),
        Command::Counts(args) => counts_cmd::run(&args),
        Command::Reindex(args) => reindex_cmd::run(&args),
        Command::Stack(args) => stack_cmd::run(&args),
        Command::Signatures(args) => signature_cmd::run_signatures(&args),
        Command::SignatureRules(args) => signature_cmd::run_rules(&args),
        Command::Symbols(args) => symbols_cmd::run(&args),
        Command::Retention(args) => retention_cmd::run_retention(&args),
        Command::Prune(args) => retention_cmd::run_prune(&args),
        Command::Quota(args) => quota_cmd::run(&args),
        Command::Bucket(args) => deletion_cmd::run_bucket(&args),
        Command::Backup(args) => maintenance_cmd::run_backup(&args),
        Command::Verify(args) => maintenance_cmd::run_verify(&args),
        Command::Compact(args) => maintenance_cmd::run_compact(&args),
        Command::IndexOne(args) => reindex_cmd::index_one(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cerfs: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by RUST_LOG (default `info`). Also receives the `log` records
/// of fuser.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _already_set = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
