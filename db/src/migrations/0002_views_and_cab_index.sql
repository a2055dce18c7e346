-- cerfs schema, version 2: stable views for people who query the store with SQL, and the
-- tables of the cab indexer (what each cab holds). Applied by SqliteStore::open (and the
-- admin opens) like version 1, inside one transaction.
--
-- The tables that fs-core works on keep their content but take *_rows names, so that the
-- documented names (buckets, cabs, settings, ...) belong to views whose columns stay stable
-- however the storage changes. docs/sql.md describes every view. Views use only SQLite's
-- built-in functions: the plain sqlite3 shell can query the file too.
--
-- SQLite >= 3.26 rewrites the REFERENCES clauses of other tables (nodes, logs, ...) and the
-- indexes when a table is renamed.

ALTER TABLE buckets RENAME TO bucket_rows;
ALTER TABLE cabs RENAME TO cab_rows;
ALTER TABLE settings RENAME TO setting_rows;

-- ---------------------------------------------------------------------------------------
-- What the indexer found in each complete cab.

-- index_status: NULL = not indexed yet (the indexer looks for these), 'indexed' = every
-- member read, 'partial' = the cab's directory was read but some member could not be read
-- or parsed (see cab_member_rows.error), 'failed' = nothing could be read (not a cab,
-- truncated header, or the indexer was stopped by its time or memory bound); the reason is
-- in index_error. The cab itself is stored intact whatever happens here.
ALTER TABLE cab_rows ADD COLUMN index_status TEXT
    CHECK (index_status IS NULL OR index_status IN ('indexed', 'partial', 'failed'));
ALTER TABLE cab_rows ADD COLUMN index_error TEXT;
ALTER TABLE cab_rows ADD COLUMN indexed_at TEXT;

-- The indexer's work queue: complete cabs not indexed yet (tiny, a partial index).
CREATE INDEX cab_rows_unindexed ON cab_rows (ino) WHERE state = 'complete' AND index_status IS NULL;
-- Stored (complete) cabs per bucket: buckets.cabs_stored.
CREATE INDEX cab_rows_complete ON cab_rows (bucket_id) WHERE state = 'complete';

-- One row per member (file) of a cab, in directory order.
--   compression  'none', 'mszip', 'lzx' or 'quantum' (the cab crate cannot read Quantum)
--   modified     the member's date and time as the cab stores them (no time zone)
--   kind         'minidump' (.dmp/.mdmp), 'text' (a known or small text file) or 'other'
--   error        why the member could not be read or parsed; NULL when it was
CREATE TABLE cab_member_rows (
    cab_id      INTEGER NOT NULL REFERENCES cab_rows (ino) ON DELETE CASCADE,
    position    INTEGER NOT NULL CHECK (position >= 0),
    name        TEXT    NOT NULL,
    size        INTEGER NOT NULL CHECK (size >= 0),
    compression TEXT    NOT NULL,
    folder      INTEGER NOT NULL,
    modified    TEXT,
    kind        TEXT    NOT NULL CHECK (kind IN ('minidump', 'text', 'other')),
    error       TEXT,
    PRIMARY KEY (cab_id, position)
);
CREATE INDEX cab_member_rows_name ON cab_member_rows (name);

-- One row per minidump member. Hex values are text: exception_code '0xc0000005',
-- crash_address '0x0000000000401000'; crash_offset is the offset of the crash address inside
-- crash_module, written like an R1 bucket Offset (hex, no 0x, 8 digits on 32-bit CPUs and
-- 16 on 64-bit) so that it compares with buckets.offset. dump_time is the dump's header
-- time (UTC). error: why the dump (or a part of it) could not be parsed.
CREATE TABLE minidump_rows (
    cab_id               INTEGER NOT NULL REFERENCES cab_rows (ino) ON DELETE CASCADE,
    member               TEXT    NOT NULL,
    dump_time            TEXT,
    exception_code       TEXT,
    crash_reason         TEXT,
    crash_address        TEXT,
    crash_thread         INTEGER,
    crash_module         TEXT,
    crash_module_version TEXT,
    crash_offset         TEXT,
    os                   TEXT,
    os_version           TEXT,
    cpu                  TEXT,
    process_name         TEXT,
    thread_count         INTEGER,
    module_count         INTEGER,
    error                TEXT,
    PRIMARY KEY (cab_id, member)
);
CREATE INDEX minidump_rows_module ON minidump_rows (crash_module, crash_offset);
CREATE INDEX minidump_rows_code ON minidump_rows (exception_code);

-- The text of text members (decoded from UTF-16 or ANSI; at most 1 MiB each, truncated
-- marks a longer one), searchable through cab_text_search (FTS5).
CREATE TABLE cab_text_rows (
    text_id   INTEGER PRIMARY KEY,
    cab_id    INTEGER NOT NULL REFERENCES cab_rows (ino) ON DELETE CASCADE,
    member    TEXT    NOT NULL,
    text      TEXT    NOT NULL,
    truncated INTEGER NOT NULL CHECK (truncated IN (0, 1))
);
CREATE INDEX cab_text_rows_cab ON cab_text_rows (cab_id);

-- Full-text index over cab_text_rows.text (external content: the text is stored once).
-- Query: SELECT ... FROM cab_text_search WHERE cab_text_search MATCH 'word' (rowid = text_id).
CREATE VIRTUAL TABLE cab_text_search USING fts5 (
    text, content = 'cab_text_rows', content_rowid = 'text_id'
);
CREATE TRIGGER cab_text_rows_ai AFTER INSERT ON cab_text_rows BEGIN
    INSERT INTO cab_text_search (rowid, text) VALUES (new.text_id, new.text);
END;
CREATE TRIGGER cab_text_rows_ad AFTER DELETE ON cab_text_rows BEGIN
    INSERT INTO cab_text_search (cab_text_search, rowid, text) VALUES ('delete', old.text_id, old.text);
END;
CREATE TRIGGER cab_text_rows_au AFTER UPDATE ON cab_text_rows BEGIN
    INSERT INTO cab_text_search (cab_text_search, rowid, text) VALUES ('delete', old.text_id, old.text);
    INSERT INTO cab_text_search (rowid, text) VALUES (new.text_id, new.text);
END;

-- Useful fields found in known text members: 'Key: Value' / 'Key=Value' lines of
-- version.txt, manifest.txt, *.wer; element paths of sysdata.xml / appcompat.txt and other
-- XML ('SYSTEMINFO/SYSTEM/OSVER', 'DATABASE/EXE@NAME').
CREATE TABLE cab_fact_rows (
    cab_id INTEGER NOT NULL REFERENCES cab_rows (ino) ON DELETE CASCADE,
    member TEXT    NOT NULL,
    key    TEXT    NOT NULL,
    value  TEXT    NOT NULL
);
CREATE INDEX cab_fact_rows_cab ON cab_fact_rows (cab_id);
CREATE INDEX cab_fact_rows_key ON cab_fact_rows (key, value);

-- ---------------------------------------------------------------------------------------
-- Indexes for the documented queries (docs/sql.md) at millions of rows.

CREATE INDEX bucket_rows_first_seen ON bucket_rows (first_seen);
CREATE INDEX bucket_rows_last_seen ON bucket_rows (last_seen);
CREATE INDEX bucket_rows_hits ON bucket_rows (total_hits);
CREATE INDEX log_lines_received ON log_lines (received_at);
CREATE INDEX setting_rows_key ON setting_rows (key, value);

-- ---------------------------------------------------------------------------------------
-- The views. Times are ISO-8601 text: *_at, *_seen and dump_time are UTC ('...Z');
-- client_time is the reporting machine's local clock (the logs carry no time zone).

-- One row per error signature. cabs_stored: complete cabs in storage; cab_limit: the
-- 'Crashes per bucket' a client of this bucket obeys (status.txt, else policy.txt, else 5).
CREATE VIEW buckets AS
SELECT
    b.bucket_id,
    b.subpath,
    b.kind,
    b.app,
    b.app_ver,
    b.module,
    b.mod_ver,
    b.fault_offset AS offset,
    b.total_hits,
    b.cabs_gathered,
    (SELECT count(*) FROM cab_rows c
      WHERE c.bucket_id = b.bucket_id AND c.state = 'complete') AS cabs_stored,
    coalesce(
        (SELECT CAST(s.value AS INTEGER) FROM setting_rows s
          WHERE s.bucket_id = b.bucket_id AND s.key = 'Crashes per bucket'
          ORDER BY s.position LIMIT 1),
        (SELECT CAST(s.value AS INTEGER) FROM setting_rows s
          WHERE s.bucket_id IS NULL AND s.key = 'Crashes per bucket'
          ORDER BY s.position LIMIT 1),
        5) AS cab_limit,
    b.first_seen,
    b.last_seen,
    b.created_at
FROM bucket_rows b;

-- One row per cab report, complete or still being uploaded (state 'writing': size, sha256
-- and created_at are NULL until its writer closes it). index_status as in cab_rows, with
-- 'pending' for a complete cab the indexer has not reached yet; NULL while writing.
CREATE VIEW cabs AS
SELECT
    c.ino AS cab_id,
    c.bucket_id,
    b.subpath,
    c.name,
    c.size,
    c.sha256,
    c.state,
    c.started_at,
    c.created_at,
    CASE WHEN c.state = 'complete' THEN coalesce(c.index_status, 'pending') END AS index_status,
    c.index_error,
    c.indexed_at,
    (SELECT count(*) FROM cab_member_rows m WHERE m.cab_id = c.ino) AS file_count
FROM cab_rows c
JOIN bucket_rows b ON b.bucket_id = c.bucket_id;

-- One row per member of an indexed cab.
CREATE VIEW cab_files AS
SELECT
    m.cab_id,
    b.subpath,
    c.name AS cab,
    m.position,
    m.name,
    m.size,
    m.compression,
    m.modified,
    m.kind,
    m.error
FROM cab_member_rows m
JOIN cab_rows c ON c.ino = m.cab_id
JOIN bucket_rows b ON b.bucket_id = c.bucket_id;

-- One row per minidump found in a cab.
CREATE VIEW minidumps AS
SELECT
    d.cab_id,
    b.subpath,
    c.name AS cab,
    d.member,
    d.dump_time,
    d.exception_code,
    d.crash_reason,
    d.crash_address,
    d.crash_thread,
    d.crash_module,
    d.crash_module_version,
    d.crash_offset,
    d.os,
    d.os_version,
    d.cpu,
    d.process_name,
    d.thread_count,
    d.module_count,
    d.error
FROM minidump_rows d
JOIN cab_rows c ON c.ino = d.cab_id
JOIN bucket_rows b ON b.bucket_id = c.bucket_id;

-- The text of text members (search it with cab_text_search, see docs/sql.md).
CREATE VIEW cab_texts AS
SELECT
    t.text_id,
    t.cab_id,
    b.subpath,
    c.name AS cab,
    t.member,
    t.text,
    t.truncated
FROM cab_text_rows t
JOIN cab_rows c ON c.ino = t.cab_id
JOIN bucket_rows b ON b.bucket_id = c.bucket_id;

-- Fields found in known text members.
CREATE VIEW cab_facts AS
SELECT
    f.cab_id,
    b.subpath,
    c.name AS cab,
    f.member,
    f.key,
    f.value
FROM cab_fact_rows f
JOIN cab_rows c ON c.ino = f.cab_id
JOIN bucket_rows b ON b.bucket_id = c.bucket_id;

-- One row per hits.log line (a bucket's tracking log). item is the report file name or
-- 'No CAB'. A line that did not follow the MS-CER grammar is kept verbatim: flagged = 1 and
-- only line is set.
CREATE VIEW hits AS
SELECT
    l.seq AS hit_id,
    l.log_id AS bucket_id,
    b.subpath,
    l.machine,
    l.user,
    l.item,
    l.client_time,
    l.received_at,
    l.flagged,
    rtrim(CAST(l.bytes AS TEXT), char(13, 10)) AS line
FROM log_lines l
JOIN bucket_rows b ON b.bucket_id = l.log_id
WHERE l.log_id > 0;

-- One row per crash.log line. item is what the client wrote: the Bucket= id of the
-- bucket's status.txt, or the error subpath; bucket_id and subpath resolve it (NULL when
-- no bucket matches).
CREATE VIEW crashes AS
SELECT
    l.seq AS crash_id,
    r.bucket_id,
    r.subpath,
    l.machine,
    l.user,
    l.item,
    l.client_time,
    l.received_at,
    l.flagged,
    rtrim(CAST(l.bytes AS TEXT), char(13, 10)) AS line
FROM log_lines l
LEFT JOIN bucket_rows r ON r.bucket_id = coalesce(
    (SELECT x.bucket_id FROM bucket_rows x WHERE x.subpath = l.item),
    (SELECT s.bucket_id FROM setting_rows s
      WHERE s.key = 'Bucket' AND s.value = l.item AND s.bucket_id IS NOT NULL
      ORDER BY s.bucket_id LIMIT 1))
WHERE l.log_id = 0;

-- policy.txt (scope 'policy', subpath NULL) and each bucket's status.txt (scope 'status'),
-- canonical names and values, in file order.
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
