-- cerfs schema, version 9: totals the web console and /metrics read on every request,
-- kept up to date by triggers in the transaction that changes what they count. Without
-- them the overview summed a row per bucket and day (a million at the bench's scale) and
-- scanned every cab row: 300 ms a page.

-- Reports per UTC day, protocol and bucket kind: hits.log lines (cer1) and CER2 reports
-- (cer2). At most days x 2 x 4 rows.
CREATE TABLE daily_report_rows (
    day      TEXT    NOT NULL,  -- UTC YYYY-MM-DD of received_at
    protocol TEXT    NOT NULL CHECK (protocol IN ('cer1', 'cer2')),
    kind     TEXT    NOT NULL,  -- bucket_rows.kind
    reports  INTEGER NOT NULL CHECK (reports >= 0),
    PRIMARY KEY (day, protocol, kind)
) WITHOUT ROWID;

INSERT INTO daily_report_rows (day, protocol, kind, reports)
SELECT substr(l.received_at, 1, 10), 'cer1', b.kind, count(*)
FROM log_lines l JOIN bucket_rows b ON b.bucket_id = l.log_id
WHERE l.log_id > 0 GROUP BY 1, 3;

INSERT INTO daily_report_rows (day, protocol, kind, reports)
SELECT substr(r.received_at, 1, 10), 'cer2', b.kind, count(*)
FROM cer2_report_rows r JOIN bucket_rows b ON b.bucket_id = r.bucket_id
GROUP BY 1, 3;

CREATE TRIGGER daily_reports_hit_insert AFTER INSERT ON log_lines WHEN NEW.log_id > 0
BEGIN
    INSERT INTO daily_report_rows (day, protocol, kind, reports)
    SELECT substr(NEW.received_at, 1, 10), 'cer1', kind, 1 FROM bucket_rows
    WHERE bucket_id = NEW.log_id
    ON CONFLICT (day, protocol, kind) DO UPDATE SET reports = reports + 1;
END;

-- A bucket's deletion removes its lines before its bucket row, so the kind is still there.
CREATE TRIGGER daily_reports_hit_delete AFTER DELETE ON log_lines WHEN OLD.log_id > 0
BEGIN
    UPDATE daily_report_rows SET reports = reports - 1
    WHERE day = substr(OLD.received_at, 1, 10) AND protocol = 'cer1' AND reports > 0
      AND kind = (SELECT kind FROM bucket_rows WHERE bucket_id = OLD.log_id);
END;

-- cerfs never moves lines; this keeps the totals right if an admin does (as daily_hits).
CREATE TRIGGER daily_reports_hit_update AFTER UPDATE OF log_id, received_at ON log_lines
BEGIN
    UPDATE daily_report_rows SET reports = reports - 1
    WHERE OLD.log_id > 0 AND day = substr(OLD.received_at, 1, 10) AND protocol = 'cer1'
      AND reports > 0 AND kind = (SELECT kind FROM bucket_rows WHERE bucket_id = OLD.log_id);
    INSERT INTO daily_report_rows (day, protocol, kind, reports)
    SELECT substr(NEW.received_at, 1, 10), 'cer1', kind, 1 FROM bucket_rows
    WHERE NEW.log_id > 0 AND bucket_id = NEW.log_id
    ON CONFLICT (day, protocol, kind) DO UPDATE SET reports = reports + 1;
END;

CREATE TRIGGER daily_reports_cer2_insert AFTER INSERT ON cer2_report_rows
BEGIN
    INSERT INTO daily_report_rows (day, protocol, kind, reports)
    SELECT substr(NEW.received_at, 1, 10), 'cer2', kind, 1 FROM bucket_rows
    WHERE bucket_id = NEW.bucket_id
    ON CONFLICT (day, protocol, kind) DO UPDATE SET reports = reports + 1;
END;

CREATE TRIGGER daily_reports_cer2_delete AFTER DELETE ON cer2_report_rows
BEGIN
    UPDATE daily_report_rows SET reports = reports - 1
    WHERE day = substr(OLD.received_at, 1, 10) AND protocol = 'cer2' AND reports > 0
      AND kind = (SELECT kind FROM bucket_rows WHERE bucket_id = OLD.bucket_id);
END;

CREATE TRIGGER daily_reports_cer2_update AFTER UPDATE OF bucket_id, received_at
    ON cer2_report_rows
BEGIN
    UPDATE daily_report_rows SET reports = reports - 1
    WHERE day = substr(OLD.received_at, 1, 10) AND protocol = 'cer2' AND reports > 0
      AND kind = (SELECT kind FROM bucket_rows WHERE bucket_id = OLD.bucket_id);
    INSERT INTO daily_report_rows (day, protocol, kind, reports)
    SELECT substr(NEW.received_at, 1, 10), 'cer2', kind, 1 FROM bucket_rows
    WHERE bucket_id = NEW.bucket_id
    ON CONFLICT (day, protocol, kind) DO UPDATE SET reports = reports + 1;
END;

-- The cabs on the share (complete, not removed), their bytes, the indexer's backlog and its
-- failures: one row.
CREATE TABLE cab_total_rows (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    cabs    INTEGER NOT NULL,
    bytes   INTEGER NOT NULL,
    backlog INTEGER NOT NULL,
    failed  INTEGER NOT NULL
);

INSERT INTO cab_total_rows (id, cabs, bytes, backlog, failed)
SELECT 1, count(*), coalesce(sum(coalesce(size, 0)), 0),
       count(*) FILTER (WHERE index_status IS NULL),
       count(*) FILTER (WHERE index_status = 'failed')
FROM cab_rows WHERE state = 'complete' AND removal IS NULL;

CREATE TRIGGER cab_totals_insert AFTER INSERT ON cab_rows
    WHEN NEW.state = 'complete' AND NEW.removal IS NULL
BEGIN
    UPDATE cab_total_rows SET cabs = cabs + 1, bytes = bytes + coalesce(NEW.size, 0),
        backlog = backlog + (NEW.index_status IS NULL),
        failed = failed + (NEW.index_status IS 'failed');
END;

CREATE TRIGGER cab_totals_delete AFTER DELETE ON cab_rows
    WHEN OLD.state = 'complete' AND OLD.removal IS NULL
BEGIN
    UPDATE cab_total_rows SET cabs = cabs - 1, bytes = bytes - coalesce(OLD.size, 0),
        backlog = backlog - (OLD.index_status IS NULL),
        failed = failed - (OLD.index_status IS 'failed');
END;

CREATE TRIGGER cab_totals_update AFTER UPDATE OF state, size, removal, index_status ON cab_rows
    WHEN (OLD.state = 'complete' AND OLD.removal IS NULL)
      OR (NEW.state = 'complete' AND NEW.removal IS NULL)
BEGIN
    UPDATE cab_total_rows SET
        cabs = cabs + (NEW.state = 'complete' AND NEW.removal IS NULL)
                    - (OLD.state = 'complete' AND OLD.removal IS NULL),
        bytes = bytes
            + CASE WHEN NEW.state = 'complete' AND NEW.removal IS NULL
                   THEN coalesce(NEW.size, 0) ELSE 0 END
            - CASE WHEN OLD.state = 'complete' AND OLD.removal IS NULL
                   THEN coalesce(OLD.size, 0) ELSE 0 END,
        backlog = backlog
            + (NEW.state = 'complete' AND NEW.removal IS NULL AND NEW.index_status IS NULL)
            - (OLD.state = 'complete' AND OLD.removal IS NULL AND OLD.index_status IS NULL),
        failed = failed
            + (NEW.state = 'complete' AND NEW.removal IS NULL AND NEW.index_status IS 'failed')
            - (OLD.state = 'complete' AND OLD.removal IS NULL AND OLD.index_status IS 'failed');
END;

-- Walked dumps per signature, bucket and UTC day of their cab's arrival: the signature
-- lists of the console without joining every stack row to its cab.
CREATE TABLE daily_signature_rows (
    day       TEXT    NOT NULL,  -- UTC YYYY-MM-DD of cab_rows.created_at
    signature TEXT    NOT NULL,
    bucket_id INTEGER NOT NULL,
    crashes   INTEGER NOT NULL CHECK (crashes >= 0),
    first_at  TEXT    NOT NULL,  -- the earliest and latest cab_rows.created_at counted
    last_at   TEXT    NOT NULL,
    PRIMARY KEY (day, signature, bucket_id)
) WITHOUT ROWID;
CREATE INDEX daily_signature_rows_signature ON daily_signature_rows (signature, day);

INSERT INTO daily_signature_rows (day, signature, bucket_id, crashes, first_at, last_at)
SELECT substr(coalesce(c.created_at, s.walked_at), 1, 10), s.signature, c.bucket_id, count(*),
       min(coalesce(c.created_at, s.walked_at)), max(coalesce(c.created_at, s.walked_at))
FROM stack_rows s JOIN cab_rows c ON c.ino = s.cab_id
GROUP BY 1, 2, 3;

CREATE TRIGGER daily_signatures_insert AFTER INSERT ON stack_rows
BEGIN
    INSERT INTO daily_signature_rows (day, signature, bucket_id, crashes, first_at, last_at)
    SELECT substr(coalesce(created_at, NEW.walked_at), 1, 10), NEW.signature, bucket_id, 1,
           coalesce(created_at, NEW.walked_at), coalesce(created_at, NEW.walked_at)
    FROM cab_rows WHERE ino = NEW.cab_id
    ON CONFLICT (day, signature, bucket_id) DO UPDATE SET crashes = crashes + 1,
        first_at = min(first_at, excluded.first_at), last_at = max(last_at, excluded.last_at);
END;

-- A re-walk deletes a cab's stack rows while the cab stays. When the cab itself goes, its
-- stack rows are counted out before it (the cascade then finds no cab and does nothing).
CREATE TRIGGER daily_signatures_delete AFTER DELETE ON stack_rows
BEGIN
    UPDATE daily_signature_rows SET crashes = crashes - 1
    WHERE signature = OLD.signature AND crashes > 0
      AND (day, bucket_id) = (SELECT substr(coalesce(created_at, OLD.walked_at), 1, 10), bucket_id
                              FROM cab_rows WHERE ino = OLD.cab_id);
END;

CREATE TRIGGER daily_signatures_cab_delete BEFORE DELETE ON cab_rows
BEGIN
    UPDATE daily_signature_rows SET crashes = crashes - (
        SELECT count(*) FROM stack_rows s
        WHERE s.cab_id = OLD.ino AND s.signature = daily_signature_rows.signature)
    WHERE bucket_id = OLD.bucket_id
      AND day IN (SELECT substr(coalesce(OLD.created_at, s.walked_at), 1, 10)
                  FROM stack_rows s WHERE s.cab_id = OLD.ino)
      AND signature IN (SELECT signature FROM stack_rows WHERE cab_id = OLD.ino);
END;
