//! `cerfs counts reset`: set a bucket's counters (count.txt) back to zero, through fs-core.

use anyhow::{anyhow, Result};
use cerfs_fs_core::FsError;
use clap::{Args, Subcommand};

use crate::output::DbArg;
use crate::settings_cmd::normalize;

/// Arguments of `cerfs counts`.
#[derive(Debug, Args)]
#[command(after_help = "\
Clients compare Cabs Gathered with Crashes per bucket: after a reset, a bucket that had
reached its cap collects cabs again (from the next client read, no remount needed).
Exit status: 0 ok, 1 error (no such bucket, no database), 2 usage error.

Example:
  cerfs counts reset 'App/1.0/app.exe/1.0/0000abcd'")]
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
}

/// Runs `cerfs counts`.
pub fn run(args: &CountsArgs) -> Result<()> {
    match &args.action {
        CountsAction::Reset { db, subpath } => {
            let sub = normalize(subpath)?;
            let fs = db.admin_fs()?;
            let old = fs.reset_counts(&sub).map_err(|e| match e {
                FsError::NotFound => anyhow!(
                    "bucket {sub:?} has no count.txt: list the buckets with `cerfs buckets`"
                ),
                other => anyhow::Error::new(other).context(format!("cannot reset {sub:?}")),
            })?;
            println!(
                "counts\\{sub}\\count.txt reset (was Cabs Gathered={}, Total Hits={})",
                old.cabs_gathered, old.total_hits
            );
            Ok(())
        }
    }
}
