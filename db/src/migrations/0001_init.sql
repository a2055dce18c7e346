-- cerfs schema, version 1. Applied once, inside a transaction, by SqliteStore::open
-- (db/src/sqlite/schema.rs), which then sets PRAGMA user_version = 1.
--
-- Time conventions (also for admins querying with SQL):
--   * nodes.*_ns           INTEGER, unix time in nanoseconds (UTC), as the file system reports it.
--   * every *_at / *_seen  TEXT, ISO-8601 UTC with milliseconds ('2024-03-01T12:34:56.789Z'),
--                          written by SQLite's strftime: sorts and compares as text.
--
-- Everything sized in bytes is an INTEGER >= 0.

-- One error signature ("bucket"), keyed by its subpath as a Windows client writes it
-- (backslashes): 'TestApplication\1.0.0.0\TestModule\1.0.0.0\00000000', 'blue', 'shutdown'.
CREATE TABLE buckets (
    bucket_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    subpath       TEXT    NOT NULL UNIQUE,
    kind          TEXT    NOT NULL,                 -- 'app', 'blue', 'shutdown' or 'generic'
    app           TEXT,                             -- the five R1 components; NULL unless kind = 'app'
    app_ver       TEXT,
    module        TEXT,
    mod_ver       TEXT,
    fault_offset  TEXT,                             -- hex, no 0x
    cabs_gathered INTEGER NOT NULL DEFAULT 0 CHECK (cabs_gathered >= 0),  -- count.txt 'Cabs Gathered='
    total_hits    INTEGER NOT NULL DEFAULT 0 CHECK (total_hits >= 0),     -- count.txt 'Total Hits='
    first_seen    TEXT,                             -- first add_counts; NULL before
    last_seen     TEXT,                             -- latest add_counts; NULL before
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK ((kind = 'app') = (app IS NOT NULL AND app_ver IS NOT NULL AND module IS NOT NULL
                             AND mod_ver IS NOT NULL AND fault_offset IS NOT NULL)),
    CHECK (kind = 'app' OR (app IS NULL AND app_ver IS NULL AND module IS NULL
                            AND mod_ver IS NULL AND fault_offset IS NULL))
);
CREATE INDEX buckets_app ON buckets (app, app_ver, module, mod_ver) WHERE kind = 'app';

-- The namespace. AUTOINCREMENT: an inode number is never handed out twice, even after the
-- node with the highest number is removed (Samba compares dev/ino).
-- The root is its own parent (ino 1, name ''). A directory with children cannot be removed
-- (the parent reference has no ON DELETE action, so SQLite refuses it as well).
CREATE TABLE nodes (
    ino        INTEGER PRIMARY KEY AUTOINCREMENT,
    parent     INTEGER NOT NULL REFERENCES nodes (ino),
    name       TEXT    NOT NULL,
    role       TEXT    NOT NULL CHECK (role IN ('dir', 'file', 'cab', 'count', 'status',
                                                'policy', 'crashlog', 'hitslog')),
    size       INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),  -- stored bytes ('file' and 'cab')
    mode       INTEGER NOT NULL,                              -- permission bits, e.g. 420 = 0o644
    uid        INTEGER NOT NULL,
    gid        INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    ctime_ns   INTEGER NOT NULL,
    crtime_ns  INTEGER NOT NULL,
    bucket_id  INTEGER REFERENCES buckets (bucket_id),
    UNIQUE (parent, name),
    CHECK (role NOT IN ('cab', 'count', 'status', 'hitslog') OR bucket_id IS NOT NULL)
);
CREATE INDEX nodes_bucket ON nodes (bucket_id) WHERE bucket_id IS NOT NULL;

-- The fixed directories: the root and cabs/, status/, counts/ (0o755 = 493).
INSERT INTO nodes (ino, parent, name, role, mode, uid, gid, mtime_ns, ctime_ns, crtime_ns)
SELECT fixed.column1, 1, fixed.column2, 'dir', 493, 0, 0, now.ns, now.ns, now.ns
FROM (VALUES (1, ''), (2, 'cabs'), (3, 'status'), (4, 'counts')) AS fixed,
     (SELECT unixepoch() * 1000000000 AS ns) AS now
ORDER BY fixed.column1;

-- One row per cab report, created with its node (state 'writing') and completed by commit_cab.
-- Removing the node removes the row. Rows still 'writing' when cerfs starts belong to an
-- upload that died with the previous process: open() purges them.
CREATE TABLE cabs (
    ino         INTEGER PRIMARY KEY REFERENCES nodes (ino) ON DELETE CASCADE,
    bucket_id   INTEGER NOT NULL REFERENCES buckets (bucket_id),
    name        TEXT    NOT NULL,                   -- report file name (kept equal to nodes.name)
    size        INTEGER CHECK (size >= 0),          -- final size; NULL while writing
    sha256      TEXT    CHECK (sha256 IS NULL OR length(sha256) = 64),  -- lowercase hex; NULL while writing
    state       TEXT    NOT NULL DEFAULT 'writing' CHECK (state IN ('writing', 'complete')),
    started_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    created_at  TEXT,                               -- when it was completed; NULL while writing
    CHECK ((state = 'complete') = (size IS NOT NULL AND sha256 IS NOT NULL AND created_at IS NOT NULL))
);
CREATE INDEX cabs_bucket ON cabs (bucket_id, created_at);
CREATE INDEX cabs_writing ON cabs (ino) WHERE state = 'writing';

-- Content of 'file' and 'cab' nodes in fixed chunks of 65536 bytes: chunk idx holds the bytes
-- [idx * 65536, idx * 65536 + length(data)). A missing chunk, or the bytes past the end of a
-- short one, read as zeros (inside nodes.size). No byte is ever stored at or past nodes.size.
CREATE TABLE chunks (
    ino   INTEGER NOT NULL REFERENCES nodes (ino) ON DELETE CASCADE,
    idx   INTEGER NOT NULL CHECK (idx >= 0),
    data  BLOB    NOT NULL CHECK (length(data) <= 65536),
    PRIMARY KEY (ino, idx)
);

-- policy.txt (bucket_id NULL) and each bucket's status.txt: name=value pairs in the order
-- they were written (position 0, 1, ...). Duplicate keys are kept as written.
CREATE TABLE settings (
    setting_id INTEGER PRIMARY KEY,
    bucket_id  INTEGER REFERENCES buckets (bucket_id),  -- NULL: policy.txt
    position   INTEGER NOT NULL CHECK (position >= 0),
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL
);
CREATE UNIQUE INDEX settings_policy ON settings (position) WHERE bucket_id IS NULL;
CREATE UNIQUE INDEX settings_status ON settings (bucket_id, position) WHERE bucket_id IS NOT NULL;

-- The logs: log_id 0 is the root crash.log, log_id = bucket_id is that bucket's hits.log.
-- length is the byte length of the rendered log (sum of its lines), kept by append_log.
CREATE TABLE logs (
    log_id     INTEGER PRIMARY KEY CHECK (log_id >= 0),
    bucket_id  INTEGER UNIQUE REFERENCES buckets (bucket_id),
    length     INTEGER NOT NULL DEFAULT 0 CHECK (length >= 0),
    line_count INTEGER NOT NULL DEFAULT 0 CHECK (line_count >= 0),
    CHECK ((log_id = 0 AND bucket_id IS NULL) OR log_id = bucket_id)
);
INSERT INTO logs (log_id, bucket_id) VALUES (0, NULL);

-- One row per line, in arrival order (seq). bytes is exactly what the log shows, line ending
-- included; start_offset is where it starts in the rendered log, so reading at any offset is
-- an index seek plus a range scan. The parsed columns are NULL and flagged = 1 for a line
-- that did not parse (kept verbatim).
--   time_text   'HH:MM:SS', client local time       date_text 'MM-DD-YYYY'
--   client_time 'YYYY-MM-DDTHH:MM:SS' built from the two (sortable), NULL if they are malformed
--   item        hits.log: report file name or 'No CAB'; crash.log: bucket id or subpath
CREATE TABLE log_lines (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    log_id       INTEGER NOT NULL REFERENCES logs (log_id),
    start_offset INTEGER NOT NULL CHECK (start_offset >= 0),
    bytes        BLOB    NOT NULL CHECK (length(bytes) > 0),
    time_text    TEXT,
    date_text    TEXT,
    machine      TEXT,
    user         TEXT,
    item         TEXT,
    client_time  TEXT,
    flagged      INTEGER NOT NULL CHECK (flagged IN (0, 1)),
    received_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK (flagged = (time_text IS NULL))
);
CREATE UNIQUE INDEX log_lines_offset ON log_lines (log_id, start_offset);
CREATE INDEX log_lines_time ON log_lines (log_id, client_time);
