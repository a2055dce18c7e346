//! crash.log and hits.log lines (MS-CER 2.2.2): `Time SP SP Date HTAB Machine HTAB User HTAB Item CRLF`.
//!
//! Fields are ANSI (code page 1252) on disk and UTF-8 in the store; since that code page maps
//! every byte to one character, `render(parse(line))` gives back the very bytes written.

use cerfs_db::{LogFields, LogLine};
use nom::bytes::complete::{tag, take_till, take_while_m_n};
use nom::character::complete::char;
use nom::combinator::map;
use nom::{IResult, Parser};

use crate::settings_file::{decode_ansi, encode_ansi};

/// Longest Machine field (`1*15CHAR`).
pub const MAX_MACHINE: usize = 15;
/// Longest User field (`1*256CHAR`).
pub const MAX_USER: usize = 256;
/// Longest Item field (hits.log `1*260CHAR`; the same limit is applied to crash.log).
pub const MAX_ITEM: usize = 260;

/// Why a log line was refused; the message says which part is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogLineError {
    /// Nothing at all.
    #[error("empty line")]
    Empty,
    /// The line ends in a bare LF instead of CRLF.
    #[error("line ends in a bare LF instead of CRLF")]
    BareLf,
    /// The line has no terminator at all.
    #[error("line does not end in CRLF")]
    NoTerminator,
    /// A CR or LF before the line's terminator.
    #[error("a CR or LF inside the line")]
    LineBreakInside,
    /// The time is not `HH:MM:SS` with digits.
    #[error("time `{0}` is not HH:MM:SS")]
    BadTime(String),
    /// The time has hours over 23 or minutes or seconds over 59.
    #[error("time `{0}` is out of range (00:00:00 to 23:59:59)")]
    TimeOutOfRange(String),
    /// Time and date are not separated by exactly two spaces.
    #[error("time and date must be separated by exactly two spaces")]
    BadSeparator,
    /// The date is not `MM-DD-YYYY` with digits.
    #[error("date `{0}` is not MM-DD-YYYY")]
    BadDate(String),
    /// The date does not exist (month not 01-12, or day not in the month).
    #[error("date `{0}` does not exist")]
    NoSuchDate(String),
    /// A field's leading tab is missing (fewer than five fields, or junk after the date).
    #[error("no tab before the {0} field")]
    MissingTab(&'static str),
    /// A field with no characters.
    #[error("the {0} field is empty")]
    EmptyField(&'static str),
    /// A field longer than the grammar allows.
    #[error("the {field} field has {len} characters, at most {max} allowed")]
    TooLong {
        /// `machine`, `user` or `item`.
        field: &'static str,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A tab inside the item field: more than five fields.
    #[error("a tab inside the item field (too many fields)")]
    ExtraField,
}

/// A short, readable excerpt of untrusted bytes for an error message.
fn excerpt(bytes: &[u8]) -> String {
    let cut = bytes.get(..12).unwrap_or(bytes);
    decode_ansi(cut).escape_debug().collect()
}

/// `2DIGIT`, as its value.
fn two_digits(input: &[u8]) -> IResult<&[u8], u32> {
    map(
        take_while_m_n(2, 2, |b: u8| b.is_ascii_digit()),
        |d: &[u8]| d.iter().fold(0, |acc, b| acc * 10 + u32::from(b - b'0')),
    )
    .parse(input)
}

/// `4DIGIT`, as its value.
fn four_digits(input: &[u8]) -> IResult<&[u8], u32> {
    map(
        take_while_m_n(4, 4, |b: u8| b.is_ascii_digit()),
        |d: &[u8]| d.iter().fold(0, |acc, b| acc * 10 + u32::from(b - b'0')),
    )
    .parse(input)
}

/// `Hours ":" Minutes ":" Seconds`.
fn time(input: &[u8]) -> IResult<&[u8], (u32, u32, u32)> {
    map(
        (two_digits, char(':'), two_digits, char(':'), two_digits),
        |(h, _, m, _, s)| (h, m, s),
    )
    .parse(input)
}

/// `Month "-" Day "-" Year`, as (month, day, year).
fn date(input: &[u8]) -> IResult<&[u8], (u32, u32, u32)> {
    map(
        (two_digits, char('-'), two_digits, char('-'), four_digits),
        |(m, _, d, _, y)| (m, d, y),
    )
    .parse(input)
}

/// Days in `month` of `year` (Gregorian), 0 for a month that does not exist.
fn days_in_month(month: u32, year: u32) -> u32 {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    }
}

/// `HTAB field`: the field runs to the next tab or the end.
fn tab_field<'a>(
    input: &'a [u8],
    name: &'static str,
    max: usize,
) -> Result<(&'a [u8], &'a [u8]), LogLineError> {
    let tabbed: IResult<&[u8], &[u8]> = (tag("\t"), take_till(|b| b == b'\t'))
        .map(|(_, f)| f)
        .parse(input);
    let (rest, field) = tabbed.map_err(|_| LogLineError::MissingTab(name))?;
    if field.is_empty() {
        return Err(LogLineError::EmptyField(name));
    }
    // Code page 1252 is one byte per character, so bytes count characters.
    if field.len() > max {
        return Err(LogLineError::TooLong {
            field: name,
            len: field.len(),
            max,
        });
    }
    Ok((rest, field))
}

/// Parses one line as written, terminator included; only CRLF ends a valid line.
pub fn parse(line: &[u8]) -> Result<LogFields, LogLineError> {
    let body = match line.strip_suffix(b"\n") {
        Some(b) => b.strip_suffix(b"\r").ok_or(LogLineError::BareLf)?,
        None if line.is_empty() => return Err(LogLineError::Empty),
        None => return Err(LogLineError::NoTerminator),
    };
    if body.contains(&b'\r') || body.contains(&b'\n') {
        return Err(LogLineError::LineBreakInside);
    }

    let (rest, (h, m, s)) = time(body).map_err(|_| LogLineError::BadTime(excerpt(body)))?;
    let time_text = body.get(..8).unwrap_or_default();
    if h > 23 || m > 59 || s > 59 {
        return Err(LogLineError::TimeOutOfRange(excerpt(time_text)));
    }

    let spaced: IResult<&[u8], &[u8]> = tag("  ").parse(rest);
    let rest = match spaced {
        Ok((rest, _)) if !rest.starts_with(b" ") => rest,
        _ => return Err(LogLineError::BadSeparator),
    };

    let date_start = rest;
    let (rest, (month, day, year)) =
        date(rest).map_err(|_| LogLineError::BadDate(excerpt(date_start)))?;
    let date_text = date_start.get(..10).unwrap_or_default();
    if day == 0 || day > days_in_month(month, year) {
        return Err(LogLineError::NoSuchDate(excerpt(date_text)));
    }

    let (rest, machine) = tab_field(rest, "machine", MAX_MACHINE)?;
    let (rest, user) = tab_field(rest, "user", MAX_USER)?;
    let (rest, item) = tab_field(rest, "item", MAX_ITEM)?;
    if !rest.is_empty() {
        return Err(LogLineError::ExtraField);
    }

    Ok(LogFields {
        time: decode_ansi(time_text),
        date: decode_ansi(date_text),
        machine: decode_ansi(machine),
        user: decode_ansi(user),
        item: decode_ansi(item),
        client_time: format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}"),
    })
}

/// Renders fields as the grammar's exact bytes, CRLF included (ANSI).
pub fn render(f: &LogFields) -> Vec<u8> {
    encode_ansi(&format!(
        "{}  {}\t{}\t{}\t{}\r\n",
        f.time, f.date, f.machine, f.user, f.item
    ))
}

/// Turns one complete line as written (terminator included) into what the store keeps:
/// parsed fields with canonical bytes, or the verbatim bytes flagged as unparsed.
///
/// A line without any LF (the partial tail left at close) gets its terminator completed
/// (`\r\n`, or just `\n` after a final CR) so that later lines stay separate; empty input
/// stays empty.
pub fn to_log_line(raw: &[u8]) -> LogLine {
    if let Ok(fields) = parse(raw) {
        return LogLine {
            bytes: render(&fields),
            fields: Some(fields),
        };
    }
    let mut bytes = raw.to_vec();
    if !raw.is_empty() && !raw.ends_with(b"\n") {
        if raw.ends_with(b"\r") {
            bytes.push(b'\n');
        } else {
            bytes.extend_from_slice(b"\r\n");
        }
    }
    LogLine {
        bytes,
        fields: None,
    }
}

/// Splits off the complete lines (each ending in LF, terminator kept) and returns the rest.
pub fn split_lines(buf: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut lines: Vec<&[u8]> = buf.split_inclusive(|b| *b == b'\n').collect();
    // split_inclusive yields the unterminated tail as its last piece, if there is one.
    let tail = match lines.last() {
        Some(last) if !last.ends_with(b"\n") => lines.pop().unwrap_or_default(),
        _ => &[],
    };
    (lines, tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HITS: &[u8] = b"15:32:23  04-23-2007\tTestMachine\tTestUser\td5je031w.cab\r\n";
    const CRASH: &[u8] =
        b"15:32:23  04-23-2007\tTestMachine\tTestUser\tTestApplication\\1.0.0.0\\TestModule\\1.0.0.0\\00000000\r\n";

    fn fields(time: &str, date: &str, machine: &str, user: &str, item: &str) -> LogFields {
        LogFields {
            time: time.into(),
            date: date.into(),
            machine: machine.into(),
            user: user.into(),
            item: item.into(),
            client_time: format!("{}-{}-{}T{time}", &date[6..10], &date[0..2], &date[3..5]),
        }
    }

    fn line(machine: &str, user: &str, item: &str) -> Vec<u8> {
        format!("01:02:03  01-02-2003\t{machine}\t{user}\t{item}\r\n").into_bytes()
    }

    /// Parses and checks that rendering gives back the same bytes.
    fn round_trip(raw: &[u8]) -> LogFields {
        let f = parse(raw).expect("valid line");
        assert_eq!(render(&f), raw.to_vec());
        let stored = to_log_line(raw);
        assert_eq!(stored.bytes, raw.to_vec());
        assert_eq!(stored.fields.as_ref(), Some(&f));
        f
    }

    #[test]
    fn spec_examples() {
        assert_eq!(
            round_trip(HITS),
            fields(
                "15:32:23",
                "04-23-2007",
                "TestMachine",
                "TestUser",
                "d5je031w.cab"
            )
        );
        assert_eq!(
            round_trip(CRASH).item,
            r"TestApplication\1.0.0.0\TestModule\1.0.0.0\00000000"
        );
    }

    #[test]
    fn special_values() {
        let f = round_trip(&line("UNKNOWN", "unknown user", "No CAB"));
        assert_eq!(
            (f.machine.as_str(), f.user.as_str(), f.item.as_str()),
            ("UNKNOWN", "unknown user", "No CAB")
        );
        assert_eq!(round_trip(&line("M", "U", "501")).item, "501");
        // Spaces inside fields are ordinary characters.
        assert_eq!(round_trip(&line(" M ", "a b", " x ")).user, "a b");
    }

    #[test]
    fn field_limits() {
        let m15 = "m".repeat(15);
        let u256 = "u".repeat(256);
        let i260 = "i".repeat(260);
        round_trip(&line(&m15, &u256, &i260));
        assert_eq!(
            parse(&line(&"m".repeat(16), "u", "i")),
            Err(LogLineError::TooLong {
                field: "machine",
                len: 16,
                max: 15
            })
        );
        assert_eq!(
            parse(&line("m", &"u".repeat(257), "i")),
            Err(LogLineError::TooLong {
                field: "user",
                len: 257,
                max: 256
            })
        );
        assert_eq!(
            parse(&line("m", "u", &"i".repeat(261))),
            Err(LogLineError::TooLong {
                field: "item",
                len: 261,
                max: 260
            })
        );
    }

    #[test]
    fn empty_fields() {
        assert_eq!(
            parse(&line("", "u", "i")),
            Err(LogLineError::EmptyField("machine"))
        );
        assert_eq!(
            parse(&line("m", "", "i")),
            Err(LogLineError::EmptyField("user"))
        );
        assert_eq!(
            parse(&line("m", "u", "")),
            Err(LogLineError::EmptyField("item"))
        );
    }

    #[test]
    fn separator_must_be_two_spaces() {
        assert_eq!(
            parse(b"15:32:23 04-23-2007\tM\tU\tI\r\n"),
            Err(LogLineError::BadSeparator)
        );
        assert_eq!(
            parse(b"15:32:23   04-23-2007\tM\tU\tI\r\n"),
            Err(LogLineError::BadSeparator)
        );
        assert_eq!(
            parse(b"15:32:23\t04-23-2007\tM\tU\tI\r\n"),
            Err(LogLineError::BadSeparator)
        );
        assert_eq!(
            parse(b"15:32:23  \r\n"),
            Err(LogLineError::BadDate(String::new()))
        );
    }

    #[test]
    fn times() {
        let t = |time: &str| parse(format!("{time}  01-01-2000\tM\tU\tI\r\n").as_bytes());
        assert!(t("00:00:00").is_ok());
        assert!(t("23:59:59").is_ok());
        assert_eq!(
            t("24:00:00"),
            Err(LogLineError::TimeOutOfRange("24:00:00".into()))
        );
        assert!(matches!(
            t("12:60:00"),
            Err(LogLineError::TimeOutOfRange(_))
        ));
        assert!(matches!(
            t("12:00:60"),
            Err(LogLineError::TimeOutOfRange(_))
        ));
        assert!(matches!(t("1:02:03"), Err(LogLineError::BadTime(_))));
        assert!(matches!(t("01-02-03"), Err(LogLineError::BadTime(_))));
        assert!(matches!(t("aa:bb:cc"), Err(LogLineError::BadTime(_))));
        assert!(matches!(t("01:02:3"), Err(LogLineError::BadTime(_))));
        assert!(matches!(t(""), Err(LogLineError::BadTime(_))));
    }

    #[test]
    fn dates() {
        let d = |date: &str| parse(format!("00:00:00  {date}\tM\tU\tI\r\n").as_bytes());
        assert!(d("01-31-2007").is_ok());
        assert!(d("12-31-9999").is_ok());
        assert!(d("02-28-2007").is_ok());
        assert!(d("02-29-2008").is_ok());
        assert!(d("02-29-2000").is_ok());
        assert_eq!(
            d("02-30-2007"),
            Err(LogLineError::NoSuchDate("02-30-2007".into()))
        );
        assert!(matches!(d("02-29-2007"), Err(LogLineError::NoSuchDate(_))));
        assert!(matches!(d("02-29-1900"), Err(LogLineError::NoSuchDate(_))));
        assert!(matches!(d("04-31-2007"), Err(LogLineError::NoSuchDate(_))));
        assert!(matches!(d("00-10-2007"), Err(LogLineError::NoSuchDate(_))));
        assert!(matches!(d("13-10-2007"), Err(LogLineError::NoSuchDate(_))));
        assert!(matches!(d("01-00-2007"), Err(LogLineError::NoSuchDate(_))));
        assert!(matches!(d("01-32-2007"), Err(LogLineError::NoSuchDate(_))));
        assert!(matches!(d("2007-04-23"), Err(LogLineError::BadDate(_))));
        assert!(matches!(d("4-23-2007"), Err(LogLineError::BadDate(_))));
        assert!(matches!(d("04-23-07"), Err(LogLineError::BadDate(_))));
        assert!(matches!(d("04/23/2007"), Err(LogLineError::BadDate(_))));
        // Extra digits after the year leave no tab where the machine field starts.
        assert_eq!(d("04-23-20071"), Err(LogLineError::MissingTab("machine")));
    }

    #[test]
    fn terminators() {
        let lf_only = b"15:32:23  04-23-2007\tTestMachine\tTestUser\td5je031w.cab\n";
        assert_eq!(parse(lf_only), Err(LogLineError::BareLf));
        let none = b"15:32:23  04-23-2007\tTestMachine\tTestUser\td5je031w.cab";
        assert_eq!(parse(none), Err(LogLineError::NoTerminator));
        let cr_only = b"15:32:23  04-23-2007\tTestMachine\tTestUser\td5je031w.cab\r";
        assert_eq!(parse(cr_only), Err(LogLineError::NoTerminator));
        let double = b"15:32:23  04-23-2007\tM\tU\tI\r\r\n";
        assert_eq!(parse(double), Err(LogLineError::LineBreakInside));
        let inner_cr = b"15:32:23  04-23-2007\tM\tU\rX\tI\r\n";
        assert_eq!(parse(inner_cr), Err(LogLineError::LineBreakInside));
        assert_eq!(parse(b""), Err(LogLineError::Empty));
        assert!(matches!(parse(b"\r\n"), Err(LogLineError::BadTime(_))));
    }

    #[test]
    fn tabs_missing_or_extra() {
        assert_eq!(
            parse(b"15:32:23  04-23-2007\tM\tU\r\n"),
            Err(LogLineError::MissingTab("item"))
        );
        assert_eq!(
            parse(b"15:32:23  04-23-2007\tM U I\r\n"),
            Err(LogLineError::MissingTab("user"))
        );
        assert_eq!(
            parse(b"15:32:23  04-23-2007 M\tU\tI\r\n"),
            Err(LogLineError::MissingTab("machine"))
        );
        assert_eq!(
            parse(b"15:32:23  04-23-2007\r\n"),
            Err(LogLineError::MissingTab("machine"))
        );
        assert_eq!(
            parse(b"15:32:23  04-23-2007\tM\tU\tI\tJ\r\n"),
            Err(LogLineError::ExtraField)
        );
        assert_eq!(
            parse(b"15:32:23  04-23-2007\tM\tU\tI\t\r\n"),
            Err(LogLineError::ExtraField)
        );
    }

    #[test]
    fn cp1252_bytes_round_trip() {
        let raw = b"15:32:23  04-23-2007\tPC-\xc9T\xc9\tJos\xe9 \x80\x81\x9d\xff\tcaf\xe9.cab\r\n";
        let f = round_trip(raw);
        assert_eq!(f.machine, "PC-\u{c9}T\u{c9}");
        assert_eq!(f.user, "Jos\u{e9} \u{20ac}\u{81}\u{9d}\u{ff}");
        // Every byte but the delimiters is a field character.
        let all: Vec<u8> = (0..=255u8)
            .filter(|b| !matches!(b, b'\t' | b'\r' | b'\n'))
            .collect();
        for chunk in all.chunks(200) {
            let mut raw = b"00:00:00  01-01-2000\tM\tU\t".to_vec();
            raw.extend_from_slice(chunk);
            raw.extend_from_slice(b"\r\n");
            round_trip(&raw);
        }
    }

    #[test]
    fn render_unencodable_does_not_panic() {
        let f = fields("00:00:00", "01-01-2000", "M\u{65e5}", "U", "I");
        assert_eq!(render(&f), b"00:00:00  01-01-2000\tM?\tU\tI\r\n".to_vec());
    }

    #[test]
    fn to_log_line_keeps_bad_lines_verbatim() {
        let bad = b"garbage\r\n";
        assert_eq!(
            to_log_line(bad),
            LogLine {
                bytes: bad.to_vec(),
                fields: None
            }
        );
        let lf = b"15:32:23  04-23-2007\tM\tU\tI\n";
        assert_eq!(to_log_line(lf).bytes, lf.to_vec());
        assert_eq!(to_log_line(lf).fields, None);
        // The partial tail gets a terminator so later lines stay separate.
        assert_eq!(to_log_line(b"partial").bytes, b"partial\r\n".to_vec());
        let tail = b"15:32:23  04-23-2007\tM\tU\tI";
        let stored = to_log_line(tail);
        assert_eq!(stored.bytes, [&tail[..], b"\r\n"].concat());
        assert_eq!(stored.fields, None);
        assert_eq!(to_log_line(b"half\r").bytes, b"half\r\n".to_vec());
        assert_eq!(to_log_line(b"").bytes, Vec::<u8>::new());
    }

    #[test]
    fn split_lines_keeps_terminators_and_tail() {
        let (lines, tail) = split_lines(b"a\r\nb\nc");
        assert_eq!(lines, vec![&b"a\r\n"[..], &b"b\n"[..]]);
        assert_eq!(tail, b"c");
        let (lines, tail) = split_lines(b"a\r\n");
        assert_eq!(lines, vec![&b"a\r\n"[..]]);
        assert_eq!(tail, b"");
        let (lines, tail) = split_lines(b"");
        assert!(lines.is_empty());
        assert_eq!(tail, b"");
        let (lines, tail) = split_lines(b"\n\n");
        assert_eq!(lines, vec![&b"\n"[..], &b"\n"[..]]);
        assert_eq!(tail, b"");
        let (lines, tail) = split_lines(b"no newline");
        assert!(lines.is_empty());
        assert_eq!(tail, b"no newline");
    }

    #[test]
    fn messages_say_what_is_wrong() {
        let msg = |raw: &[u8]| parse(raw).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            msg(&line(&"m".repeat(16), "u", "i")),
            "the machine field has 16 characters, at most 15 allowed"
        );
        assert_eq!(
            msg(b"15:32:23  02-30-2007\tM\tU\tI\r\n"),
            "date `02-30-2007` does not exist"
        );
        assert_eq!(msg(b"x\n"), "line ends in a bare LF instead of CRLF");
    }
}
