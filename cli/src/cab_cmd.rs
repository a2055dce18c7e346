//! `cerfs cab get` and `cerfs cab export`: copy stored cabs out of the database, streamed
//! through fs-core in pieces (memory stays bounded whatever the size) and checked
//! against the sha256 recorded when the upload completed. `cerfs cab delete` is in
//! `deletion_cmd.rs`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use cerfs_db::{RowSink, Value};
use cerfs_fs_core::{CerFs, StoredCab};
use clap::{Args, Subcommand};
use sha2::{Digest, Sha256};

use crate::output::DbArg;
use crate::settings_cmd::{normalize, require_bucket};

/// Arguments of `cerfs cab`.
#[derive(Debug, Args)]
#[command(after_help = "\
Only complete cabs are copied (not uploads in progress). Each copy is checked against
the sha256 recorded at upload. Exit status: 0 ok, 1 error, 2 usage error.

Examples:
  cerfs cab get 'App/1.0/app.exe/1.0/0000abcd/report1.cab' -o /tmp/report1.cab
  cerfs cab get blue/mini.cab -o - | cabextract -l -
  cerfs cab export --bucket blue --to /tmp/blue-cabs
  cerfs cab delete blue/mini.cab --reason 'PII request #4711'")]
pub struct CabArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: CabAction,
}

/// `cerfs cab` actions.
#[derive(Debug, Subcommand)]
pub enum CabAction {
    /// Copy one stored cab to a file.
    Get {
        #[command(flatten)]
        db: DbArg,
        /// The bucket's subpath and the cab's name (`/` or `\` between levels).
        #[arg(value_name = "SUBPATH/NAME")]
        path: String,
        /// Where to write it (`-` for stdout); an existing file is replaced.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
    },
    /// Delete one stored cab (bytes, row and index results), recorded in the audit (the
    /// deletions view). Confirmation unless --yes.
    Delete {
        #[command(flatten)]
        db: DbArg,
        /// The bucket's subpath and the cab's name (`/` or `\` between levels).
        #[arg(value_name = "SUBPATH/NAME")]
        path: String,
        /// Why (a ticket number, a PII request); recorded in the audit.
        #[arg(long, value_name = "TEXT", default_value = "not given")]
        reason: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Copy every stored cab of a bucket into a directory (created if needed).
    Export {
        #[command(flatten)]
        db: DbArg,
        /// The bucket's subpath.
        #[arg(long, value_name = "SUBPATH")]
        bucket: String,
        /// The directory to copy them into; a file already there with the same content is
        /// kept, a different one is an error.
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
}

/// Runs `cerfs cab`.
pub fn run(args: &CabArgs) -> Result<()> {
    match &args.action {
        CabAction::Get { db, path, output } => get(db, path, output),
        CabAction::Export { db, bucket, to } => export(db, bucket, to),
        CabAction::Delete {
            db,
            path,
            reason,
            yes,
        } => crate::deletion_cmd::delete_cab(db, path, reason, *yes),
    }
}

/// What the `cabs` view says about one cab.
#[derive(Debug, Clone)]
struct CabInfo {
    name: String,
    size: u64,
    sha256: Option<String>,
    complete: bool,
}

/// Collects `cabs` rows (name, size, sha256, state).
#[derive(Default)]
struct Cabs(Vec<CabInfo>);

impl RowSink for Cabs {
    fn columns(&mut self, _names: &[String]) -> std::io::Result<()> {
        Ok(())
    }
    fn row(&mut self, v: &[Value]) -> std::io::Result<()> {
        let text = |i: usize| match v.get(i) {
            Some(Value::Text(t)) => Some(t.clone()),
            _ => None,
        };
        let size = match v.get(1) {
            Some(Value::Integer(n)) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        };
        self.0.push(CabInfo {
            name: text(0).unwrap_or_default(),
            size,
            sha256: text(2),
            complete: text(3).as_deref() == Some("complete"),
        });
        Ok(())
    }
}

fn cabs_of(db: &DbArg, sub: &str, name: Option<&str>) -> Result<Vec<CabInfo>> {
    let mut found = Cabs::default();
    db.query_db()?
        .query(
            "SELECT name, size, sha256, state FROM cabs \
             WHERE subpath = ?1 AND (?2 IS NULL OR name = ?2) ORDER BY name",
            &[
                Value::Text(sub.to_owned()),
                name.map_or(Value::Null, |n| Value::Text(n.to_owned())),
            ],
            &mut found,
        )
        .context("cannot list the cabs")?;
    Ok(found.0)
}

fn get(db: &DbArg, path: &str, output: &Path) -> Result<()> {
    let (sub, name) = path
        .trim_end_matches(['/', '\\'])
        .rsplit_once(['/', '\\'])
        .ok_or_else(|| anyhow!("{path:?} is not SUBPATH/NAME (for example blue/report.cab)"))?;
    let sub = normalize(sub)?;
    let rows = cabs_of(db, &sub, Some(name))?;
    let Some(info) = rows.iter().find(|c| c.complete).cloned() else {
        if let Some((cab, Some(removal))) = db
            .admin_store()?
            .find_cab(&sub, name)
            .context("cannot look up the cab")?
        {
            bail!(
                "cab {name:?} of {sub:?} was {} on {}: its bytes are gone (its row stays in the \
                 cabs view)",
                match removal {
                    cerfs_db::Removal::Pruned => "pruned by retention",
                    cerfs_db::Removal::Deleted => "deleted",
                },
                cab.created_at
            );
        }
        if !rows.is_empty() {
            bail!("cab {name:?} of {sub:?} is still being uploaded: try again when it is complete");
        }
        require_bucket(db, &sub)?;
        bail!(
            "no cab {name:?} in bucket {sub:?}: list them with \
             `cerfs query \"SELECT name FROM cabs WHERE subpath = '{}'\"`",
            sub.replace('\'', "''")
        );
    };
    let fs = Arc::new(db.admin_fs()?);
    let written = if output.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        copy_cab(&fs, &sub, &info, &mut out)?
    } else if let Some(mut special) = open_special(output)? {
        copy_cab(&fs, &sub, &info, &mut special)?
    } else {
        write_file(&fs, &sub, &info, output)?
    };
    eprintln!(
        "wrote {written} bytes of {sub}\\{name} to {} (sha256 checked)",
        output.display()
    );
    Ok(())
}

fn export(db: &DbArg, bucket: &str, to: &Path) -> Result<()> {
    let sub = normalize(bucket)?;
    require_bucket(db, &sub)?;
    let cabs: Vec<CabInfo> = cabs_of(db, &sub, None)?
        .into_iter()
        .filter(|c| c.complete)
        .collect();
    std::fs::create_dir_all(to)
        .with_context(|| format!("cannot create directory {}", to.display()))?;
    let fs = Arc::new(db.admin_fs()?);
    let (mut copied, mut kept, mut bytes) = (0usize, 0usize, 0u64);
    for info in &cabs {
        if info.name.is_empty() || info.name == "." || info.name == ".." || info.name.contains('/')
        {
            bail!("cab name {:?} cannot be a file name here", info.name);
        }
        let target = to.join(&info.name);
        if target.exists() {
            if same_content(&target, info)? {
                kept += 1;
                continue;
            }
            bail!(
                "{} already exists with other content: remove it or choose another --to",
                target.display()
            );
        }
        bytes += write_file(&fs, &sub, info, &target)?;
        copied += 1;
        println!("{}", target.display());
    }
    eprintln!(
        "exported {copied} cabs ({bytes} bytes) of {sub} to {}{}",
        to.display(),
        if kept > 0 {
            format!("; {kept} already there")
        } else {
            String::new()
        }
    );
    Ok(())
}

/// Opens `target` for writing when it is a device or a pipe (`/dev/null`, a FIFO): those
/// take the bytes in place, since renaming a file over them would replace them (and, as
/// root, turn `/dev/null` into a regular file). `None` for a regular or new file.
fn open_special(target: &Path) -> Result<Option<File>> {
    let meta = match std::fs::metadata(target) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", target.display())),
    };
    if meta.is_dir() {
        bail!(
            "{} is a directory: give the file to write, for example {}",
            target.display(),
            target.join("report.cab").display()
        );
    }
    if meta.is_file() {
        return Ok(None);
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(target)
        .with_context(|| format!("cannot open {} for writing", target.display()))?;
    Ok(Some(file))
}

/// Writes the cab to `target` through a temporary file beside it, renamed at the end: a
/// failed copy leaves nothing behind.
fn write_file(fs: &Arc<CerFs>, sub: &str, info: &CabInfo, target: &Path) -> Result<u64> {
    let file_name = target
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file name", target.display()))?;
    let mut part_name = std::ffi::OsString::from(".");
    part_name.push(file_name);
    part_name.push(".cerfs-part");
    let part = target.with_file_name(part_name);
    let result = (|| {
        let mut file =
            File::create(&part).with_context(|| format!("cannot create {}", part.display()))?;
        let n = copy_cab(fs, sub, info, &mut file)?;
        file.sync_all()
            .with_context(|| format!("cannot write {}", part.display()))?;
        std::fs::rename(&part, target)
            .with_context(|| format!("cannot rename {} to {}", part.display(), target.display()))?;
        Ok(n)
    })();
    if result.is_err() {
        let _gone = std::fs::remove_file(&part);
    }
    result
}

/// Streams the cab into `out` and checks its sha256; returns the byte count.
fn copy_cab(fs: &Arc<CerFs>, sub: &str, info: &CabInfo, out: &mut dyn Write) -> Result<u64> {
    let mut cab = StoredCab::open(Arc::clone(fs), sub, &info.name)
        .map_err(|e| anyhow!("cannot open cabs\\{sub}\\{}: {e}", info.name))?;
    let path = cab.path().to_owned();
    while let Some(piece) = cab
        .next_piece()
        .map_err(|e| anyhow!("cannot read {path}: {e}"))?
    {
        out.write_all(&piece).context("cannot write the copy")?;
    }
    out.flush().context("cannot write the copy")?;
    let (n, sha) = cab.finish();
    if n != info.size || info.sha256.as_deref() != Some(sha.as_str()) {
        bail!(
            "the copy of {path} does not match what was recorded at upload ({n} bytes, sha256 \
             {sha}; recorded {} bytes, sha256 {}): the database may be damaged, run \
             `sqlite3 DB 'PRAGMA integrity_check'`",
            info.size,
            info.sha256.as_deref().unwrap_or("none")
        );
    }
    Ok(n)
}

/// Whether the file at `path` already holds exactly this cab.
fn same_content(path: &Path, info: &CabInfo) -> Result<bool> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot stat {}", path.display()))?;
    if !meta.is_file() || meta.len() != info.size {
        return Ok(false);
    }
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(info.sha256.as_deref() == Some(hex::encode(hasher.finalize()).as_str()))
}
