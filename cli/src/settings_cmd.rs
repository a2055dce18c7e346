//! `cerfs status show|set|clear` and `cerfs policy show|set|clear`: a bucket's status.txt
//! and the share's policy.txt, changed through fs-core under the same grammar as the share
//! (MS-CER 2.2.4 / 2.2.5). Clients see a change at their next read: the share renders
//! these files from the database, no remount needed.

use anyhow::{anyhow, bail, Context, Result};
use cerfs_db::Value;
use cerfs_fs_core::settings_file::{known_keys, Scope};
use cerfs_fs_core::{subpath_parts, CerFs, FsError, SettingsTarget};
use clap::{Args, Subcommand};

use crate::output::DbArg;

/// Arguments of `cerfs status`.
#[derive(Debug, Args)]
#[command(after_help = "\
SUBPATH is the bucket's error subpath, with \\ or / between the levels:
App/1.0.0.0/module.dll/2.0.0.0/0000abcd, blue, shutdown.
Names are case-sensitive, values follow MS-CER 2.2.5; a bad one is refused with the reason.
Exit status: 0 ok, 1 error (refused value, no database), 2 usage error.

Examples:
  cerfs status show blue
  cerfs status set 'App/1.0/app.exe/1.0/0000abcd' 'Crashes per bucket=20' iData=YES
  cerfs status set blue Response=https://support.example.com/kb/123
  cerfs status clear blue Response
  cerfs status clear blue            (removes status.txt)")]
pub struct StatusArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: StatusAction,
}

/// `cerfs status` actions.
#[derive(Debug, Subcommand)]
pub enum StatusAction {
    /// Print a bucket's status.txt parameters, one Name=Value per line.
    Show {
        #[command(flatten)]
        db: DbArg,
        /// The bucket's subpath.
        #[arg(value_name = "SUBPATH")]
        subpath: String,
        /// Print what the bucket's clients obey instead: status.txt over policy.txt.
        #[arg(long)]
        effective: bool,
    },
    /// Set parameters of a bucket's status.txt (others are kept; the file is created if
    /// needed).
    Set {
        #[command(flatten)]
        db: DbArg,
        /// The bucket's subpath.
        #[arg(value_name = "SUBPATH")]
        subpath: String,
        /// Name=Value pairs (quote names with spaces: 'Crashes per bucket=10').
        #[arg(value_name = "NAME=VALUE", required = true, value_parser = parse_pair)]
        pairs: Vec<(String, String)>,
    },
    /// Remove parameters of a bucket's status.txt; with no NAME, remove the file.
    Clear {
        #[command(flatten)]
        db: DbArg,
        /// The bucket's subpath.
        #[arg(value_name = "SUBPATH")]
        subpath: String,
        /// Names of the parameters to remove.
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
}

/// Arguments of `cerfs policy`.
#[derive(Debug, Args)]
#[command(after_help = "\
policy.txt applies to every bucket that has no status.txt value for the same name.
Names are case-sensitive, values follow MS-CER 2.2.4; a bad one is refused with the reason.
Exit status: 0 ok, 1 error (refused value, no database), 2 usage error.

Examples:
  cerfs policy set Tracking=YES 'Crashes per bucket=10'
  cerfs policy show
  cerfs policy clear Tracking")]
pub struct PolicyArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: PolicyAction,
}

/// `cerfs policy` actions.
#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// Print policy.txt's parameters, one Name=Value per line.
    Show {
        #[command(flatten)]
        db: DbArg,
    },
    /// Set parameters of policy.txt (others are kept; the file is created if needed).
    Set {
        #[command(flatten)]
        db: DbArg,
        /// Name=Value pairs (quote names with spaces: 'Crashes per bucket=10').
        #[arg(value_name = "NAME=VALUE", required = true, value_parser = parse_pair)]
        pairs: Vec<(String, String)>,
    },
    /// Remove parameters of policy.txt; with no NAME, remove the file.
    Clear {
        #[command(flatten)]
        db: DbArg,
        /// Names of the parameters to remove.
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
}

/// `NAME=VALUE`, split at the first `=`.
fn parse_pair(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!(
            "{s:?} is not NAME=VALUE (for example Tracking=YES or 'Crashes per bucket=10')"
        )),
    }
}

/// Runs `cerfs status`.
pub fn run_status(args: &StatusArgs) -> Result<()> {
    match &args.action {
        StatusAction::Show {
            db,
            subpath,
            effective,
        } => {
            let sub = normalize(subpath)?;
            let fs = db.admin_fs()?;
            if *effective {
                print_pairs(&fs.effective_settings(&sub).map_err(|e| refused(e, &sub))?);
                return Ok(());
            }
            match fs
                .settings_of(&SettingsTarget::Status(sub.clone()))
                .map_err(|e| refused(e, &sub))?
            {
                Some(pairs) => print_pairs(&pairs),
                None => {
                    require_bucket(db, &sub)?;
                    eprintln!(
                        "status\\{sub}\\status.txt does not exist: the bucket's clients follow \
                         policy.txt (see `cerfs status show --effective`)"
                    );
                }
            }
            Ok(())
        }
        StatusAction::Set { db, subpath, pairs } => {
            let sub = normalize(subpath)?;
            let fs = db.admin_fs()?;
            let stored = set(&fs, &SettingsTarget::Status(sub.clone()), pairs, &sub)?;
            print_pairs(&stored);
            Ok(())
        }
        StatusAction::Clear { db, subpath, names } => {
            let sub = normalize(subpath)?;
            check_names(Scope::Status, names)?;
            let fs = db.admin_fs()?;
            clear(&fs, &SettingsTarget::Status(sub.clone()), names, &sub)
        }
    }
}

/// Runs `cerfs policy`.
pub fn run_policy(args: &PolicyArgs) -> Result<()> {
    match &args.action {
        PolicyAction::Show { db } => {
            let fs = db.admin_fs()?;
            match fs
                .settings_of(&SettingsTarget::Policy)
                .map_err(|e| refused(e, "policy.txt"))?
            {
                Some(pairs) => print_pairs(&pairs),
                None => eprintln!("policy.txt does not exist: clients use the defaults"),
            }
            Ok(())
        }
        PolicyAction::Set { db, pairs } => {
            let fs = db.admin_fs()?;
            print_pairs(&set(&fs, &SettingsTarget::Policy, pairs, "policy.txt")?);
            Ok(())
        }
        PolicyAction::Clear { db, names } => {
            check_names(Scope::Policy, names)?;
            let fs = db.admin_fs()?;
            clear(&fs, &SettingsTarget::Policy, names, "policy.txt")
        }
    }
}

/// A subpath with backslashes between its levels, each level checked (R3).
pub fn normalize(subpath: &str) -> Result<String> {
    Ok(subpath_parts(subpath)
        .map_err(|e| anyhow!("bad bucket subpath {subpath:?}: {e}"))?
        .join("\\"))
}

/// Fails with advice when no bucket has this subpath.
pub fn require_bucket(db: &DbArg, sub: &str) -> Result<()> {
    let q = db.query_db()?;
    let mut found = Found(false);
    q.query(
        "SELECT 1 FROM buckets WHERE subpath = ?1",
        &[Value::Text(sub.to_owned())],
        &mut found,
    )
    .context("cannot look the bucket up")?;
    if !found.0 {
        bail!("no bucket {sub:?}: list the buckets with `cerfs buckets`");
    }
    Ok(())
}

/// A sink that only notes whether a row came.
struct Found(bool);

impl cerfs_db::RowSink for Found {
    fn columns(&mut self, _names: &[String]) -> std::io::Result<()> {
        Ok(())
    }
    fn row(&mut self, _values: &[Value]) -> std::io::Result<()> {
        self.0 = true;
        Ok(())
    }
}

fn set(
    fs: &CerFs,
    target: &SettingsTarget,
    pairs: &[(String, String)],
    what: &str,
) -> Result<Vec<(String, String)>> {
    fs.set_settings(target, pairs).map_err(|e| refused(e, what))
}

fn clear(fs: &CerFs, target: &SettingsTarget, names: &[String], what: &str) -> Result<()> {
    match fs.clear_settings(target, names) {
        Ok(()) => {
            if names.is_empty() {
                eprintln!("removed {}", file_of(target));
            } else {
                eprintln!("removed {} from {}", names.join(", "), file_of(target));
            }
            Ok(())
        }
        Err(FsError::NotFound) => {
            eprintln!("{} does not exist: nothing to clear", file_of(target));
            Ok(())
        }
        Err(e) => Err(refused(e, what)),
    }
}

fn file_of(target: &SettingsTarget) -> String {
    match target {
        SettingsTarget::Policy => "policy.txt".to_owned(),
        SettingsTarget::Status(sub) => format!("status\\{sub}\\status.txt"),
    }
}

/// Names given to `clear` must be names the file knows (a typo would silently clear nothing).
fn check_names(scope: Scope, names: &[String]) -> Result<()> {
    for name in names {
        if known_keys(scope).any(|k| k == name) {
            continue;
        }
        let known: Vec<&str> = known_keys(scope).collect();
        if let Some(right) = known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
            tracing::warn!(name, "refused a setting name in the wrong case");
            bail!("unknown name `{name}` in {scope}: names are case-sensitive, write `{right}`");
        }
        tracing::warn!(name, "refused an unknown setting name");
        bail!(
            "unknown name `{name}` in {scope}; the names are: {}",
            known.join(", ")
        );
    }
    Ok(())
}

/// An fs-core refusal as an error that names what to fix.
fn refused(e: FsError, what: &str) -> anyhow::Error {
    match e {
        FsError::InvalidContent(why) => {
            tracing::warn!(%why, "refused a setting");
            anyhow!("refused for {what}: {why}")
        }
        FsError::InvalidName(why) => anyhow!("bad bucket subpath {what:?}: {why}"),
        FsError::NameTooLong(n) => anyhow!(
            "bucket subpath {what:?} is too long: {n} characters as a client sees the path \
             (at most 260)"
        ),
        other => anyhow::Error::new(other).context(format!("cannot change {what}")),
    }
}

fn print_pairs(pairs: &[(String, String)]) {
    for (k, v) in pairs {
        println!("{k}={v}");
    }
}
