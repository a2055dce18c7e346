-- Running a store for years: retention (pruning a cab's bytes, keeping its row), deletion
-- for PII requests (with an audit trail), the server's own settings (retention, quotas),
-- and the scrub that re-hashes stored cabs.

-- removal: NULL = the cab is on the share; 'pruned' = its bytes were removed by retention
-- (the row, its sha256 and its index results stay); 'deleted' = an admin deleted it and
-- its rows go once its bytes are gone. Either way the share no longer shows it. removed_at:
-- when. Chunks of a removed cab are deleted in small transactions after the mark, so a
-- crash in between leaves a marked cab whose remaining chunks the next sweep removes.
ALTER TABLE cab_rows ADD COLUMN removal TEXT CHECK (removal IS NULL OR removal IN ('pruned', 'deleted'));
ALTER TABLE cab_rows ADD COLUMN removed_at TEXT;
-- When the last bytes of a removed cab were deleted (NULL while some remain).
ALTER TABLE cab_rows ADD COLUMN swept_at TEXT;
-- The scrub: when the cab's bytes last matched its sha256, and what was wrong if they did
-- not (NULL: sound or never checked).
ALTER TABLE cab_rows ADD COLUMN verified_at TEXT;
ALTER TABLE cab_rows ADD COLUMN corrupt TEXT;
CREATE INDEX cab_rows_unswept ON cab_rows (ino) WHERE removal IS NOT NULL AND swept_at IS NULL;
CREATE INDEX cab_rows_created ON cab_rows (created_at) WHERE state = 'complete';

-- Settings of the server itself (not of MS-CER clients): retention and quotas, as key and
-- value text (`cerfs retention`, `cerfs quota`).
CREATE TABLE server_setting_rows (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- Every deletion an admin made (cerfs cab delete, cerfs bucket delete): never pruned.
CREATE TABLE deletion_rows (
    deletion_id INTEGER PRIMARY KEY AUTOINCREMENT,
    deleted_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    deleted_by  TEXT NOT NULL,                    -- the unix account that ran the command
    kind        TEXT NOT NULL CHECK (kind IN ('cab', 'bucket')),
    subpath     TEXT NOT NULL,
    name        TEXT,                             -- the cab's name; NULL for a bucket
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL                     -- what went, e.g. "3 cabs (1048576 bytes), 12 log lines"
);

CREATE VIEW deletions AS
SELECT deletion_id, deleted_at, deleted_by, kind, subpath, name, reason, detail
FROM deletion_rows;

-- The cabs view shows removed cabs with state 'pruned' or 'deleted' (until their rows go),
-- when that happened, and what the scrub found.
DROP VIEW cabs;
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
    (SELECT count(*) FROM cab_member_rows m WHERE m.cab_id = c.ino) AS file_count,
    c.removed_at,
    c.verified_at,
    c.corrupt
FROM cab_rows c
JOIN bucket_rows b ON b.bucket_id = c.bucket_id;

-- cabs_stored counts the cabs whose bytes are on the share.
DROP VIEW buckets;
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
      WHERE c.bucket_id = b.bucket_id AND c.state = 'complete' AND c.removal IS NULL) AS cabs_stored,
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
