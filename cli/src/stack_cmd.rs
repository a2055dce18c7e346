//! `cerfs stack SUBPATH/NAME`: a stored minidump's stack, walked now with the symbols
//! configured, printed as `minidump-stackwalk` prints it.

use std::io::Read;

use anyhow::{anyhow, bail, Context, Result};
use cerfs_db::{CabReader, RowSink, Value};
use clap::Args;

use crate::output::{visible, DbArg};
use crate::settings_cmd::normalize;
use crate::symbols_cmd::SymbolSources;

/// Largest minidump read.
const MAX_DUMP: u64 = 256 << 20;

/// Arguments of `cerfs stack`.
#[derive(Debug, Args)]
#[command(after_help = "\
Prints the crash reason and address, then the crashing thread's frames as
`N  module!function [file : line + 0xoffset]` with the registers and how each frame was
found, exactly as rust-minidump's minidump-stackwalk prints them; --all-threads adds
every thread and the module lists. Symbols come from --symbols-path / --symbols-url, else
from `cerfs symbols`.

Examples:
  cerfs stack 'App/1.0/app.exe/1.0/0000abcd/report.cab'
  cerfs stack blue/mini.cab --member memory.dmp --all-threads")]
pub struct StackArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// The bucket's subpath and the cab's name.
    #[arg(value_name = "SUBPATH/NAME")]
    pub path: String,
    /// The minidump in the cab [default: the first one].
    #[arg(long, value_name = "M")]
    pub member: Option<String>,
    /// Every thread, and the loaded and unloaded modules.
    #[arg(long)]
    pub all_threads: bool,
    #[command(flatten)]
    pub symbols: SymbolSources,
}

struct CabId(Option<i64>);

impl RowSink for CabId {
    fn columns(&mut self, _: &[String]) -> std::io::Result<()> {
        Ok(())
    }
    fn row(&mut self, v: &[Value]) -> std::io::Result<()> {
        if let Some(Value::Integer(id)) = v.first() {
            self.0 = Some(*id);
        }
        Ok(())
    }
}

fn is_dump(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".dmp") || lower.ends_with(".mdmp")
}

/// Runs `cerfs stack`.
pub fn run(args: &StackArgs) -> Result<()> {
    let (sub, name) = args
        .path
        .trim_end_matches(['/', '\\'])
        .rsplit_once(['/', '\\'])
        .ok_or_else(|| {
            anyhow!(
                "{:?} is not SUBPATH/NAME (for example blue/report.cab)",
                args.path
            )
        })?;
    let sub = normalize(sub)?;
    let mut id = CabId(None);
    args.db
        .query_db()?
        .query(
            "SELECT cab_id FROM cabs WHERE subpath = ?1 AND name = ?2 AND state = 'complete'",
            &[Value::Text(sub.clone()), Value::Text(name.to_owned())],
            &mut id,
        )
        .context("cannot look up the cab")?;
    let Some(cab_id) = id.0 else {
        bail!(
            "no stored cab {:?} in bucket {:?}: list them with `cerfs query \"SELECT name FROM \
             cabs WHERE subpath = '{}'\"`",
            visible(name),
            visible(&sub),
            sub.replace('\'', "''")
        );
    };
    let reader = CabReader::open_at(&args.db.db, cab_id).context("cannot read the cab")?;
    let mut cabinet = cab::Cabinet::new(reader).context("the cab is not a readable cabinet")?;
    let members: Vec<String> = cabinet
        .folder_entries()
        .flat_map(|f| f.file_entries())
        .map(|f| f.name().to_owned())
        .collect();
    let member = match &args.member {
        Some(m) => members
            .iter()
            .find(|n| n.eq_ignore_ascii_case(m))
            .cloned()
            .ok_or_else(|| {
                anyhow!(
                    "no member {m:?} in the cab; it holds: {}",
                    members.join(", ")
                )
            })?,
        None => members
            .iter()
            .find(|n| is_dump(n))
            .cloned()
            .ok_or_else(|| {
                anyhow!(
                    "the cab holds no minidump; its members: {}",
                    members.join(", ")
                )
            })?,
    };
    let mut bytes = Vec::new();
    cabinet
        .read_file(&member)
        .with_context(|| format!("cannot read {member}"))?
        .take(MAX_DUMP)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {member}"))?;
    let settings = crate::symbols_cmd::effective(&args.db, &args.symbols)?;
    let walker = cerfs_analysis::Walker::new(&settings).context("the signature rules")?;
    let report = walker
        .report(&bytes, args.all_threads)
        .with_context(|| format!("{member} of {sub}\\{name}"))?;
    print!("{report}");
    Ok(())
}
