//! Level 1: a report POSTed to `/stage2.htm` is read (bounded in size and time), parsed,
//! handed to fs-core ([`CerFs::take_cer2_report`](cerfs_fs_core::CerFs::take_cer2_report))
//! and answered with the bucket's settings and, when a cab is wanted, its DumpFile.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use cerfs_fs_core::DumpOffer;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};

use super::limits::BodyClock;
use super::reject::{text_response, Reject};
use super::{blocking, content_length, App, BUCKET_TABLE};
use crate::answer::Level1Answer;
use crate::bucket::{cab_name, map_report};
use crate::report::{parse_report, WerReport};

impl App {
    /// Reads a whole level-1 body: at most `max_report_size` bytes, at the body pace.
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
        if let Some(announced) = content_length(headers).filter(|n| *n > limit as u64) {
            return Err(Reject::closing(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the report announces {announced} bytes; at most {limit} are accepted"),
            ));
        }
        let clock = BodyClock::start(self.body_pace());
        let mut buf = Vec::new();
        loop {
            let deadline = clock.deadline(buf.len() as u64);
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => {
                    return Err(Reject::new(
                        StatusCode::REQUEST_TIMEOUT,
                        clock.reason(buf.len() as u64),
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
    pub(super) async fn level1(
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

    fn store_report(&self, report: &WerReport, peer: SocketAddr) -> Result<Level1Answer, Reject> {
        let mapping = map_report(report);
        let subpath = mapping.subpath();
        let guid = uuid::Uuid::new_v4().hyphenated().to_string();
        let dump_path = mapping.dump_path(&guid);
        let cab = cab_name(&guid);
        let known = self
            .fs
            .bucket_exists(&subpath)
            .map_err(|e| Reject::from_fs("finding the bucket", e))?;
        if !known && !self.new_buckets.take(peer.ip()) {
            return Err(Reject::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "this address reported more than {} new signatures in the last minute: \
                     retry later",
                    self.config.new_buckets_per_minute
                ),
            ));
        }
        let offer = DumpOffer {
            dump_path: &dump_path,
            cab_name: &cab,
            pending_window: self.config.pending_window,
        };
        let taken = self
            .fs
            .take_cer2_report(&subpath, report, &offer)
            .map_err(|e| Reject::from_fs("storing the report", e))?;
        let recorded = taken.recorded;
        let bucket_id = u64::try_from(recorded.bucket_id)
            .ok()
            .filter(|b| *b > 0)
            .ok_or_else(|| {
                Reject::internal(
                    "storing the report",
                    &format!("bucket id {}", recorded.bucket_id),
                )
            })?;
        let mut answer = Level1Answer {
            bucket: bucket_id,
            bucket_table: BUCKET_TABLE,
            idata: recorded.dump_issued,
            dump_file: recorded.dump_issued.then(|| dump_path.clone()),
            ..Default::default()
        };
        answer.apply_settings(&taken.policy.settings);
        tracing::info!(
            %peer,
            report = recorded.report_id,
            bucket = recorded.bucket_id,
            subpath = %subpath,
            event = %report.event_type,
            hits = taken.counts.total_hits,
            dump = recorded.dump_issued.then_some(dump_path.as_str()),
            "level-1 report stored"
        );
        Ok(answer)
    }
}
