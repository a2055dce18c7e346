//! count.txt (MS-CER 2.2.1): `Cabs Gathered=N` and `Total Hits=M` lines, grammar R6.
//!
//! Accepted beyond the strict ABNF, for tools on Linux: a bare LF as line end, no line end
//! after the last line, and the two lines in either order. Nothing else: no blank lines,
//! spaces, unknown or repeated names, trailing bytes or numbers that overflow `u64`.

use cerfs_db::Counts;
use nom::branch::alt;
use nom::bytes::complete::tag;
use nom::character::complete::digit1;
use nom::combinator::{all_consuming, rest, value};
use nom::{IResult, Parser};

/// Name of the first counter, as written before `=`.
pub const CABS_GATHERED: &str = "Cabs Gathered";
/// Name of the second counter, as written before `=`.
pub const TOTAL_HITS: &str = "Total Hits";

/// Why a decimal number was refused (the ABNF `DIGIT / %x31-39 1*DIGIT` and `%x31-39 *DIGIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Nothing where the number should be.
    #[error("no number")]
    Empty,
    /// Something other than the digits 0-9 (signs, spaces, letters, non-ASCII).
    #[error("not a decimal number (digits 0-9 only)")]
    NotDigits,
    /// A number other than 0 itself that starts with 0.
    #[error("leading zero")]
    LeadingZero,
    /// 0 where the grammar asks for a positive number.
    #[error("must not be 0")]
    Zero,
    /// More than a `u64` holds.
    #[error("too large (more than 18446744073709551615)")]
    Overflow,
}

/// Parses a decimal number without leading zeros; `allow_zero` admits `0` itself.
pub fn parse_decimal(text: &[u8], allow_zero: bool) -> Result<u64, NumberError> {
    if text.is_empty() {
        return Err(NumberError::Empty);
    }
    let digits: IResult<&[u8], &[u8]> = all_consuming(digit1).parse(text);
    let Ok((_, digits)) = digits else {
        return Err(NumberError::NotDigits);
    };
    match digits {
        [b'0'] if allow_zero => Ok(0),
        [b'0'] => Err(NumberError::Zero),
        [b'0', ..] => Err(NumberError::LeadingZero),
        _ => digits
            .iter()
            .try_fold(0u64, |acc, d| {
                acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .ok_or(NumberError::Overflow),
    }
}

/// Why count.txt content was refused; the message names the line and the fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CountFileError {
    /// The file holds no bytes at all.
    #[error("count.txt is empty")]
    Empty,
    /// A line with nothing on it (blank lines are not part of the grammar).
    #[error("line {line} is blank")]
    BlankLine {
        /// 1-based line number.
        line: usize,
    },
    /// A CR that is not part of the line's CRLF terminator.
    #[error("line {line} holds a CR that is not followed by LF")]
    StrayCr {
        /// 1-based line number.
        line: usize,
    },
    /// A line that does not start with `Cabs Gathered=` or `Total Hits=` (names are case-sensitive).
    #[error("line {line} `{text}` is neither `Cabs Gathered=N` nor `Total Hits=N`")]
    UnknownLine {
        /// 1-based line number.
        line: usize,
        /// The start of the line, escaped.
        text: String,
    },
    /// A counter whose value does not match the grammar.
    #[error("line {line}: bad `{key}` value `{value}`: {reason}")]
    BadValue {
        /// 1-based line number.
        line: usize,
        /// `Cabs Gathered` or `Total Hits`.
        key: &'static str,
        /// The start of the value, escaped.
        value: String,
        /// What is wrong with it.
        reason: NumberError,
    },
    /// A counter that appears a second time.
    #[error("line {line}: `{key}` appears again (first on line {first})")]
    Duplicate {
        /// 1-based line number of the repetition.
        line: usize,
        /// `Cabs Gathered` or `Total Hits`.
        key: &'static str,
        /// 1-based line number of the first occurrence.
        first: usize,
    },
    /// A counter that is absent.
    #[error("no `{key}=` line")]
    Missing {
        /// `Cabs Gathered` or `Total Hits`.
        key: &'static str,
    },
}

/// Which counter a line sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Cabs,
    Hits,
}

/// `("Cabs Gathered=" / "Total Hits=") value`, the value checked separately for precise errors.
fn count_line(input: &[u8]) -> IResult<&[u8], (Key, &[u8])> {
    (
        alt((
            value(Key::Cabs, tag("Cabs Gathered=")),
            value(Key::Hits, tag("Total Hits=")),
        )),
        rest,
    )
        .parse(input)
}

/// The start of some untrusted bytes, readable in a log message (bounded, escaped).
fn excerpt(bytes: &[u8]) -> String {
    const MAX: usize = 40;
    let cut = bytes.get(..MAX).unwrap_or(bytes);
    let mut out: String = String::from_utf8_lossy(cut).escape_debug().collect();
    if cut.len() < bytes.len() {
        out.push('…');
    }
    out
}

/// Parses count.txt content.
pub fn parse(bytes: &[u8]) -> Result<Counts, CountFileError> {
    if bytes.is_empty() {
        return Err(CountFileError::Empty);
    }
    // (value, line number) of each counter seen so far.
    let mut cabs: Option<(u64, usize)> = None;
    let mut hits: Option<(u64, usize)> = None;
    for (idx, piece) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        let line = idx + 1;
        // CRLF or bare LF; the last line may have no terminator at all.
        let body = match piece.strip_suffix(b"\n") {
            Some(b) => b.strip_suffix(b"\r").unwrap_or(b),
            None => piece,
        };
        if body.is_empty() {
            return Err(CountFileError::BlankLine { line });
        }
        if body.contains(&b'\r') {
            return Err(CountFileError::StrayCr { line });
        }
        let Ok((_, (key, digits))) = count_line(body) else {
            return Err(CountFileError::UnknownLine {
                line,
                text: excerpt(body),
            });
        };
        let (name, slot) = match key {
            Key::Cabs => (CABS_GATHERED, &mut cabs),
            Key::Hits => (TOTAL_HITS, &mut hits),
        };
        if let Some((_, first)) = *slot {
            return Err(CountFileError::Duplicate {
                line,
                key: name,
                first,
            });
        }
        let n =
            parse_decimal(digits, key == Key::Cabs).map_err(|reason| CountFileError::BadValue {
                line,
                key: name,
                value: excerpt(digits),
                reason,
            })?;
        *slot = Some((n, line));
    }
    match (cabs, hits) {
        (Some((cabs_gathered, _)), Some((total_hits, _))) => Ok(Counts {
            cabs_gathered,
            total_hits,
        }),
        (None, _) => Err(CountFileError::Missing { key: CABS_GATHERED }),
        (_, None) => Err(CountFileError::Missing { key: TOTAL_HITS }),
    }
}

/// Renders counters as a client expects them.
pub fn render(c: Counts) -> String {
    format!(
        "Cabs Gathered={}\r\nTotal Hits={}\r\n",
        c.cabs_gathered, c.total_hits
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(cabs_gathered: u64, total_hits: u64) -> Counts {
        Counts {
            cabs_gathered,
            total_hits,
        }
    }

    #[test]
    fn spec_examples_parse() {
        assert_eq!(
            parse(b"Cabs Gathered=5\r\nTotal Hits=10\r\n"),
            Ok(counts(5, 10))
        );
        assert_eq!(
            parse(b"Cabs Gathered=12345\r\nTotal Hits=23456\r\n"),
            Ok(counts(12345, 23456))
        );
    }

    #[test]
    fn zero_cabs_accepted() {
        assert_eq!(
            parse(b"Cabs Gathered=0\r\nTotal Hits=1\r\n"),
            Ok(counts(0, 1))
        );
    }

    #[test]
    fn zero_hits_refused() {
        assert_eq!(
            parse(b"Cabs Gathered=0\r\nTotal Hits=0\r\n"),
            Err(CountFileError::BadValue {
                line: 2,
                key: TOTAL_HITS,
                value: "0".into(),
                reason: NumberError::Zero
            })
        );
    }

    #[test]
    fn leading_zeros_refused() {
        let e = parse(b"Cabs Gathered=05\r\nTotal Hits=10\r\n");
        assert!(matches!(
            e,
            Err(CountFileError::BadValue {
                line: 1,
                reason: NumberError::LeadingZero,
                ..
            })
        ));
        let e = parse(b"Cabs Gathered=5\r\nTotal Hits=010\r\n");
        assert!(matches!(
            e,
            Err(CountFileError::BadValue {
                line: 2,
                reason: NumberError::LeadingZero,
                ..
            })
        ));
        let e = parse(b"Cabs Gathered=00\r\nTotal Hits=1\r\n");
        assert!(matches!(
            e,
            Err(CountFileError::BadValue {
                reason: NumberError::LeadingZero,
                ..
            })
        ));
    }

    #[test]
    fn lf_only_and_missing_final_terminator_accepted() {
        assert_eq!(parse(b"Cabs Gathered=1\nTotal Hits=2\n"), Ok(counts(1, 2)));
        assert_eq!(parse(b"Cabs Gathered=1\r\nTotal Hits=2"), Ok(counts(1, 2)));
        assert_eq!(parse(b"Cabs Gathered=1\nTotal Hits=2"), Ok(counts(1, 2)));
        // Mixed line ends are each fine on their own.
        assert_eq!(
            parse(b"Cabs Gathered=1\nTotal Hits=2\r\n"),
            Ok(counts(1, 2))
        );
    }

    #[test]
    fn swapped_order_accepted() {
        assert_eq!(
            parse(b"Total Hits=7\r\nCabs Gathered=3\r\n"),
            Ok(counts(3, 7))
        );
    }

    #[test]
    fn missing_line_refused() {
        assert_eq!(
            parse(b"Cabs Gathered=1\r\n"),
            Err(CountFileError::Missing { key: TOTAL_HITS })
        );
        assert_eq!(
            parse(b"Total Hits=1\r\n"),
            Err(CountFileError::Missing { key: CABS_GATHERED })
        );
    }

    #[test]
    fn duplicate_refused() {
        assert_eq!(
            parse(b"Cabs Gathered=1\r\nTotal Hits=2\r\nTotal Hits=2\r\n"),
            Err(CountFileError::Duplicate {
                line: 3,
                key: TOTAL_HITS,
                first: 2
            })
        );
        assert!(matches!(
            parse(b"Cabs Gathered=1\r\nCabs Gathered=1\r\nTotal Hits=2\r\n"),
            Err(CountFileError::Duplicate { line: 2, .. })
        ));
    }

    #[test]
    fn unknown_key_and_wrong_case_refused() {
        assert!(matches!(
            parse(b"Cabs Gathered=1\r\nTotal Hits=2\r\nFoo=3\r\n"),
            Err(CountFileError::UnknownLine { line: 3, .. })
        ));
        assert!(matches!(
            parse(b"cabs gathered=1\r\nTotal Hits=2\r\n"),
            Err(CountFileError::UnknownLine { line: 1, .. })
        ));
        assert!(matches!(
            parse(b"Cabs Gathered = 1\r\nTotal Hits=2\r\n"),
            Err(CountFileError::UnknownLine { line: 1, .. })
        ));
    }

    #[test]
    fn garbage_refused() {
        assert!(matches!(
            parse(b"Cabs Gathered=1\r\nTotal Hits=2\r\ngarbage"),
            Err(CountFileError::UnknownLine { line: 3, .. })
        ));
        assert!(matches!(
            parse(b"Cabs Gathered=1x\r\nTotal Hits=2\r\n"),
            Err(CountFileError::BadValue {
                reason: NumberError::NotDigits,
                ..
            })
        ));
        assert!(matches!(
            parse(b"Cabs Gathered= 1\r\nTotal Hits=2\r\n"),
            Err(CountFileError::BadValue {
                reason: NumberError::NotDigits,
                ..
            })
        ));
        assert!(matches!(
            parse(b"Cabs Gathered=+1\r\nTotal Hits=2\r\n"),
            Err(CountFileError::BadValue {
                reason: NumberError::NotDigits,
                ..
            })
        ));
        assert!(matches!(
            parse(b"Cabs Gathered=\r\nTotal Hits=2\r\n"),
            Err(CountFileError::BadValue {
                reason: NumberError::Empty,
                ..
            })
        ));
        assert!(matches!(
            parse(b"Cabs Gathered=1\r\n\r\nTotal Hits=2\r\n"),
            Err(CountFileError::BlankLine { line: 2 })
        ));
        assert!(matches!(
            parse(b"Cabs Gathered=1\r\r\nTotal Hits=2\r\n"),
            Err(CountFileError::StrayCr { line: 1 })
        ));
        assert!(matches!(
            parse(b"Cabs Gathered=1\r\nTotal Hits=2\r"),
            Err(CountFileError::StrayCr { line: 2 })
        ));
        assert!(matches!(
            parse(b"Cabs Gathered=1\r\nTotal Hits=2\r\n\r\n"),
            Err(CountFileError::BlankLine { line: 3 })
        ));
        assert!(parse(b"Cabs Gathered=\xe9\r\nTotal Hits=2\r\n").is_err());
        assert!(parse(b"\0\xff\xfe").is_err());
    }

    #[test]
    fn huge_numbers() {
        let max = format!("Cabs Gathered={}\r\nTotal Hits={}\r\n", u64::MAX, u64::MAX);
        assert_eq!(parse(max.as_bytes()), Ok(counts(u64::MAX, u64::MAX)));
        let over = b"Cabs Gathered=18446744073709551616\r\nTotal Hits=1\r\n";
        assert!(matches!(
            parse(over),
            Err(CountFileError::BadValue {
                reason: NumberError::Overflow,
                ..
            })
        ));
        let long = format!("Cabs Gathered=1\r\nTotal Hits=1{}\r\n", "0".repeat(1000));
        let e = parse(long.as_bytes());
        assert!(matches!(
            e,
            Err(CountFileError::BadValue {
                reason: NumberError::Overflow,
                ..
            })
        ));
        // The message stays short however long the value.
        assert!(e.err().map(|e| e.to_string().len() < 200).unwrap_or(false));
    }

    #[test]
    fn empty_input_refused() {
        assert_eq!(parse(b""), Err(CountFileError::Empty));
        assert_eq!(parse(b"\r\n"), Err(CountFileError::BlankLine { line: 1 }));
        assert_eq!(parse(b"\n"), Err(CountFileError::BlankLine { line: 1 }));
    }

    #[test]
    fn render_parse_round_trip() {
        for c in [
            counts(0, 1),
            counts(1, 1),
            counts(6, 11),
            counts(u64::MAX, u64::MAX),
        ] {
            assert_eq!(parse(render(c).as_bytes()), Ok(c));
        }
        assert_eq!(
            render(counts(6, 11)),
            "Cabs Gathered=6\r\nTotal Hits=11\r\n"
        );
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        let msg = |b: &[u8]| parse(b).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            msg(b"Cabs Gathered=1\r\nTotal Hits=0\r\n"),
            "line 2: bad `Total Hits` value `0`: must not be 0"
        );
        assert_eq!(msg(b"Cabs Gathered=1\r\n"), "no `Total Hits=` line");
        assert_eq!(
            msg(b"Cabs Gathered=1\r\nTotal\tHits=2\r\n"),
            "line 2 `Total\\tHits=2` is neither `Cabs Gathered=N` nor `Total Hits=N`"
        );
    }

    #[test]
    fn parse_decimal_grammar() {
        assert_eq!(parse_decimal(b"0", true), Ok(0));
        assert_eq!(parse_decimal(b"0", false), Err(NumberError::Zero));
        assert_eq!(parse_decimal(b"10", false), Ok(10));
        assert_eq!(parse_decimal(b"01", true), Err(NumberError::LeadingZero));
        assert_eq!(parse_decimal(b"", true), Err(NumberError::Empty));
        assert_eq!(parse_decimal(b"-1", true), Err(NumberError::NotDigits));
        assert_eq!(parse_decimal(b"1 ", true), Err(NumberError::NotDigits));
        assert_eq!(parse_decimal(b"18446744073709551615", true), Ok(u64::MAX));
        assert_eq!(
            parse_decimal(b"99999999999999999999", true),
            Err(NumberError::Overflow)
        );
    }
}
