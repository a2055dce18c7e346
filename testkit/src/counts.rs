//! count.txt as a CER client computes it (MS-CER 3.1.7 step 8): read the two counters,
//! write one report more. Written independently of fs-core's grammar, as a client would
//! be, so that tests do not check fs-core with fs-core's own parser.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The two counters of a count.txt as (Cabs Gathered, Total Hits); a missing or unreadable
/// line counts as 0 (a plain share's count.txt can be garbled by racing clients).
pub fn counters(text: impl AsRef<[u8]>) -> (u64, u64) {
    let text = String::from_utf8_lossy(text.as_ref());
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (value("Cabs Gathered="), value("Total Hits="))
}

/// One report with one cab, as a client makes it on the count.txt at `path` (pattern (a):
/// one handle reads, rewrites and truncates); returns the counters written.
///
/// # Panics
/// When a counter is not a number (see [`bumped`]).
pub fn increment(path: &Path) -> io::Result<(u64, u64)> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let mut text = Vec::new();
    f.read_to_end(&mut text)?;
    let next = bumped(&text, 1);
    f.seek(SeekFrom::Start(0))?;
    f.write_all(next.as_bytes())?;
    f.set_len(next.len() as u64)?;
    crate::close_checked(f)?;
    Ok(counters(next))
}

/// The count.txt a client writes after reading `text`: Total Hits + 1, Cabs Gathered +
/// `cabs` (a missing line counts as 0).
///
/// # Panics
/// When a counter is not a number (a test reads only what cerfs rendered).
pub fn bumped(text: impl AsRef<[u8]>, cabs: u64) -> String {
    let text = std::str::from_utf8(text.as_ref()).expect("count.txt is ASCII");
    let (mut gathered, mut hits) = (0u64, 0u64);
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Cabs Gathered=") {
            gathered = v.trim().parse().expect("Cabs Gathered is a number");
        }
        if let Some(v) = line.strip_prefix("Total Hits=") {
            hits = v.trim().parse().expect("Total Hits is a number");
        }
    }
    format!(
        "Cabs Gathered={}\r\nTotal Hits={}\r\n",
        gathered + cabs,
        hits + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_more() {
        assert_eq!(
            bumped(b"Cabs Gathered=2\r\nTotal Hits=7\r\n", 1),
            "Cabs Gathered=3\r\nTotal Hits=8\r\n"
        );
        assert_eq!(bumped(b"", 0), "Cabs Gathered=0\r\nTotal Hits=1\r\n");
    }

    #[test]
    fn reads_both_counters() {
        assert_eq!(counters("Cabs Gathered=2\r\nTotal Hits=7\r\n"), (2, 7));
        assert_eq!(counters("Total Hits=x\r\n"), (0, 0));
    }

    #[test]
    fn increments_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("count.txt");
        std::fs::write(&path, "Cabs Gathered=2\r\nTotal Hits=7\r\nstale tail").expect("write");
        assert_eq!(increment(&path).expect("increment"), (3, 8));
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "Cabs Gathered=3\r\nTotal Hits=8\r\n"
        );
    }
}
