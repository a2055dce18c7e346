//! `cerfs web`: the web console over a database, beside any running server (it opens the
//! database as the admin commands do: no lock, no recovery), until SIGINT/SIGTERM; and
//! `cerfs web-user`, the console's accounts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use cerfs_web::accounts::{self, Role};
use clap::{Args, Subcommand, ValueEnum};
use tracing::info;

use crate::output::DbArg;
use crate::stop::StopSignals;

/// Arguments of `cerfs web`.
#[derive(Debug, Args)]
#[command(after_help = "\
Serves the console: an overview (reports per day by kind, top and new buckets and
signatures of the week, the store's size and the indexer's backlog), the bucket list
(filter, sort, pages), each bucket's page (counters, hits per day, the settings its
clients obey) and the signatures; the same data as JSON under /api/v1/ (described by
/api/v1/openapi.json). Everything is served by cerfs itself; no internet needed.

Without --users the console is read-only and listens on loopback only: reach it from
another machine through an SSH tunnel (ssh -L 8091:127.0.0.1:8091 HOST) or a reverse
proxy that authenticates. With --users FILE (accounts from `cerfs web-user add`) every
page needs a login; viewers read everything, admins also change policy.txt and
status.txt and download cabs (dumps can hold secrets). Beyond loopback, serve HTTPS:
--tls-cert and --tls-key (PEM files; session cookies are then marked Secure), or a TLS
reverse proxy in front. `cerfs serve --web ADDR [--web-users FILE] [--web-tls-cert FILE
--web-tls-key FILE]` runs it inside the server instead.

Runs until SIGINT (Ctrl-C) or SIGTERM. Exit status: 0 ok, 1 error, 2 usage error.

Examples:
  cerfs web --db /var/lib/cerfs/cer.db --listen 127.0.0.1:8091
  cerfs web --db postgres://cerfs@db.corp:5432/cer --listen 127.0.0.1:8091
  cerfs web --db /var/lib/cerfs/cer.db --listen 0.0.0.0:8443 --users /etc/cerfs/web-users \\
      --tls-cert /etc/cerfs/console.crt --tls-key /etc/cerfs/console.key")]
pub struct WebArgs {
    #[command(flatten)]
    pub db: DbArg,

    /// Address and port to listen on (loopback only without --users).
    #[arg(long, value_name = "ADDR", default_value = cerfs_web::DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// The console's accounts (see `cerfs web-user`); without it: read-only, loopback only.
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,

    /// Serve HTTPS with this PEM certificate chain (server certificate first; with
    /// --tls-key)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Where and how the console serves.
#[derive(Debug, Clone)]
pub struct Console {
    /// Address and port.
    pub listen: SocketAddr,
    /// The users file.
    pub users: Option<PathBuf>,
    /// HTTPS.
    pub tls: Option<cerfs_web::TlsFiles>,
}

/// The TLS files when both were given (clap makes each require the other).
pub fn tls_files(cert: &Option<PathBuf>, key: &Option<PathBuf>) -> Option<cerfs_web::TlsFiles> {
    match (cert, key) {
        (Some(cert), Some(key)) => Some(cerfs_web::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    }
}

/// Arguments of `cerfs web-user`.
#[derive(Debug, Args)]
#[command(after_help = "\
The users file holds one account per line, NAME:ROLE:HASH, the password hashed with
Argon2id; it is written 0600. Roles: viewer (every page and the API) and admin (also
changes settings and downloads cabs). A running console reads the file when it starts.

Examples:
  printf '%s\\n' \"$PASSWORD\" | cerfs web-user add ann --role admin --users /etc/cerfs/web-users
  cerfs web-user list --users /etc/cerfs/web-users
  cerfs web-user remove bob --users /etc/cerfs/web-users")]
pub struct WebUserArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: WebUserAction,
}

/// `cerfs web-user` subcommands.
#[derive(Debug, Subcommand)]
pub enum WebUserAction {
    /// Add an account, or set its role and password; the password is read from stdin
    /// (one line).
    Add {
        /// The account's name (letters, digits, '.', '_', '-').
        name: String,
        /// viewer or admin.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The users file (created if missing).
        #[arg(long, value_name = "FILE")]
        users: PathBuf,
    },
    /// Remove an account.
    Remove {
        /// The account's name.
        name: String,
        /// The users file.
        #[arg(long, value_name = "FILE")]
        users: PathBuf,
    },
    /// List the accounts and their roles.
    List {
        /// The users file.
        #[arg(long, value_name = "FILE")]
        users: PathBuf,
    },
}

/// An account's role.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Reads every page and the API.
    Viewer,
    /// Also changes settings and downloads cabs.
    Admin,
}

/// Runs `cerfs web-user`.
pub fn run_user(args: &WebUserArgs) -> Result<()> {
    match &args.action {
        WebUserAction::Add { name, role, users } => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("cannot read the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let role = match role {
                RoleArg::Viewer => Role::Viewer,
                RoleArg::Admin => Role::Admin,
            };
            accounts::set_user(users, name, role, password)?;
            eprintln!("{name} is a {} in {}", role.as_str(), users.display());
            Ok(())
        }
        WebUserAction::Remove { name, users } => {
            if !accounts::remove_user(users, name)? {
                bail!("no account {name:?} in {}", users.display());
            }
            eprintln!("removed {name} from {}", users.display());
            Ok(())
        }
        WebUserAction::List { users } => {
            for (name, role) in accounts::Users::load(users)?.list() {
                println!("{name}\t{}", role.as_str());
            }
            Ok(())
        }
    }
}

/// Serves until told to stop.
pub fn run(args: &WebArgs) -> Result<()> {
    let stop = StopSignals::install()?;
    let fs = Arc::new(args.db.admin_fs()?);
    let console = start(
        fs,
        &args.db.db,
        Console {
            listen: args.listen,
            users: args.users.clone(),
            tls: tls_files(&args.tls_cert, &args.tls_key),
        },
    )?;
    if let Some(signal) = stop.wait() {
        info!("received {signal}, stopping");
    }
    console.shutdown().context("stopping the web console")?;
    Ok(())
}

/// Starts the console over `fs` (the store at `db`).
pub fn start(
    fs: Arc<cerfs_fs_core::CerFs>,
    db: &cerfs_db::StoreLocation,
    how: Console,
) -> Result<cerfs_web::WebHandle> {
    let scheme = if how.tls.is_some() { "https" } else { "http" };
    // The console's read connections need the current schema: the open above migrated it.
    let console = cerfs_web::spawn(
        fs,
        how.listen,
        cerfs_web::WebConfig {
            db: db.clone(),
            users: how.users,
            tls: how.tls,
        },
    )
    .context("cannot start the web console")?;
    info!(
        "web console on {scheme}://{}/ for {db}",
        console.local_addr()
    );
    Ok(console)
}
