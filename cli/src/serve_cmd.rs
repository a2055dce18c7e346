//! `cerfs serve`: mount the share, export it with a real smbd from a generated smb.conf,
//! serve until SIGINT/SIGTERM, then stop Samba, unmount and close the database.
//!
//! Order matters both ways: the mount exists before smbd starts (smbd exports it), and smbd
//! with every per-client process is gone before the unmount (they hold files open on it).

mod preflight;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cerfs_fuse::{Mount, MountOptions};
use cerfs_samba::{Lockout, Samba, SambaConfig, SambaError, SambaTools, DEFAULT_PORT};
use clap::Args;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{info, warn};

use self::preflight::{
    absolute, admin_password, check_ports, is_root, prepare_mountpoint, PASSWORD_ENV,
};
use crate::mount_cmd::unix::{mount_error, DEV_FUSE};
use crate::mount_cmd::{check_db_dir, open_share};
use crate::stop::signal_name;
use cerfs_db::StoreLocation;

/// Where the default mountpoint and Samba state go (`/run/cerfs/<share>/...`).
const RUNTIME_DIR: &str = "/run/cerfs";
/// How long smbd may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Samba gets to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Arguments of `cerfs serve`.
#[derive(Debug, Args)]
#[command(after_help = "\
Mounts the database (FUSE), writes an smb.conf from the template built into cerfs
(samba-config/smb.conf.in) into the state directory, and runs smbd and samba-dcerpcd
in the foreground. SIGINT (Ctrl-C) or SIGTERM stops Samba and every per-client smbd,
unmounts, closes the database and exits 0. If Samba stops by itself, cerfs unmounts and
exits 1 with Samba's last log lines. Needs root (smbd acts as each client's unix user),
fuse3 and samba (apt-get install fuse3 samba).

Who may do what: guests (unix nobody) and ordinary accounts create folders, copy cabs,
update count.txt and append to the logs; policy.txt and status.txt are read-only to
them, stored cabs can be neither overwritten nor deleted. The admin account
(--admin-user) may also change policy.txt and status.txt, through its own share
\\\\server\\SHARE-admin, which takes encrypted (SMB3) sessions of the admin only; on
\\\\server\\SHARE it only reads. It exists only when a password is given
(--admin-password-file or CERFS_ADMIN_PASSWORD) and acts as a dedicated unix account
(--admin-unix-user, created as a system account if missing), never as root: the names
root and cerfs-admin log in as the guest. After --lockout-attempts wrong passwords in a
row an account is locked for --lockout-minutes. With --no-guest every session must sign.
More accounts: pdbedit -s STATE_DIR/smb.conf -a -u UNIXUSER (kept with --state-dir).
The state directory must be root's and writable by root alone (created 0755 when
missing; the passdb is in its private/, 0700).

Windows clients only connect to port 445. In production:
  cerfs serve --db /var/lib/cerfs/cer.db --port 445 --listen 192.0.2.10 \\
              --admin-password-file /etc/cerfs/admin.pw
Try it locally (defaults: ./cer.db, 127.0.0.1, port 4450, share cer, guests allowed):
  cerfs serve
  smbclient //127.0.0.1/cer -p 4450 -N -c ls")]
pub struct ServeArgs {
    /// SQLite database holding the share (created if missing), or a PostgreSQL database
    /// (postgres://USER@HOST:PORT/DBNAME) that several `cerfs serve` heads serve together
    /// (docs/scale-out.md).
    #[arg(long, value_name = "FILE|URL", default_value = "cer.db", value_parser = StoreLocation::parse)]
    pub db: StoreLocation,

    /// Serve as one head of a CTDB cluster: smbd keeps its shared state in CTDB through the
    /// local ctdbd's socket (clustering = yes), and reports file ids every head agrees on.
    /// Needs a PostgreSQL --db (docs/scale-out.md, Clustered Samba).
    #[arg(long, value_name = "SOCKET")]
    pub ctdb_socket: Option<PathBuf>,

    /// Directory to mount the share on, created if missing [default: /run/cerfs/SHARE/share].
    #[arg(long, value_name = "DIR")]
    pub mountpoint: Option<PathBuf>,

    /// Share name clients connect to (\\server\NAME).
    #[arg(long, value_name = "NAME", default_value = "cer")]
    pub share: String,

    /// Address to listen on; repeat for several. Never a wildcard: give the LAN address.
    #[arg(long = "listen", value_name = "ADDR", default_value = "127.0.0.1")]
    pub listen: Vec<IpAddr>,

    /// TCP port (Windows clients need 445).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PORT)]
    pub port: u16,

    /// Account name the admin logs in with; may change policy.txt and status.txt.
    #[arg(long, value_name = "NAME", default_value = "ceradmin")]
    pub admin_user: String,

    /// Unix account the admin acts as on the share (created as a system account if
    /// missing; never root).
    #[arg(long, value_name = "NAME", default_value = cerfs_samba::DEFAULT_ADMIN_UNIX_USER)]
    pub admin_unix_user: String,

    /// Wrong passwords in a row that lock an account (0: never lock).
    #[arg(long, value_name = "N", default_value_t = Lockout::default().attempts)]
    pub lockout_attempts: u32,

    /// Minutes a locked account stays locked.
    #[arg(long, value_name = "N", default_value_t = Lockout::default().minutes,
          value_parser = clap::value_parser!(u32).range(1..=99_999))]
    pub lockout_minutes: u32,

    /// File whose first line is the admin account's password (else the environment
    /// variable CERFS_ADMIN_PASSWORD; neither: no admin account).
    #[arg(long, value_name = "FILE")]
    pub admin_password_file: Option<PathBuf>,

    /// Let clients without an account in as the guest (unix nobody) [default].
    #[arg(long, overrides_with = "no_guest")]
    pub guest: bool,

    /// Refuse clients without an account.
    #[arg(long, overrides_with = "guest")]
    pub no_guest: bool,

    /// Also accept SMB1 (NT1) and NTLMv1: Windows XP and Server 2003 clients need them.
    #[arg(long)]
    pub smb1: bool,

    /// Also serve the Corporate Error Reporting V2 HTTP protocol (Windows Vista and later)
    /// on this address, into the same database (e.g. 127.0.0.1:8090)
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,

    /// Limits of the CER V2 server (used with --http).
    #[command(flatten)]
    pub http_limits: crate::http_cmd::HttpLimits,

    /// Also serve the web console on this address (loopback only, e.g. 127.0.0.1:8091):
    /// see `cerfs web --help`.
    #[arg(long, value_name = "ADDR")]
    pub web: Option<std::net::SocketAddr>,

    /// The web console's accounts (see `cerfs web-user`); without it the console is
    /// read-only and loopback only.
    #[arg(long, value_name = "FILE", requires = "web")]
    pub web_users: Option<PathBuf>,

    /// Serve the web console over HTTPS with this PEM certificate chain (with
    /// --web-tls-key)
    #[arg(long, value_name = "FILE", requires_all = ["web", "web_tls_key"])]
    pub web_tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --web-tls-cert
    #[arg(long, value_name = "FILE", requires = "web_tls_cert")]
    pub web_tls_key: Option<PathBuf>,

    #[command(flatten)]
    pub limits: crate::mount_cmd::ShareLimits,

    #[command(flatten)]
    pub symbols: crate::symbols_cmd::SymbolArgs,

    /// Samba's state: smb.conf, passdb, locks, pid files [default: /run/cerfs/SHARE/samba].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Number of FUSE worker threads serving requests concurrently.
    #[arg(
        long,
        value_name = "N",
        default_value_t = MountOptions::default().threads,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024),
    )]
    pub threads: usize,

    /// smbd's debug level (0-10); its log goes to cerfs's log.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(0..=10))]
    pub samba_log_level: u8,
}

/// Where the threads watching signals, Samba and the mount report.
struct Events {
    sender: mpsc::Sender<Event>,
    receiver: mpsc::Receiver<Event>,
    /// Set by the first SIGINT/SIGTERM.
    signalled: Arc<AtomicBool>,
}

/// Why serving ended.
enum Event {
    Signal(i32),
    SambaExited(String),
    Unmounted,
}

/// Serves until told to stop.
pub fn run(args: &ServeArgs) -> Result<()> {
    cerfs_samba::validate_share_name(&args.share)?;
    cerfs_samba::validate_user_name(&args.admin_user)?;
    if !is_root()? {
        bail!(
            "cerfs serve must run as root: smbd acts as each client's unix user and the mount \
             must be shared with it (sudo cerfs serve ...)"
        );
    }
    if !Path::new(DEV_FUSE).exists() {
        bail!(
            "{DEV_FUSE} not found: install fuse3 (apt-get install fuse3) and load the kernel \
             module (modprobe fuse); in a container, pass the device through (--device /dev/fuse)"
        );
    }
    let tools = SambaTools::find()?;
    if let Some(path) = args.db.sqlite_path() {
        check_db_dir(path)?;
        if args.ctdb_socket.is_some() {
            bail!(
                "--ctdb-socket makes this server one head of a cluster, and heads share a \
                 PostgreSQL store: give --db postgres://USER@HOST:PORT/DBNAME (a SQLite \
                 database belongs to one server)"
            );
        }
    }
    if let Some(socket) = args.ctdb_socket.as_ref().filter(|s| !s.exists()) {
        bail!(
            "no ctdbd socket at {}: start ctdbd on this head first (systemctl start ctdb), \
             or give the socket its ctdb.conf names",
            socket.display()
        );
    }
    let runtime = Path::new(RUNTIME_DIR).join(&args.share);
    let mountpoint = absolute(
        args.mountpoint
            .clone()
            .unwrap_or_else(|| runtime.join("share")),
    )?;
    let state_dir = absolute(
        args.state_dir
            .clone()
            .unwrap_or_else(|| runtime.join("samba")),
    )?;
    let mountpoint = prepare_mountpoint(&mountpoint)?;

    let config = SambaConfig {
        share: args.share.clone(),
        path: mountpoint.clone(),
        state_dir,
        listen: args.listen.clone(),
        port: args.port,
        guest: !args.no_guest,
        admin_user: Some(args.admin_user.clone()),
        admin_unix_user: args.admin_unix_user.clone(),
        lockout: Lockout {
            attempts: args.lockout_attempts,
            minutes: args.lockout_minutes,
        },
        smb1: args.smb1,
        log_level: args.samba_log_level,
        ctdbd_socket: args.ctdb_socket.clone().map(absolute).transpose()?,
    };
    config.validate()?;
    check_ports(&config)?;
    let password = admin_password(args.admin_password_file.as_deref())?;
    let config = SambaConfig {
        admin_user: password.as_ref().map(|_| args.admin_user.clone()),
        ..config
    };
    let admin_uid = cerfs_samba::ensure_unix_account(&config.admin_unix_user)?;
    let conf_path = cerfs_samba::prepare_state_dir(&config)?;
    cerfs_samba::set_admin_password(&tools, &config, password.as_deref())?;
    cerfs_samba::apply_lockout(&tools, &config)?;
    match &password {
        Some(_) => info!(
            "admin account {} (acts as unix user {}, uid {admin_uid}) may change policy.txt \
             and status.txt through share {} (encrypted sessions only)",
            args.admin_user,
            config.admin_unix_user,
            config.admin_share()
        ),
        None => warn!(
            "no admin password (--admin-password-file or {PASSWORD_ENV}): nobody may change \
             policy.txt or status.txt over SMB"
        ),
    }

    // From here on SIGINT/SIGTERM must stop everything in order, not kill the process.
    let signals = Signals::new([SIGINT, SIGTERM]).context("cannot install signal handlers")?;
    let signals_handle = signals.handle();
    let (events, event) = mpsc::channel();
    let signalled = Arc::new(AtomicBool::new(false));
    spawn_signal_thread(signals, events.clone(), Arc::clone(&signalled))?;

    let events = Events {
        sender: events,
        receiver: event,
        signalled,
    };
    let result = serve(args, admin_uid, &tools, &config, &conf_path, &events);
    signals_handle.close();
    result
}

/// Mounts, runs Samba, waits for the end, stops Samba, unmounts.
fn serve(
    args: &ServeArgs,
    admin_uid: u32,
    tools: &SambaTools,
    config: &SambaConfig,
    conf_path: &Path,
    events: &Events,
) -> Result<()> {
    let signalled = &events.signalled;
    let mountpoint = &config.path;
    // One CerFs serves the mount and the HTTP server: one set of handles, one store.
    let opened = open_share(&args.db, &args.limits, &[admin_uid])?;
    let (share, maintenance, alerts) = (opened.fs, opened.maintenance, opened.alerts);
    let store_watch = crate::store_watch::StoreWatch::spawn(&share)?;
    let opts = MountOptions {
        threads: args.threads,
        allow_other: true,
        ..MountOptions::default()
    };
    let mount = cerfs_fuse::spawn_mount(Arc::clone(&share), mountpoint, &opts)
        .map_err(|e| mount_error(e, mountpoint))?;
    info!("mounted {} at {}", args.db, mountpoint.display());
    // Index what committed cabs hold, in the background (stopped by its drop on every
    // early return, before the mount, which was created first).
    let indexer = crate::mount_cmd::spawn_indexer(&args.db, &args.symbols)?;

    // The HTTP server serves the same CerFs; dropped on early returns.
    let http = match args.http {
        None => None,
        Some(addr) => {
            let http_config = args.http_limits.config();
            let server = cerfs_http::spawn(Arc::clone(&share), addr, http_config)
                .context("cannot start the HTTP server");
            match server {
                Ok(server) => {
                    info!(
                        "serving Corporate Error Reporting V2 on http://{}/stage2.htm",
                        server.local_addr()
                    );
                    Some(server)
                }
                Err(e) => {
                    indexer.stop();
                    drop(share);
                    return Err(unmount_after(mount, config, e));
                }
            }
        }
    };
    // The console too reads and changes the share through the same CerFs.
    let web = match args.web {
        None => None,
        Some(addr) => {
            let console = crate::web_cmd::Console {
                listen: addr,
                users: args.web_users.clone(),
                tls: crate::web_cmd::tls_files(&args.web_tls_cert, &args.web_tls_key),
            };
            let started = crate::web_cmd::start(Arc::clone(&share), &args.db, console);
            match started {
                Ok(web) => Some(web),
                Err(e) => {
                    indexer.stop();
                    drop(http);
                    drop(share);
                    return Err(unmount_after(mount, config, e));
                }
            }
        }
    };
    // From here the mount and the HTTP server hold the core: the store closes with the
    // last of them.
    drop(share);

    let samba = match Samba::start(tools, conf_path) {
        Ok(samba) => samba,
        Err(e) => {
            indexer.stop();
            return Err(unmount_after(mount, config, anyhow!(e)));
        }
    };
    let addrs = config.socket_addrs();
    let cancelled = || signalled.load(Ordering::SeqCst);
    match samba.wait_ready(&addrs, READY_TIMEOUT, &cancelled) {
        Ok(()) => {}
        Err(SambaError::Cancelled) => {
            info!("stopping before Samba was ready");
            return stop_and_unmount(samba, indexer, mount, config, Ok(()));
        }
        Err(e) => return stop_and_unmount(samba, indexer, mount, config, Err(anyhow!(e))),
    }
    for addr in &addrs {
        info!(
            "serving \\\\{}\\{} on port {} (try: smbclient //{}/{} -p {} -N -c ls)",
            addr.ip(),
            config.share,
            addr.port(),
            addr.ip(),
            config.share,
            addr.port()
        );
    }
    info!(
        "ready: Samba pid {}, smb.conf {}, database {}",
        samba.pgid(),
        conf_path.display(),
        args.db
    );

    watch(
        samba.exit_watch(),
        events.sender.clone(),
        Event::SambaExited,
    )?;
    let end = mount.session_end();
    watch_unmount(end, events.sender.clone())?;

    let outcome = match events.receiver.recv() {
        Ok(Event::Signal(signal)) => {
            info!("received {}, stopping Samba", signal_name(signal));
            Ok(())
        }
        Ok(Event::SambaExited(why)) => Err(anyhow!(
            samba.failed(format!("Samba stopped unexpectedly: {why}"))
        )),
        Ok(Event::Unmounted) => Err(anyhow!(
            "{} was unmounted from outside: stopping Samba",
            mountpoint.display()
        )),
        Err(mpsc::RecvError) => Err(anyhow!("lost track of Samba and of the signals")),
    };
    if let Some(http) = http {
        if let Err(e) = http.shutdown() {
            warn!("stopping the HTTP server: {e}");
        }
    }
    if let Some(web) = web {
        if let Err(e) = web.shutdown() {
            warn!("stopping the web console: {e}");
        }
    }
    let outcome = outcome.and(store_watch.outcome());
    maintenance.stop();
    if let Some(alerts) = alerts {
        alerts.stop();
    }
    stop_and_unmount(samba, indexer, mount, config, outcome)
}

/// Stops Samba (all of its process group) and the indexer, then unmounts; the first error
/// wins.
fn stop_and_unmount(
    samba: Samba,
    indexer: cerfs_index::IndexerHandle,
    mount: Mount,
    config: &SambaConfig,
    outcome: Result<()>,
) -> Result<()> {
    let pgid = samba.pgid();
    let stopped = samba.stop(STOP_GRACE);
    match &stopped {
        Ok(()) => info!("Samba stopped (process group {pgid})"),
        Err(e) => warn!("{e}"),
    }
    indexer.stop();
    let unmounted = unmount(mount, config);
    outcome
        .and(stopped.map_err(anyhow::Error::from))
        .and(unmounted)
}

/// Unmounts after a failure that happened before Samba ran; returns that failure.
fn unmount_after(mount: Mount, config: &SambaConfig, e: anyhow::Error) -> anyhow::Error {
    if let Err(u) = unmount(mount, config) {
        warn!("{u:#}");
    }
    e
}

fn unmount(mount: Mount, config: &SambaConfig) -> Result<()> {
    let mountpoint = &config.path;
    mount.unmount().with_context(|| {
        format!(
            "could not unmount {0}: if files are still open under it, stop their users and run \
             `fusermount3 -u {0}`",
            mountpoint.display()
        )
    })?;
    info!("unmounted {}, database closed", mountpoint.display());
    Ok(())
}

fn spawn_signal_thread(
    mut signals: Signals,
    events: mpsc::Sender<Event>,
    signalled: Arc<AtomicBool>,
) -> Result<()> {
    thread::Builder::new()
        .name("cerfs-signals".to_owned())
        .spawn(move || {
            for signal in signals.forever() {
                if signalled.swap(true, Ordering::SeqCst) {
                    info!("received {} again: already stopping", signal_name(signal));
                }
                let _ = events.send(Event::Signal(signal));
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

fn watch(
    exit: cerfs_samba::ExitWatch,
    events: mpsc::Sender<Event>,
    make: fn(String) -> Event,
) -> Result<()> {
    thread::Builder::new()
        .name("cerfs-samba-watch".to_owned())
        .spawn(move || {
            let why = exit.wait();
            let _ = events.send(make(why));
        })
        .context("cannot start the Samba watcher thread")?;
    Ok(())
}

fn watch_unmount(end: cerfs_fuse::SessionEnd, events: mpsc::Sender<Event>) -> Result<()> {
    thread::Builder::new()
        .name("cerfs-unmount-watch".to_owned())
        .spawn(move || {
            end.wait();
            let _ = events.send(Event::Unmounted);
        })
        .context("cannot start the unmount watcher thread")?;
    Ok(())
}
