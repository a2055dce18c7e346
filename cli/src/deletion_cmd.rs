//! `cerfs cab delete` and `cerfs bucket delete`: deletions for PII requests, confirmed
//! (unless `--yes`), recorded in the audit (the `deletions` view), and carried out in small
//! transactions beside a running server. Over SMB and HTTP nothing changes: clients still
//! cannot delete.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{anyhow, bail, Context, Result};
use cerfs_db::{Audit, LifecycleStore, Removal};
use clap::{Args, Subcommand};

use crate::output::{visible, DbArg};
use crate::settings_cmd::normalize;

/// Arguments of `cerfs bucket`.
#[derive(Debug, Args)]
#[command(after_help = "\
`delete` removes everything of one bucket: its cabs (bytes and rows, index results too),
its hits.log, counters, status.txt, CER V2 reports and folders; crash.log lines naming it
are blanked in place (machine and user are personal data; the log's offsets stay). The
deletion is recorded in the `deletions` view (who, when, what, why). A bucket reported
again afterwards starts afresh. If it is interrupted, run it again: it goes on.

Example:
  cerfs bucket delete 'App/1.0/app.exe/1.0/0000abcd' --reason 'PII request #4711'")]
pub struct BucketArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: BucketAction,
}

/// `cerfs bucket` actions.
#[derive(Debug, Subcommand)]
pub enum BucketAction {
    /// Delete a bucket and everything it holds.
    Delete {
        #[command(flatten)]
        db: DbArg,
        /// The bucket's subpath (`/` or `\` between levels).
        #[arg(value_name = "SUBPATH")]
        subpath: String,
        /// Why (a ticket number, a PII request); recorded in the audit.
        #[arg(long, value_name = "TEXT", default_value = "not given")]
        reason: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Who runs the command, for the audit: the user behind sudo if any, and the uid.
fn who() -> String {
    let name = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".to_owned());
    #[cfg(unix)]
    {
        let uid = std::fs::metadata("/proc/self").map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid()
        });
        if let Ok(uid) = uid {
            return format!("{name} (uid {uid})");
        }
    }
    name
}

/// Asks "type yes" on the terminal; refuses without a terminal.
fn confirm(question: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{question}: refusing without --yes (standard input is not a terminal)");
    }
    eprint!("{question}\ntype yes to go on: ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    if answer.trim() != "yes" {
        bail!("not confirmed: nothing deleted");
    }
    Ok(())
}

/// Finishes removals: the bytes go in small transactions, with a progress bar.
fn sweep(store: &dyn LifecycleStore) -> Result<()> {
    let bar = crate::progress::bytes("deleting", 0);
    cerfs_lifecycle::sweep_all(store, &mut |chunks| bar.inc(chunks * 65536), &|| true)
        .context("deleting the bytes failed: run the command again to finish")?;
    bar.finish_and_clear();
    Ok(())
}

/// `cerfs cab delete SUBPATH/NAME`.
pub fn delete_cab(db: &DbArg, path: &str, reason: &str, yes: bool) -> Result<()> {
    let (sub, name) = path
        .trim_end_matches(['/', '\\'])
        .rsplit_once(['/', '\\'])
        .ok_or_else(|| anyhow!("{path:?} is not SUBPATH/NAME (for example blue/report.cab)"))?;
    let sub = normalize(sub)?;
    let store = db.admin_store()?;
    let Some((cab, removal)) = store
        .find_cab(&sub, name)
        .context("cannot look up the cab")?
    else {
        bail!(
            "no complete cab {:?} in bucket {:?}: list them with `cerfs query \"SELECT name, \
             state FROM cabs WHERE subpath = '{}'\"`",
            visible(name),
            visible(&sub),
            sub.replace('\'', "''")
        );
    };
    if removal == Some(Removal::Deleted) {
        sweep(&*store)?;
        println!("{sub}\\{name} was already deleted ({})", cab.created_at);
        return Ok(());
    }
    confirm(
        &format!(
            "delete cab {}\\{} ({} bytes, sha256 {})",
            visible(&sub),
            visible(name),
            cab.size,
            cab.sha256
        ),
        yes,
    )?;
    let audit = Audit {
        by: who(),
        reason: reason.to_owned(),
    };
    // A pruned cab's row goes too: a deletion leaves nothing but the audit.
    if !store
        .remove_cab(cab.ino, Removal::Deleted, Some(&audit))
        .context("cannot delete the cab")?
    {
        bail!("the cab changed meanwhile: run the command again");
    }
    sweep(&*store)?;
    println!(
        "deleted {}\\{} ({} bytes)",
        visible(&sub),
        visible(name),
        cab.size
    );
    Ok(())
}

/// Runs `cerfs bucket`.
pub fn run_bucket(args: &BucketArgs) -> Result<()> {
    let BucketAction::Delete {
        db,
        subpath,
        reason,
        yes,
    } = &args.action;
    let sub = normalize(subpath)?;
    let store = db.admin_store()?;
    let Some(contents) = store
        .bucket_contents(&sub)
        .context("cannot look up the bucket")?
    else {
        bail!(
            "no bucket {:?}: list them with `cerfs buckets`",
            visible(&sub)
        );
    };
    confirm(
        &format!("delete bucket {}: {}", visible(&sub), contents.summary()),
        *yes,
    )?;
    let audit = Audit {
        by: who(),
        reason: reason.clone(),
    };
    store
        .delete_bucket(&sub, &audit)
        .context("cannot delete the bucket")?;
    sweep(&*store)?;
    println!("deleted bucket {}: {}", visible(&sub), contents.summary());
    Ok(())
}
