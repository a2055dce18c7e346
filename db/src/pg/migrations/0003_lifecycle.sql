-- cerfs PostgreSQL schema, version 3: running a store for years, as in the SQLite store's
-- migrations/0006_lifecycle.sql: the server's own settings (retention, quotas), the
-- audit of deletions, and the crashes view that a bucket deletion blanks lines through.

CREATE TABLE server_setting_rows (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE deletion_rows (
    deletion_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deleted_at  timestamptz NOT NULL DEFAULT now(),
    deleted_by  text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('cab', 'bucket')),
    subpath     text NOT NULL,
    name        text,
    reason      text NOT NULL,
    detail      text NOT NULL
);

CREATE INDEX cab_rows_unswept ON cab_rows (ino) WHERE removal IS NOT NULL AND swept_at IS NULL;
CREATE INDEX cab_rows_created ON cab_rows (created_at) WHERE state = 'complete';

-- A log line's bytes as text: UTF-8 as it is, anything else (a line kept verbatim that is
-- not UTF-8) with its odd bytes escaped (\ooo), never an error in a view.
CREATE FUNCTION cerfs_text(b bytea) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN convert_from(b, 'UTF8');
EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
    RETURN encode(b, 'escape');
END
$$;

-- crash.log's lines with the bucket each names (by subpath, or by a status.txt's
-- Bucket= id), as the SQLite store's view of the same name.
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
    l.flagged,
    rtrim(cerfs_text(l.bytes), E'\r\n') AS line
FROM log_lines l
LEFT JOIN bucket_rows r ON r.bucket_id = coalesce(
    (SELECT x.bucket_id FROM bucket_rows x WHERE x.subpath = l.item),
    (SELECT s.bucket_id FROM setting_rows s
      WHERE s.key = 'Bucket' AND s.value = l.item AND s.bucket_id IS NOT NULL
      ORDER BY s.bucket_id LIMIT 1))
WHERE l.log_id = 0;
