//! `cerfs reindex`: send cabs back to the cab indexer and index them now; and the hidden
//! `cerfs index-one`, the bounded worker process the indexer runs for each batch of cabs.

use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context, Result};
use cerfs_db::{IndexDb, IndexStatus, ReindexFilter};
use cerfs_index::{index_pending, Analysis, IndexerConfig, Worker};
use clap::Args;

use crate::output::DbArg;
use crate::settings_cmd::normalize;

/// Arguments of `cerfs reindex`.
#[derive(Debug, Args)]
#[command(after_help = "\
Indexes the selected cabs (and any not indexed yet) in the foreground, each in a child
process bounded in memory and time, and prints one line per cab: its status (indexed,
partial, failed), its bucket and name, and what went wrong. A running `cerfs mount` or
`cerfs serve` would index them too; with --queue-only it is left to do so.
Exit status: 0 ok (even if some cabs could not be indexed), 1 error, 2 usage error.

Examples:
  cerfs reindex
  cerfs reindex --bucket blue
  cerfs reindex --failed
  cerfs reindex --stacks --symbols-url https://msdl.microsoft.com/download/symbols")]
pub struct ReindexArgs {
    #[command(flatten)]
    pub db: DbArg,

    /// Only the cabs of this bucket (its subpath).
    #[arg(long, value_name = "SUBPATH")]
    pub bucket: Option<String>,

    /// Only the cabs whose last indexing failed or was partial.
    #[arg(long)]
    pub failed: bool,

    /// Only the cabs holding a minidump: walk their stacks and sign them again (after
    /// symbols or signature rules changed).
    #[arg(long)]
    pub stacks: bool,

    /// Only the cabs with a minidump of this signature (implies --stacks).
    #[arg(long, value_name = "SIGNATURE")]
    pub signature: Option<String>,

    /// Only queue them, for the running server's indexer.
    #[arg(long)]
    pub queue_only: bool,

    #[command(flatten)]
    pub symbols: crate::symbols_cmd::SymbolArgs,
}

/// Runs `cerfs reindex`.
pub fn run(args: &ReindexArgs) -> Result<()> {
    let filter = ReindexFilter {
        bucket: args.bucket.as_deref().map(normalize).transpose()?,
        failed_only: args.failed,
        stacks: args.stacks || args.signature.is_some(),
        signature: args.signature.clone(),
    };
    let mut db = IndexDb::open_at(&args.db.db)
        .with_context(|| format!("cannot open the store {}", args.db.db))?;
    let queued = db
        .request_reindex(&filter)
        .context("cannot queue the cabs")?;
    eprintln!("queued {queued} cabs for indexing");
    if args.queue_only {
        return Ok(());
    }
    let worker = Worker::current_exe().context("cannot find the cerfs executable")?;
    let config = IndexerConfig {
        analysis: Analysis::On(args.symbols.settings()?),
        ..IndexerConfig::new(worker)
    };
    let bar = crate::progress::items("indexing", queued as u64);
    let summary = index_pending(
        &mut db,
        &config,
        &AtomicBool::new(false),
        &mut |cab, status, why| {
            bar.inc(1);
            let status = match status {
                IndexStatus::Indexed => "indexed",
                IndexStatus::Partial => "partial",
                IndexStatus::Failed => "failed",
            };
            bar.suspend(|| match why {
                Some(why) => println!("{status}\t{}\\{}\t{why}", cab.subpath, cab.name),
                None => println!("{status}\t{}\\{}", cab.subpath, cab.name),
            });
        },
    );
    bar.finish_and_clear();
    let summary = match summary {
        Ok(s) => s,
        Err(e) => bail!("indexing stopped: {e}"),
    };
    if summary.led_elsewhere {
        eprintln!(
            "another cerfs head's indexer is indexing this store: the cabs are queued for it \
             (follow it with: cerfs query --db URL \"SELECT index_status, count(*) FROM cabs \
             GROUP BY 1\")"
        );
        return Ok(());
    }
    eprintln!(
        "indexed {} cabs: {} in full, {} in part, {} not at all (they stay stored intact)",
        summary.total(),
        summary.indexed,
        summary.partial,
        summary.failed
    );
    Ok(())
}

/// Arguments of the hidden `cerfs index-one`.
#[derive(Debug, Args)]
pub struct IndexOneArgs {}

/// Runs the indexer's worker: a job on stdin, the answer on stdout. Exits the process with
/// the worker's status.
pub fn index_one(_args: &IndexOneArgs) -> Result<()> {
    let code = cerfs_index::worker_main();
    std::process::exit(code)
}
