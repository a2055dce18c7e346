-- cerfs PostgreSQL schema, version 5: alerts and their outbox, as the SQLite store's
-- migrations/0008_alerts.sql (times are timestamptz).

CREATE TABLE alert_rows (
    alert_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text   NOT NULL CHECK (kind IN ('new_bucket', 'new_signature', 'spike', 'store_near_quota', 'test')),
    subject    text   NOT NULL,
    detail     text   NOT NULL,
    -- Raised once per key: a bucket, a signature, a bucket's hour, the store's day.
    dedupe_key text   NOT NULL UNIQUE,
    raised_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alert_delivery_rows (
    alert_id     bigint  NOT NULL REFERENCES alert_rows (alert_id) ON DELETE CASCADE,
    receiver     text    NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    last_error   text,
    PRIMARY KEY (alert_id, receiver)
);

CREATE INDEX alert_delivery_rows_due ON alert_delivery_rows (next_at) WHERE delivered_at IS NULL;

CREATE VIEW alerts AS
SELECT a.alert_id, a.kind, a.subject, a.detail, a.raised_at, d.receiver, d.attempts,
       d.delivered_at, d.next_at, d.last_error
FROM alert_rows a
LEFT JOIN alert_delivery_rows d ON d.alert_id = a.alert_id;
