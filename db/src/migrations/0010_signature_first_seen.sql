-- cerfs schema, version 10: when each signature was first seen (the arrival of its
-- earliest cab), for the console's "new signatures this week". History: deleting a
-- signature's cabs does not make it new again.
CREATE TABLE signature_first_rows (
    signature TEXT PRIMARY KEY,
    first_at  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX signature_first_rows_first ON signature_first_rows (first_at);

INSERT INTO signature_first_rows (signature, first_at)
SELECT signature, min(first_at) FROM daily_signature_rows GROUP BY signature;

CREATE TRIGGER signature_first_insert AFTER INSERT ON stack_rows
BEGIN
    INSERT INTO signature_first_rows (signature, first_at)
    SELECT NEW.signature, coalesce(created_at, NEW.walked_at) FROM cab_rows
    WHERE ino = NEW.cab_id
    ON CONFLICT (signature) DO UPDATE SET first_at = min(first_at, excluded.first_at);
END;
