-- cerfs PostgreSQL schema, version 7: what the web console and /metrics read on every
-- request, kept up to date by triggers in the transaction that changes what they count,
-- as the SQLite store's schema 5 and 9 do. Without them the overview grouped every hit of
-- its window: 1.6 s at 1 M hits.
--
-- Several heads write at once, so no total may be one row that every report updates (its
-- lock would serialize all of them): a day's reports per kind and the cab totals are split
-- in 16 shards (by bucket, by cab), summed when read. A bucket's hits of a day are one row:
-- a hits.log append holds its bucket's log row already. Signatures are written by one
-- indexer at a time.

-- Hits per bucket and UTC day.
CREATE TABLE daily_hit_rows (
    day       date   NOT NULL,
    bucket_id bigint NOT NULL,
    hits      bigint NOT NULL CHECK (hits >= 0),
    PRIMARY KEY (day, bucket_id)
);
CREATE INDEX daily_hit_rows_bucket ON daily_hit_rows (bucket_id, day);

-- Reports per UTC day, protocol ('cer1': hits.log lines, 'cer2': CER V2 reports), bucket
-- kind and shard (bucket_id % 16).
CREATE TABLE daily_report_rows (
    day      date     NOT NULL,
    protocol text     NOT NULL CHECK (protocol IN ('cer1', 'cer2')),
    kind     text     NOT NULL,
    shard    smallint NOT NULL,
    reports  bigint   NOT NULL CHECK (reports >= 0),
    PRIMARY KEY (day, protocol, kind, shard)
);

INSERT INTO daily_hit_rows (day, bucket_id, hits)
SELECT (received_at AT TIME ZONE 'UTC')::date, log_id, count(*)
FROM log_lines WHERE log_id > 0 GROUP BY 1, 2;

INSERT INTO daily_report_rows (day, protocol, kind, shard, reports)
SELECT (l.received_at AT TIME ZONE 'UTC')::date, 'cer1', b.kind, b.bucket_id % 16, count(*)
FROM log_lines l JOIN bucket_rows b ON b.bucket_id = l.log_id
WHERE l.log_id > 0 GROUP BY 1, 3, 4;

INSERT INTO daily_report_rows (day, protocol, kind, shard, reports)
SELECT (r.received_at AT TIME ZONE 'UTC')::date, 'cer2', b.kind, b.bucket_id % 16, count(*)
FROM cer2_report_rows r JOIN bucket_rows b ON b.bucket_id = r.bucket_id
GROUP BY 1, 3, 4;

-- One statement's hits.log lines, counted in (sign 1) or out (-1). Keys are taken in order,
-- so two statements never wait on each other crosswise. (Counting out updates: an
-- INSERT's row must pass the CHECKs before its conflict is seen.)
CREATE FUNCTION cerfs_count_lines(lines_day date[], lines_log bigint[], sign bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF sign > 0 THEN
        INSERT INTO daily_hit_rows AS d (day, bucket_id, hits)
        SELECT x.day, x.log_id, count(*) FROM unnest(lines_day, lines_log) AS x (day, log_id)
        WHERE x.log_id > 0 GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (day, bucket_id) DO UPDATE SET hits = d.hits + excluded.hits;
        INSERT INTO daily_report_rows AS d (day, protocol, kind, shard, reports)
        SELECT x.day, 'cer1', b.kind, b.bucket_id % 16, count(*)
        FROM unnest(lines_day, lines_log) AS x (day, log_id)
        JOIN bucket_rows b ON b.bucket_id = x.log_id
        WHERE x.log_id > 0 GROUP BY 1, 3, 4 ORDER BY 1, 3, 4
        ON CONFLICT (day, protocol, kind, shard)
            DO UPDATE SET reports = d.reports + excluded.reports;
    ELSE
        UPDATE daily_hit_rows d SET hits = greatest(d.hits - x.n, 0)
        FROM (SELECT day, log_id, count(*) AS n FROM unnest(lines_day, lines_log) AS u (day, log_id)
              WHERE log_id > 0 GROUP BY 1, 2) x
        WHERE d.day = x.day AND d.bucket_id = x.log_id;
        UPDATE daily_report_rows d SET reports = greatest(d.reports - x.n, 0)
        FROM (SELECT u.day, b.kind, b.bucket_id % 16 AS shard, count(*) AS n
              FROM unnest(lines_day, lines_log) AS u (day, log_id)
              JOIN bucket_rows b ON b.bucket_id = u.log_id
              WHERE u.log_id > 0 GROUP BY 1, 2, 3) x
        WHERE d.day = x.day AND d.protocol = 'cer1' AND d.kind = x.kind AND d.shard = x.shard;
    END IF;
END
$$;

CREATE FUNCTION cerfs_lines_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cerfs_count_lines(
        (SELECT array_agg((received_at AT TIME ZONE 'UTC')::date) FROM added),
        (SELECT array_agg(log_id) FROM added), 1);
    RETURN NULL;
END
$$;

CREATE FUNCTION cerfs_lines_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cerfs_count_lines(
        (SELECT array_agg((received_at AT TIME ZONE 'UTC')::date) FROM removed),
        (SELECT array_agg(log_id) FROM removed), -1);
    RETURN NULL;
END
$$;

-- cerfs never moves lines; this keeps the totals right if an admin does (only the lines
-- whose bucket or day changed are counted again).
CREATE FUNCTION cerfs_lines_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cerfs_count_lines(
        (SELECT array_agg((o.received_at AT TIME ZONE 'UTC')::date) FROM removed o
         JOIN added n USING (seq)
         WHERE o.received_at <> n.received_at OR o.log_id <> n.log_id),
        (SELECT array_agg(o.log_id) FROM removed o JOIN added n USING (seq)
         WHERE o.received_at <> n.received_at OR o.log_id <> n.log_id), -1);
    PERFORM cerfs_count_lines(
        (SELECT array_agg((n.received_at AT TIME ZONE 'UTC')::date) FROM removed o
         JOIN added n USING (seq)
         WHERE o.received_at <> n.received_at OR o.log_id <> n.log_id),
        (SELECT array_agg(n.log_id) FROM removed o JOIN added n USING (seq)
         WHERE o.received_at <> n.received_at OR o.log_id <> n.log_id), 1);
    RETURN NULL;
END
$$;

CREATE TRIGGER log_lines_counted_in AFTER INSERT ON log_lines
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION cerfs_lines_added();
CREATE TRIGGER log_lines_counted_out AFTER DELETE ON log_lines
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION cerfs_lines_removed();
CREATE TRIGGER log_lines_counted_again AFTER UPDATE ON log_lines
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION cerfs_lines_moved();

CREATE FUNCTION cerfs_count_reports(reports_day date[], reports_bucket bigint[], sign bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF sign > 0 THEN
        INSERT INTO daily_report_rows AS d (day, protocol, kind, shard, reports)
        SELECT x.day, 'cer2', b.kind, b.bucket_id % 16, count(*)
        FROM unnest(reports_day, reports_bucket) AS x (day, bucket_id)
        JOIN bucket_rows b ON b.bucket_id = x.bucket_id
        GROUP BY 1, 3, 4 ORDER BY 1, 3, 4
        ON CONFLICT (day, protocol, kind, shard)
            DO UPDATE SET reports = d.reports + excluded.reports;
    ELSE
        UPDATE daily_report_rows d SET reports = greatest(d.reports - x.n, 0)
        FROM (SELECT u.day, b.kind, b.bucket_id % 16 AS shard, count(*) AS n
              FROM unnest(reports_day, reports_bucket) AS u (day, bucket_id)
              JOIN bucket_rows b ON b.bucket_id = u.bucket_id GROUP BY 1, 2, 3) x
        WHERE d.day = x.day AND d.protocol = 'cer2' AND d.kind = x.kind AND d.shard = x.shard;
    END IF;
END
$$;

CREATE FUNCTION cerfs_reports_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cerfs_count_reports(
        (SELECT array_agg((received_at AT TIME ZONE 'UTC')::date) FROM added),
        (SELECT array_agg(bucket_id) FROM added), 1);
    RETURN NULL;
END
$$;

CREATE FUNCTION cerfs_reports_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cerfs_count_reports(
        (SELECT array_agg((received_at AT TIME ZONE 'UTC')::date) FROM removed),
        (SELECT array_agg(bucket_id) FROM removed), -1);
    RETURN NULL;
END
$$;

-- A report's upload changes its row, not its day or bucket: nothing is counted again then.
CREATE FUNCTION cerfs_reports_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cerfs_count_reports(
        (SELECT array_agg((o.received_at AT TIME ZONE 'UTC')::date) FROM removed o
         JOIN added n USING (report_id)
         WHERE o.received_at <> n.received_at OR o.bucket_id <> n.bucket_id),
        (SELECT array_agg(o.bucket_id) FROM removed o JOIN added n USING (report_id)
         WHERE o.received_at <> n.received_at OR o.bucket_id <> n.bucket_id), -1);
    PERFORM cerfs_count_reports(
        (SELECT array_agg((n.received_at AT TIME ZONE 'UTC')::date) FROM removed o
         JOIN added n USING (report_id)
         WHERE o.received_at <> n.received_at OR o.bucket_id <> n.bucket_id),
        (SELECT array_agg(n.bucket_id) FROM removed o JOIN added n USING (report_id)
         WHERE o.received_at <> n.received_at OR o.bucket_id <> n.bucket_id), 1);
    RETURN NULL;
END
$$;

CREATE TRIGGER cer2_reports_counted_in AFTER INSERT ON cer2_report_rows
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION cerfs_reports_added();
CREATE TRIGGER cer2_reports_counted_out AFTER DELETE ON cer2_report_rows
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION cerfs_reports_removed();
CREATE TRIGGER cer2_reports_counted_again AFTER UPDATE ON cer2_report_rows
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION cerfs_reports_moved();

-- The cabs on the share (complete, not removed), their bytes, the indexer's backlog and
-- its failures, in 16 shards (ino % 16).
CREATE TABLE cab_total_rows (
    shard   smallint PRIMARY KEY,
    cabs    bigint NOT NULL,
    bytes   bigint NOT NULL,
    backlog bigint NOT NULL,
    failed  bigint NOT NULL
);
INSERT INTO cab_total_rows (shard, cabs, bytes, backlog, failed)
SELECT s, 0, 0, 0, 0 FROM generate_series(0, 15) AS s;
UPDATE cab_total_rows t SET cabs = x.cabs, bytes = x.bytes, backlog = x.backlog,
                            failed = x.failed
FROM (SELECT ino % 16 AS shard, count(*) AS cabs, coalesce(sum(size), 0) AS bytes,
             count(*) FILTER (WHERE index_status IS NULL) AS backlog,
             count(*) FILTER (WHERE index_status = 'failed') AS failed
      FROM cab_rows WHERE state = 'complete' AND removal IS NULL GROUP BY 1) x
WHERE t.shard = x.shard;

CREATE FUNCTION cerfs_cab_totals() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was boolean := TG_OP <> 'INSERT' AND OLD.state = 'complete' AND OLD.removal IS NULL;
    now_on boolean := TG_OP <> 'DELETE' AND NEW.state = 'complete' AND NEW.removal IS NULL;
BEGIN
    IF was THEN
        UPDATE cab_total_rows SET cabs = cabs - 1, bytes = bytes - coalesce(OLD.size, 0),
            backlog = backlog - (OLD.index_status IS NULL)::int,
            failed = failed - (OLD.index_status IS NOT DISTINCT FROM 'failed')::int
        WHERE shard = OLD.ino % 16;
    END IF;
    IF now_on THEN
        UPDATE cab_total_rows SET cabs = cabs + 1, bytes = bytes + coalesce(NEW.size, 0),
            backlog = backlog + (NEW.index_status IS NULL)::int,
            failed = failed + (NEW.index_status IS NOT DISTINCT FROM 'failed')::int
        WHERE shard = NEW.ino % 16;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER cab_totals_insert AFTER INSERT ON cab_rows
    FOR EACH ROW WHEN (NEW.state = 'complete' AND NEW.removal IS NULL)
    EXECUTE FUNCTION cerfs_cab_totals();
CREATE TRIGGER cab_totals_update AFTER UPDATE OF state, size, removal, index_status ON cab_rows
    FOR EACH ROW WHEN ((OLD.state = 'complete' AND OLD.removal IS NULL)
                       OR (NEW.state = 'complete' AND NEW.removal IS NULL))
    EXECUTE FUNCTION cerfs_cab_totals();
CREATE TRIGGER cab_totals_delete AFTER DELETE ON cab_rows
    FOR EACH ROW WHEN (OLD.state = 'complete' AND OLD.removal IS NULL)
    EXECUTE FUNCTION cerfs_cab_totals();

-- Walked dumps per signature, bucket and UTC day of their cab's arrival.
CREATE TABLE daily_signature_rows (
    day       date        NOT NULL,
    signature text        NOT NULL,
    bucket_id bigint      NOT NULL,
    crashes   bigint      NOT NULL CHECK (crashes >= 0),
    first_at  timestamptz NOT NULL,
    last_at   timestamptz NOT NULL,
    PRIMARY KEY (day, signature, bucket_id)
);
CREATE INDEX daily_signature_rows_signature
    ON daily_signature_rows (signature, day) INCLUDE (crashes, bucket_id, first_at, last_at);

INSERT INTO daily_signature_rows (day, signature, bucket_id, crashes, first_at, last_at)
SELECT (coalesce(c.created_at, s.walked_at) AT TIME ZONE 'UTC')::date, s.signature,
       c.bucket_id, count(*), min(coalesce(c.created_at, s.walked_at)),
       max(coalesce(c.created_at, s.walked_at))
FROM stack_rows s JOIN cab_rows c ON c.ino = s.cab_id
GROUP BY 1, 2, 3;

-- When each signature was first seen: history (deleting a signature's cabs does not make
-- it new again).
CREATE TABLE signature_first_rows (
    signature text PRIMARY KEY,
    first_at  timestamptz NOT NULL
);
CREATE INDEX signature_first_rows_first ON signature_first_rows (first_at);

INSERT INTO signature_first_rows (signature, first_at)
SELECT signature, min(first_at) FROM daily_signature_rows GROUP BY signature;

CREATE FUNCTION cerfs_stack_added() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    at timestamptz;
    bucket bigint;
BEGIN
    SELECT coalesce(c.created_at, NEW.walked_at), c.bucket_id INTO at, bucket
    FROM cab_rows c WHERE c.ino = NEW.cab_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO daily_signature_rows AS d (day, signature, bucket_id, crashes, first_at, last_at)
    VALUES ((at AT TIME ZONE 'UTC')::date, NEW.signature, bucket, 1, at, at)
    ON CONFLICT (day, signature, bucket_id) DO UPDATE SET crashes = d.crashes + 1,
        first_at = least(d.first_at, excluded.first_at),
        last_at = greatest(d.last_at, excluded.last_at);
    INSERT INTO signature_first_rows AS f (signature, first_at) VALUES (NEW.signature, at)
    ON CONFLICT (signature) DO UPDATE SET first_at = least(f.first_at, excluded.first_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER stack_rows_counted_in AFTER INSERT ON stack_rows
    FOR EACH ROW EXECUTE FUNCTION cerfs_stack_added();

-- A re-walk deletes a cab's stack rows while the cab stays. When the cab itself goes, its
-- stacks are counted out before it (the cascade then finds no cab and does nothing).
CREATE FUNCTION cerfs_stack_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE daily_signature_rows d SET crashes = d.crashes - 1
    FROM cab_rows c
    WHERE c.ino = OLD.cab_id AND d.signature = OLD.signature AND d.crashes > 0
      AND d.bucket_id = c.bucket_id
      AND d.day = (coalesce(c.created_at, OLD.walked_at) AT TIME ZONE 'UTC')::date;
    RETURN NULL;
END
$$;
CREATE TRIGGER stack_rows_counted_out AFTER DELETE ON stack_rows
    FOR EACH ROW EXECUTE FUNCTION cerfs_stack_removed();

CREATE FUNCTION cerfs_cab_stacks_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE daily_signature_rows d SET crashes = greatest(d.crashes - x.n, 0)
    FROM (SELECT s.signature, (coalesce(OLD.created_at, s.walked_at) AT TIME ZONE 'UTC')::date
                 AS day, count(*) AS n
          FROM stack_rows s WHERE s.cab_id = OLD.ino GROUP BY 1, 2) x
    WHERE d.signature = x.signature AND d.day = x.day AND d.bucket_id = OLD.bucket_id;
    RETURN OLD;
END
$$;
CREATE TRIGGER cab_rows_stacks_counted_out BEFORE DELETE ON cab_rows
    FOR EACH ROW EXECUTE FUNCTION cerfs_cab_stacks_removed();

-- The bucket list's orders, as the console asks for them (newest first, ties newest id
-- first, a bucket never reported last), and new buckets.
CREATE INDEX bucket_rows_hits ON bucket_rows (total_hits DESC, bucket_id DESC);
CREATE INDEX bucket_rows_last_seen ON bucket_rows (last_seen DESC NULLS LAST, bucket_id DESC);
CREATE INDEX bucket_rows_first_seen ON bucket_rows (first_seen DESC NULLS LAST, bucket_id DESC);
