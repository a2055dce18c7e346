-- cerfs PostgreSQL schema, version 6: the cab index (what each complete cab holds, the
-- walked stacks of its minidumps and their signatures) and its views, with the SQLite
-- store's names and columns (db/src/migrations/0002, 0007). Written by the indexer of
-- whichever head holds the indexer's advisory lock (db/src/pg/index.rs).
--
-- Full-text search uses PostgreSQL's own: cab_text_rows.search is a tsvector of the text
-- ('simple' configuration: crash texts are not prose in one language), GIN-indexed, and
-- the view cab_text_search (text_id, search) takes SQLite's FTS5 table's place.

CREATE TABLE cab_member_rows (
    cab_id      bigint  NOT NULL REFERENCES cab_rows (ino) ON DELETE CASCADE,
    position    bigint  NOT NULL CHECK (position >= 0),
    name        text    NOT NULL,
    size        bigint  NOT NULL CHECK (size >= 0),
    compression text    NOT NULL,
    folder      bigint  NOT NULL,
    modified    text,
    kind        text    NOT NULL CHECK (kind IN ('minidump', 'text', 'other')),
    error       text,
    PRIMARY KEY (cab_id, position)
);
CREATE INDEX cab_member_rows_name ON cab_member_rows (name);

CREATE TABLE minidump_rows (
    cab_id               bigint NOT NULL REFERENCES cab_rows (ino) ON DELETE CASCADE,
    member               text   NOT NULL,
    dump_time            text,
    exception_code       text,
    crash_reason         text,
    crash_address        text,
    crash_thread         bigint,
    crash_module         text,
    crash_module_version text,
    crash_offset         text,
    os                   text,
    os_version           text,
    cpu                  text,
    process_name         text,
    thread_count         bigint,
    module_count         bigint,
    error                text,
    PRIMARY KEY (cab_id, member)
);
CREATE INDEX minidump_rows_module ON minidump_rows (crash_module, crash_offset);
CREATE INDEX minidump_rows_code ON minidump_rows (exception_code);

-- A tsvector holds at most 1 MiB of distinct words; a text is kept up to 1 MiB, so the
-- few texts near that size are searched on their first 200,000 characters instead of
-- failing their cab's index.
CREATE TABLE cab_text_rows (
    text_id   bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cab_id    bigint  NOT NULL REFERENCES cab_rows (ino) ON DELETE CASCADE,
    member    text    NOT NULL,
    text      text    NOT NULL,
    truncated integer NOT NULL CHECK (truncated IN (0, 1)),
    search    tsvector GENERATED ALWAYS AS (
        to_tsvector('simple'::regconfig,
                    CASE WHEN octet_length(text) < 900000 THEN text ELSE left(text, 200000) END)
    ) STORED
);
CREATE INDEX cab_text_rows_cab ON cab_text_rows (cab_id);
CREATE INDEX cab_text_rows_search ON cab_text_rows USING gin (search);

CREATE TABLE cab_fact_rows (
    cab_id bigint NOT NULL REFERENCES cab_rows (ino) ON DELETE CASCADE,
    member text   NOT NULL,
    key    text   NOT NULL,
    value  text   NOT NULL
);
CREATE INDEX cab_fact_rows_cab ON cab_fact_rows (cab_id);
CREATE INDEX cab_fact_rows_key ON cab_fact_rows (key, value);

-- stack_id: the order stacks were written in (new-signature alerts read past the last
-- one they saw, as SQLite's rowid).
CREATE TABLE stack_rows (
    stack_id        bigint  GENERATED ALWAYS AS IDENTITY UNIQUE,
    cab_id          bigint  NOT NULL REFERENCES cab_rows (ino) ON DELETE CASCADE,
    member          text    NOT NULL,
    crash_reason    text,
    crash_address   bigint,
    crashing_thread bigint,
    signature       text    NOT NULL,
    error           text,
    walked_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cab_id, member)
);
CREATE INDEX stack_rows_signature ON stack_rows (signature);

CREATE TABLE frame_rows (
    cab_id          bigint  NOT NULL,
    member          text    NOT NULL,
    thread          bigint  NOT NULL,
    crashed         integer NOT NULL CHECK (crashed IN (0, 1)),
    frame           bigint  NOT NULL,
    module          text,
    module_offset   bigint,
    function        text,
    function_offset bigint,
    file            text,
    line            bigint,
    trust           text    NOT NULL,
    PRIMARY KEY (cab_id, member, thread, frame),
    FOREIGN KEY (cab_id, member) REFERENCES stack_rows (cab_id, member) ON DELETE CASCADE
);

CREATE TABLE missing_symbol_rows (
    cab_id     bigint NOT NULL,
    member     text   NOT NULL,
    module     text   NOT NULL,
    debug_file text   NOT NULL,
    debug_id   text   NOT NULL,
    PRIMARY KEY (cab_id, member, module, debug_id),
    FOREIGN KEY (cab_id, member) REFERENCES stack_rows (cab_id, member) ON DELETE CASCADE
);
CREATE INDEX missing_symbol_rows_module ON missing_symbol_rows (debug_file, debug_id);

CREATE TABLE symbol_fetch_rows (
    url     text   PRIMARY KEY,
    outcome text   NOT NULL,
    detail  text   NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    times   bigint NOT NULL DEFAULT 1
);

-- ---------------------------------------------------------------------------------------
-- The views, as on SQLite.

CREATE OR REPLACE VIEW cabs AS
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
    (SELECT count(*) FROM cab_member_rows m WHERE m.cab_id = c.ino) AS file_count,
    c.removed_at,
    c.verified_at,
    c.corrupt
FROM cab_rows c
JOIN bucket_rows b ON b.bucket_id = c.bucket_id;

CREATE VIEW cab_files AS
SELECT m.cab_id, b.subpath, c.name AS cab, m.position, m.name, m.size, m.compression,
       m.modified, m.kind, m.error
FROM cab_member_rows m
JOIN cab_rows c ON c.ino = m.cab_id
JOIN bucket_rows b ON b.bucket_id = c.bucket_id;

CREATE VIEW minidumps AS
SELECT d.cab_id, b.subpath, c.name AS cab, d.member, d.dump_time, d.exception_code,
       d.crash_reason, d.crash_address, d.crash_thread, d.crash_module,
       d.crash_module_version, d.crash_offset, d.os, d.os_version, d.cpu, d.process_name,
       d.thread_count, d.module_count, d.error
FROM minidump_rows d
JOIN cab_rows c ON c.ino = d.cab_id
JOIN bucket_rows b ON b.bucket_id = c.bucket_id;

CREATE VIEW cab_texts AS
SELECT t.text_id, t.cab_id, b.subpath, c.name AS cab, t.member, t.text, t.truncated
FROM cab_text_rows t
JOIN cab_rows c ON c.ino = t.cab_id
JOIN bucket_rows b ON b.bucket_id = c.bucket_id;

-- Search: ... FROM cab_text_search s JOIN cab_texts t ON t.text_id = s.text_id
--         WHERE s.search @@ websearch_to_tsquery('simple', 'word')
CREATE VIEW cab_text_search AS
SELECT text_id, search FROM cab_text_rows;

CREATE VIEW cab_facts AS
SELECT f.cab_id, b.subpath, c.name AS cab, f.member, f.key, f.value
FROM cab_fact_rows f
JOIN cab_rows c ON c.ino = f.cab_id
JOIN bucket_rows b ON b.bucket_id = c.bucket_id;

CREATE VIEW frames AS
SELECT cab_id, member, thread, crashed, frame, module,
       CASE WHEN module_offset IS NOT NULL THEN '0x' || to_hex(module_offset) END
           AS module_offset,
       function,
       CASE WHEN function_offset IS NOT NULL THEN '0x' || to_hex(function_offset) END
           AS function_offset,
       file, line, trust
FROM frame_rows;

CREATE VIEW stacks AS
SELECT s.cab_id, c.bucket_id, b.subpath, c.name AS cab, s.member, s.crash_reason,
       CASE WHEN s.crash_address IS NOT NULL THEN '0x' || to_hex(s.crash_address) END
           AS crash_address,
       s.crashing_thread, s.signature, s.error, s.walked_at,
       c.created_at AS received_at
FROM stack_rows s
JOIN cab_rows c ON c.ino = s.cab_id
JOIN bucket_rows b ON b.bucket_id = c.bucket_id;

CREATE VIEW signatures AS
SELECT s.signature,
       count(*) AS crashes,
       count(DISTINCT c.bucket_id) AS buckets,
       min(c.created_at) AS first_seen,
       max(c.created_at) AS last_seen
FROM stack_rows s
JOIN cab_rows c ON c.ino = s.cab_id
GROUP BY s.signature;

CREATE VIEW bucket_signatures AS
SELECT c.bucket_id, b.subpath, s.signature, count(*) AS crashes
FROM stack_rows s
JOIN cab_rows c ON c.ino = s.cab_id
JOIN bucket_rows b ON b.bucket_id = c.bucket_id
GROUP BY c.bucket_id, b.subpath, s.signature;

CREATE VIEW missing_symbols AS
SELECT m.module, m.debug_file, m.debug_id, count(*) AS crashes,
       max(c.created_at) AS last_seen
FROM missing_symbol_rows m
JOIN cab_rows c ON c.ino = m.cab_id
GROUP BY m.module, m.debug_file, m.debug_id;

CREATE VIEW symbol_fetches AS
SELECT url, outcome, detail, at, times FROM symbol_fetch_rows;
