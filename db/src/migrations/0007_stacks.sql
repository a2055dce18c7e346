-- Crash analysis: each minidump's walked stacks, its signature, the modules of its crashing
-- stack that had no symbols, and what the symbol sources answered.

-- One row per walked minidump member. signature: see `cerfs signature-rules`; error: why
-- the dump could not be walked (it still gets a signature, e.g. 'EMPTY: ...').
CREATE TABLE stack_rows (
    cab_id          INTEGER NOT NULL REFERENCES cab_rows (ino) ON DELETE CASCADE,
    member          TEXT    NOT NULL,
    crash_reason    TEXT,
    crash_address   INTEGER,
    crashing_thread INTEGER,
    signature       TEXT    NOT NULL,
    error           TEXT,
    walked_at       TEXT    NOT NULL,
    PRIMARY KEY (cab_id, member)
);
CREATE INDEX stack_rows_signature ON stack_rows (signature);

CREATE TABLE frame_rows (
    cab_id          INTEGER NOT NULL,
    member          TEXT    NOT NULL,
    thread          INTEGER NOT NULL,
    crashed         INTEGER NOT NULL CHECK (crashed IN (0, 1)),
    frame           INTEGER NOT NULL,
    module          TEXT,
    module_offset   INTEGER,
    function        TEXT,
    function_offset INTEGER,
    file            TEXT,
    line            INTEGER,
    trust           TEXT    NOT NULL,
    PRIMARY KEY (cab_id, member, thread, frame),
    FOREIGN KEY (cab_id, member) REFERENCES stack_rows (cab_id, member) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE missing_symbol_rows (
    cab_id     INTEGER NOT NULL,
    member     TEXT    NOT NULL,
    module     TEXT    NOT NULL,
    debug_file TEXT    NOT NULL,
    debug_id   TEXT    NOT NULL,
    PRIMARY KEY (cab_id, member, module, debug_id),
    FOREIGN KEY (cab_id, member) REFERENCES stack_rows (cab_id, member) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX missing_symbol_rows_module ON missing_symbol_rows (debug_file, debug_id);

-- The latest problem each symbol URL gave (timeouts, sizes, bad answers), and how often.
CREATE TABLE symbol_fetch_rows (
    url     TEXT PRIMARY KEY,
    outcome TEXT NOT NULL,
    detail  TEXT NOT NULL,
    at      TEXT NOT NULL,
    times   INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;

-- Offsets and addresses in hex, as minidump-stackwalk and the signatures write them.
CREATE VIEW frames AS
SELECT cab_id, member, thread, crashed, frame, module,
       CASE WHEN module_offset IS NOT NULL THEN printf('0x%x', module_offset) END
           AS module_offset,
       function,
       CASE WHEN function_offset IS NOT NULL THEN printf('0x%x', function_offset) END
           AS function_offset,
       file, line, trust
FROM frame_rows;

-- One row per walked minidump, with its cab and bucket: the link from a cab or a bucket to
-- its signatures.
CREATE VIEW stacks AS
SELECT s.cab_id, c.bucket_id, b.subpath, c.name AS cab, s.member, s.crash_reason,
       CASE WHEN s.crash_address IS NOT NULL THEN printf('0x%x', s.crash_address) END
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

-- Modules seen in crashing stacks without symbols, most crashes first: what to provide.
CREATE VIEW missing_symbols AS
SELECT m.module, m.debug_file, m.debug_id, count(*) AS crashes,
       max(c.created_at) AS last_seen
FROM missing_symbol_rows m
JOIN cab_rows c ON c.ino = m.cab_id
GROUP BY m.module, m.debug_file, m.debug_id;

CREATE VIEW symbol_fetches AS
SELECT url, outcome, detail, at, times FROM symbol_fetch_rows;
