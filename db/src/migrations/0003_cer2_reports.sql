-- cerfs schema, version 3: reports received over the Corporate Error Reporting V2 HTTP
-- protocol ([MS-CER2]). Applied once, inside a transaction, by SqliteStore::open.
--
-- A level-1 report (the WERREPORT XML a Windows client POSTs to /stage2.htm) lands in the
-- same bucket a CER 1.0 client on the share would use (bucket_rows.subpath), is counted in
-- that bucket's Total Hits like a share report, and becomes one cer2_report_rows row with
-- its signature parameters and listed files. When the answer asked for the cab (iData=1),
-- the row holds the DumpFile url-path the client was told to PUT it to; the uploaded cab is
-- an ordinary cab of the share (cabs/<sub>/<cab_name>, a row in cab_rows) linked by cab_ino.
--
-- As in version 2, the tables take *_rows names and SQL users query the views below
-- (cer2_reports, cer2_report_params, cer2_report_files), whose columns stay stable.
--
-- Times follow version 1: *_at TEXT ISO-8601 UTC with milliseconds. event_time is the
-- client's EVENTINFO eventtime (a Windows FILETIME, kept exactly in event_filetime) in the
-- same format.

CREATE TABLE cer2_report_rows (
    report_id           INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket_id           INTEGER NOT NULL REFERENCES bucket_rows (bucket_id),
    received_at         TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    machine             TEXT    NOT NULL,           -- MACHINEINFO machinename
    os_version          TEXT    NOT NULL,           -- MACHINEINFO os ('6.1.6561.2.0.0.256.1')
    lcid                INTEGER NOT NULL CHECK (lcid >= 0),  -- MACHINEINFO lcid (1033 = en-US)
    user                TEXT    NOT NULL,           -- USERINFO username
    app_name            TEXT    NOT NULL,           -- APPLICATIONINFO appname
    app_path            TEXT    NOT NULL,           -- APPLICATIONINFO apppath
    company             TEXT,                       -- APPLICATIONINFO appcompany; NULL if absent
    report_type         INTEGER NOT NULL,           -- EVENTINFO reporttype
    event_type          TEXT    NOT NULL,           -- EVENTINFO eventtype ('BlueScreen', 'APPCRASH', ...)
    friendly_event_name TEXT,                       -- EVENTINFO friendlyeventname; NULL if absent
    event_time          TEXT    NOT NULL,           -- EVENTINFO eventtime as ISO-8601 UTC
    event_filetime      INTEGER NOT NULL CHECK (event_filetime >= 0),  -- 100 ns ticks since 1601-01-01 UTC
    -- The level-2 upload. dump_state 'none': the answer did not ask for a cab (iData=0), no
    -- DumpFile; 'issued': DumpFile sent, cab not received (yet); 'uploaded': cab stored.
    dump_state          TEXT    NOT NULL CHECK (dump_state IN ('none', 'issued', 'uploaded')),
    dump_path           TEXT    UNIQUE,             -- the DumpFile value, '\PersistedCabs\...'
    cab_name            TEXT,                       -- file name under cabs/<sub>/ ('<guid>.cab')
    cab_ino             INTEGER REFERENCES nodes (ino) ON DELETE SET NULL,  -- NULL once an admin deletes the cab
    uploaded_at         TEXT,
    CHECK ((dump_state = 'none') = (dump_path IS NULL)),
    CHECK ((dump_path IS NULL) = (cab_name IS NULL)),
    CHECK ((dump_state = 'uploaded') = (uploaded_at IS NOT NULL)),
    CHECK (dump_state = 'uploaded' OR cab_ino IS NULL)
);
CREATE INDEX cer2_report_rows_bucket ON cer2_report_rows (bucket_id, dump_state, received_at);
CREATE INDEX cer2_report_rows_event_time ON cer2_report_rows (event_time);

-- The SIGNATURE's parameters in document order (position 0, 1, ...): PARAMETER elements are
-- kind 'primary' (with their id attribute as written), SECONDARYPARAMETER elements 'secondary'.
CREATE TABLE cer2_report_param_rows (
    report_id INTEGER NOT NULL REFERENCES cer2_report_rows (report_id) ON DELETE CASCADE,
    position  INTEGER NOT NULL CHECK (position >= 0),
    kind      TEXT    NOT NULL CHECK (kind IN ('primary', 'secondary')),
    param_id  TEXT,
    name      TEXT    NOT NULL,
    value     TEXT    NOT NULL,
    PRIMARY KEY (report_id, position)
);
CREATE INDEX cer2_report_param_rows_name ON cer2_report_param_rows (name, value);

-- The FILES the report lists (FILE elements, in document order).
CREATE TABLE cer2_report_file_rows (
    report_id INTEGER NOT NULL REFERENCES cer2_report_rows (report_id) ON DELETE CASCADE,
    position  INTEGER NOT NULL CHECK (position >= 0),
    name      TEXT    NOT NULL,                     -- FILE filename
    file_type INTEGER,                              -- FILE filetype; NULL if absent
    PRIMARY KEY (report_id, position)
);

-- ---------------------------------------------------------------------------------------
-- The views.

-- One row per CER V2 report. dump_state: 'none' (no cab asked for), 'issued' (DumpFile sent,
-- no cab yet), 'uploaded'. cab_id, cab_size and cab_sha256 describe the uploaded cab
-- (the cabs view's cab_id); NULL before the upload or once an admin deleted the cab.
CREATE VIEW cer2_reports AS
SELECT
    r.report_id,
    r.bucket_id,
    b.subpath,
    r.received_at,
    r.machine,
    r.os_version,
    r.lcid,
    r.user,
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

-- The signature parameters of each report, in document order.
CREATE VIEW cer2_report_params AS
SELECT
    p.report_id,
    r.bucket_id,
    p.position,
    p.kind,
    p.param_id,
    p.name,
    p.value
FROM cer2_report_param_rows p
JOIN cer2_report_rows r ON r.report_id = p.report_id;

-- The files each report lists, in document order.
CREATE VIEW cer2_report_files AS
SELECT
    f.report_id,
    r.bucket_id,
    f.position,
    f.name,
    f.file_type
FROM cer2_report_file_rows f
JOIN cer2_report_rows r ON r.report_id = f.report_id;
