//! Refusals: the status and one-line reason of every request the server does not take, the
//! one mapping of fs-core's errors to HTTP statuses (as `errno.rs` maps them to errnos and
//! `ntstatus.rs` to NTSTATUS), and the plain-text answers.

use std::time::Duration;

use bytes::Bytes;
use cerfs_fs_core::FsError;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

/// A refused request: the status and a one-line reason (the answer's body and the log's).
#[derive(Debug)]
pub(crate) struct Reject {
    pub(crate) status: StatusCode,
    pub(crate) reason: String,
    /// Answer at once and close the connection, reading nothing more of the body (its
    /// announced length is refused).
    pub(crate) close: bool,
}

impl Reject {
    pub(crate) fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Reject {
            status,
            reason: reason.into(),
            close: false,
        }
    }

    /// The same, answered at once on a connection that is then closed.
    pub(crate) fn closing(status: StatusCode, reason: impl Into<String>) -> Self {
        Reject {
            close: true,
            ..Reject::new(status, reason)
        }
    }

    /// A failure while handling a valid request that the client cannot fix.
    pub(crate) fn internal(what: &str, e: &dyn std::fmt::Display) -> Self {
        tracing::error!("{what}: {e}");
        Reject::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{what}: internal error"),
        )
    }

    /// fs-core refused or failed `what`: the status of [`status_of`], with fs-core's reason
    /// for a refusal of the client's input, or only "internal error" for a server fault
    /// (its details go to the log, not to the client).
    pub(crate) fn from_fs(what: &str, e: FsError) -> Self {
        cerfs_fs_core::stats::STATS.refused(cerfs_fs_core::stats::Adapter::Http, &e);
        let status = status_of(&e);
        let retry_later = matches!(
            status,
            StatusCode::INSUFFICIENT_STORAGE | StatusCode::SERVICE_UNAVAILABLE
        );
        if status.is_server_error() && !retry_later {
            return Reject::internal(what, &e);
        }
        if status == StatusCode::INSUFFICIENT_STORAGE {
            tracing::error!("{what}: the store is full");
            return Reject::new(status, format!("{what}: the server's store is full"));
        }
        if retry_later {
            tracing::warn!("{what}: {e}");
        }
        Reject::new(status, format!("{what}: {e}"))
    }
}

/// The HTTP status for an fs-core error: the one place this mapping is written.
pub fn status_of(e: &FsError) -> StatusCode {
    match e {
        FsError::NotFound => StatusCode::NOT_FOUND,
        FsError::Exists | FsError::Busy => StatusCode::CONFLICT,
        FsError::InvalidName(_)
        | FsError::NameTooLong(_)
        | FsError::ComponentTooLong(_)
        | FsError::InvalidContent(_) => StatusCode::BAD_REQUEST,
        FsError::NotPermitted(_) | FsError::AccessDenied(_) => StatusCode::FORBIDDEN,
        FsError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        FsError::Exhausted(_) => StatusCode::SERVICE_UNAVAILABLE,
        FsError::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
        FsError::NotDir | FsError::IsDir | FsError::NotEmpty | FsError::BadHandle => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        FsError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// At most this much of a refused body is read and discarded before answering.
const DRAIN_LIMIT: usize = 4 << 20;

/// Reads and discards what is left of a refused body (at most [`DRAIN_LIMIT`] bytes, within
/// `timeout`), so that a client still sending it gets to read the answer instead of a reset
/// connection.
pub(crate) async fn drain(body: &mut Incoming, timeout: Duration) {
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

/// A short, printable form of a request path for logs.
pub(crate) fn loggable(path: &str) -> String {
    path.chars()
        .take(300)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A plain-text answer in the ANSI code page MS-CER2 answers are written in.
pub(crate) fn text_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=windows-1252"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_its_status() {
        let cases = [
            (FsError::NotFound, 404),
            (FsError::Exists, 409),
            (FsError::Busy, 409),
            (FsError::InvalidName("x".into()), 400),
            (FsError::NameTooLong(261), 400),
            (FsError::ComponentTooLong(256), 400),
            (FsError::InvalidContent("x".into()), 400),
            (FsError::NotPermitted("x"), 403),
            (FsError::AccessDenied("x"), 403),
            (FsError::TooLarge(1), 413),
            (FsError::Exhausted("x"), 503),
            (FsError::NoSpace, 507),
            (FsError::BadHandle, 500),
            (FsError::NotDir, 500),
        ];
        for (e, code) in cases {
            assert_eq!(status_of(&e).as_u16(), code, "{e:?}");
        }
    }
}
