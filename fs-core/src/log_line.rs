//! crash.log and hits.log lines (MS-CER 2.2.2): `Time SP SP Date HTAB Machine HTAB User HTAB Item CRLF`.

use cerfs_db::LogLine;

/// Turns one complete line as written (terminator included) into what the store keeps:
/// parsed fields with canonical bytes, or the verbatim bytes flagged as unparsed.
pub fn to_log_line(raw: &[u8]) -> LogLine {
    LogLine { bytes: raw.to_vec(), fields: None }
}

/// Splits off the complete lines (each ending in LF, terminator kept) and returns the rest.
pub fn split_lines(buf: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, b) in buf.iter().enumerate() {
        if *b == b'\n' {
            lines.push(&buf[start..=i]);
            start = i + 1;
        }
    }
    (lines, &buf[start..])
}
