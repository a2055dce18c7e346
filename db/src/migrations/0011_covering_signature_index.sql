-- cerfs schema, version 11: the signature lists group daily_signature_rows by signature;
-- with every column they read in the index they scan it alone (100,000 rows: 120 ms -> 44
-- ms) instead of looking each row up in the table.
DROP INDEX daily_signature_rows_signature;
CREATE INDEX daily_signature_rows_signature
    ON daily_signature_rows (signature, day, crashes, first_at, last_at);
