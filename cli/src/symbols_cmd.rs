//! Where symbols come from: the `--symbols-path` / `--symbols-url` / `--symbols-cache`
//! flags of serve, mount, http, reindex and stack, and `cerfs symbols show|set|clear`,
//! which stores them in the database for every process. Flags win over what is stored.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use cerfs_analysis::{stored, AnalysisSettings};
use clap::{Args, Subcommand};

use crate::output::DbArg;

/// Symbol sources on the command line (every command that walks stacks).
#[derive(Debug, Clone, Default, Args)]
pub struct SymbolSources {
    /// A local symbol store in Breakpad's layout (<debug file>/<debug id>/<name>.sym);
    /// repeat for several [default: `cerfs symbols`].
    #[arg(long = "symbols-path", value_name = "DIR")]
    pub symbols_path: Vec<PathBuf>,

    /// A symbol server: Breakpad .sym servers and Microsoft-style servers (PDB and PE
    /// files, converted); repeat for several, asked in order [default: `cerfs symbols`].
    #[arg(long = "symbols-url", value_name = "URL")]
    pub symbols_url: Vec<String>,

    /// Where downloaded and converted symbols are kept [default: DB.symbols beside a
    /// SQLite database; ~/.cache/cerfs/symbols for a PostgreSQL store].
    #[arg(long = "symbols-cache", value_name = "DIR")]
    pub symbols_cache: Option<PathBuf>,
}

impl SymbolSources {
    /// The base settings these flags give (completed from the database later).
    pub fn settings(&self) -> Result<AnalysisSettings> {
        for url in &self.symbols_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("--symbols-url {url:?} is not an http:// or https:// URL");
            }
        }
        Ok(AnalysisSettings {
            symbol_paths: self.symbols_path.clone(),
            symbol_urls: self.symbols_url.clone(),
            symbol_cache: self.symbols_cache.clone(),
            ..AnalysisSettings::default()
        })
    }
}

/// Symbol sources and what to store, for the commands that index (serve, mount, http,
/// reindex).
#[derive(Debug, Clone, Default, Args)]
pub struct SymbolArgs {
    #[command(flatten)]
    pub sources: SymbolSources,

    /// Store every thread's frames, not only the crashing thread's (one row per frame, at
    /// most 128 per thread: testdata's 4-thread mini.dmp stores 17 rows instead of 8).
    #[arg(long = "stack-all-threads")]
    pub stack_all_threads: bool,
}

impl SymbolArgs {
    /// The base settings these flags give (completed from the database later).
    pub fn settings(&self) -> Result<AnalysisSettings> {
        Ok(AnalysisSettings {
            all_threads: self.stack_all_threads,
            ..self.sources.settings()?
        })
    }
}

/// Arguments of `cerfs symbols`.
#[derive(Debug, Args)]
#[command(after_help = "\
Symbols turn a stack's module offsets into functions, files and lines. cerfs looks in
each local store, then in its cache, then asks each server: first for a Breakpad .sym,
then Microsoft-style for the PDB (name.pdb or compressed name.pd_) with the module's PE
beside it (its .pdata holds the x64 unwind data), converted with dump_syms, and cached.
A file no source has is not asked for again for 24 hours. Downloads are bounded (30 s,
512 MiB, 5 redirects); problems are listed in the symbol_fetches view. What is stored
here is used by every process (serve, mount, http, reindex, stack) unless it is given
--symbols-path / --symbols-url / --symbols-cache, which win. A running server picks up
a change at its next batch of cabs.

Examples:
  cerfs symbols set --path /srv/symbols --url https://msdl.microsoft.com/download/symbols
  cerfs reindex --stacks")]
pub struct SymbolsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: SymbolsAction,
}

/// `cerfs symbols` actions.
#[derive(Debug, Subcommand)]
pub enum SymbolsAction {
    /// Print the stored symbol sources.
    Show {
        #[command(flatten)]
        db: DbArg,
    },
    /// Replace the stored sources with these.
    Set {
        #[command(flatten)]
        db: DbArg,
        /// A local Breakpad symbol store; repeat for several.
        #[arg(long = "path", value_name = "DIR")]
        paths: Vec<PathBuf>,
        /// A symbol server; repeat for several.
        #[arg(long = "url", value_name = "URL")]
        urls: Vec<String>,
        /// The cache directory.
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
        /// Store every thread's frames.
        #[arg(long)]
        all_threads: bool,
    },
    /// Remove the stored sources.
    Clear {
        #[command(flatten)]
        db: DbArg,
    },
}

/// Runs `cerfs symbols`.
pub fn run(args: &SymbolsArgs) -> Result<()> {
    match &args.action {
        SymbolsAction::Show { db } => show(db),
        SymbolsAction::Set {
            db,
            paths,
            urls,
            cache,
            all_threads,
        } => {
            let check = SymbolSources {
                symbols_path: paths.clone(),
                symbols_url: urls.clone(),
                symbols_cache: cache.clone(),
            };
            check.settings()?;
            let store = db.admin_store()?;
            let join = |items: Vec<String>| (!items.is_empty()).then(|| items.join("\n"));
            let paths = paths.iter().map(|p| p.display().to_string()).collect();
            for (key, value) in [
                (stored::SYMBOL_PATHS, join(paths)),
                (stored::SYMBOL_URLS, join(urls.clone())),
                (
                    stored::SYMBOL_CACHE,
                    cache.as_ref().map(|c| c.display().to_string()),
                ),
                (stored::ALL_THREADS, all_threads.then(|| "yes".to_owned())),
            ] {
                store
                    .set_server_setting(key, value.as_deref())
                    .context("cannot store the symbol sources")?;
            }
            show(db)
        }
        SymbolsAction::Clear { db } => {
            let store = db.admin_store()?;
            for key in [
                stored::SYMBOL_PATHS,
                stored::SYMBOL_URLS,
                stored::SYMBOL_CACHE,
                stored::ALL_THREADS,
            ] {
                store
                    .set_server_setting(key, None)
                    .context("cannot clear the symbol sources")?;
            }
            show(db)
        }
    }
}

fn show(db: &DbArg) -> Result<()> {
    let store = db.admin_store()?;
    for (label, key) in [
        ("paths", stored::SYMBOL_PATHS),
        ("urls", stored::SYMBOL_URLS),
        ("cache", stored::SYMBOL_CACHE),
        ("all threads", stored::ALL_THREADS),
    ] {
        let value = store
            .server_setting(key)
            .context("cannot read the symbol sources")?
            .unwrap_or_else(|| "-".to_owned());
        println!("{label:<12}{}", value.replace('\n', "\n            "));
    }
    Ok(())
}

/// The full settings for `db`: `flags` completed from what is stored.
pub fn effective(db: &DbArg, flags: &SymbolSources) -> Result<AnalysisSettings> {
    let base = flags.settings()?;
    let store = db.admin_store()?;
    let get = |key: &str| store.server_setting(key).ok().flatten();
    Ok(base.completed_from(&get, db.db.default_symbol_cache()))
}
