//! The console's listener: plain TCP, or TLS (rustls) from a PEM certificate chain and key.
//! Connections are accepted and their TLS handshakes run on tasks of their own, bounded in
//! number and time, so a client that stalls its handshake holds up nobody else; axum then
//! serves the finished connections.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIME: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; more connections wait in the kernel's backlog.
const HANDSHAKES: usize = 64;

/// The certificate chain and private key files (PEM) of `--tls-cert` and `--tls-key`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server's certificate, then any intermediates.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file unreadable or not PEM of the right kind.
    #[error("cannot read the TLS {what} {path}: {reason} (give a PEM file{hint})")]
    File {
        /// certificate or key.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
        /// What such a file holds.
        hint: &'static str,
    },
    /// rustls refused the pair.
    #[error("the TLS certificate {cert} and key {key} do not make a server identity: {reason}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
}

/// Builds the rustls server configuration (HTTP/1.1 only, as the console speaks).
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let file_error = |what, path: &Path, reason: String, hint| TlsError::File {
        what,
        path: path.to_owned(),
        reason,
        hint,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| {
            file_error(
                "certificate",
                &files.cert,
                e.to_string(),
                " starting with -----BEGIN CERTIFICATE-----",
            )
        })?;
    if certs.is_empty() {
        return Err(file_error(
            "certificate",
            &files.cert,
            "no certificate in it".into(),
            " starting with -----BEGIN CERTIFICATE-----",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        file_error(
            "key",
            &files.key,
            e.to_string(),
            " with a -----BEGIN PRIVATE KEY----- block",
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| TlsError::Pair {
            cert: files.cert.clone(),
            key: files.key.clone(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A connection axum serves: a TCP stream, or a TLS stream over one.
pub(crate) trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// The peer of a request (`ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, ConsoleListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, ConsoleListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

/// Connections ready to serve, from the accept task.
pub(crate) struct ConsoleListener {
    ready: mpsc::Receiver<(Box<dyn Conn>, SocketAddr)>,
    local: SocketAddr,
}

impl ConsoleListener {
    /// Starts accepting on `listener` (inside a tokio runtime); TLS when `tls` is given.
    pub(crate) fn start(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<ConsoleListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel::<(Box<dyn Conn>, SocketAddr)>(HANDSHAKES);
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let handshakes = Arc::new(Semaphore::new(HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors and the like: wait rather than spin.
                        tracing::warn!("web console: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let Some(acceptor) = acceptor.clone() else {
                    if tx.send((Box::new(tcp), peer)).await.is_err() {
                        return; // the server stopped
                    }
                    continue;
                };
                let Ok(permit) = Arc::clone(&handshakes).acquire_owned().await else {
                    return;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIME, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((Box::new(tls), peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%peer, "web console: TLS handshake refused: {e}")
                        }
                        Err(_) => tracing::info!(%peer, "web console: TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(ConsoleListener { ready, local })
    }
}

impl axum::serve::Listener for ConsoleListener {
    type Io = Box<dyn Conn>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
