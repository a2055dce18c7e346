//! policy.txt (MS-CER 2.2.4) and status.txt (2.2.5): `Name=Value` lines, R7, R8.

/// Which file's grammar applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// policy.txt at the root.
    Policy,
    /// status.txt of one bucket.
    Status,
}

/// A line that was refused, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// 1-based line number.
    pub line: usize,
    /// The line's text (lossy).
    pub text: String,
    /// Why it was refused.
    pub reason: String,
}

/// The good pairs (canonical key and value, canonical order) and the refused lines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    /// Accepted `(key, value)` pairs.
    pub pairs: Vec<(String, String)>,
    /// Refused lines.
    pub rejected: Vec<Rejected>,
}

/// Parses a whole file.
pub fn parse(scope: Scope, bytes: &[u8]) -> Parsed {
    let _ = (scope, bytes);
    Parsed::default()
}

/// Renders stored pairs as the file a client reads (ANSI, CRLF).
pub fn render(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(format!("{k}={v}\r\n").as_bytes());
    }
    out
}
