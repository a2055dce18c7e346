//! Alerts in the store: what is raised (once per key), and the outbox of deliveries to
//! webhooks, retried until delivered. Both are tables, so that a restart loses nothing.
//! The rules (what a spike is, who receives) are the caller's; detection of new buckets,
//! new signatures and spikes is SQL, here.

use std::time::Duration;

use crate::store::Result;

/// What a spike is: at least `min_hits` hits.log lines in the last hour, and at least
/// `factor` times the bucket's hourly average over the 7 days before today.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpikeRule {
    /// How many times the trailing hourly average.
    pub factor: f64,
    /// Hits in the hour at least.
    pub min_hits: u64,
}

/// An alert to raise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    /// `new_bucket`, `new_signature`, `spike`, `store_near_quota` or `test`.
    pub kind: &'static str,
    /// What it is about (a subpath, a signature, the store).
    pub subject: String,
    /// A sentence for people.
    pub detail: String,
    /// Raised once per key.
    pub dedupe_key: String,
}

/// A raised alert.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Alert {
    /// Its id.
    pub alert_id: i64,
    /// Its kind (see [`NewAlert::kind`]).
    pub kind: String,
    /// What it is about.
    pub subject: String,
    /// A sentence for people.
    pub detail: String,
    /// When it was raised (UTC).
    pub raised_at: String,
}

/// A delivery waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The alert.
    pub alert: Alert,
    /// The receiver as configured (`URL` or `format URL`).
    pub receiver: String,
    /// Attempts made so far.
    pub attempts: u32,
}

/// The alerts part of the store.
pub trait AlertStore: Send + Sync {
    /// Looks at what arrived since the last look: buckets created and signatures first
    /// seen since alerts were first looked for, and buckets whose last hour is a spike.
    /// Raises each once and queues it for `receivers`; returns the new alerts.
    fn detect(&self, spike: &SpikeRule, receivers: &[String]) -> Result<Vec<Alert>>;
    /// Raises `alert` (unless its key was raised before) and queues it for `receivers`.
    fn raise(&self, alert: &NewAlert, receivers: &[String]) -> Result<Option<Alert>>;
    /// Deliveries due now, oldest first, at most `limit`.
    fn due_deliveries(&self, limit: usize) -> Result<Vec<Delivery>>;
    /// Records a delivery: done (`None`), or failed with its error, tried again after
    /// `retry_in`.
    fn delivery_done(
        &self,
        alert_id: i64,
        receiver: &str,
        failure: Option<(&str, Duration)>,
    ) -> Result<()>;
}

/// The alert for a bucket created since the last look (both stores raise the same).
pub(crate) fn new_bucket_alert(bucket_id: i64, subpath: String, kind: &str) -> NewAlert {
    NewAlert {
        kind: "new_bucket",
        detail: format!("a new {kind} bucket: {subpath}"),
        subject: subpath,
        dedupe_key: format!("bucket:{bucket_id}"),
    }
}

/// The alert for a signature first seen since alerts began: `crashes` so far, the first
/// received at `first` (both stores raise the same).
pub(crate) fn new_signature_alert(signature: String, crashes: i64, first: &str) -> NewAlert {
    NewAlert {
        kind: "new_signature",
        detail: format!(
            "a new crash signature ({crashes} crash so far, first at {first}): {signature}"
        ),
        dedupe_key: format!("signature:{signature}"),
        subject: signature,
    }
}

/// The alert for bucket `bucket_id` when its `hour_hits` in the last hour (`hour`, UTC,
/// `YYYY-MM-DDTHH`) are a spike against `week_hits` over the 7 days before: once per
/// bucket and hour. `None` when they are not.
pub(crate) fn spike_alert(
    spike: &SpikeRule,
    bucket_id: i64,
    subpath: String,
    hour_hits: i64,
    week_hits: i64,
    hour: &str,
) -> Option<NewAlert> {
    let average = week_hits as f64 / 168.0;
    if (hour_hits as f64) < spike.factor * average {
        return None;
    }
    Some(NewAlert {
        kind: "spike",
        detail: format!(
            "{hour_hits} hits in the last hour, against {average:.1} an hour over the week before: {subpath}"
        ),
        subject: subpath,
        dedupe_key: format!("spike:{bucket_id}:{hour}"),
    })
}
