//! `cerfs retention show|set|clear` (the stored policy) and `cerfs prune [--dry-run]`
//! (apply it now), over the lifecycle crate.

use anyhow::{bail, Context, Result};
use cerfs_db::RetentionPolicy;
use clap::{Args, Subcommand};

use crate::output::DbArg;

/// Arguments of `cerfs retention`.
#[derive(Debug, Args)]
#[command(after_help = "\
The policy is stored in the database; a running server applies it in the background
(every 10 minutes, in small transactions) and `cerfs prune` applies it now. Pruning
removes a cab's bytes but keeps its row: name, size, sha256, times and index results
stay in SQL (the cabs view shows state 'pruned'); the share no longer lists it. Counters,
hits and logs are never pruned. The rules combine: --max-age prunes every cab older than
it; --keep-first/--keep-last keep that many of each bucket's oldest/newest cabs and
prune the rest; --max-cab-bytes prunes the oldest cabs the per-bucket rules do not keep
until the total fits.

Examples:
  cerfs retention set --max-age 365 --keep-first 3 --keep-last 10 --max-cab-bytes 500G
  cerfs retention show
  cerfs prune --dry-run")]
pub struct RetentionArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: RetentionAction,
}

/// `cerfs retention` actions.
#[derive(Debug, Subcommand)]
pub enum RetentionAction {
    /// Print the stored policy.
    Show {
        #[command(flatten)]
        db: DbArg,
    },
    /// Change the rules given (others stay as they are).
    Set {
        #[command(flatten)]
        db: DbArg,
        /// Prune cabs completed more than this many days ago.
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
        max_age: Option<u32>,
        /// Keep each bucket's first (oldest) N cabs.
        #[arg(long, value_name = "N")]
        keep_first: Option<u32>,
        /// Keep each bucket's last (newest) N cabs.
        #[arg(long, value_name = "N")]
        keep_last: Option<u32>,
        /// Keep all stored cab bytes under SIZE (K, M, G, T: powers of 1024).
        #[arg(long, value_name = "SIZE", value_parser = crate::http_cmd::parse_size)]
        max_cab_bytes: Option<u64>,
    },
    /// Remove the policy: nothing is pruned.
    Clear {
        #[command(flatten)]
        db: DbArg,
    },
}

/// Arguments of `cerfs prune`.
#[derive(Debug, Args)]
#[command(after_help = "\
Applies the stored retention policy (`cerfs retention`) now, beside a running server,
and prints each cab it prunes (subpath, name, size, completed, rule). The space is reused
by new data; `cerfs compact` gives it back to the filesystem.
Exit status: 0 ok (also when nothing is pruned), 1 error, 2 usage error.")]
pub struct PruneArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Only print what would be pruned.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `cerfs retention`.
pub fn run_retention(args: &RetentionArgs) -> Result<()> {
    match &args.action {
        RetentionAction::Show { db } => {
            let store = db.admin_store()?;
            print_policy(&store.retention().context("cannot read the policy")?);
        }
        RetentionAction::Set {
            db,
            max_age,
            keep_first,
            keep_last,
            max_cab_bytes,
        } => {
            if max_age.is_none()
                && keep_first.is_none()
                && keep_last.is_none()
                && max_cab_bytes.is_none()
            {
                bail!(
                    "nothing to set: give --max-age, --keep-first, --keep-last or \
                     --max-cab-bytes (see cerfs retention set --help)"
                );
            }
            let store = db.admin_store()?;
            let mut policy = store.retention().context("cannot read the policy")?;
            policy.max_age_days = max_age.or(policy.max_age_days);
            policy.keep_first = keep_first.or(policy.keep_first);
            policy.keep_last = keep_last.or(policy.keep_last);
            policy.max_cab_bytes = max_cab_bytes.or(policy.max_cab_bytes);
            store
                .set_retention(&policy)
                .context("cannot store the policy")?;
            print_policy(&policy);
        }
        RetentionAction::Clear { db } => {
            let store = db.admin_store()?;
            store
                .set_retention(&RetentionPolicy::default())
                .context("cannot store the policy")?;
            println!("no retention policy: nothing is pruned");
        }
    }
    Ok(())
}

fn print_policy(policy: &RetentionPolicy) {
    if policy.is_empty() {
        println!("no retention policy: nothing is pruned");
        return;
    }
    let show = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    println!(
        "max age (days)      {}",
        show(policy.max_age_days.map(u64::from))
    );
    println!(
        "keep first per bucket {}",
        show(policy.keep_first.map(u64::from))
    );
    println!(
        "keep last per bucket  {}",
        show(policy.keep_last.map(u64::from))
    );
    println!("max cab bytes       {}", show(policy.max_cab_bytes));
}

/// Runs `cerfs prune`.
pub fn run_prune(args: &PruneArgs) -> Result<()> {
    let store = args.db.admin_store()?;
    let policy = store.retention().context("cannot read the policy")?;
    if policy.is_empty() {
        println!("no retention policy (cerfs retention set ...): nothing to prune");
        return Ok(());
    }
    let bar = crate::progress::items(
        if args.dry_run {
            "would prune"
        } else {
            "pruning"
        },
        0,
    );
    let summary = cerfs_lifecycle::prune(
        &*store,
        args.dry_run,
        &mut |c| {
            bar.inc(1);
            bar.suspend(|| {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    crate::output::visible(&c.cab.subpath),
                    crate::output::visible(&c.cab.name),
                    c.cab.size,
                    c.cab.created_at,
                    c.reason.as_str()
                );
            });
        },
        &|| true,
    )
    .context("pruning failed (what was pruned so far stays pruned; run it again)")?;
    bar.finish_and_clear();
    eprintln!(
        "{} {} cabs ({} bytes){}",
        if args.dry_run {
            "would prune"
        } else {
            "pruned"
        },
        summary.cabs,
        summary.bytes,
        if args.dry_run {
            ""
        } else {
            "; their rows stay in SQL with state 'pruned'"
        }
    );
    Ok(())
}
