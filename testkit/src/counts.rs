//! count.txt as a CER client computes it (MS-CER 3.1.7 step 8): read the two counters,
//! write one report more. Written independently of fs-core's grammar, as a client would
//! be, so that tests do not check fs-core with fs-core's own parser.

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
}
