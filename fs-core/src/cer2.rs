//! CER V2 reports ([MS-CER2]) taken into the share's buckets: what a level-1 report is
//! answered (the bucket's settings, whether a cab is wanted) and how its hit, its record
//! and its level-2 cab are stored. The HTTP adapter (`cerfs-http`) parses and answers; the
//! decisions are made here, under the same rules as the CER 1.0 share.

use std::time::Duration;

use cerfs_db::{Counts, DumpRequest, Ino, IssuedDump, NewReport, RecordedReport, CABS_INO};

use crate::settings_file::{parse_bool, DEFAULT_CRASHES_PER_BUCKET};
use crate::{share_path, subpath_parts, CerFs, FsError, Result};

/// What a CER V2 client of one bucket is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPolicy {
    /// The settings it obeys: status.txt over policy.txt (R7), FileTreeRoot left out.
    pub settings: Vec<(String, String)>,
    /// Whether a cab is wanted: iData true or absent (the Decision in docs/protocol.md), and
    /// NoSecondLevelCollection not true.
    pub wants_cab: bool,
    /// "Crashes per bucket": how many cabs the bucket gathers (default 5).
    pub cab_cap: u64,
}

/// Where a report's cab would be uploaded, should one be asked for.
#[derive(Debug, Clone, Copy)]
pub struct DumpOffer<'a> {
    /// The DumpFile url-path to issue (`\PersistedCabs\...`); unique.
    pub dump_path: &'a str,
    /// The cab's file name under `cabs\<sub>\` once uploaded.
    pub cab_name: &'a str,
    /// DumpFiles issued within this window and not uploaded yet count against the cap.
    pub pending_window: Duration,
}

/// What [`CerFs::take_cer2_report`] stored and decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenReport {
    /// The bucket's policy, as the answer is to carry it.
    pub policy: ReportPolicy,
    /// The bucket's counters after this report's hit.
    pub counts: Counts,
    /// The stored report, and whether its DumpFile was issued.
    pub recorded: RecordedReport,
}

impl CerFs {
    /// The policy a CER V2 client of the bucket at `subpath` obeys.
    pub fn report_policy(&self, subpath: &str) -> Result<ReportPolicy> {
        let settings = self.effective_settings(subpath)?;
        let get = |k: &str| {
            settings
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let wants_cab = get("iData").and_then(parse_bool).unwrap_or(true)
            && get("NoSecondLevelCollection").and_then(parse_bool) != Some(true);
        let cab_cap = get("Crashes per bucket")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(DEFAULT_CRASHES_PER_BUCKET);
        Ok(ReportPolicy {
            settings,
            wants_cab,
            cab_cap,
        })
    }

    /// Takes a level-1 report for the bucket at `subpath`: counts its hit (Total Hits + 1,
    /// as count.txt shows it), stores the report, and issues `offer`'s DumpFile when the
    /// policy wants a cab and the bucket is under its cap (decided in one transaction, so
    /// that concurrent reports never overshoot it). The cab's folder exists before a
    /// DumpFile is issued, so that a refused or failed upload leaves nothing behind.
    pub fn take_cer2_report(
        &self,
        subpath: &str,
        report: &NewReport,
        offer: &DumpOffer<'_>,
    ) -> Result<TakenReport> {
        let parts = subpath_parts(subpath)?;
        let policy = self.report_policy(subpath)?;
        let counts = self.count_report(subpath, 0, 1)?;
        if policy.wants_cab {
            self.ensure_dirs(CABS_INO, &parts)?;
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let bucket = self.store.ensure_bucket(&share_path::bucket_key(&refs))?;
        let request = policy.wants_cab.then_some(DumpRequest {
            cap: policy.cab_cap,
            pending_window: offer.pending_window,
            dump_path: offer.dump_path,
            cab_name: offer.cab_name,
        });
        let recorded = self.store.record_report(bucket, report, request.as_ref())?;
        Ok(TakenReport {
            policy,
            counts,
            recorded,
        })
    }

    /// Whether a bucket with this subpath exists already (a report for it creates none).
    pub fn bucket_exists(&self, subpath: &str) -> Result<bool> {
        let parts = subpath_parts(subpath)?;
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let key = share_path::bucket_key(&refs);
        Ok(self.store.find_bucket(&key.subpath)?.is_some())
    }

    /// The report a DumpFile url-path (normalized, `\A\B\...`) was issued to, if any.
    pub fn issued_dump(&self, dump_path: &str) -> Result<Option<IssuedDump>> {
        Ok(self.store.dump_by_path(dump_path)?)
    }

    /// Ends a level-2 upload written through `fh` (from [`CerFs::begin_cab`]): commits the
    /// cab, counts it (Cabs Gathered + 1) and links it to its report; returns the cab's
    /// inode and the bucket's counters. A cab that cannot be committed is abandoned and
    /// nothing is counted.
    pub fn finish_cer2_upload(&self, fh: u64, dump: &IssuedDump) -> Result<(Ino, Counts)> {
        if let Err(e) = self.flush(fh, None) {
            if let Err(abort) = self.abort_upload(fh) {
                tracing::warn!(
                    fh,
                    "abandoning an upload that could not be committed: {abort}"
                );
            }
            return Err(e);
        }
        if let Err(e) = self.release(fh) {
            tracing::warn!(fh, "releasing a committed cab: {e}");
        }
        let counts = self.count_report(&dump.subpath, 1, 0)?;
        let ino = self
            .store
            .mark_uploaded(dump.report_id)
            .map_err(FsError::from)?;
        Ok((ino, counts))
    }
}
