-- Alerts (issue 15): what happened (a new bucket, a new signature, a spike of hits, the
-- store near its quota), each raised once, and an outbox of deliveries to the configured
-- webhooks, retried with backoff until delivered; both survive restarts.

CREATE TABLE alert_rows (
    alert_id   INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('new_bucket', 'new_signature', 'spike', 'store_near_quota', 'test')),
    -- What it is about: a subpath, a signature, the store.
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    -- Raised once per key: a bucket, a signature, a bucket's hour, the store's day.
    dedupe_key TEXT NOT NULL UNIQUE,
    raised_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE alert_delivery_rows (
    alert_id     INTEGER NOT NULL REFERENCES alert_rows (alert_id) ON DELETE CASCADE,
    receiver     TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    delivered_at TEXT,
    last_error   TEXT,
    PRIMARY KEY (alert_id, receiver)
) WITHOUT ROWID;

CREATE INDEX alert_delivery_rows_due ON alert_delivery_rows (next_at) WHERE delivered_at IS NULL;

CREATE VIEW alerts AS
SELECT a.alert_id, a.kind, a.subject, a.detail, a.raised_at, d.receiver, d.attempts,
       d.delivered_at, d.next_at, d.last_error
FROM alert_rows a
LEFT JOIN alert_delivery_rows d ON d.alert_id = a.alert_id;
