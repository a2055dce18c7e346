//! The CER V2 report family of the PostgreSQL store (see `crate::reports`). A report's
//! DumpFile decision locks its bucket's row: reports reaching several heads at once never
//! issue more DumpFiles than the cap allows.

use postgres::Row;

use super::rows::{get_u64, ino_param, iso};
use super::PgStore;
use crate::reports::{cab_to_link, filetime_param};
use crate::store::{BucketId, Ino, Result};
use crate::{
    DumpRequest, DumpState, IssuedDump, NewReport, ParamKind, RecordedReport, ReportFile, ReportId,
    ReportParam, ReportStore, StoreError, StoredReport,
};

fn dump_state(row: &Row, idx: usize) -> Result<DumpState> {
    let s: String = row.try_get(idx)?;
    DumpState::parse(&s).ok_or_else(|| StoreError::Invalid(format!("unknown dump state {s:?}")))
}

impl ReportStore for PgStore {
    fn record_report(
        &self,
        bucket: BucketId,
        report: &NewReport,
        dump: Option<&DumpRequest<'_>>,
    ) -> Result<RecordedReport> {
        let filetime = filetime_param(report)?;
        self.write(|tx| {
            let cabs_gathered = tx
                .query_opt(
                    "SELECT cabs_gathered FROM bucket_rows WHERE bucket_id = $1 FOR UPDATE",
                    &[&bucket],
                )?
                .map(|row| get_u64(&row, 0))
                .transpose()?
                .ok_or(StoreError::NoBucket(bucket))?;
            let issue = match dump {
                None => None,
                Some(req) => {
                    let window = f64::from(u32::try_from(req.pending_window.as_secs()).unwrap_or(u32::MAX));
                    let pending = tx.query_one(
                        "SELECT count(*) FROM cer2_report_rows WHERE bucket_id = $1 \
                         AND dump_state = 'issued' \
                         AND received_at > now() - make_interval(secs => $2)",
                        &[&bucket, &window],
                    )?;
                    let pending = get_u64(&pending, 0)?;
                    (cabs_gathered.saturating_add(pending) < req.cap).then_some(req)
                }
            };
            let report_id: i64 = tx
                .query_one(
                    "INSERT INTO cer2_report_rows (bucket_id, machine, os_version, lcid, \"user\", \
                     app_name, app_path, company, report_type, event_type, friendly_event_name, \
                     event_time, event_filetime, dump_state, dump_path, cab_name) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                     RETURNING report_id",
                    &[
                        &bucket,
                        &report.machine,
                        &report.os_version,
                        &i64::from(report.lcid),
                        &report.user,
                        &report.app_name,
                        &report.app_path,
                        &report.company,
                        &report.report_type,
                        &report.event_type,
                        &report.friendly_event_name,
                        &report.event_time,
                        &filetime,
                        &if issue.is_some() { "issued" } else { "none" },
                        &issue.map(|r| r.dump_path),
                        &issue.map(|r| r.cab_name),
                    ],
                )?
                .get(0);
            for (position, p) in (0i32..).zip(&report.params) {
                tx.execute(
                    "INSERT INTO cer2_report_param_rows (report_id, position, kind, param_id, \
                     name, value) VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&report_id, &position, &p.kind.as_str(), &p.id, &p.name, &p.value],
                )?;
            }
            for (position, f) in (0i32..).zip(&report.files) {
                tx.execute(
                    "INSERT INTO cer2_report_file_rows (report_id, position, name, file_type) \
                     VALUES ($1, $2, $3, $4)",
                    &[&report_id, &position, &f.name, &f.file_type],
                )?;
            }
            Ok(RecordedReport {
                report_id,
                bucket_id: bucket,
                dump_issued: issue.is_some(),
            })
        })
    }

    fn dump_by_path(&self, dump_path: &str) -> Result<Option<IssuedDump>> {
        self.read(|tx| {
            tx.query_opt(
                "SELECT r.report_id, r.bucket_id, b.subpath, r.cab_name, r.dump_state \
                 FROM cer2_report_rows r JOIN bucket_rows b ON b.bucket_id = r.bucket_id \
                 WHERE r.dump_path = $1",
                &[&dump_path],
            )?
            .map(|row| {
                Ok(IssuedDump {
                    report_id: row.try_get(0)?,
                    bucket_id: row.try_get(1)?,
                    subpath: row.try_get(2)?,
                    cab_name: row.try_get(3)?,
                    state: dump_state(&row, 4)?,
                })
            })
            .transpose()
        })
    }

    fn mark_uploaded(&self, report: ReportId) -> Result<Ino> {
        self.write(|tx| {
            let row = tx
                .query_opt(
                    "SELECT bucket_id, cab_name, dump_state FROM cer2_report_rows \
                     WHERE report_id = $1 FOR UPDATE",
                    &[&report],
                )?
                .ok_or_else(|| StoreError::Invalid(format!("no CER V2 report {report}")))?;
            let bucket: BucketId = row.try_get(0)?;
            let cab_name = cab_to_link(report, dump_state(&row, 2)?, row.try_get(1)?)?;
            let ino = tx
                .query_opt(
                    "SELECT ino FROM cab_rows WHERE bucket_id = $1 AND name = $2 \
                     AND state = 'complete' ORDER BY ino DESC LIMIT 1",
                    &[&bucket, &cab_name],
                )?
                .map(|row| get_u64(&row, 0))
                .transpose()?
                .ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "no complete cab {cab_name:?} in bucket {bucket} for report {report}"
                    ))
                })?;
            tx.execute(
                "UPDATE cer2_report_rows SET dump_state = 'uploaded', cab_ino = $2, \
                 uploaded_at = now() WHERE report_id = $1",
                &[&report, &ino_param(ino)],
            )?;
            Ok(ino)
        })
    }

    fn report(&self, report: ReportId) -> Result<Option<StoredReport>> {
        self.read(|tx| {
            let Some(row) = tx.query_opt(
                concat!(
                    "SELECT r.report_id, r.bucket_id, b.subpath, ",
                    iso!("r.received_at"),
                    ", r.machine, r.os_version, r.lcid, r.\"user\", r.app_name, r.app_path, \
                     r.company, r.report_type, r.event_type, r.friendly_event_name, r.event_time, \
                     r.event_filetime, r.dump_state, r.dump_path, r.cab_name, r.cab_ino, ",
                    iso!("r.uploaded_at"),
                    " FROM cer2_report_rows r JOIN bucket_rows b ON b.bucket_id = r.bucket_id \
                     WHERE r.report_id = $1"
                ),
                &[&report],
            )?
            else {
                return Ok(None);
            };
            let lcid = get_u64(&row, 6)?;
            let params = tx
                .query(
                    "SELECT kind, param_id, name, value FROM cer2_report_param_rows \
                     WHERE report_id = $1 ORDER BY position",
                    &[&report],
                )?
                .iter()
                .map(|p| {
                    let kind: String = p.try_get(0)?;
                    Ok(ReportParam {
                        kind: ParamKind::parse(&kind).ok_or_else(|| {
                            StoreError::Invalid(format!("unknown parameter kind {kind:?}"))
                        })?,
                        id: p.try_get(1)?,
                        name: p.try_get(2)?,
                        value: p.try_get(3)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let files = tx
                .query(
                    "SELECT name, file_type FROM cer2_report_file_rows \
                     WHERE report_id = $1 ORDER BY position",
                    &[&report],
                )?
                .iter()
                .map(|f| {
                    Ok(ReportFile {
                        name: f.try_get(0)?,
                        file_type: f.try_get(1)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Some(StoredReport {
                report_id: row.try_get(0)?,
                bucket_id: row.try_get(1)?,
                subpath: row.try_get(2)?,
                received_at: row.try_get(3)?,
                report: NewReport {
                    machine: row.try_get(4)?,
                    os_version: row.try_get(5)?,
                    lcid: u32::try_from(lcid)
                        .map_err(|_| StoreError::Invalid(format!("lcid {lcid} is not a u32")))?,
                    user: row.try_get(7)?,
                    app_name: row.try_get(8)?,
                    app_path: row.try_get(9)?,
                    company: row.try_get(10)?,
                    report_type: row.try_get(11)?,
                    event_type: row.try_get(12)?,
                    friendly_event_name: row.try_get(13)?,
                    event_time: row.try_get(14)?,
                    event_filetime: get_u64(&row, 15)?,
                    params,
                    files,
                },
                dump_state: dump_state(&row, 16)?,
                dump_path: row.try_get(17)?,
                cab_name: row.try_get(18)?,
                cab_ino: row
                    .try_get::<_, Option<i64>>(19)?
                    .and_then(|i| u64::try_from(i).ok()),
                uploaded_at: row.try_get(20)?,
            }))
        })
    }
}
