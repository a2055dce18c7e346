//! The HTTP server: an accept loop over hyper's HTTP/1.1 connections, the dispatch of the
//! two routes (level 1, `POST /stage2.htm`: `level1.rs`; level 2, `PUT <DumpFile>`:
//! `upload.rs`), refusals (`reject.rs`), graceful shutdown.

mod level1;
mod limits;
mod reject;
mod upload;

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use cerfs_db::ReportId;
use cerfs_fs_core::CerFs;
use http_body_util::Full;
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::header::{
    HeaderMap, HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, EXPECT, RETRY_AFTER,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub use self::reject::status_of;
use self::reject::{drain, loggable, text_response, Reject};
pub use self::upload::normalize_dump_path;
use crate::HttpError;

/// The port `cerfs http` listens on by default (on 127.0.0.1). Windows clients use port 80
/// unless their CER server setting names another: give `--listen 0.0.0.0:80` (or put a
/// reverse proxy in front) for them.
pub const DEFAULT_PORT: u16 = 8090;

/// `127.0.0.1:<DEFAULT_PORT>`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8090";

/// `BucketTable=` of every answer: cerfs has one table of bucket ids (the store's).
pub const BUCKET_TABLE: u64 = 1;

/// Server settings. The largest cab accepted is the share's own
/// ([`CerFs::max_cab_size`]): one setting for SMB and HTTP.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest level-1 report body accepted (bytes); larger: 413 (at once when announced).
    pub max_report_size: usize,
    /// A request body may not pause longer than this between two pieces; otherwise 408
    /// and nothing kept.
    pub body_timeout: Duration,
    /// After this long, a body must have come at [`Config::min_body_rate`] on average.
    pub body_grace: Duration,
    /// Bytes per second a body must average after [`Config::body_grace`] (0: no minimum);
    /// otherwise 408 and nothing kept.
    pub min_body_rate: u64,
    /// A request's headers must arrive within this time, or the connection is closed.
    pub header_timeout: Duration,
    /// Issued DumpFiles younger than this that were not uploaded yet count against a
    /// bucket's "Crashes per bucket" (so concurrent reports do not overshoot it).
    pub pending_window: Duration,
    /// At shutdown, requests in progress get this long to finish; uploads still running
    /// after it are aborted (nothing kept).
    pub shutdown_grace: Duration,
    /// Most connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Most connections one client address may hold open; more are answered 503 and
    /// closed, so that one client cannot take every connection.
    pub max_connections_per_address: usize,
    /// Most new buckets the reports of one address may create per minute; past it a
    /// report of an unknown signature gets 429 (and is not counted).
    pub new_buckets_per_minute: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_report_size: 1 << 20,
            body_timeout: Duration::from_secs(60),
            body_grace: Duration::from_secs(10),
            min_body_rate: 1024,
            header_timeout: Duration::from_secs(10),
            pending_window: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(30),
            max_connections: 256,
            max_connections_per_address: 16,
            new_buckets_per_minute: 100,
        }
    }
}

/// State shared by all connections.
struct App {
    fs: Arc<CerFs>,
    config: Config,
    /// Reports whose DumpFile is being uploaded right now.
    uploading: Mutex<HashSet<ReportId>>,
    /// New buckets each client address created this minute.
    new_buckets: limits::NewBuckets,
}

impl App {
    /// The pace every request body must keep.
    fn body_pace(&self) -> limits::BodyPace {
        limits::BodyPace {
            stall: self.config.body_timeout,
            grace: self.config.body_grace,
            min_rate: self.config.min_body_rate,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs blocking fs-core / store work off the async threads. The closure runs to the end
/// even if the request is cancelled meanwhile.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, Reject> + Send + 'static,
) -> Result<T, Reject> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(Reject::internal(what, &e)),
    }
}

fn is_stage2(path: &str) -> bool {
    path.eq_ignore_ascii_case("/stage2.htm")
}

/// Whether the client waits for `100 Continue` before sending its body.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

/// The Content-Length header, if present and valid.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

impl App {
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let (parts, mut body) = req.into_parts();
        let method = parts.method.clone();
        let path = parts.uri.path().to_owned();
        let result = if is_stage2(&path) {
            if method == Method::POST {
                self.level1(&parts.headers, &mut body, peer).await
            } else {
                Err(Reject::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "level-1 reports are POSTed to /stage2.htm",
                ))
            }
        } else if method == Method::PUT {
            self.level2(&parts.headers, &mut body, &path, peer).await
        } else {
            Err(Reject::new(StatusCode::NOT_FOUND, "not found"))
        };
        match result {
            Ok(resp) => resp,
            Err(rej) => {
                // Read what is left of the refused body, so that a client still sending it
                // reads this answer rather than a reset connection; not for a stalled
                // client, nor one that waits for 100 Continue before sending.
                if !rej.close
                    && rej.status != StatusCode::REQUEST_TIMEOUT
                    && !body.is_end_stream()
                    && !expects_continue(&parts.headers)
                {
                    drain(&mut body, self.config.body_timeout).await;
                }
                let reason: String = rej
                    .reason
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                tracing::warn!(
                    %peer,
                    %method,
                    path = %loggable(&path),
                    status = rej.status.as_u16(),
                    reason = %reason,
                    "rejected"
                );
                let mut body = cerfs_fs_core::settings_file::encode_ansi(&reason);
                body.extend_from_slice(b"\r\n");
                let mut resp = text_response(rej.status, body);
                if rej.status == StatusCode::METHOD_NOT_ALLOWED {
                    resp.headers_mut()
                        .insert(ALLOW, HeaderValue::from_static("POST"));
                }
                if rej.status == StatusCode::TOO_MANY_REQUESTS {
                    resp.headers_mut()
                        .insert(RETRY_AFTER, HeaderValue::from_static("60"));
                }
                if rej.close {
                    // The body it announced is not read: the connection cannot go on.
                    resp.headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                resp
            }
        }
    }
}

/// Serves [MS-CER2] on `listener` until `shutdown` completes, then stops accepting, lets
/// requests in progress finish (up to [`Config::shutdown_grace`], then aborts them: an
/// upload cut this way keeps nothing) and returns.
pub async fn serve<F>(
    fs: Arc<CerFs>,
    listener: TcpListener,
    config: Config,
    shutdown: F,
) -> Result<(), HttpError>
where
    F: Future<Output = ()> + Send,
{
    let grace = config.shutdown_grace;
    let header_timeout = config.header_timeout;
    let per_address_cap = config.max_connections_per_address.max(1);
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let per_address = Arc::new(limits::PerAddress::default());
    let app = Arc::new(App {
        fs,
        new_buckets: limits::NewBuckets::new(config.new_buckets_per_minute),
        config,
        uploading: Mutex::new(HashSet::new()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "CER V2 HTTP server listening");
    }
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: log, breathe, go on.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while conns.try_join_next().is_some() {}
        let Some(counted) = limits::PerAddress::admit(&per_address, peer.ip(), per_address_cap)
        else {
            tracing::warn!(%peer, cap = per_address_cap, "refused a connection: its address holds too many");
            conns.spawn(refuse_connection(stream));
            continue;
        };
        let app = Arc::clone(&app);
        let mut stop = stop_rx.clone();
        conns.spawn(async move {
            let _permit = permit;
            let _counted = counted;
            let service = service_fn(move |req| {
                let app = Arc::clone(&app);
                async move {
                    let _timed = cerfs_fs_core::stats::STATS
                        .time(cerfs_fs_core::stats::Adapter::Http, "report");
                    Ok::<_, Infallible>(app.handle(req, peer).await)
                }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    tracing::info!(connections = conns.len(), "CER V2 HTTP server stopping");
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            connections = conns.len(),
            "requests still running after the shutdown grace period: aborted"
        );
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
    tracing::info!("CER V2 HTTP server stopped");
    Ok(())
}

/// Answers a connection over its address's cap with 503 and closes it, without reading.
async fn refuse_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = "too many connections from your address: retry later\r\n";
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 10\r\n\
         Content-Type: text/plain; charset=windows-1252\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let written = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
    if written.is_err() {
        tracing::debug!("a refused connection did not take its answer");
    }
}

/// A server running on its own thread (with its own tokio runtime), from [`spawn`].
/// Stops (gracefully) on [`HttpHandle::shutdown`] or when dropped.
#[derive(Debug)]
pub struct HttpHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), HttpError>>>,
}

impl HttpHandle {
    /// The address the server listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, waits for requests in progress (see [`serve`]) and for the thread.
    pub fn shutdown(mut self) -> Result<(), HttpError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), HttpError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| HttpError::Panicked)?,
            None => Ok(()),
        }
    }
}

impl Drop for HttpHandle {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_join() {
            tracing::warn!("stopping the HTTP server: {e}");
        }
    }
}

/// Binds `addr` and serves [MS-CER2] on a thread of its own (a tokio runtime with two
/// workers; blocking store work goes to its blocking pool). Returns once the socket is
/// bound, so an address in use is reported here.
pub fn spawn(fs: Arc<CerFs>, addr: SocketAddr, config: Config) -> Result<HttpHandle, HttpError> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| HttpError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| HttpError::Bind { addr, source })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cerfs-http")
        .enable_all()
        .build()
        .map_err(HttpError::Runtime)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("cerfs-http-main".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).map_err(HttpError::Runtime)?;
                serve(fs, listener, config, async move {
                    let _ = stop_rx.await;
                })
                .await
            })
        })
        .map_err(HttpError::Runtime)?;
    Ok(HttpHandle {
        addr: local,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}
