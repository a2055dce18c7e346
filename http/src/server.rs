//! The HTTP server: an accept loop over hyper's HTTP/1.1 connections, the two routes
//! (level 1: `POST /stage2.htm`; level 2: `PUT <DumpFile>`), graceful shutdown.

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use cerfs_db::{DumpRequest, DumpState, ReportId, ReportStore, CABS_INO};
use cerfs_fs_core::settings_file::parse_bool;
use cerfs_fs_core::{share_path, subpath_parts, CerFs, FsError};
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, EXPECT};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::answer::Level1Answer;
use crate::bucket::{cab_name, map_report};
use crate::report::parse_report;
use crate::HttpError;

/// The port `cerfs http` listens on by default (on 127.0.0.1). Windows clients use port 80
/// unless their CER server setting names another: give `--listen 0.0.0.0:80` (or put a
/// reverse proxy in front) for them.
pub const DEFAULT_PORT: u16 = 8090;

/// `127.0.0.1:<DEFAULT_PORT>`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8090";

/// `BucketTable=` of every answer: cerfs has one table of bucket ids (the store's).
pub const BUCKET_TABLE: u64 = 1;

/// "Crashes per bucket" when neither status.txt nor policy.txt sets it (MS-CER 2.2.4).
pub const DEFAULT_CRASHES_PER_BUCKET: u64 = 5;

/// How many bytes of a cab are gathered before they are written to the store (one
/// transaction each); also the most a single upload holds in memory.
const WRITE_BATCH: usize = 512 * 1024;

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest level-1 report body accepted (bytes); larger: 413.
    pub max_report_size: usize,
    /// Largest cab accepted (bytes); larger: 413 and nothing kept.
    pub max_cab_size: u64,
    /// A level-1 body must arrive whole within this time, and a cab upload may not pause
    /// longer than this between two pieces; otherwise 408 and nothing kept.
    pub body_timeout: Duration,
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_report_size: 1 << 20,
            max_cab_size: 1 << 30,
            body_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(30),
            pending_window: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(30),
            max_connections: 256,
        }
    }
}

/// A refused request: the status and a one-line reason (the answer's body and the log's).
#[derive(Debug)]
struct Reject {
    status: StatusCode,
    reason: String,
}

impl Reject {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Reject {
            status,
            reason: reason.into(),
        }
    }

    /// A failure of the store or fs-core while handling a valid request.
    fn internal(what: &str, e: &dyn std::fmt::Display) -> Self {
        tracing::error!("{what}: {e}");
        Reject::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{what}: internal error"),
        )
    }

    fn from_fs(what: &str, e: FsError) -> Self {
        match e {
            FsError::NoSpace => {
                tracing::error!("{what}: the store is full");
                Reject::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    format!("{what}: the server's store is full"),
                )
            }
            other => Reject::internal(what, &other),
        }
    }
}

/// State shared by all connections.
struct App {
    fs: Arc<CerFs>,
    reports: Arc<dyn ReportStore>,
    config: Config,
    /// Reports whose DumpFile is being uploaded right now.
    uploading: Mutex<HashSet<ReportId>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Holds a report's upload slot; frees it when dropped.
struct Claim<'a> {
    app: &'a App,
    report: ReportId,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        lock(&self.app.uploading).remove(&self.report);
    }
}

/// An open cab upload; aborted (nothing kept) when dropped before it was handed on, which
/// also covers a request cancelled by a closed connection or a forced shutdown.
struct Upload {
    fs: Arc<CerFs>,
    fh: Option<u64>,
}

impl Upload {
    /// Aborts now (off the async threads).
    async fn abort(mut self) {
        if let Some(fh) = self.fh.take() {
            let fs = Arc::clone(&self.fs);
            let done = tokio::task::spawn_blocking(move || fs.abort_upload(fh)).await;
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(fh, "aborting an upload failed: {e}"),
                Err(e) => tracing::warn!(fh, "aborting an upload failed: {e}"),
            }
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(fh) = self.fh.take() {
            match self.fs.abort_upload(fh) {
                Ok(()) => tracing::warn!(
                    fh,
                    "upload cancelled (connection gone or server stopping): nothing kept"
                ),
                Err(e) => tracing::warn!(fh, "aborting a cancelled upload failed: {e}"),
            }
        }
    }
}

/// At most this much of a refused body is read and discarded before answering.
const DRAIN_LIMIT: usize = 4 << 20;

/// Reads and discards what is left of a refused body (at most [`DRAIN_LIMIT`] bytes, within
/// `timeout`), so that a client still sending it gets to read the answer instead of a reset
/// connection.
async fn drain(body: &mut Incoming, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut left = DRAIN_LIMIT;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
        if let Ok(data) = frame.into_data() {
            if data.len() >= left {
                break;
            }
            left -= data.len();
        }
    }
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

/// A short, printable form of a request path for logs.
fn loggable(path: &str) -> String {
    path.chars()
        .take(300)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn text_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=windows-1252"),
    );
    resp
}

/// The DumpFile a request path names: percent-decoded, `/` and `\` alike, empty segments
/// dropped, as `\A\B\...`. A leading `DumpFile=` (as [MS-CER2] 4.4 step 8 literally
/// writes the URL path) is ignored.
pub fn normalize_dump_path(raw: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    let mut parts: Vec<&str> = decoded
        .split(['/', '\\'])
        .filter(|p| !p.is_empty())
        .collect();
    if let Some(first) = parts.first_mut() {
        if let Some(rest) = first.strip_prefix("DumpFile=") {
            *first = rest;
        }
    }
    parts.retain(|p| !p.is_empty());
    if parts.is_empty() {
        return None;
    }
    Some(format!("\\{}", parts.join("\\")))
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
                if rej.status != StatusCode::REQUEST_TIMEOUT
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
                resp
            }
        }
    }

    /// Reads a whole level-1 body: at most `max_report_size` bytes within `body_timeout`.
    async fn read_report_body(
        &self,
        headers: &HeaderMap,
        body: &mut Incoming,
    ) -> Result<Vec<u8>, Reject> {
        let limit = self.config.max_report_size;
        let too_big = || {
            Reject::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the report is larger than {limit} bytes"),
            )
        };
        if content_length(headers).is_some_and(|n| n > limit as u64) {
            return Err(too_big());
        }
        let deadline = tokio::time::Instant::now() + self.config.body_timeout;
        let mut buf = Vec::new();
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => {
                    return Err(Reject::new(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "the report did not arrive within {} s",
                            self.config.body_timeout.as_secs_f64()
                        ),
                    ))
                }
                Ok(None) => return Ok(buf),
                Ok(Some(Err(e))) => {
                    return Err(Reject::new(
                        StatusCode::BAD_REQUEST,
                        format!("the report was cut short: {e}"),
                    ))
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(too_big());
                }
                buf.extend_from_slice(&data);
            }
        }
    }

    /// Level 1: validate, map to a bucket, count the hit, store the report, answer.
    async fn level1(
        self: &Arc<Self>,
        headers: &HeaderMap,
        body: &mut Incoming,
        peer: SocketAddr,
    ) -> Result<Response<Full<Bytes>>, Reject> {
        let body = self.read_report_body(headers, body).await?;
        let report =
            parse_report(&body).map_err(|e| Reject::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        drop(body);
        let app = Arc::clone(self);
        let answer = blocking("storing the report", move || {
            app.store_report(&report, peer)
        })
        .await?;
        Ok(text_response(StatusCode::OK, answer.render()))
    }

    fn store_report(
        &self,
        report: &crate::report::WerReport,
        peer: SocketAddr,
    ) -> Result<Level1Answer, Reject> {
        let mapping = map_report(report);
        let subpath = mapping.subpath();
        let parts = subpath_parts(&subpath).map_err(|e| {
            Reject::new(
                StatusCode::BAD_REQUEST,
                format!("the signature maps to no valid bucket name: {e}"),
            )
        })?;
        let settings = self
            .fs
            .effective_settings(&subpath)
            .map_err(|e| Reject::from_fs("reading the bucket's settings", e))?;
        let get = |k: &str| {
            settings
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let wants_data = get("iData").and_then(parse_bool).unwrap_or(true)
            && get("NoSecondLevelCollection").and_then(parse_bool) != Some(true);
        let cap = get("Crashes per bucket")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(DEFAULT_CRASHES_PER_BUCKET);
        let counts = self
            .fs
            .count_report(&subpath, 0, 1)
            .map_err(|e| Reject::from_fs("counting the report", e))?;
        if wants_data {
            // The cab's folder exists before a DumpFile is issued, so that a refused or
            // failed upload leaves nothing behind at all.
            self.fs
                .ensure_dirs(CABS_INO, &parts)
                .map_err(|e| Reject::from_fs("creating the cab folder", e))?;
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let bucket = self
            .fs
            .store()
            .ensure_bucket(&share_path::bucket_key(&refs))
            .map_err(|e| Reject::from_fs("finding the bucket", e.into()))?;
        let guid = uuid::Uuid::new_v4().hyphenated().to_string();
        let dump_path = mapping.dump_path(&guid);
        let cab = cab_name(&guid);
        let request = wants_data.then(|| DumpRequest {
            cap,
            pending_window: self.config.pending_window,
            dump_path: &dump_path,
            cab_name: &cab,
        });
        let recorded = self
            .reports
            .record_report(bucket, report, request.as_ref())
            .map_err(|e| Reject::from_fs("storing the report", e.into()))?;
        let bucket_id = u64::try_from(bucket)
            .ok()
            .filter(|b| *b > 0)
            .ok_or_else(|| {
                Reject::internal("storing the report", &format!("bucket id {bucket}"))
            })?;
        let mut answer = Level1Answer {
            bucket: bucket_id,
            bucket_table: BUCKET_TABLE,
            idata: recorded.dump_issued,
            dump_file: recorded.dump_issued.then(|| dump_path.clone()),
            ..Default::default()
        };
        answer.apply_settings(&settings);
        tracing::info!(
            %peer,
            report = recorded.report_id,
            bucket,
            subpath = %subpath,
            event = %report.event_type,
            hits = counts.total_hits,
            dump = recorded.dump_issued.then_some(dump_path.as_str()),
            "level-1 report stored"
        );
        Ok(answer)
    }

    /// Level 2: stream the cab into the share's cab storage, then count and link it.
    async fn level2(
        self: &Arc<Self>,
        headers: &HeaderMap,
        body: &mut Incoming,
        raw_path: &str,
        peer: SocketAddr,
    ) -> Result<Response<Full<Bytes>>, Reject> {
        let unknown = || Reject::new(StatusCode::NOT_FOUND, "no such DumpFile was issued");
        let key = normalize_dump_path(raw_path).ok_or_else(unknown)?;
        let reports = Arc::clone(&self.reports);
        let lookup_key = key.clone();
        let dump = blocking("looking up the DumpFile", move || {
            reports
                .dump_by_path(&lookup_key)
                .map_err(|e| Reject::internal("looking up the DumpFile", &e))
        })
        .await?
        .ok_or_else(unknown)?;
        if dump.state == DumpState::Uploaded {
            return Err(Reject::new(
                StatusCode::CONFLICT,
                "this DumpFile was already uploaded",
            ));
        }
        if !lock(&self.uploading).insert(dump.report_id) {
            return Err(Reject::new(
                StatusCode::CONFLICT,
                "an upload to this DumpFile is in progress",
            ));
        }
        let _claim = Claim {
            app: self,
            report: dump.report_id,
        };
        let max = self.config.max_cab_size;
        let too_big = || {
            Reject::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the cab is larger than {max} bytes"),
            )
        };
        if content_length(headers).is_some_and(|n| n > max) {
            return Err(too_big());
        }
        let fs = Arc::clone(&self.fs);
        let (sub, name) = (dump.subpath.clone(), dump.cab_name.clone());
        let fh = blocking("starting the cab", move || {
            fs.begin_cab(&sub, &name).map_err(|e| match e {
                FsError::Exists => {
                    Reject::new(StatusCode::CONFLICT, "this DumpFile's cab already exists")
                }
                other => Reject::from_fs("starting the cab", other),
            })
        })
        .await?;
        let mut upload = Upload {
            fs: Arc::clone(&self.fs),
            fh: Some(fh),
        };
        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
        let mut received: u64 = 0;
        let mut written: u64 = 0;
        let failure = loop {
            let frame = match tokio::time::timeout(self.config.body_timeout, body.frame()).await {
                Err(_) => {
                    break Reject::new(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "no data for {} s: upload abandoned",
                            self.config.body_timeout.as_secs_f64()
                        ),
                    )
                }
                Ok(None) => {
                    if !buf.is_empty() {
                        if let Err(rej) = self.write(fh, written, std::mem::take(&mut buf)).await {
                            break rej;
                        }
                    }
                    // Hand the handle to the finishing step, which runs to its end.
                    upload.fh = None;
                    let app = Arc::clone(self);
                    let dump = dump.clone();
                    return blocking("storing the cab", move || {
                        app.finish_upload(fh, &dump, received, peer)
                    })
                    .await
                    .map(|()| text_response(StatusCode::OK, Vec::new()));
                }
                Ok(Some(Err(e))) => {
                    break Reject::new(
                        StatusCode::BAD_REQUEST,
                        format!("the upload was cut short: {e}"),
                    )
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            received += data.len() as u64;
            if received > max {
                break too_big();
            }
            buf.extend_from_slice(&data);
            if buf.len() >= WRITE_BATCH {
                let n = buf.len() as u64;
                match self.write(fh, written, buf).await {
                    Ok(b) => {
                        buf = b;
                        written += n;
                    }
                    Err(rej) => break rej,
                }
            }
        };
        upload.abort().await;
        Err(failure)
    }

    /// Writes `buf` at `offset` through the upload handle; returns the emptied buffer.
    async fn write(&self, fh: u64, offset: u64, buf: Vec<u8>) -> Result<Vec<u8>, Reject> {
        let fs = Arc::clone(&self.fs);
        blocking("writing the cab", move || {
            let mut at = 0usize;
            while at < buf.len() {
                let rest = buf.get(at..).unwrap_or_default();
                let n = fs
                    .write(fh, offset + at as u64, rest)
                    .map_err(|e| Reject::from_fs("writing the cab", e))?;
                if n == 0 {
                    return Err(Reject::internal("writing the cab", &"no progress"));
                }
                at += n as usize;
            }
            let mut buf = buf;
            buf.clear();
            Ok(buf)
        })
        .await
    }

    /// Commits the cab, counts it (Cabs Gathered + 1) and links it to its report.
    fn finish_upload(
        &self,
        fh: u64,
        dump: &cerfs_db::IssuedDump,
        size: u64,
        peer: SocketAddr,
    ) -> Result<(), Reject> {
        if let Err(e) = self.fs.flush(fh, None) {
            if let Err(abort) = self.fs.abort_upload(fh) {
                tracing::warn!(fh, "aborting an upload failed: {abort}");
            }
            return Err(Reject::from_fs("committing the cab", e));
        }
        if let Err(e) = self.fs.release(fh) {
            tracing::warn!(fh, "releasing a committed cab: {e}");
        }
        let counts = self
            .fs
            .count_report(&dump.subpath, 1, 0)
            .map_err(|e| Reject::from_fs("counting the cab", e))?;
        let ino = self
            .reports
            .mark_uploaded(dump.report_id)
            .map_err(|e| Reject::internal("linking the cab to its report", &e))?;
        tracing::info!(
            %peer,
            report = dump.report_id,
            subpath = %dump.subpath,
            cab = %dump.cab_name,
            ino,
            size,
            cabs_gathered = counts.cabs_gathered,
            "level-2 cab stored"
        );
        Ok(())
    }
}

/// Serves [MS-CER2] on `listener` until `shutdown` completes, then stops accepting, lets
/// requests in progress finish (up to [`Config::shutdown_grace`], then aborts them: an
/// upload cut this way keeps nothing) and returns.
///
/// `reports` must be the same store as the one behind `fs` (one `SqliteStore` shared by
/// both), so that the report rows and the share's buckets and cabs live in one database.
pub async fn serve<F>(
    fs: Arc<CerFs>,
    reports: Arc<dyn ReportStore>,
    listener: TcpListener,
    config: Config,
    shutdown: F,
) -> Result<(), HttpError>
where
    F: Future<Output = ()> + Send,
{
    let grace = config.shutdown_grace;
    let header_timeout = config.header_timeout;
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let app = Arc::new(App {
        fs,
        reports,
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
        let app = Arc::clone(&app);
        let mut stop = stop_rx.clone();
        conns.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(app.handle(req, peer).await) }
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
/// bound, so an address in use is reported here. See [`serve`] about `reports`.
pub fn spawn(
    fs: Arc<CerFs>,
    reports: Arc<dyn ReportStore>,
    addr: SocketAddr,
    config: Config,
) -> Result<HttpHandle, HttpError> {
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
                serve(fs, reports, listener, config, async move {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_paths_normalise() {
        let want = Some(r"\PersistedCabs\Blue\x.cab".to_owned());
        assert_eq!(normalize_dump_path("/PersistedCabs/Blue/x.cab"), want);
        assert_eq!(
            normalize_dump_path("/%5CPersistedCabs%5CBlue%5Cx.cab"),
            want
        );
        assert_eq!(
            normalize_dump_path("/%5cPersistedCabs%5cBlue%5cx.cab"),
            want
        );
        assert_eq!(normalize_dump_path(r"/\PersistedCabs\Blue\x.cab"), want);
        assert_eq!(normalize_dump_path("//PersistedCabs//Blue/x.cab"), want);
        assert_eq!(
            normalize_dump_path(r"/DumpFile=\PersistedCabs\Blue\x.cab"),
            want
        );
        assert_eq!(
            normalize_dump_path("/DumpFile=%5CPersistedCabs%5CBlue%5Cx.cab"),
            want
        );
        assert_eq!(normalize_dump_path("/"), None);
        assert_eq!(normalize_dump_path("/%FF"), None);
    }
}
