//! `cerfs backup`, `cerfs verify` and `cerfs compact`: keeping the database file itself
//! safe and small, each with a progress bar on a terminal.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cerfs_db::{CabCheck, LifecycleStore, SqliteStore};
use clap::Args;

use crate::output::{visible, DbArg};

/// What backs up a PostgreSQL store instead of `cerfs backup`.
const BACKUP_ON_POSTGRES: &str = "back it up with PostgreSQL's own tools, pg_basebackup with \
    WAL archiving or pg_dump -Fc (docs/scale-out.md, Running PostgreSQL for cerfs)";

/// Arguments of `cerfs backup`.
#[derive(Debug, Args)]
#[command(after_help = "\
Writes a consistent copy of the whole database (one SQLite snapshot, `VACUUM INTO`) while
a server runs and clients keep reporting; the copy is compact (no free pages) and is
written under DEST.partial, renamed to DEST when complete and synced, so DEST is whole or
absent. Serve the copy with `cerfs serve --db DEST` (docs/operations.md: restore).
A PostgreSQL store is backed up with PostgreSQL's tools (docs/scale-out.md).

Example:
  cerfs backup --db /var/lib/cerfs/cer.db /backup/cer-$(date +%F).db")]
pub struct BackupArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// The new file to write (must not exist).
    #[arg(value_name = "DEST")]
    pub dest: PathBuf,
}

/// Arguments of `cerfs verify`.
#[derive(Debug, Args)]
#[command(after_help = "\
Runs SQLite's integrity_check, and quick_check of the cab database (<db>-cabs) unless a
server runs (a long check would hold up its uploads), then re-hashes every stored cab
against the sha256 recorded at upload (streamed; memory stays bounded) and records the
result (cabs view: verified_at, corrupt). Lists what is corrupt. A running server does the
same slowly in the background. On a PostgreSQL store: every cab's hash and size (the
database's own structure is PostgreSQL's to check, with amcheck). Exit status: 0 all
sound, 1 something corrupt (or an error), 2 usage.")]
pub struct VerifyArgs {
    #[command(flatten)]
    pub db: DbArg,
}

/// Arguments of `cerfs compact`.
#[derive(Debug, Args)]
#[command(after_help = "\
Pruned and deleted bytes leave free pages inside the store's two files (the database
and its cab database, DB-cabs), which new data reuses. `compact` gives them back to the
filesystem, 4 MiB at a time beside a running server. A store created by an older cerfs
cannot be compacted in steps: stop the server and run `cerfs compact --full` once (it
rewrites both files and needs as much free disk as the store's size; afterwards steps
work). A PostgreSQL store needs no compacting from cerfs: autovacuum reuses the space,
and VACUUM FULL (by its administrator) gives it back.")]
pub struct CompactArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Rewrite both files whole (VACUUM); the server must be stopped.
    #[arg(long)]
    pub full: bool,
}

/// Runs `cerfs backup`.
pub fn run_backup(args: &BackupArgs) -> Result<()> {
    if args.dest.exists() {
        bail!(
            "{} exists: give a new file name (a backup never overwrites)",
            args.dest.display()
        );
    }
    let store = args.db.sqlite_store(BACKUP_ON_POSTGRES)?;
    let total = store.usage().map(|u| u.used_bytes).unwrap_or(0);
    let bar = crate::progress::bytes("backing up", total);
    let partial = cerfs_db::backup_partial_path(&args.dest);
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (bar, done, partial) = (bar.clone(), Arc::clone(&done), partial.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok(meta) = std::fs::metadata(&partial) {
                    bar.set_position(meta.len());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let result = store.backup_to(&args.dest);
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    bar.finish_and_clear();
    result.with_context(|| {
        format!(
            "backup to {} failed (nothing was left there)",
            args.dest.display()
        )
    })?;
    let size = std::fs::metadata(&args.dest).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up {} to {} ({size} bytes)",
        store.path().display(),
        args.dest.display()
    );
    Ok(())
}

/// Runs `cerfs verify`; an error when anything is corrupt.
pub fn run_verify(args: &VerifyArgs) -> Result<()> {
    let store = args.db.admin_store()?;
    let integrity = store
        .integrity()
        .context("cannot run the integrity check")?;
    let cab_file = store
        .cab_file_integrity()
        .context("cannot check the cab database")?;
    let total = stored_bytes(&args.db)?;
    let bar = crate::progress::bytes("verifying", total);
    let summary = cerfs_lifecycle::verify(
        &*store,
        &mut |cab, check| {
            bar.inc(cab.size);
            if let CabCheck::Corrupt(why) = check {
                bar.suspend(|| {
                    println!(
                        "corrupt\t{}\t{}\t{}",
                        visible(&cab.subpath),
                        visible(&cab.name),
                        visible(why)
                    );
                });
            }
        },
        &|| true,
    )
    .context("verify failed")?;
    bar.finish_and_clear();
    if integrity != "ok" {
        println!("integrity_check:\n{}", visible(&integrity));
    }
    let cab_file_sound = cab_file.as_deref().is_none_or(|c| c == "ok");
    if !cab_file_sound {
        println!(
            "cab database quick_check:\n{}",
            visible(cab_file.as_deref().unwrap_or_default())
        );
    }
    eprintln!(
        "verified {} cabs ({} bytes): {} corrupt; integrity_check: {}; cab database: {}",
        summary.cabs,
        summary.bytes,
        summary.corrupt.len(),
        if integrity == "ok" { "ok" } else { "FAILED" },
        match cab_file.as_deref() {
            Some("ok") => "ok",
            Some(_) => "FAILED",
            None if args.db.db.sqlite_path().is_none() => "none (PostgreSQL holds every byte)",
            None => "structure not checked while a server runs (its bytes are, by the cab hashes)",
        }
    );
    if integrity != "ok" || !cab_file_sound || !summary.corrupt.is_empty() {
        bail!(
            "the database is damaged: restore the cabs listed from a backup, or restore the \
             whole database (docs/operations.md)"
        );
    }
    Ok(())
}

/// Bytes of the stored cabs, for the progress bar.
fn stored_bytes(db: &DbArg) -> Result<u64> {
    struct Sum(u64);
    impl cerfs_db::RowSink for Sum {
        fn columns(&mut self, _: &[String]) -> std::io::Result<()> {
            Ok(())
        }
        fn row(&mut self, v: &[cerfs_db::Value]) -> std::io::Result<()> {
            if let Some(cerfs_db::Value::Integer(n)) = v.first() {
                self.0 = u64::try_from(*n).unwrap_or(0);
            }
            Ok(())
        }
    }
    let mut sum = Sum(0);
    db.query_db()?
        .query(
            "SELECT coalesce(sum(size), 0) FROM cabs WHERE state = 'complete'",
            &[],
            &mut sum,
        )
        .context("cannot size the cabs")?;
    Ok(sum.0)
}

/// Runs `cerfs compact`.
pub fn run_compact(args: &CompactArgs) -> Result<()> {
    let instead = "PostgreSQL's autovacuum reuses freed space; VACUUM FULL of the chunks \
                   table gives it back to the filesystem (it locks the table: not while heads serve)";
    if args.full {
        return compact_full(args.db.sqlite_file(instead)?);
    }
    let store = args.db.sqlite_store(instead)?;
    let before = store.usage().context("cannot measure the store")?;
    let bar = crate::progress::bytes("compacting", before.free_bytes);
    let mut freed = 0u64;
    loop {
        match store
            .release_free_space(4 << 20)
            .context("compacting failed (what was freed so far stays freed)")?
        {
            None => {
                bar.finish_and_clear();
                bail!(
                    "{} was created by an older cerfs and cannot be compacted in steps: stop \
                     the server and run `cerfs compact --full --db {0}` once",
                    args.db.db
                );
            }
            Some(0) => break,
            Some(bytes) => {
                freed += bytes;
                bar.inc(bytes);
            }
        }
    }
    bar.finish_and_clear();
    let after = store.usage().context("cannot measure the store")?;
    println!(
        "gave {} bytes back to the filesystem; the store holds {} bytes",
        freed, after.used_bytes
    );
    Ok(())
}

fn compact_full(db: &Path) -> Result<()> {
    let store = SqliteStore::open_exclusive(db)
        .with_context(|| format!("cannot open {} alone", db.display()))?;
    let bar = crate::progress::bytes("rewriting", 0);
    bar.enable_steady_tick(Duration::from_millis(200));
    let result = store.vacuum_full();
    bar.finish_and_clear();
    result.context("VACUUM failed (the file it was rewriting is unchanged)")?;
    let usage = store.usage().context("cannot measure the store")?;
    println!(
        "rewrote {}: it holds {} bytes; later compactions run in steps",
        db.display(),
        usage.used_bytes
    );
    Ok(())
}
