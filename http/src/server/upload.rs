//! Level 2: a cab PUT to an issued DumpFile streams into the share's cab storage in bounded
//! memory, and is committed, counted and linked to its report by fs-core
//! ([`CerFs::finish_cer2_upload`](cerfs_fs_core::CerFs::finish_cer2_upload)). An upload
//! refused, cut short or cancelled keeps nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use cerfs_db::{DumpState, ReportId};
use cerfs_fs_core::{CerFs, FsError};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};

use super::limits::BodyClock;
use super::reject::{status_of, text_response, Reject};
use super::{blocking, content_length, lock, App};

/// How many bytes of a cab are gathered before they are written to the store (one
/// transaction each); also the most a single upload holds in memory.
const WRITE_BATCH: usize = 512 * 1024;

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
            // A cancelled request drops this on an async thread, where a store that blocks
            // on a runtime of its own (PostgreSQL's client) may not: the abort runs on a
            // thread of its own, waited for, so that nothing is left when the drop returns.
            let fs = &self.fs;
            let aborted = std::thread::scope(|s| s.spawn(|| fs.abort_upload(fh)).join());
            match aborted {
                Ok(Ok(())) => tracing::warn!(
                    fh,
                    "upload cancelled (connection gone or server stopping): nothing kept"
                ),
                Ok(Err(e)) => tracing::warn!(fh, "aborting a cancelled upload failed: {e}"),
                Err(_) => tracing::warn!(fh, "aborting a cancelled upload panicked"),
            }
        }
    }
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

impl App {
    /// Level 2: stream the cab into the share's cab storage, then count and link it.
    pub(super) async fn level2(
        self: &Arc<Self>,
        headers: &HeaderMap,
        body: &mut Incoming,
        raw_path: &str,
        peer: SocketAddr,
    ) -> Result<Response<Full<Bytes>>, Reject> {
        let unknown = || Reject::new(StatusCode::NOT_FOUND, "no such DumpFile was issued");
        let key = normalize_dump_path(raw_path).ok_or_else(unknown)?;
        let fs = Arc::clone(&self.fs);
        let dump = blocking("looking up the DumpFile", move || {
            fs.issued_dump(&key)
                .map_err(|e| Reject::from_fs("looking up the DumpFile", e))
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
        let max = self.fs.max_cab_size();
        let too_big = || {
            Reject::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the cab is larger than {max} bytes"),
            )
        };
        if let Some(announced) = content_length(headers).filter(|n| *n > max) {
            return Err(Reject::closing(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the cab announces {announced} bytes; at most {max} are accepted"),
            ));
        }
        let fs = Arc::clone(&self.fs);
        let (sub, name) = (dump.subpath.clone(), dump.cab_name.clone());
        let fh = blocking("starting the cab", move || {
            fs.begin_cab(&sub, &name).map_err(|e| match e {
                FsError::Exists => Reject::new(status_of(&e), "this DumpFile's cab already exists"),
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
        let clock = BodyClock::start(self.body_pace());
        let failure = loop {
            let deadline = clock.deadline(received);
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => break Reject::new(StatusCode::REQUEST_TIMEOUT, clock.reason(received)),
                Ok(None) => {
                    if !buf.is_empty() {
                        if let Err(rej) = self.write(fh, written, std::mem::take(&mut buf)).await {
                            break rej;
                        }
                    }
                    // Hand the handle to the finishing step, which runs to its end.
                    upload.fh = None;
                    let fs = Arc::clone(&self.fs);
                    return blocking("storing the cab", move || {
                        let (ino, counts) = fs
                            .finish_cer2_upload(fh, &dump)
                            .map_err(|e| Reject::from_fs("storing the cab", e))?;
                        tracing::info!(
                            %peer,
                            report = dump.report_id,
                            subpath = %dump.subpath,
                            cab = %dump.cab_name,
                            ino,
                            size = received,
                            cabs_gathered = counts.cabs_gathered,
                            "level-2 cab stored"
                        );
                        Ok(())
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
