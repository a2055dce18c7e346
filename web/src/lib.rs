//! The cerfs web console: HTML pages (overview, buckets, a bucket, signatures) and the
//! JSON API they are made from (`/api/v1/…`, described by `/api/v1/openapi.json`), served
//! by the binary itself: no CDN, no JavaScript needed, charts drawn as inline SVG.
//!
//! Reads go through [`cerfs_db::ConsoleDb`] (read-only WAL readers: the console never
//! blocks a client's write); changes (policy.txt, status.txt) and cab downloads go through
//! fs-core, the same validated path as the CLI. Accounts come from a users file
//! ([`accounts`]); without one the console is read-only and listens on loopback only
//! ([`WebError::NotLoopback`]).

pub mod accounts;
mod admin;
mod api;
mod auth;
mod chart;
mod detail;
mod listener;
mod metrics;
mod pages;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use cerfs_fs_core::CerFs;

pub use listener::{TlsError, TlsFiles};
pub use state::ConsoleState;

/// Where `cerfs web` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8091";

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// A non-loopback address without accounts.
    #[error(
        "without accounts the web console listens on loopback only: {0} is not a loopback \
         address (give --users FILE with accounts from `cerfs web-user add`, or use \
         127.0.0.1 behind an SSH tunnel or an authenticating reverse proxy)"
    )]
    NotLoopback(SocketAddr),
    /// The users file is unusable.
    #[error(transparent)]
    Accounts(#[from] accounts::AccountsError),
    /// A users file without accounts.
    #[error(
        "{0} holds no accounts: add one with `cerfs web-user add NAME --role admin --users {0}`"
    )]
    NoAccounts(String),
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The runtime or its thread could not start.
    #[error("cannot start the web console: {0}")]
    Runtime(std::io::Error),
    /// The console's thread panicked.
    #[error("the web console's thread panicked")]
    Panicked,
}

/// The console's settings.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The store the pages read (a SQLite file or a PostgreSQL store).
    pub db: cerfs_db::StoreLocation,
    /// The users file (`None`: no accounts, read-only, loopback only).
    pub users: Option<PathBuf>,
    /// Serve HTTPS with this certificate and key (`None`: plain HTTP).
    pub tls: Option<TlsFiles>,
}

/// The console's routes; the server gives each request its peer (`ConnectInfo<Peer>`).
fn router(state: Arc<ConsoleState>) -> axum::Router {
    pages::routes()
        .merge(api::routes())
        .merge(detail::routes())
        .merge(admin::routes())
        .merge(auth::routes())
        .merge(metrics::routes())
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require,
        ))
        .with_state(state)
}

/// A console running on its own thread (its own tokio runtime). Stops on
/// [`WebHandle::shutdown`] or when dropped.
#[derive(Debug)]
pub struct WebHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WebHandle {
    /// The address it listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in progress finish, and waits for the thread.
    pub fn shutdown(mut self) -> Result<(), WebError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), WebError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| WebError::Panicked),
            None => Ok(()),
        }
    }
}

impl Drop for WebHandle {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_join() {
            tracing::warn!("stopping the web console: {e}");
        }
    }
}

/// The console's threads (workers and the blocking pool that reads the database) run at a
/// lower priority than the share's: when the CPU is short, a busy console slows itself,
/// not the clients' reports (benchmark 5c).
fn yield_to_clients() {
    // Linux keeps a nice value per thread; PRIO_PROCESS with 0 is the calling thread.
    // SAFETY: setpriority takes no pointers; a failure leaves the priority as it was.
    #[allow(unsafe_code)]
    let done = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, CONSOLE_NICE) };
    if done != 0 {
        tracing::debug!(
            "the console's thread keeps its priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The nice value of the console's threads (0 is the share's; 19 the lowest priority).
const CONSOLE_NICE: libc::c_int = 10;

/// Binds `addr` (loopback only) and serves the console on a thread of its own. Returns
/// once the socket is bound, so an address in use is reported here.
pub fn spawn(fs: Arc<CerFs>, addr: SocketAddr, config: WebConfig) -> Result<WebHandle, WebError> {
    let users = match &config.users {
        Some(path) => {
            let users = accounts::Users::load(path)?;
            if users.is_empty() {
                return Err(WebError::NoAccounts(path.display().to_string()));
            }
            Some(users)
        }
        None => None,
    };
    if users.is_none() && !addr.ip().is_loopback() {
        return Err(WebError::NotLoopback(addr));
    }
    let tls = config
        .tls
        .as_ref()
        .map(listener::server_config)
        .transpose()?;
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "the web console serves plain HTTP beyond loopback: passwords and session cookies \
             cross the network in clear text (give --tls-cert and --tls-key, or put a TLS \
             reverse proxy in front)"
        );
    }
    let secure = tls.is_some();
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| WebError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| WebError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| WebError::Bind { addr, source })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cerfs-web")
        .on_thread_start(yield_to_clients)
        .enable_all()
        .build()
        .map_err(WebError::Runtime)?;
    let state = Arc::new(ConsoleState::new(fs, config.db, users, secure));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("cerfs-web-main".into())
        .spawn(move || {
            yield_to_clients();
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener)
                    .and_then(|l| listener::ConsoleListener::start(l, tls))
                {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("web console: {e}");
                        return;
                    }
                };
                let app = router(state);
                let app = app.into_make_service_with_connect_info::<listener::Peer>();
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop_rx.await;
                    })
                    .await;
                if let Err(e) = served {
                    tracing::error!("web console: {e}");
                }
            });
        })
        .map_err(WebError::Runtime)?;
    tracing::info!(%local, https = secure, "web console listening");
    Ok(WebHandle {
        addr: local,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}
