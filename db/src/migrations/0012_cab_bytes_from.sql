-- cerfs schema, version 12: where a cab's bytes move to the cab
-- database (`<db>-cabs`): bytes at offsets >= bytes_from live there, those below in
-- chunks. NULL: every byte in chunks (cabs stored before version 12, read in place).
ALTER TABLE cab_rows ADD COLUMN bytes_from INTEGER CHECK (bytes_from IS NULL OR bytes_from >= 0);
