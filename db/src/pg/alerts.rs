//! [`AlertStore`] on PostgreSQL: the SQLite store's detection in PostgreSQL's SQL, each
//! alert raised once by its key (`ON CONFLICT DO NOTHING`), and the outbox. Only the
//! head that runs the background jobs runs the alert rounds.

use std::time::Duration;

use super::lifecycle::{set_setting, setting};
use super::pool::Tx;
use super::rows::iso;
use super::PgStore;
use crate::alerts::{
    new_bucket_alert, new_signature_alert, spike_alert, Alert, AlertStore, Delivery, NewAlert,
    SpikeRule,
};
use crate::store::Result;

/// When alerts were first looked for: what existed before is not news.
const SINCE: &str = "alerts.since";
/// The highest bucket id looked at.
const BUCKET_MARK: &str = "alerts.mark.bucket";
/// The highest `stack_rows.stack_id` looked at. Stacks are written by one indexer at a
/// time, one transaction after the other, so their ids commit in order.
const STACK_MARK: &str = "alerts.mark.stack";

fn raise_in(tx: &mut Tx<'_>, alert: &NewAlert, receivers: &[String]) -> Result<Option<Alert>> {
    let Some(row) = tx.query_opt(
        concat!(
            "INSERT INTO alert_rows (kind, subject, detail, dedupe_key) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (dedupe_key) DO NOTHING RETURNING alert_id, ",
            iso!("raised_at")
        ),
        &[
            &alert.kind,
            &alert.subject,
            &alert.detail,
            &alert.dedupe_key,
        ],
    )?
    else {
        return Ok(None);
    };
    let alert_id: i64 = row.try_get(0)?;
    for receiver in receivers {
        tx.execute(
            "INSERT INTO alert_delivery_rows (alert_id, receiver) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
            &[&alert_id, receiver],
        )?;
    }
    Ok(Some(Alert {
        alert_id,
        kind: alert.kind.to_owned(),
        subject: alert.subject.clone(),
        detail: alert.detail.clone(),
        raised_at: row.try_get(1)?,
    }))
}

fn detect_in(tx: &mut Tx<'_>, spike: &SpikeRule, receivers: &[String]) -> Result<Vec<Alert>> {
    let Some(since) = setting(tx, SINCE)? else {
        // The first look: what is there now is the baseline.
        let now: String = tx
            .query_one(concat!("SELECT ", iso!("now()")), &[])?
            .try_get(0)?;
        set_setting(tx, SINCE, Some(&now))?;
        let buckets: i64 = tx
            .query_one("SELECT coalesce(max(bucket_id), 0) FROM bucket_rows", &[])?
            .try_get(0)?;
        set_setting(tx, BUCKET_MARK, Some(&buckets.to_string()))?;
        let stacks: i64 = tx
            .query_one("SELECT coalesce(max(stack_id), 0) FROM stack_rows", &[])?
            .try_get(0)?;
        set_setting(tx, STACK_MARK, Some(&stacks.to_string()))?;
        return Ok(Vec::new());
    };
    let mut raised = Vec::new();

    let bucket_mark: i64 = setting(tx, BUCKET_MARK)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut top_bucket = bucket_mark;
    for row in tx.query(
        "SELECT bucket_id, subpath, kind FROM bucket_rows \
         WHERE bucket_id > $1 AND created_at >= $2::text::timestamptz ORDER BY bucket_id",
        &[&bucket_mark, &since],
    )? {
        let (id, subpath, kind): (i64, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        top_bucket = top_bucket.max(id);
        let alert = new_bucket_alert(id, subpath, &kind);
        raised.extend(raise_in(tx, &alert, receivers)?);
    }
    if top_bucket > bucket_mark {
        set_setting(tx, BUCKET_MARK, Some(&top_bucket.to_string()))?;
    }

    let stack_mark: i64 = setting(tx, STACK_MARK)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let top_stack: i64 = tx
        .query_one(
            "SELECT coalesce(max(stack_id), $1) FROM stack_rows",
            &[&stack_mark],
        )?
        .try_get(0)?;
    // A signature is new when no cab received before alerts began has it (a reindex
    // rewrites the rows of old signatures: they stay old).
    for row in tx.query(
        concat!(
            "SELECT s.signature, count(*), ",
            iso!("min(c.created_at)"),
            " FROM stack_rows s JOIN cab_rows c ON c.ino = s.cab_id \
             WHERE s.signature IN (SELECT signature FROM stack_rows \
                                   WHERE stack_id > $1 AND stack_id <= $2) \
               AND s.signature NOT LIKE 'EMPTY:%' \
             GROUP BY s.signature HAVING min(c.created_at) >= $3::text::timestamptz"
        ),
        &[&stack_mark, &top_stack, &since],
    )? {
        let (signature, crashes, first): (String, i64, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let alert = new_signature_alert(signature, crashes, &first);
        raised.extend(raise_in(tx, &alert, receivers)?);
    }
    if top_stack > stack_mark {
        set_setting(tx, STACK_MARK, Some(&top_stack.to_string()))?;
    }

    // A spike: the last hour's hits against the hourly average of the 7 UTC days before.
    let min_hits = i64::try_from(spike.min_hits).unwrap_or(i64::MAX);
    let spikes = tx.query(
        "WITH hour AS (SELECT log_id AS bucket_id, count(*) AS n FROM log_lines \
          WHERE received_at >= now() - interval '1 hour' AND log_id > 0 \
          GROUP BY log_id HAVING count(*) >= $1), \
         today AS (SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS t) \
         SELECT h.bucket_id, b.subpath, h.n, \
                (SELECT count(*) FROM log_lines d, today \
                  WHERE d.log_id = h.bucket_id AND d.received_at >= today.t - interval '7 days' \
                    AND d.received_at < today.t), \
                to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24') \
         FROM hour h JOIN bucket_rows b ON b.bucket_id = h.bucket_id",
        &[&min_hits],
    )?;
    for row in spikes {
        let (id, subpath, hour_hits, week_hits, hour): (i64, String, i64, i64, String) = (
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get(4)?,
        );
        if let Some(alert) = spike_alert(spike, id, subpath, hour_hits, week_hits, &hour) {
            raised.extend(raise_in(tx, &alert, receivers)?);
        }
    }
    Ok(raised)
}

impl AlertStore for PgStore {
    fn detect(&self, spike: &SpikeRule, receivers: &[String]) -> Result<Vec<Alert>> {
        self.write(|tx| detect_in(tx, spike, receivers))
    }

    fn raise(&self, alert: &NewAlert, receivers: &[String]) -> Result<Option<Alert>> {
        self.write(|tx| raise_in(tx, alert, receivers))
    }

    fn due_deliveries(&self, limit: usize) -> Result<Vec<Delivery>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|tx| {
            tx.query(
                concat!(
                    "SELECT a.alert_id, a.kind, a.subject, a.detail, ",
                    iso!("a.raised_at"),
                    ", d.receiver, d.attempts \
                     FROM alert_delivery_rows d JOIN alert_rows a ON a.alert_id = d.alert_id \
                     WHERE d.delivered_at IS NULL AND d.next_at <= now() \
                     ORDER BY d.next_at, a.alert_id LIMIT $1"
                ),
                &[&limit],
            )?
            .iter()
            .map(|r| {
                Ok(Delivery {
                    alert: Alert {
                        alert_id: r.try_get(0)?,
                        kind: r.try_get(1)?,
                        subject: r.try_get(2)?,
                        detail: r.try_get(3)?,
                        raised_at: r.try_get(4)?,
                    },
                    receiver: r.try_get(5)?,
                    attempts: u32::try_from(r.try_get::<_, i32>(6)?).unwrap_or(u32::MAX),
                })
            })
            .collect()
        })
    }

    fn delivery_done(
        &self,
        alert_id: i64,
        receiver: &str,
        failure: Option<(&str, Duration)>,
    ) -> Result<()> {
        self.write(|tx| {
            match failure {
                None => tx.execute(
                    "UPDATE alert_delivery_rows SET attempts = attempts + 1, last_error = NULL, \
                     delivered_at = now() WHERE alert_id = $1 AND receiver = $2",
                    &[&alert_id, &receiver],
                )?,
                Some((error, retry_in)) => {
                    let later = retry_in.as_secs().max(1) as f64;
                    tx.execute(
                        "UPDATE alert_delivery_rows SET attempts = attempts + 1, last_error = $3, \
                         next_at = now() + make_interval(secs => $4) \
                         WHERE alert_id = $1 AND receiver = $2",
                        &[&alert_id, &receiver, &error, &later],
                    )?
                }
            };
            Ok(())
        })
    }
}
