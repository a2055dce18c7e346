//! Reports received over the Corporate Error Reporting V2 HTTP protocol ([MS-CER2]): the
//! level-1 report's fields, the DumpFile it was issued and the cab uploaded to it.
//!
//! The tables (`cer2_report_rows`, `cer2_report_param_rows`, `cer2_report_file_rows`) and
//! the views SQL users query (`cer2_reports`, ...) are in `migrations/0003_cer2_reports.sql`.
//! A report always belongs to a bucket the share knows (fs-core creates it and counts the hit
//! first); the uploaded cab is an ordinary cab of the share, linked by its inode.

use std::time::Duration;

use rusqlite::{params, OptionalExtension, Row};

use crate::sqlite::rows::{bad_text, get_u64};
use crate::store::{BucketId, Ino, Result};
use crate::{SqliteStore, StoreError};

/// Row id of a CER V2 report (`cer2_reports.report_id`).
pub type ReportId = i64;

/// Whether a signature parameter was a `PARAMETER` or a `SECONDARYPARAMETER` element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `<PARAMETER id=".." name=".." value=".."/>`: part of the problem signature.
    Primary,
    /// `<SECONDARYPARAMETER name=".." value=".."/>`: extra detail (kernel faults use only these).
    Secondary,
}

impl ParamKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ParamKind::Primary => "primary",
            ParamKind::Secondary => "secondary",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "primary" => Some(ParamKind::Primary),
            "secondary" => Some(ParamKind::Secondary),
            _ => None,
        }
    }
}

/// One parameter of a report's SIGNATURE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportParam {
    /// Element kind.
    pub kind: ParamKind,
    /// The `id` attribute as written (PARAMETER only; `None` when absent).
    pub id: Option<String>,
    /// The `name` attribute (`Problem Signature 01`, `BCCode`, `Application Name`, ...).
    pub name: String,
    /// The `value` attribute.
    pub value: String,
}

/// One FILE a report lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFile {
    /// The `filename` attribute.
    pub name: String,
    /// The `filetype` attribute, when present.
    pub file_type: Option<i64>,
}

/// The fields of a level-1 report, validated by the HTTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReport {
    /// MACHINEINFO `machinename`.
    pub machine: String,
    /// MACHINEINFO `os`.
    pub os_version: String,
    /// MACHINEINFO `lcid`.
    pub lcid: u32,
    /// USERINFO `username`.
    pub user: String,
    /// APPLICATIONINFO `appname`.
    pub app_name: String,
    /// APPLICATIONINFO `apppath`.
    pub app_path: String,
    /// APPLICATIONINFO `appcompany`, when present.
    pub company: Option<String>,
    /// EVENTINFO `reporttype`.
    pub report_type: i64,
    /// EVENTINFO `eventtype`.
    pub event_type: String,
    /// EVENTINFO `friendlyeventname`, when present.
    pub friendly_event_name: Option<String>,
    /// EVENTINFO `eventtime` as ISO-8601 UTC with milliseconds (`2008-03-11T17:00:17.904Z`).
    pub event_time: String,
    /// EVENTINFO `eventtime` as sent: 100 ns ticks since 1601-01-01 UTC (at most `i64::MAX`).
    pub event_filetime: u64,
    /// The SIGNATURE's parameters, in document order.
    pub params: Vec<ReportParam>,
    /// The FILES, in document order.
    pub files: Vec<ReportFile>,
}

/// What the server would like to ask for: a cab at `dump_path`, if the bucket is still under
/// its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpRequest<'a> {
    /// "Crashes per bucket": how many cabs the bucket may gather.
    pub cap: u64,
    /// DumpFile values issued within this window and not uploaded yet count against the cap
    /// as cabs on their way (older ones are presumed abandoned).
    pub pending_window: Duration,
    /// The DumpFile url-path to issue (`\PersistedCabs\...`); unique.
    pub dump_path: &'a str,
    /// The cab's file name under `cabs/<sub>/` once uploaded.
    pub cab_name: &'a str,
}

/// What [`ReportStore::record_report`] stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedReport {
    /// The new report's id.
    pub report_id: ReportId,
    /// Its bucket.
    pub bucket_id: BucketId,
    /// Whether the DumpFile was issued (the bucket was under its cap).
    pub dump_issued: bool,
}

/// Where a report's level-2 upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpState {
    /// No cab was asked for.
    None,
    /// A DumpFile was issued; no cab received yet.
    Issued,
    /// The cab was received and stored.
    Uploaded,
}

impl DumpState {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(DumpState::None),
            "issued" => Some(DumpState::Issued),
            "uploaded" => Some(DumpState::Uploaded),
            _ => None,
        }
    }
}

/// An issued DumpFile, found by its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedDump {
    /// The report it was issued to.
    pub report_id: ReportId,
    /// The report's bucket.
    pub bucket_id: BucketId,
    /// The bucket's subpath (`blue`, `App\1.0\Mod\1.0\0000abcd`, ...).
    pub subpath: String,
    /// The cab's file name under `cabs/<sub>/`.
    pub cab_name: String,
    /// [`DumpState::Issued`] or [`DumpState::Uploaded`].
    pub state: DumpState,
}

/// A stored report with everything it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    /// Its id.
    pub report_id: ReportId,
    /// Its bucket.
    pub bucket_id: BucketId,
    /// The bucket's subpath.
    pub subpath: String,
    /// When the server received it (ISO-8601 UTC).
    pub received_at: String,
    /// The report's fields, parameters and files as recorded.
    pub report: NewReport,
    /// Where its upload stands.
    pub dump_state: DumpState,
    /// The DumpFile issued, if any.
    pub dump_path: Option<String>,
    /// The cab's file name, if a DumpFile was issued.
    pub cab_name: Option<String>,
    /// The uploaded cab's inode (`None` before the upload, or once an admin deleted the cab).
    pub cab_ino: Option<Ino>,
    /// When the cab was received.
    pub uploaded_at: Option<String>,
}

/// Storage of CER V2 reports. Each method is one transaction.
pub trait ReportStore: Send + Sync {
    /// Stores a level-1 report in bucket `bucket`, with its parameters and files.
    ///
    /// With `dump`, the DumpFile is issued when the bucket's Cabs Gathered plus the
    /// DumpFiles still pending (issued within `pending_window`, not uploaded) is below
    /// `cap`; the decision and the insert are one transaction, so concurrent reports never
    /// overshoot the cap. [`StoreError::NoBucket`] if the bucket does not exist.
    fn record_report(
        &self,
        bucket: BucketId,
        report: &NewReport,
        dump: Option<&DumpRequest<'_>>,
    ) -> Result<RecordedReport>;

    /// The report a DumpFile path was issued to (exact match), if any.
    fn dump_by_path(&self, dump_path: &str) -> Result<Option<IssuedDump>>;

    /// Links a report to its uploaded cab (the complete cab named `cab_name` in the report's
    /// bucket) and marks it uploaded; returns the cab's inode. [`StoreError::Invalid`] when
    /// the report has no DumpFile, was already uploaded, or the cab is not there (complete).
    fn mark_uploaded(&self, report: ReportId) -> Result<Ino>;

    /// One report with its parameters and files.
    fn report(&self, report: ReportId) -> Result<Option<StoredReport>>;
}

/// A report's event FILETIME as an SQL value.
pub(crate) fn filetime_param(report: &NewReport) -> Result<i64> {
    i64::try_from(report.event_filetime).map_err(|_| {
        StoreError::Invalid(format!(
            "event FILETIME {} is beyond 2^63 - 1",
            report.event_filetime
        ))
    })
}

/// The cab name `mark_uploaded` links report `report` to, or why it may not.
pub(crate) fn cab_to_link(
    report: ReportId,
    state: DumpState,
    cab_name: Option<String>,
) -> Result<String> {
    match (state, cab_name) {
        (DumpState::Issued, Some(name)) => Ok(name),
        (DumpState::Uploaded, _) => Err(StoreError::Invalid(format!(
            "report {report} was already uploaded"
        ))),
        _ => Err(StoreError::Invalid(format!(
            "report {report} was issued no DumpFile"
        ))),
    }
}

fn dump_state_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<DumpState> {
    let s: String = row.get(idx)?;
    DumpState::parse(&s).ok_or_else(|| bad_text(idx, "dump state", &s))
}

impl ReportStore for SqliteStore {
    fn record_report(
        &self,
        bucket: BucketId,
        report: &NewReport,
        dump: Option<&DumpRequest<'_>>,
    ) -> Result<RecordedReport> {
        let filetime = filetime_param(report)?;
        crate::sqlite::finish(self.write(|tx| {
            let cabs_gathered = tx
                .prepare_cached("SELECT cabs_gathered FROM bucket_rows WHERE bucket_id = ?1")?
                .query_row([bucket], |row| get_u64(row, 0))
                .optional()?
                .ok_or(StoreError::NoBucket(bucket))?;
            let issue = match dump {
                None => None,
                Some(req) => {
                    let window = format!("-{} seconds", req.pending_window.as_secs());
                    let pending: u64 = tx
                        .prepare_cached(
                            "SELECT count(*) FROM cer2_report_rows WHERE bucket_id = ?1 \
                             AND dump_state = 'issued' \
                             AND received_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?2)",
                        )?
                        .query_row(params![bucket, window], |row| get_u64(row, 0))?;
                    (cabs_gathered.saturating_add(pending) < req.cap).then_some(req)
                }
            };
            tx.prepare_cached(
                "INSERT INTO cer2_report_rows (bucket_id, machine, os_version, lcid, user, \
                 app_name, app_path, company, report_type, event_type, friendly_event_name, \
                 event_time, event_filetime, dump_state, dump_path, cab_name) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?
            .execute(params![
                bucket,
                report.machine,
                report.os_version,
                report.lcid,
                report.user,
                report.app_name,
                report.app_path,
                report.company,
                report.report_type,
                report.event_type,
                report.friendly_event_name,
                report.event_time,
                filetime,
                if issue.is_some() { "issued" } else { "none" },
                issue.map(|r| r.dump_path),
                issue.map(|r| r.cab_name),
            ])?;
            let report_id = tx.last_insert_rowid();
            let mut insert_param = tx.prepare_cached(
                "INSERT INTO cer2_report_param_rows (report_id, position, kind, param_id, name, value) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (position, p) in (0i64..).zip(&report.params) {
                insert_param.execute(params![
                    report_id,
                    position,
                    p.kind.as_str(),
                    p.id,
                    p.name,
                    p.value
                ])?;
            }
            let mut insert_file = tx.prepare_cached(
                "INSERT INTO cer2_report_file_rows (report_id, position, name, file_type) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (position, f) in (0i64..).zip(&report.files) {
                insert_file.execute(params![report_id, position, f.name, f.file_type])?;
            }
            Ok(RecordedReport {
                report_id,
                bucket_id: bucket,
                dump_issued: issue.is_some(),
            })
        }))
    }

    fn dump_by_path(&self, dump_path: &str) -> Result<Option<IssuedDump>> {
        crate::sqlite::finish(self.read(|tx| {
            let found = tx
                .prepare_cached(
                    "SELECT r.report_id, r.bucket_id, b.subpath, r.cab_name, r.dump_state \
                     FROM cer2_report_rows r JOIN bucket_rows b ON b.bucket_id = r.bucket_id \
                     WHERE r.dump_path = ?1",
                )?
                .query_row([dump_path], |row| {
                    Ok(IssuedDump {
                        report_id: row.get(0)?,
                        bucket_id: row.get(1)?,
                        subpath: row.get(2)?,
                        cab_name: row.get(3)?,
                        state: dump_state_at(row, 4)?,
                    })
                })
                .optional()?;
            Ok(found)
        }))
    }

    fn mark_uploaded(&self, report: ReportId) -> Result<Ino> {
        crate::sqlite::finish(self.write(|tx| {
            let (bucket, cab_name, state) = tx
                .prepare_cached(
                    "SELECT bucket_id, cab_name, dump_state FROM cer2_report_rows \
                     WHERE report_id = ?1",
                )?
                .query_row([report], |row| {
                    Ok((
                        row.get::<_, BucketId>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        dump_state_at(row, 2)?,
                    ))
                })
                .optional()?
                .ok_or_else(|| StoreError::Invalid(format!("no CER V2 report {report}")))?;
            let cab_name = cab_to_link(report, state, cab_name)?;
            let ino = tx
                .prepare_cached(
                    "SELECT ino FROM cab_rows WHERE bucket_id = ?1 AND name = ?2 \
                     AND state = 'complete' ORDER BY ino DESC LIMIT 1",
                )?
                .query_row(params![bucket, cab_name], |row| get_u64(row, 0))
                .optional()?
                .ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "no complete cab {cab_name:?} in bucket {bucket} for report {report}"
                    ))
                })?;
            tx.prepare_cached(
                "UPDATE cer2_report_rows SET dump_state = 'uploaded', cab_ino = ?2, \
                 uploaded_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE report_id = ?1",
            )?
            .execute(params![report, i64::try_from(ino).unwrap_or(-1)])?;
            Ok(ino)
        }))
    }

    fn report(&self, report: ReportId) -> Result<Option<StoredReport>> {
        crate::sqlite::finish(self.read(|tx| {
            let found = tx
                .prepare_cached(
                    "SELECT r.report_id, r.bucket_id, b.subpath, r.received_at, r.machine, \
                     r.os_version, r.lcid, r.user, r.app_name, r.app_path, r.company, \
                     r.report_type, r.event_type, r.friendly_event_name, r.event_time, \
                     r.event_filetime, r.dump_state, r.dump_path, r.cab_name, r.cab_ino, \
                     r.uploaded_at \
                     FROM cer2_report_rows r JOIN bucket_rows b ON b.bucket_id = r.bucket_id \
                     WHERE r.report_id = ?1",
                )?
                .query_row([report], |row| {
                    Ok(StoredReport {
                        report_id: row.get(0)?,
                        bucket_id: row.get(1)?,
                        subpath: row.get(2)?,
                        received_at: row.get(3)?,
                        report: NewReport {
                            machine: row.get(4)?,
                            os_version: row.get(5)?,
                            lcid: row.get(6)?,
                            user: row.get(7)?,
                            app_name: row.get(8)?,
                            app_path: row.get(9)?,
                            company: row.get(10)?,
                            report_type: row.get(11)?,
                            event_type: row.get(12)?,
                            friendly_event_name: row.get(13)?,
                            event_time: row.get(14)?,
                            event_filetime: get_u64(row, 15)?,
                            params: Vec::new(),
                            files: Vec::new(),
                        },
                        dump_state: dump_state_at(row, 16)?,
                        dump_path: row.get(17)?,
                        cab_name: row.get(18)?,
                        cab_ino: row
                            .get::<_, Option<i64>>(19)?
                            .and_then(|i| u64::try_from(i).ok()),
                        uploaded_at: row.get(20)?,
                    })
                })
                .optional()?;
            let Some(mut stored) = found else {
                return Ok(None);
            };
            stored.report.params = tx
                .prepare_cached(
                    "SELECT kind, param_id, name, value FROM cer2_report_param_rows \
                     WHERE report_id = ?1 ORDER BY position",
                )?
                .query_map([report], |row| {
                    let kind: String = row.get(0)?;
                    Ok(ReportParam {
                        kind: ParamKind::parse(&kind)
                            .ok_or_else(|| bad_text(0, "parameter kind", &kind))?,
                        id: row.get(1)?,
                        name: row.get(2)?,
                        value: row.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            stored.report.files = tx
                .prepare_cached(
                    "SELECT name, file_type FROM cer2_report_file_rows \
                     WHERE report_id = ?1 ORDER BY position",
                )?
                .query_map([report], |row| {
                    Ok(ReportFile {
                        name: row.get(0)?,
                        file_type: row.get(1)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(stored))
        }))
    }
}
