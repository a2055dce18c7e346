//! The Corporate Error Reporting V2 HTTP protocol ([MS-CER2]) served into the cerfs store.
//!
//! Windows Vista and later report errors over HTTP: a **level-1** report (the WERREPORT
//! XML, UTF-16) is POSTed to `/stage2.htm`; the server answers with ANSI `Name=Value` lines
//! ([MS-CER2] 2.2.2): the bucket id, whether it wants the cab (`iData`), what to collect,
//! and the `DumpFile` url-path to which the client then PUTs the cab (**level 2**).
//!
//! cerfs takes both protocols into one store with one bucket model: a report is mapped to
//! the bucket subpath a CER 1.0 client would use on the share ([`bucket`]), counted in that
//! bucket's `count.txt` and stored as rows by fs-core ([`CerFs::take_cer2_report`]), and
//! its cab lands in `cabs\<sub>\<guid>.cab` like a cab copied to the share, streamed in
//! bounded memory. What a report is answered (iData, the cab cap) is decided by fs-core
//! too; this crate parses, maps and answers.
//!
//! Running it beside the share (one [`CerFs`] serves both in a process):
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let store = Arc::new(cerfs_db::SqliteStore::open("cer.db".as_ref())?);
//! let fs = Arc::new(cerfs_fs_core::CerFs::new(store));
//! let addr = cerfs_http::DEFAULT_LISTEN.parse()?;
//! let server = cerfs_http::spawn(fs, addr, cerfs_http::Config::default())?;
//! // ... serve the share ...
//! server.shutdown()?;
//! # Ok(()) }
//! ```
//!
//! [`CerFs::take_cer2_report`]: cerfs_fs_core::CerFs::take_cer2_report
//! [`CerFs`]: cerfs_fs_core::CerFs

pub mod answer;
pub mod bucket;
pub mod report;
mod server;

pub use answer::{AnswerError, Level1Answer};
pub use bucket::{map_report, BucketMapping, MappedKind};
pub use report::{parse_report, ReportError, WerReport, WerReportExt};
pub use server::{
    normalize_dump_path, serve, spawn, status_of, Config, HttpHandle, BUCKET_TABLE, DEFAULT_LISTEN,
    DEFAULT_PORT,
};

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listening socket could not be set up.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The system's error.
        source: std::io::Error,
    },
    /// The runtime or its thread could not be started.
    #[error("cannot start the HTTP server: {0}")]
    Runtime(std::io::Error),
    /// The server's thread panicked.
    #[error("the HTTP server thread panicked")]
    Panicked,
}
