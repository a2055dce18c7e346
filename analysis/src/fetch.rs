//! Fetching symbol files over HTTP, bounded: a time limit per request (the whole body
//! included), a size limit (checked on the announced length and while reading), a limit
//! on redirects. Every problem is recorded for the `symbol_fetches` view; none stops the
//! walk (the module is then without symbols).

use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use cerfs_db::SymbolFetch;
use serde::{Deserialize, Serialize};

/// Bounds on every symbol download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchLimits {
    /// Time for one request, body included.
    pub timeout: Duration,
    /// Largest file accepted (a PDB can be large; a `.sym` too).
    pub max_bytes: u64,
    /// Redirects followed at most.
    pub max_redirects: usize,
    /// How long a file found missing is not asked for again.
    pub negative_ttl: Duration,
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            timeout: Duration::from_secs(30),
            max_bytes: 512 << 20,
            max_redirects: 5,
            negative_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// What a request gave.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// The body.
    Found(Vec<u8>),
    /// Not there (404, or an answer that is not a file: recorded).
    Missing,
    /// The server did not answer properly (a timeout, a redirect loop, no connection):
    /// recorded, and the server is not asked again by this walker.
    Down,
}

/// An HTTP client with the limits, recording problems.
pub(crate) struct Fetcher {
    client: Option<reqwest::blocking::Client>,
    limits: FetchLimits,
    problems: Mutex<Vec<SymbolFetch>>,
}

impl Fetcher {
    pub(crate) fn new(limits: FetchLimits) -> Fetcher {
        let client = reqwest::blocking::Client::builder()
            .timeout(limits.timeout)
            .connect_timeout(limits.timeout)
            .redirect(reqwest::redirect::Policy::limited(limits.max_redirects))
            // What Microsoft's symbol server and its mirrors expect to see.
            .user_agent("Microsoft-Symbol-Server/10.0.0.0 (cerfs)")
            .build()
            .map_err(|e| tracing::warn!("no HTTP client for symbols: {e}"))
            .ok();
        Fetcher {
            client,
            limits,
            problems: Mutex::new(Vec::new()),
        }
    }

    /// The problems recorded so far (and forgets them).
    pub(crate) fn take_problems(&self) -> Vec<SymbolFetch> {
        std::mem::take(&mut *self.problems.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records a problem of `url` (and logs it); the file counts as missing, and the
    /// server as down when the problem is the server's rather than the file's.
    pub(crate) fn note(&self, url: &str, outcome: &str, detail: impl Into<String>) -> Fetched {
        let detail = detail.into();
        tracing::warn!(url, outcome, "symbol source: {detail}");
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(SymbolFetch {
                url: url.to_owned(),
                outcome: outcome.to_owned(),
                detail,
            });
        match outcome {
            "timeout" | "redirects" | "error" => Fetched::Down,
            _ => Fetched::Missing,
        }
    }

    pub(crate) fn get(&self, url: &str) -> Fetched {
        let Some(client) = &self.client else {
            return Fetched::Missing;
        };
        let response = match client.get(url).send() {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return self.note(
                    url,
                    "timeout",
                    format!("no answer within {:?}", self.limits.timeout),
                )
            }
            Err(e) if e.is_redirect() => {
                return self.note(
                    url,
                    "redirects",
                    format!("more than {} redirects", self.limits.max_redirects),
                )
            }
            Err(e) => return self.note(url, "error", e.to_string()),
        };
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Fetched::Missing;
        }
        if !status.is_success() {
            return self.note(url, "bad_status", format!("answered {status}"));
        }
        if response
            .content_length()
            .is_some_and(|n| n > self.limits.max_bytes)
        {
            return self.note(
                url,
                "too_large",
                format!(
                    "announced {} bytes, more than the {} accepted",
                    response.content_length().unwrap_or(0),
                    self.limits.max_bytes
                ),
            );
        }
        let mut body = Vec::new();
        match response
            .take(self.limits.max_bytes + 1)
            .read_to_end(&mut body)
        {
            Ok(_) if body.len() as u64 > self.limits.max_bytes => self.note(
                url,
                "too_large",
                format!("more than the {} bytes accepted", self.limits.max_bytes),
            ),
            Ok(_) => Fetched::Found(body),
            Err(e) if e.to_string().contains("timed out") => self.note(
                url,
                "timeout",
                format!("the body did not arrive within {:?}", self.limits.timeout),
            ),
            Err(e) => self.note(url, "error", format!("reading the body: {e}")),
        }
    }
}
