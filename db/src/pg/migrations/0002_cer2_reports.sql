-- cerfs PostgreSQL schema, version 2: reports received over CER V2 (HTTP), as in the
-- SQLite store's migrations/0003_cer2_reports.sql.

CREATE TABLE cer2_report_rows (
    report_id           bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bucket_id           bigint  NOT NULL REFERENCES bucket_rows (bucket_id),
    received_at         timestamptz NOT NULL DEFAULT now(),
    machine             text    NOT NULL,
    os_version          text    NOT NULL,
    lcid                bigint  NOT NULL CHECK (lcid >= 0),
    "user"              text    NOT NULL,
    app_name            text    NOT NULL,
    app_path            text    NOT NULL,
    company             text,
    report_type         bigint  NOT NULL,
    event_type          text    NOT NULL,
    friendly_event_name text,
    event_time          text    NOT NULL,
    event_filetime      bigint  NOT NULL CHECK (event_filetime >= 0),
    dump_state          text    NOT NULL CHECK (dump_state IN ('none', 'issued', 'uploaded')),
    dump_path           text    UNIQUE,
    cab_name            text,
    cab_ino             bigint  REFERENCES nodes (ino) ON DELETE SET NULL,
    uploaded_at         timestamptz,
    CHECK ((dump_state = 'none') = (dump_path IS NULL)),
    CHECK ((dump_path IS NULL) = (cab_name IS NULL)),
    CHECK ((dump_state = 'uploaded') = (uploaded_at IS NOT NULL)),
    CHECK (dump_state = 'uploaded' OR cab_ino IS NULL)
);
CREATE INDEX cer2_report_rows_bucket ON cer2_report_rows (bucket_id, dump_state, received_at);
CREATE INDEX cer2_report_rows_event_time ON cer2_report_rows (event_time);

CREATE TABLE cer2_report_param_rows (
    report_id bigint  NOT NULL REFERENCES cer2_report_rows (report_id) ON DELETE CASCADE,
    position  integer NOT NULL CHECK (position >= 0),
    kind      text    NOT NULL CHECK (kind IN ('primary', 'secondary')),
    param_id  text,
    name      text    NOT NULL,
    value     text    NOT NULL,
    PRIMARY KEY (report_id, position)
);
CREATE INDEX cer2_report_param_rows_name ON cer2_report_param_rows (name, value);

CREATE TABLE cer2_report_file_rows (
    report_id bigint  NOT NULL REFERENCES cer2_report_rows (report_id) ON DELETE CASCADE,
    position  integer NOT NULL CHECK (position >= 0),
    name      text    NOT NULL,
    file_type bigint,
    PRIMARY KEY (report_id, position)
);
