//! `cerfs`: serves a Microsoft Corporate Error Reporting file share backed by SQLite.
//!
//! This file is glue only: argument parsing, logging setup, exit codes. Each subcommand
//! lives in its own module.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod mount_cmd;

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

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Mount a cerfs database as a FUSE filesystem and serve it until SIGINT or SIGTERM.
    Mount(mount_cmd::MountArgs),
}

fn main() -> ExitCode {
    // Usage errors exit with 2 (and --help/--version with 0) inside parse().
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Mount(args) => mount_cmd::run(&args),
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
