//! `cerfs signature-rules show|set|reset` (the rules signatures are built with, stored in
//! the database) and `cerfs signatures` (crashes grouped by signature).

use std::path::PathBuf;

use anyhow::{Context, Result};
use cerfs_analysis::{stored, SignatureRules, Signer};
use cerfs_db::Value;
use clap::{Args, Subcommand};

use crate::output::{DbArg, Format};

/// Arguments of `cerfs signature-rules`.
#[derive(Debug, Args)]
#[command(after_help = "\
A crash's signature comes from its crashing thread, top frame first (at most 40 are
looked at; inline frames count). A frame is its function without parameters, or
module@0xoffset without symbols. Frames matching an IRRELEVANT rule are skipped while
nothing is kept (they say an exception happened, not where); a frame matching a PREFIX
rule is kept and the next one is looked at too (allocators, copies, locks); the first
other frame is kept and ends the signature. At most --max-frames frames are joined with
' | ', and a signature is at most 255 characters. Rules are regular expressions matched
against the whole frame, one per line, `#` comments. The defaults are printed by `show`
when nothing is stored. After a change: cerfs reindex --stacks.

Examples:
  cerfs signature-rules show --list prefix > prefix.txt
  cerfs signature-rules set --prefix-file prefix.txt
  cerfs signature-rules reset")]
pub struct SignatureRulesArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: RulesAction,
}

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuleList {
    /// Frames skipped at the top.
    Irrelevant,
    /// Frames kept before going on.
    Prefix,
}

/// `cerfs signature-rules` actions.
#[derive(Debug, Subcommand)]
pub enum RulesAction {
    /// Print the rules in use (stored, else the defaults).
    Show {
        #[command(flatten)]
        db: DbArg,
        /// Only this list, exactly as a file for `set` would hold it.
        #[arg(long, value_enum)]
        list: Option<RuleList>,
    },
    /// Store rules (the lists given; others stay).
    Set {
        #[command(flatten)]
        db: DbArg,
        /// A file of irrelevant-frame rules.
        #[arg(long, value_name = "FILE")]
        irrelevant_file: Option<PathBuf>,
        /// A file of prefix-frame rules.
        #[arg(long, value_name = "FILE")]
        prefix_file: Option<PathBuf>,
        /// Frames joined at most.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=40))]
        max_frames: Option<u64>,
    },
    /// Go back to the defaults.
    Reset {
        #[command(flatten)]
        db: DbArg,
    },
}

fn current(db: &DbArg) -> Result<SignatureRules> {
    let store = db.admin_store()?;
    let get = |key: &str| store.server_setting(key).ok().flatten();
    let defaults = SignatureRules::default();
    Ok(SignatureRules {
        irrelevant: get(stored::RULES_IRRELEVANT).unwrap_or(defaults.irrelevant),
        prefix: get(stored::RULES_PREFIX).unwrap_or(defaults.prefix),
        max_frames: get(stored::RULES_MAX_FRAMES)
            .and_then(|v| v.parse().ok())
            .unwrap_or(defaults.max_frames),
    })
}

/// Runs `cerfs signature-rules`.
pub fn run_rules(args: &SignatureRulesArgs) -> Result<()> {
    match &args.action {
        RulesAction::Show { db, list } => {
            let rules = current(db)?;
            match list {
                Some(RuleList::Irrelevant) => print!("{}", rules.irrelevant),
                Some(RuleList::Prefix) => print!("{}", rules.prefix),
                None => {
                    println!("# max frames joined: {}", rules.max_frames);
                    println!("# --- irrelevant ---\n{}", rules.irrelevant.trim_end());
                    println!("# --- prefix ---\n{}", rules.prefix.trim_end());
                }
            }
            Ok(())
        }
        RulesAction::Set {
            db,
            irrelevant_file,
            prefix_file,
            max_frames,
        } => {
            let mut rules = current(db)?;
            let read = |path: &PathBuf| {
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))
            };
            if let Some(path) = irrelevant_file {
                rules.irrelevant = read(path)?;
            }
            if let Some(path) = prefix_file {
                rules.prefix = read(path)?;
            }
            if let Some(n) = max_frames {
                rules.max_frames = usize::try_from(*n).unwrap_or(8);
            }
            // Refused before anything is stored: a bad rule names its list and line.
            Signer::new(&rules).context("the rules are not stored")?;
            let store = db.admin_store()?;
            for (key, value) in [
                (stored::RULES_IRRELEVANT, rules.irrelevant.clone()),
                (stored::RULES_PREFIX, rules.prefix.clone()),
                (stored::RULES_MAX_FRAMES, rules.max_frames.to_string()),
            ] {
                store
                    .set_server_setting(key, Some(&value))
                    .context("cannot store the rules")?;
            }
            eprintln!("stored; sign the stored crashes again with: cerfs reindex --stacks");
            Ok(())
        }
        RulesAction::Reset { db } => {
            let store = db.admin_store()?;
            for key in [
                stored::RULES_IRRELEVANT,
                stored::RULES_PREFIX,
                stored::RULES_MAX_FRAMES,
            ] {
                store
                    .set_server_setting(key, None)
                    .context("cannot reset the rules")?;
            }
            eprintln!("back to the default rules; sign again with: cerfs reindex --stacks");
            Ok(())
        }
    }
}

/// Arguments of `cerfs signatures`.
#[derive(Debug, Args)]
#[command(after_help = "\
Crashes grouped by signature (see `cerfs signature-rules`), most crashes first: how many
dumps, in how many buckets, first and last received. A bucket may hold several
signatures and a signature may span buckets (SQL: the bucket_signatures view).

Examples:
  cerfs signatures --top 20 --since 2026-11-25
  cerfs signatures --format csv > signatures.csv")]
pub struct SignaturesArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Only the first N.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub top: u64,
    /// Only crashes received since DATE (UTC): YYYY-MM-DD, a date and time, or 7d / 12h
    /// before now.
    #[arg(long, value_name = "DATE", value_parser = crate::query_cmd::parse_since)]
    pub since: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Runs `cerfs signatures`.
pub fn run_signatures(args: &SignaturesArgs) -> Result<()> {
    let db = args.db.query_db()?;
    crate::query_cmd::print(
        &db,
        "SELECT signature, count(*) AS crashes, count(DISTINCT bucket_id) AS buckets, \
                min(received_at) AS first_seen, max(received_at) AS last_seen \
         FROM stacks WHERE ?1 IS NULL OR received_at >= ?1 \
         GROUP BY signature ORDER BY crashes DESC, signature LIMIT ?2",
        &[
            args.since.clone().map_or(Value::Null, Value::Text),
            Value::Integer(i64::try_from(args.top).unwrap_or(i64::MAX)),
        ],
        args.format,
    )
}
