//! What the web console shows, as typed read-only queries: reports per day by kind and
//! protocol, top and new buckets and signatures with their daily trend, the bucket list
//! (filtered, sorted, paged), one bucket's page, one cab's and one signature's, search,
//! the store's size and the indexer's backlog. Each backend answers in its own SQL
//! (`sqlite/console*.rs`, `pg/console*.rs`); this file holds the types and
//! [`ConsoleDb`], which hands each question to the store's.

use std::path::Path;

use crate::console_detail::{CabDetail, SearchResults, SignatureDetail};
use crate::pg::console::PgConsole;
use crate::sqlite::console::SqliteConsole;
use crate::{OpenError, QueryError, StoreLocation};

type Result<T> = std::result::Result<T, QueryError>;

/// Kinds of report, as the console groups them (buckets' `kind`).
pub const KINDS: [&str; 4] = ["application", "kernel", "shutdown", "other"];

/// SQL mapping `bucket_rows.kind` (of `b`) to [`KINDS`], on both backends.
pub(crate) const KIND_SQL: &str = "CASE b.kind WHEN 'app' THEN 'application' \
    WHEN 'blue' THEN 'kernel' WHEN 'shutdown' THEN 'shutdown' ELSE 'other' END";

/// Reports received on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DayReports {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Per kind, in the order of [`KINDS`]: CER 1.0 (hits.log lines) and CER2 reports.
    pub application: u64,
    /// Kernel faults (blue screens).
    pub kernel: u64,
    /// Unexpected shutdowns.
    pub shutdown: u64,
    /// Everything else.
    pub other: u64,
    /// Of all of them, how many came over CER2 (HTTP).
    pub cer2: u64,
}

impl DayReports {
    /// All reports of the day.
    pub fn total(&self) -> u64 {
        self.application + self.kernel + self.shutdown + self.other
    }

    pub(crate) fn add(&mut self, kind: &str, n: u64) {
        match kind {
            "application" => self.application += n,
            "kernel" => self.kernel += n,
            "shutdown" => self.shutdown += n,
            _ => self.other += n,
        }
    }
}

/// A bucket as lists show it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BucketSummary {
    /// Its id (`buckets.bucket_id`).
    pub bucket_id: i64,
    /// Its error subpath.
    pub subpath: String,
    /// One of [`KINDS`].
    pub kind: String,
    /// The application and faulting module of an application bucket.
    pub app: Option<String>,
    /// The faulting module.
    pub module: Option<String>,
    /// count.txt's Total Hits.
    pub total_hits: u64,
    /// count.txt's Cabs Gathered.
    pub cabs_gathered: u64,
    /// Hits in the window asked for (the whole history when none was).
    pub hits: u64,
    /// Hits per day over the window (oldest first), for a trend line; empty in lists
    /// that do not ask for it.
    pub trend: Vec<u64>,
    /// First and latest report (UTC).
    pub first_seen: Option<String>,
    /// The latest report (UTC).
    pub last_seen: Option<String>,
}

/// A signature as lists show it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SignatureSummary {
    /// The signature.
    pub signature: String,
    /// Walked dumps with it in the window (all time when none was).
    pub crashes: u64,
    /// Buckets holding it.
    pub buckets: u64,
    /// Dumps per day over the window, oldest first (empty when not asked for).
    pub trend: Vec<u64>,
    /// When its first and latest cab arrived (UTC).
    pub first_seen: Option<String>,
    /// When its latest cab arrived (UTC).
    pub last_seen: Option<String>,
}

/// The store at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct StoreFacts {
    /// Buckets.
    pub buckets: u64,
    /// Cabs on the share.
    pub cabs: u64,
    /// Their bytes.
    pub cab_bytes: u64,
    /// Complete cabs the indexer has not read yet.
    pub index_backlog: u64,
    /// Cabs whose indexing failed.
    pub index_failed: u64,
    /// Bytes the database file holds (pages in use).
    pub used_bytes: u64,
    /// Free pages inside the file, in bytes.
    pub free_bytes: u64,
    /// Free space on the database's filesystem, when it can be read.
    pub disk_free_bytes: Option<u64>,
}

/// A cab as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CabSummary {
    /// Its id (`cabs.cab_id`).
    pub cab_id: i64,
    /// Its bucket.
    pub bucket_id: i64,
    /// The bucket's subpath.
    pub subpath: String,
    /// File name under `cabs\<subpath>\`.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 recorded when the upload completed.
    pub sha256: Option<String>,
    /// When the upload completed (UTC).
    pub created_at: Option<String>,
    /// pending, indexed, partial or failed.
    pub index_status: Option<String>,
    /// The signature of its first walked minidump.
    pub signature: Option<String>,
}

/// A machine that reported to a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MachineCount {
    /// As the client wrote it.
    pub machine: String,
    /// Its hits.log lines in the bucket.
    pub hits: u64,
    /// Users seen on it.
    pub users: u64,
    /// Its latest line (UTC).
    pub last_seen: String,
}

/// A hits.log line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct HitLine {
    /// When cerfs stored it (UTC).
    pub received_at: String,
    /// The client's machine, user and item (NULL for a line that did not parse).
    pub machine: Option<String>,
    /// The user.
    pub user: Option<String>,
    /// The cab copied, or `No CAB`.
    pub item: Option<String>,
    /// The client's local time, `YYYY-MM-DDTHH:MM:SS`.
    pub client_time: Option<String>,
    /// The line as written (without its CRLF).
    pub line: String,
}

/// Which buckets a list shows, in which order, which page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketFilter {
    /// Part of the subpath (application, module, offset ...), case-insensitive.
    pub text: Option<String>,
    /// One of [`KINDS`].
    pub kind: Option<String>,
    /// Only buckets reported on or after this UTC date or time (`last_seen`).
    pub since: Option<String>,
    /// Only buckets first reported before this UTC date or time.
    pub until: Option<String>,
    /// Sort order.
    pub sort: BucketSort,
    /// Rows per page (at least 1, at most 500).
    pub limit: u32,
    /// Rows skipped.
    pub offset: u64,
}

/// Orders of the bucket list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BucketSort {
    /// Most hits first.
    #[default]
    Hits,
    /// Latest report first.
    LastSeen,
    /// Newest bucket first.
    FirstSeen,
    /// By subpath.
    Subpath,
}

/// One page of a list and how many rows the whole list has.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Page<T> {
    /// Rows matching the filter.
    pub total: u64,
    /// This page's rows.
    pub items: Vec<T>,
}

/// A number of rows as the console counts them (never negative).
pub(crate) fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Each day of `dates` with the reports of `rows` (day, kind, protocol, count); a day with
/// none has its zeros.
pub(crate) fn reports_by_day(
    dates: &[String],
    rows: impl IntoIterator<Item = (String, String, String, u64)>,
) -> Vec<DayReports> {
    let mut out: Vec<DayReports> = dates
        .iter()
        .map(|d| DayReports {
            day: d.clone(),
            ..DayReports::default()
        })
        .collect();
    for (day, kind, protocol, n) in rows {
        if let Some(i) = dates.iter().position(|d| *d == day) {
            out[i].add(&kind, n);
            if protocol == "cer2" {
                out[i].cer2 += n;
            }
        }
    }
    out
}

/// A value per day of `dates` (oldest first) from `rows` (day, count).
pub(crate) fn per_day(dates: &[String], rows: impl IntoIterator<Item = (String, i64)>) -> Vec<u64> {
    let mut values = vec![0; dates.len()];
    for (day, n) in rows {
        if let Some(i) = dates.iter().position(|d| *d == day) {
            values[i] += count(n);
        }
    }
    values
}

/// Every (protocol, kind) pair with its count from `rows`, zeros included.
pub(crate) fn report_totals_from(
    rows: impl IntoIterator<Item = (String, String, i64)>,
) -> Vec<(&'static str, &'static str, u64)> {
    let mut out: Vec<(&'static str, &'static str, u64)> = ["cer1", "cer2"]
        .iter()
        .flat_map(|p| KINDS.iter().map(move |k| (*p, *k, 0)))
        .collect();
    for (protocol, kind, n) in rows {
        if let Some(slot) = out
            .iter_mut()
            .find(|(p, k, _)| *p == protocol && *k == kind)
        {
            slot.2 += count(n);
        }
    }
    out
}

/// A read-only connection for the console, to a SQLite file (a WAL reader: it never blocks
/// the server's writer) or to a PostgreSQL store.
pub struct ConsoleDb {
    backend: Backend,
}

enum Backend {
    Sqlite(SqliteConsole),
    Postgres(Box<PgConsole>),
}

impl std::fmt::Debug for ConsoleDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleDb").finish_non_exhaustive()
    }
}

/// Asks the store's own console.
macro_rules! ask {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &$self.backend {
            Backend::Sqlite(db) => db.$method($($arg),*),
            Backend::Postgres(db) => db.$method($($arg),*),
        }
    };
}

impl ConsoleDb {
    /// Opens the SQLite database at `path` read-only; it must have this version's schema
    /// (a server of this version migrates it when it opens it).
    pub fn open(path: &Path) -> std::result::Result<ConsoleDb, OpenError> {
        Ok(ConsoleDb {
            backend: Backend::Sqlite(SqliteConsole::open(path)?),
        })
    }

    /// Opens the store at `location` for reading; it must have this version's schema.
    pub fn open_at(location: &StoreLocation) -> std::result::Result<ConsoleDb, OpenError> {
        match location {
            StoreLocation::Sqlite(path) => ConsoleDb::open(path),
            StoreLocation::Postgres(url) => Ok(ConsoleDb {
                backend: Backend::Postgres(Box::new(PgConsole::open(url)?)),
            }),
        }
    }

    /// Reports per UTC day over the last `days` days (today included), by kind: hits.log
    /// lines (CER 1.0) and CER2 reports. Every day of the window has its row.
    pub fn reports_per_day(&self, days: u32) -> Result<Vec<DayReports>> {
        ask!(self.reports_per_day(days))
    }

    /// The `limit` buckets with most hits over the last `days` days, each with its daily
    /// trend.
    pub fn top_buckets(&self, days: u32, limit: u32) -> Result<Vec<BucketSummary>> {
        ask!(self.top_buckets(days, limit))
    }

    /// A server setting (`cerfs quota`, `cerfs retention` ...), as stored.
    pub fn server_setting(&self, key: &str) -> Result<Option<String>> {
        ask!(self.server_setting(key))
    }

    /// Buckets first reported in the last `days` days, newest first.
    pub fn new_buckets(&self, days: u32, limit: u32) -> Result<Vec<BucketSummary>> {
        ask!(self.new_buckets(days, limit))
    }

    /// Hits of bucket `id` per day over the last `days` days, oldest first.
    pub fn bucket_hits_per_day(&self, id: i64, days: u32) -> Result<Vec<u64>> {
        ask!(self.bucket_hits_per_day(id, days))
    }

    /// The bucket list: filtered, sorted, one page. Only the conditions asked for are in
    /// the SQL, and the page's ids are found first (from the sort column's index alone when
    /// nothing filters), so a deep page skips index entries, not rows.
    pub fn buckets(&self, filter: &BucketFilter) -> Result<Page<BucketSummary>> {
        ask!(self.buckets(filter))
    }

    /// One bucket, or `None`.
    pub fn bucket(&self, id: i64) -> Result<Option<BucketSummary>> {
        ask!(self.bucket(id))
    }

    /// The newest `limit` cabs of bucket `id` on the share, newest first.
    pub fn bucket_cabs(&self, id: i64, limit: u32) -> Result<Vec<CabSummary>> {
        ask!(self.bucket_cabs(id, limit))
    }

    /// The complete cab `cab_id` on the share, or `None`.
    pub fn cab(&self, cab_id: i64) -> Result<Option<CabSummary>> {
        ask!(self.cab(cab_id))
    }

    /// Reports received in all: `(protocol, kind, count)` with protocol `cer1` (hits.log
    /// lines) or `cer2`, and kind one of [`KINDS`]; every pair, zeros included.
    pub fn report_totals(&self) -> Result<Vec<(&'static str, &'static str, u64)>> {
        ask!(self.report_totals())
    }

    /// The machines behind bucket `id`, most hits first, at most `limit`; and how many
    /// machines and users there are in all.
    pub fn bucket_machines(&self, id: i64, limit: u32) -> Result<(Vec<MachineCount>, u64, u64)> {
        ask!(self.bucket_machines(id, limit))
    }

    /// The newest `limit` hits.log lines of bucket `id`, newest first.
    pub fn bucket_hits(&self, id: i64, limit: u32) -> Result<Vec<HitLine>> {
        ask!(self.bucket_hits(id, limit))
    }

    /// The store's counts and size.
    pub fn store_facts(&self) -> Result<StoreFacts> {
        ask!(self.store_facts())
    }

    /// The complete cab `cab_id` with its members, dumps, stack and texts, or `None`.
    pub fn cab_detail(&self, cab_id: i64) -> Result<Option<CabDetail>> {
        ask!(self.cab_detail(cab_id))
    }

    /// Signature `signature` with its trend over `days` days, or `None` when no walked
    /// dump has it.
    pub fn signature(&self, signature: &str, days: u32) -> Result<Option<SignatureDetail>> {
        ask!(self.signature(signature, days))
    }

    /// Searches the cabs' text members (every word of `q`), their dumps' crashing module
    /// and exception code, and the signatures; `limit` and `offset` page the first two.
    pub fn search(&self, q: &str, limit: u32, offset: u64) -> Result<SearchResults> {
        ask!(self.search(q, limit, offset))
    }

    /// How many signatures the list of the last `days` days (all time: `None`) has.
    pub fn signature_count(&self, days: Option<u32>) -> Result<u64> {
        ask!(self.signature_count(days))
    }

    /// The signatures with most walked dumps among the cabs of the last `days` days
    /// (`None`: all time), each with its daily trend when a window is given.
    pub fn top_signatures(&self, days: Option<u32>, limit: u32) -> Result<Vec<SignatureSummary>> {
        self.signature_list(days, limit, 0)
    }

    /// [`ConsoleDb::top_signatures`] from row `offset` on.
    pub fn signature_list(
        &self,
        days: Option<u32>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<SignatureSummary>> {
        Ok(self.signature_page(days, limit, offset)?.items)
    }

    /// One page of the signatures of the last `days` days (all time: `None`), most
    /// crashes first, and how many there are.
    pub fn signature_page(
        &self,
        days: Option<u32>,
        limit: u32,
        offset: u64,
    ) -> Result<Page<SignatureSummary>> {
        ask!(self.signature_page(days, limit, offset))
    }

    /// Walked dumps with `signature` per day over the last `days` days, oldest first.
    pub fn signature_per_day(&self, signature: &str, days: u32) -> Result<Vec<u64>> {
        ask!(self.signature_per_day(signature, days))
    }

    /// Signatures first seen in the last `days` days (their earliest cab), newest first,
    /// with their dumps so far.
    pub fn new_signatures(&self, days: u32, limit: u32) -> Result<Vec<SignatureSummary>> {
        ask!(self.new_signatures(days, limit))
    }
}
