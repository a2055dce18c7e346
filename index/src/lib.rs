//! Indexes what the cabs of a cerfs store hold, in the background: the members of each
//! complete cab (name, size, compression), what its minidumps say about the crash
//! (exception, faulting module and offset, OS, CPU, process, threads, modules), and the
//! text and fields of its known text files (version.txt, sysdata.xml, manifest.txt,
//! appcompat.txt, ...). The rows land in the tables of schema version 2 (`cab_files`,
//! `minidumps`, `cab_texts`, `cab_facts` views; docs/sql.md).
//!
//! Indexing never slows or fails an upload: a background thread ([`spawn_indexer`]) wakes
//! every second, finds complete cabs not indexed yet (an indexed query), and indexes them
//! in **child processes** bounded in memory (RLIMIT_AS), CPU time (RLIMIT_CPU) and wall
//! time (killed when late), so that a hostile cab can neither hang nor exhaust the server.
//! The child is the host binary run with one argument (`cerfs index-one`), which must call
//! [`worker_main`]; it indexes a batch of cabs one after the other (a process per cab costs
//! more CPU than a small cab), reading each straight from the database through a read-only
//! connection ([`cerfs_db::CabReader`]), and prints what it found as JSON lines, cab by
//! cab; the parent writes the rows. A cab that kills its child fails alone: the cabs
//! answered before keep their results and the rest go to a new child. A cab or minidump
//! that cannot be parsed is still a report: the cab stays stored intact and the failure is
//! recorded with its reason (`cabs.index_status`, `cabs.index_error`, `cab_files.error`,
//! `minidumps.error`).

mod dump;
mod indexer;
mod isolate;
mod scan;
mod text;

use std::time::Duration;

pub use dump::parse as parse_minidump;
pub use indexer::{
    index_pending, spawn_indexer, spawn_indexer_with, Analysis, IndexError, IndexerConfig,
    IndexerHandle, Summary, Worker,
};
#[cfg(unix)]
pub use isolate::WORKER_NICE;
pub use isolate::{index_isolated, worker_main, Outcome, WORKER_ARG};
pub use scan::{index_cab, index_cab_with};
pub use text::{decode as decode_text, facts as text_facts};

/// Bounds on the work and memory one cab may cost.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Members listed per cab (the rest are counted, not stored).
    pub max_members: usize,
    /// Largest minidump parsed, in bytes (it is read into memory).
    pub max_dump_bytes: u64,
    /// Text kept per text member, in bytes.
    pub max_text_bytes: usize,
    /// Text kept per cab, in bytes.
    pub max_total_text: usize,
    /// Fields stored per cab.
    pub max_facts: usize,
    /// Decompressed bytes read per cab, all members together.
    pub max_total_read: u64,
    /// Address space of a worker process (RLIMIT_AS), in bytes.
    pub memory_bytes: u64,
    /// CPU time of a worker process (RLIMIT_CPU). It counts every cab the process indexed:
    /// a cab that meets it after others is tried again first in a new process, and fails
    /// only if it used it all alone.
    pub cpu_time: Duration,
    /// Wall-clock time one cab may take, after which its worker is killed.
    pub wall_time: Duration,
    /// Largest answer accepted from the worker for one cab, in bytes.
    pub max_output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_members: 10_000,
            max_dump_bytes: 256 << 20,
            max_text_bytes: 1 << 20,
            max_total_text: 8 << 20,
            max_facts: 2_000,
            max_total_read: 1 << 30,
            memory_bytes: 1 << 30,
            cpu_time: Duration::from_secs(60),
            wall_time: Duration::from_secs(120),
            max_output: 64 << 20,
        }
    }
}
