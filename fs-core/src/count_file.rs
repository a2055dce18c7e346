//! count.txt (MS-CER 2.2.1): `Cabs Gathered=N` and `Total Hits=M`, grammar R6.

use cerfs_db::Counts;

/// Why count.txt content was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CountFileError {
    /// Does not match the grammar.
    #[error("not a count.txt: {0}")]
    Syntax(String),
}

/// Parses count.txt content.
pub fn parse(bytes: &[u8]) -> Result<Counts, CountFileError> {
    let _ = bytes;
    Err(CountFileError::Syntax("unimplemented".into()))
}

/// Renders counters as a client expects them.
pub fn render(c: Counts) -> String {
    format!("Cabs Gathered={}\r\nTotal Hits={}\r\n", c.cabs_gathered, c.total_hits)
}
