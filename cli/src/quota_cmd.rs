//! `cerfs quota show|set|clear`: the stored limits new cabs must fit (a largest store and
//! a free-space floor), used by a server not given `--max-store` / `--min-free`.

use anyhow::{bail, Context, Result};
use cerfs_fs_core::{MAX_STORE_SETTING, MIN_FREE_SETTING};
use clap::{Args, Subcommand};

use crate::output::DbArg;

/// Arguments of `cerfs quota`.
#[derive(Debug, Args)]
#[command(after_help = "\
When the store reaches its maximum, or the free space on the database's filesystem falls
below the floor, new cabs are refused (over SMB as a full disk, over HTTP with 507; the
report itself is still counted) while count.txt, the logs, the settings and reads keep
working; the server logs it. Cabs are accepted again as soon as space returns (prune,
delete, a bigger disk), without a restart. Without a floor set, it is 1% of the
filesystem, at most 1 GiB. `--max-store` / `--min-free` on serve, mount and http take
precedence over what is stored here.

Examples:
  cerfs quota set --max-store 800G --min-free 20G
  cerfs quota show")]
pub struct QuotaArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: QuotaAction,
}

/// `cerfs quota` actions.
#[derive(Debug, Subcommand)]
pub enum QuotaAction {
    /// Print the stored limits and the store's size now.
    Show {
        #[command(flatten)]
        db: DbArg,
    },
    /// Store limits (the ones given; others stay).
    Set {
        #[command(flatten)]
        db: DbArg,
        /// Largest store (bytes of data in the database; K, M, G, T: powers of 1024).
        #[arg(long, value_name = "SIZE", value_parser = crate::http_cmd::parse_size)]
        max_store: Option<u64>,
        /// Free space to leave on the database's filesystem.
        #[arg(long, value_name = "SIZE", value_parser = crate::http_cmd::parse_size)]
        min_free: Option<u64>,
    },
    /// Remove the stored limits (no maximum; the default floor).
    Clear {
        #[command(flatten)]
        db: DbArg,
    },
}

/// Runs `cerfs quota`.
pub fn run(args: &QuotaArgs) -> Result<()> {
    match &args.action {
        QuotaAction::Show { db } => show(db),
        QuotaAction::Set {
            db,
            max_store,
            min_free,
        } => {
            if max_store.is_none() && min_free.is_none() {
                bail!("nothing to set: give --max-store or --min-free");
            }
            let store = db.admin_store()?;
            for (key, value) in [(MAX_STORE_SETTING, max_store), (MIN_FREE_SETTING, min_free)] {
                if let Some(value) = value {
                    store
                        .set_server_setting(key, Some(&value.to_string()))
                        .context("cannot store the limit")?;
                }
            }
            show(db)
        }
        QuotaAction::Clear { db } => {
            let store = db.admin_store()?;
            for key in [MAX_STORE_SETTING, MIN_FREE_SETTING] {
                store
                    .set_server_setting(key, None)
                    .context("cannot clear the limit")?;
            }
            show(db)
        }
    }
}

fn show(db: &DbArg) -> Result<()> {
    let store = db.admin_store()?;
    let get = |key| -> Result<String> {
        Ok(store
            .server_setting(key)
            .context("cannot read the limits")?
            .unwrap_or_else(|| "-".to_owned()))
    };
    let usage = store.usage().context("cannot measure the store")?;
    let known = |v: Option<u64>| v.map_or_else(|| "unknown".to_owned(), |v| v.to_string());
    println!("max store (bytes)           {}", get(MAX_STORE_SETTING)?);
    println!("min free (bytes)            {}", get(MIN_FREE_SETTING)?);
    println!("store holds (bytes)         {}", usage.used_bytes);
    println!("free inside the file        {}", usage.free_bytes);
    println!("free on its filesystem      {}", known(usage.fs_available));
    Ok(())
}
