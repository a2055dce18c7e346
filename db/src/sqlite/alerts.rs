//! [`AlertStore`] on SQLite: detection by SQL over the buckets, the stacks and the hits,
//! `INSERT OR IGNORE` on the alert's key so that each is raised once, and the outbox.

use std::time::Duration;

use rusqlite::{params, Connection};

use super::retention::{set_setting, setting};
use super::{finish, sql_now, SqliteStore};
use crate::alerts::{
    new_bucket_alert, new_signature_alert, spike_alert, Alert, AlertStore, Delivery, NewAlert,
    SpikeRule,
};
use crate::store::Result;

/// When alerts were first looked for: what existed before is not news.
const SINCE: &str = "alerts.since";
/// The highest bucket id looked at.
const BUCKET_MARK: &str = "alerts.mark.bucket";
/// The highest stack row looked at.
const STACK_MARK: &str = "alerts.mark.stack";

fn raise_in(conn: &Connection, alert: &NewAlert, receivers: &[String]) -> Result<Option<Alert>> {
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO alert_rows (kind, subject, detail, dedupe_key) \
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            alert.kind,
            alert.subject,
            alert.detail,
            alert.dedupe_key
        ])?;
    if inserted == 0 {
        return Ok(None);
    }
    let alert_id = conn.last_insert_rowid();
    for receiver in receivers {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO alert_delivery_rows (alert_id, receiver) VALUES (?1, ?2)",
        )?
        .execute(params![alert_id, receiver])?;
    }
    let raised_at: String = conn
        .prepare_cached("SELECT raised_at FROM alert_rows WHERE alert_id = ?1")?
        .query_row([alert_id], |r| r.get(0))?;
    Ok(Some(Alert {
        alert_id,
        kind: alert.kind.to_owned(),
        subject: alert.subject.clone(),
        detail: alert.detail.clone(),
        raised_at,
    }))
}

fn mark(conn: &Connection, key: &str) -> Result<i64> {
    Ok(setting(conn, key)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

fn detect_in(conn: &Connection, spike: &SpikeRule, receivers: &[String]) -> Result<Vec<Alert>> {
    let Some(since) = setting(conn, SINCE)? else {
        // The first look: what is there now is the baseline.
        let now: String = conn.query_row(concat!("SELECT ", sql_now!()), [], |r| r.get(0))?;
        set_setting(conn, SINCE, Some(&now))?;
        let buckets: i64 = conn.query_row(
            "SELECT coalesce(max(bucket_id), 0) FROM bucket_rows",
            [],
            |r| r.get(0),
        )?;
        let stacks: i64 =
            conn.query_row("SELECT coalesce(max(rowid), 0) FROM stack_rows", [], |r| {
                r.get(0)
            })?;
        set_setting(conn, BUCKET_MARK, Some(&buckets.to_string()))?;
        set_setting(conn, STACK_MARK, Some(&stacks.to_string()))?;
        return Ok(Vec::new());
    };
    let mut raised = Vec::new();

    let bucket_mark = mark(conn, BUCKET_MARK)?;
    let new_buckets: Vec<(i64, String, String)> = conn
        .prepare_cached(
            "SELECT bucket_id, subpath, kind FROM bucket_rows \
             WHERE bucket_id > ?1 AND created_at >= ?2 ORDER BY bucket_id",
        )?
        .query_map(params![bucket_mark, since], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut top_bucket = bucket_mark;
    for (id, subpath, kind) in new_buckets {
        top_bucket = top_bucket.max(id);
        let alert = new_bucket_alert(id, subpath, &kind);
        raised.extend(raise_in(conn, &alert, receivers)?);
    }
    if top_bucket > bucket_mark {
        set_setting(conn, BUCKET_MARK, Some(&top_bucket.to_string()))?;
    }

    let stack_mark = mark(conn, STACK_MARK)?;
    let top_stack: i64 = conn.query_row(
        "SELECT coalesce(max(rowid), ?1) FROM stack_rows",
        [stack_mark],
        |r| r.get(0),
    )?;
    // A signature is new when no cab received before alerts began has it (a reindex
    // rewrites the rows of old signatures: they stay old).
    let new_signatures: Vec<(String, i64, String)> = conn
        .prepare_cached(
            "SELECT s.signature, count(*), min(c.created_at) FROM stack_rows s \
             JOIN cab_rows c ON c.ino = s.cab_id \
             WHERE s.signature IN (SELECT signature FROM stack_rows WHERE rowid > ?1 AND rowid <= ?2) \
               AND s.signature NOT LIKE 'EMPTY:%' \
             GROUP BY s.signature HAVING min(c.created_at) >= ?3",
        )?
        .query_map(params![stack_mark, top_stack, since], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (signature, crashes, first) in new_signatures {
        let alert = new_signature_alert(signature, crashes, &first);
        raised.extend(raise_in(conn, &alert, receivers)?);
    }
    if top_stack > stack_mark {
        set_setting(conn, STACK_MARK, Some(&top_stack.to_string()))?;
    }

    let spikes: Vec<(i64, String, i64, i64, String)> = conn
        .prepare_cached(
            "WITH hour AS (SELECT log_id AS bucket_id, count(*) AS n FROM log_lines \
              WHERE received_at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour') AND log_id > 0 \
              GROUP BY log_id HAVING count(*) >= ?1) \
             SELECT h.bucket_id, b.subpath, h.n, \
                    (SELECT coalesce(sum(d.hits), 0) FROM daily_hit_rows d \
                      WHERE d.bucket_id = h.bucket_id AND d.day >= date('now', '-7 days') \
                        AND d.day < date('now')), \
                    strftime('%Y-%m-%dT%H', 'now') \
             FROM hour h JOIN bucket_rows b ON b.bucket_id = h.bucket_id",
        )?
        .query_map([i64::try_from(spike.min_hits).unwrap_or(i64::MAX)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (id, subpath, hour_hits, week_hits, hour) in spikes {
        if let Some(alert) = spike_alert(spike, id, subpath, hour_hits, week_hits, &hour) {
            raised.extend(raise_in(conn, &alert, receivers)?);
        }
    }
    Ok(raised)
}

impl AlertStore for SqliteStore {
    fn detect(&self, spike: &SpikeRule, receivers: &[String]) -> Result<Vec<Alert>> {
        self.write(|tx| detect_in(tx, spike, receivers))
    }

    fn raise(&self, alert: &NewAlert, receivers: &[String]) -> Result<Option<Alert>> {
        self.write(|tx| raise_in(tx, alert, receivers))
    }

    fn due_deliveries(&self, limit: usize) -> Result<Vec<Delivery>> {
        finish(self.read(|tx| {
            let rows = tx
                .prepare_cached(concat!(
                    "SELECT a.alert_id, a.kind, a.subject, a.detail, a.raised_at, d.receiver, \
                            d.attempts \
                     FROM alert_delivery_rows d JOIN alert_rows a ON a.alert_id = d.alert_id \
                     WHERE d.delivered_at IS NULL AND d.next_at <= ",
                    sql_now!(),
                    " ORDER BY d.next_at, a.alert_id LIMIT ?1"
                ))?
                .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                    Ok(Delivery {
                        alert: Alert {
                            alert_id: r.get(0)?,
                            kind: r.get(1)?,
                            subject: r.get(2)?,
                            detail: r.get(3)?,
                            raised_at: r.get(4)?,
                        },
                        receiver: r.get(5)?,
                        attempts: u32::try_from(r.get::<_, i64>(6)?).unwrap_or(u32::MAX),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        }))
    }

    fn delivery_done(
        &self,
        alert_id: i64,
        receiver: &str,
        failure: Option<(&str, Duration)>,
    ) -> Result<()> {
        self.write(|tx| {
            match failure {
                None => {
                    tx.prepare_cached(concat!(
                        "UPDATE alert_delivery_rows SET attempts = attempts + 1, last_error = NULL, \
                         delivered_at = ",
                        sql_now!(),
                        " WHERE alert_id = ?1 AND receiver = ?2"
                    ))?
                    .execute(params![alert_id, receiver])?;
                }
                Some((error, retry_in)) => {
                    let later = format!("+{} seconds", retry_in.as_secs().max(1));
                    tx.prepare_cached(
                        "UPDATE alert_delivery_rows SET attempts = attempts + 1, last_error = ?3, \
                         next_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?4) \
                         WHERE alert_id = ?1 AND receiver = ?2",
                    )?
                    .execute(params![alert_id, receiver, error, later])?;
                }
            }
            Ok(())
        })
    }
}
