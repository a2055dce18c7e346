-- cerfs PostgreSQL schema, version 4: the views for SQL users (docs/sql.md) over what a
-- PostgreSQL store holds, with the SQLite store's names and columns. Times are timestamptz
-- (SQLite stores ISO-8601 text); daily_hits.day is a date. The cab index (cab_files,
-- minidumps, stacks, ...) is not kept on PostgreSQL yet: its views are absent, and the
-- index columns of cabs stay NULL, with file_count 0.

CREATE VIEW buckets AS
SELECT
    b.bucket_id,
    b.subpath,
    b.kind,
    b.app,
    b.app_ver,
    b.module,
    b.mod_ver,
    b.fault_offset AS "offset",
    b.total_hits,
    b.cabs_gathered,
    (SELECT count(*) FROM cab_rows c
      WHERE c.bucket_id = b.bucket_id AND c.state = 'complete' AND c.removal IS NULL) AS cabs_stored,
    coalesce(
        (SELECT s.value::bigint FROM setting_rows s
          WHERE s.bucket_id = b.bucket_id AND s.key = 'Crashes per bucket'
          ORDER BY s.position LIMIT 1),
        (SELECT s.value::bigint FROM setting_rows s
          WHERE s.bucket_id IS NULL AND s.key = 'Crashes per bucket'
          ORDER BY s.position LIMIT 1),
        5) AS cab_limit,
    b.first_seen,
    b.last_seen,
    b.created_at
FROM bucket_rows b;

CREATE VIEW cabs AS
SELECT
    c.ino AS cab_id,
    c.bucket_id,
    b.subpath,
    c.name,
    c.size,
    c.sha256,
    coalesce(c.removal, c.state) AS state,
    c.started_at,
    c.created_at,
    CASE WHEN c.state = 'complete' THEN coalesce(c.index_status, 'pending') END AS index_status,
    c.index_error,
    c.indexed_at,
    0::bigint AS file_count,
    c.removed_at,
    c.verified_at,
    c.corrupt
FROM cab_rows c
JOIN bucket_rows b ON b.bucket_id = c.bucket_id;

CREATE VIEW hits AS
SELECT
    l.seq AS hit_id,
    l.log_id AS bucket_id,
    b.subpath,
    l.machine,
    l."user",
    l.item,
    l.client_time,
    l.received_at,
    l.flagged::integer AS flagged,
    rtrim(cerfs_text(l.bytes), E'\r\n') AS line
FROM log_lines l
JOIN bucket_rows b ON b.bucket_id = l.log_id
WHERE l.log_id > 0;

-- Computed from the hits (SQLite keeps a table for it, filled by triggers): the same rows,
-- at the cost of reading the hits of the days asked for.
CREATE VIEW daily_hits AS
SELECT l.log_id AS bucket_id, (l.received_at AT TIME ZONE 'UTC')::date AS day, count(*) AS hits
FROM log_lines l
WHERE l.log_id > 0
GROUP BY 1, 2;

CREATE INDEX log_lines_received ON log_lines (log_id, received_at);

CREATE VIEW settings AS
SELECT
    CASE WHEN s.bucket_id IS NULL THEN 'policy' ELSE 'status' END AS scope,
    s.bucket_id,
    b.subpath,
    s.position,
    s.key,
    s.value
FROM setting_rows s
LEFT JOIN bucket_rows b ON b.bucket_id = s.bucket_id;

CREATE VIEW deletions AS
SELECT deletion_id, deleted_at, deleted_by, kind, subpath, name, reason, detail
FROM deletion_rows;

CREATE VIEW cer2_reports AS
SELECT
    r.report_id,
    r.bucket_id,
    b.subpath,
    r.received_at,
    r.machine,
    r.os_version,
    r.lcid,
    r."user",
    r.app_name,
    r.app_path,
    r.company,
    r.report_type,
    r.event_type,
    r.friendly_event_name,
    r.event_time,
    r.event_filetime,
    r.dump_state,
    r.dump_path,
    r.cab_name,
    r.cab_ino AS cab_id,
    c.size AS cab_size,
    c.sha256 AS cab_sha256,
    r.uploaded_at
FROM cer2_report_rows r
JOIN bucket_rows b ON b.bucket_id = r.bucket_id
LEFT JOIN cab_rows c ON c.ino = r.cab_ino;

CREATE VIEW cer2_report_params AS
SELECT p.report_id, r.bucket_id, p.position, p.kind, p.param_id, p.name, p.value
FROM cer2_report_param_rows p
JOIN cer2_report_rows r ON r.report_id = p.report_id;

CREATE VIEW cer2_report_files AS
SELECT f.report_id, r.bucket_id, f.position, f.name, f.file_type
FROM cer2_report_file_rows f
JOIN cer2_report_rows r ON r.report_id = f.report_id;

-- flagged as 0 / 1, as in every other view (version 3 showed it as a boolean).
DROP VIEW crashes;
CREATE VIEW crashes AS
SELECT
    l.seq AS crash_id,
    r.bucket_id,
    r.subpath,
    l.machine,
    l."user",
    l.item,
    l.client_time,
    l.received_at,
    l.flagged::integer AS flagged,
    rtrim(cerfs_text(l.bytes), E'\r\n') AS line
FROM log_lines l
LEFT JOIN bucket_rows r ON r.bucket_id = coalesce(
    (SELECT x.bucket_id FROM bucket_rows x WHERE x.subpath = l.item),
    (SELECT s.bucket_id FROM setting_rows s
      WHERE s.key = 'Bucket' AND s.value = l.item AND s.bucket_id IS NOT NULL
      ORDER BY s.bucket_id LIMIT 1))
WHERE l.log_id = 0;
