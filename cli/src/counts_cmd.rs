//! `cerfs counts reset|set`: set a bucket's counters (count.txt), through fs-core. Clients
//! can only add one report per write; this is the admin's way to correct them.

use anyhow::{anyhow, Result};
use cerfs_db::Counts;
use cerfs_fs_core::FsError;
use clap::{Args, Subcommand};

use crate::output::DbArg;
use crate::settings_cmd::normalize;

/// Arguments of `cerfs counts`.
#[derive(Debug, Args)]
#[command(after_help = "\
Clients compare Cabs Gathered with Crashes per bucket: after a reset, a bucket that had
reached its cap collects cabs again (from the next client read, no remount needed).
Clients themselves can only add one report per write of count.txt; `set` is the admin's
way to give a bucket any counters (say, the history of a share moved to cerfs).
Exit status: 0 ok, 1 error (no such bucket, no database), 2 usage error.

Examples:
  cerfs counts reset 'App/1.0/app.exe/1.0/0000abcd'
  cerfs counts set blue --cabs 5 --hits 10")]
pub struct CountsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: CountsAction,
}

/// `cerfs counts` actions.
#[derive(Debug, Subcommand)]
pub enum CountsAction {
    /// Set a bucket's Cabs Gathered and Total Hits to 0; prints what they were.
    Reset {
        #[command(flatten)]
        db: DbArg,
        /// The bucket's subpath (`/` or `\` between levels).
        #[arg(value_name = "SUBPATH")]
        subpath: String,
    },
    /// Set a bucket's Cabs Gathered and Total Hits; prints what they were.
    Set {
        #[command(flatten)]
        db: DbArg,
        /// The bucket's subpath (`/` or `\` between levels).
        #[arg(value_name = "SUBPATH")]
        subpath: String,
        /// Cabs Gathered.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=i64::MAX as u64))]
        cabs: u64,
        /// Total Hits.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=i64::MAX as u64))]
        hits: u64,
    },
}

/// Runs `cerfs counts`.
pub fn run(args: &CountsArgs) -> Result<()> {
    let (db, subpath, counts, done) = match &args.action {
        CountsAction::Reset { db, subpath } => (db, subpath, Counts::default(), "reset"),
        CountsAction::Set {
            db,
            subpath,
            cabs,
            hits,
        } => (
            db,
            subpath,
            Counts {
                cabs_gathered: *cabs,
                total_hits: *hits,
            },
            "set",
        ),
    };
    let sub = normalize(subpath)?;
    let fs = db.admin_fs()?;
    let old = fs.set_counts(&sub, counts).map_err(|e| match e {
        FsError::NotFound => {
            anyhow!("bucket {sub:?} has no count.txt: list the buckets with `cerfs buckets`")
        }
        other => anyhow::Error::new(other).context(format!("cannot change {sub:?}")),
    })?;
    println!(
        "counts\\{sub}\\count.txt {done} to Cabs Gathered={}, Total Hits={} (was {}, {})",
        counts.cabs_gathered, counts.total_hits, old.cabs_gathered, old.total_hits
    );
    Ok(())
}
