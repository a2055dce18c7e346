-- cerfs PostgreSQL schema, version 7: what the web console reads. The SQLite store keeps
-- running totals by triggers (its schema 9); here the console counts from the rows with
-- these indexes instead, since one totals row per day and kind would serialize every
-- report of every head on its lock. What it does keep is history: when each signature was
-- first seen (deleting a signature's cabs does not make it new again), written by the one
-- indexer at a time (no contention between heads).

CREATE TABLE signature_first_rows (
    signature text PRIMARY KEY,
    first_at  timestamptz NOT NULL
);
CREATE INDEX signature_first_rows_first ON signature_first_rows (first_at);

INSERT INTO signature_first_rows (signature, first_at)
SELECT s.signature, min(coalesce(c.created_at, s.walked_at))
FROM stack_rows s JOIN cab_rows c ON c.ino = s.cab_id
GROUP BY s.signature;

CREATE FUNCTION cerfs_signature_first() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO signature_first_rows (signature, first_at)
    SELECT NEW.signature, coalesce(c.created_at, NEW.walked_at) FROM cab_rows c
    WHERE c.ino = NEW.cab_id
    ON CONFLICT (signature) DO UPDATE
        SET first_at = least(signature_first_rows.first_at, excluded.first_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER signature_first_insert AFTER INSERT ON stack_rows
    FOR EACH ROW EXECUTE FUNCTION cerfs_signature_first();

-- Reports of a window of days, all buckets: index-only scans.
CREATE INDEX log_lines_received_at ON log_lines (received_at) INCLUDE (log_id);
CREATE INDEX cer2_report_rows_received ON cer2_report_rows (received_at) INCLUDE (bucket_id);
-- The bucket list's orders (ties newest id first) and new buckets.
CREATE INDEX bucket_rows_hits ON bucket_rows (total_hits, bucket_id);
CREATE INDEX bucket_rows_last_seen ON bucket_rows (last_seen, bucket_id);
CREATE INDEX bucket_rows_first_seen ON bucket_rows (first_seen, bucket_id);
