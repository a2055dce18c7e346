//! policy.txt (MS-CER 2.2.4) and status.txt (2.2.5): ANSI `Name=Value` lines, R7, R8.
//!
//! A file is parsed line by line: good lines become canonical `(name, value)` pairs, bad
//! lines are set aside with a reason (R8: a bad line is ignored, the good ones still count).
//! Also home of the code page 1252 helpers the other ANSI formats share.

use std::collections::HashMap;
use std::fmt;

use encoding_rs::WINDOWS_1252;
use nom::bytes::complete::{tag, take_while1};
use nom::character::complete::char;
use nom::combinator::{eof, opt, rest};
use nom::multi::separated_list1;
use nom::{IResult, Parser};

use crate::count_file::parse_decimal;

/// Which file's grammar applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// policy.txt at the root.
    Policy,
    /// status.txt of one bucket.
    Status,
}

impl Scope {
    /// The file this scope's settings live in.
    pub fn file_name(self) -> &'static str {
        match self {
            Scope::Policy => "policy.txt",
            Scope::Status => "status.txt",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file_name())
    }
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

/// Why a `Name=Value` setting was refused; the message is meant for an administrator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// A non-blank line without `=`.
    #[error("no `=` in the line (expected Name=Value)")]
    MissingEquals,
    /// A name that neither file knows.
    #[error("unknown name `{0}`")]
    UnknownKey(String),
    /// A known name written in the wrong case (names are case-sensitive).
    #[error("unknown name `{key}`: names are case-sensitive, write `{expected}`")]
    WrongCase {
        /// The name as written.
        key: String,
        /// The name as the grammar spells it.
        expected: &'static str,
    },
    /// A name the other file has but this one does not (`FileTreeRoot` in status.txt,
    /// `Response`, `Bucket`, … in policy.txt).
    #[error("`{key}` is not allowed in {scope}")]
    NotInScope {
        /// The name.
        key: String,
        /// The file it was found in.
        scope: Scope,
    },
    /// A value that does not fit the name's grammar.
    #[error("bad value `{value}` for `{key}`: expected {expected}")]
    BadValue {
        /// The name.
        key: String,
        /// The value as written.
        value: String,
        /// What the grammar asks for.
        expected: &'static str,
    },
    /// A value with a character code page 1252 cannot encode (only from [`parse_pair`]:
    /// decoded files never hold one).
    #[error("value of `{key}` holds `{ch}`, which the ANSI code page 1252 cannot encode")]
    NotAnsi {
        /// The name.
        key: String,
        /// The first character that cannot be encoded.
        ch: char,
    },
    /// A name set again after an accepted line (the first accepted line wins).
    #[error("`{key}` already set on line {first_line}; the first one wins")]
    Duplicate {
        /// The name.
        key: String,
        /// 1-based line of the accepted occurrence.
        first_line: usize,
    },
}

/// The value grammar of one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// CERBoolean, canonical `YES` / `NO`.
    Bool,
    /// `0` or a positive integer, no leading zero.
    Count,
    /// A positive integer, not 0, no leading zero.
    BucketId,
    /// `1` or a URL.
    Response,
    /// A URL, possibly empty (MS-CER note <6>).
    Url,
    /// `;`-separated non-empty items; `trailing` allows one final `;` (the RegKey and GetFile
    /// ABNF do, the WQL one does not).
    List { trailing: bool },
    /// A UNC path `\\server\share…`, 1-260 characters.
    UncPath,
}

impl Kind {
    /// What the grammar asks for, for error messages.
    fn expected(self) -> &'static str {
        match self {
            Kind::Bool => "a CERBoolean: YES, TRUE, 1, NO, FALSE or 0 (any case, no spaces)",
            Kind::Count => "0 or a positive decimal integer without leading zeros",
            Kind::BucketId => "a positive decimal integer (not 0) without leading zeros",
            Kind::Response => "`1` or a URL",
            Kind::Url => "a URL (or nothing)",
            Kind::List { trailing: true } => {
                "`;`-separated non-empty items (one final `;` allowed)"
            }
            Kind::List { trailing: false } => "`;`-separated non-empty items",
            Kind::UncPath => "a UNC path `\\\\server\\share…` of at most 260 characters",
        }
    }
}

/// Which files a name may appear in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    Both,
    PolicyOnly,
    StatusOnly,
}

impl Allowed {
    fn admits(self, scope: Scope) -> bool {
        match self {
            Allowed::Both => true,
            Allowed::PolicyOnly => scope == Scope::Policy,
            Allowed::StatusOnly => scope == Scope::Status,
        }
    }
}

/// "Crashes per bucket" when neither status.txt nor policy.txt sets it (MS-CER 2.2.4): the
/// one place cerfs writes this default (the `buckets` view's `cab_limit` is checked
/// against it by a test).
pub const DEFAULT_CRASHES_PER_BUCKET: u64 = 5;

/// Every name, in canonical order: the 2.2.5 ABNF order, then FileTreeRoot (2.2.4).
const KEYS: [(&str, Kind, Allowed); 16] = [
    ("Response", Kind::Response, Allowed::StatusOnly),
    ("Bucket", Kind::BucketId, Allowed::StatusOnly),
    ("iData", Kind::Bool, Allowed::StatusOnly),
    ("MemoryDump", Kind::Bool, Allowed::StatusOnly),
    ("RegKey", Kind::List { trailing: true }, Allowed::StatusOnly),
    ("fDoc", Kind::Bool, Allowed::StatusOnly),
    ("WQL", Kind::List { trailing: false }, Allowed::StatusOnly),
    (
        "GetFile",
        Kind::List { trailing: true },
        Allowed::StatusOnly,
    ),
    (
        "GetFileVersion",
        Kind::List { trailing: true },
        Allowed::StatusOnly,
    ),
    ("Tracking", Kind::Bool, Allowed::Both),
    ("Crashes per bucket", Kind::Count, Allowed::Both),
    ("URLLaunch", Kind::Url, Allowed::Both),
    ("NoSecondLevelCollection", Kind::Bool, Allowed::Both),
    ("NoFileCollection", Kind::Bool, Allowed::Both),
    ("NoExternalURL", Kind::Bool, Allowed::Both),
    ("FileTreeRoot", Kind::UncPath, Allowed::PolicyOnly),
];

/// The names a file of `scope` accepts, in canonical order.
pub fn known_keys(scope: Scope) -> impl Iterator<Item = &'static str> {
    KEYS.iter()
        .filter(move |(_, _, allowed)| allowed.admits(scope))
        .map(|(name, _, _)| *name)
}

/// Position of `key` in the canonical order, `None` for unknown names.
pub fn canonical_rank(key: &str) -> Option<usize> {
    KEYS.iter().position(|(name, _, _)| *name == key)
}

/// Sorts pairs into canonical order (stable; unknown names go last in their given order).
pub fn sort_canonical(pairs: &mut [(String, String)]) {
    pairs.sort_by_key(|(key, _)| canonical_rank(key).unwrap_or(usize::MAX));
}

/// Reads a CERBoolean (`YES`/`TRUE`/`1` or `NO`/`FALSE`/`0`, any case).
pub fn parse_bool(value: &str) -> Option<bool> {
    const TRUE: [&str; 3] = ["YES", "TRUE", "1"];
    const FALSE: [&str; 3] = ["NO", "FALSE", "0"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(value)) {
        Some(true)
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(value)) {
        Some(false)
    } else {
        None
    }
}

/// Decodes ANSI bytes (code page 1252, every byte maps to one character; never fails).
pub fn decode_ansi(bytes: &[u8]) -> String {
    WINDOWS_1252
        .decode_without_bom_handling(bytes)
        .0
        .into_owned()
}

/// Encodes text as ANSI (code page 1252); a character it cannot encode becomes `?`, as
/// Windows' own conversion does. Text from [`decode_ansi`] always round-trips exactly.
pub fn encode_ansi(text: &str) -> Vec<u8> {
    let (bytes, _, had_errors) = WINDOWS_1252.encode(text);
    if !had_errors {
        return bytes.into_owned();
    }
    // Slow path, per character: encoding_rs would write HTML character references instead.
    let mut out = Vec::with_capacity(text.len());
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let (bytes, _, had_errors) = WINDOWS_1252.encode(c.encode_utf8(&mut buf));
        if had_errors {
            out.push(b'?');
        } else {
            out.extend_from_slice(&bytes);
        }
    }
    out
}

/// The first character of `text` that code page 1252 cannot encode.
fn first_non_ansi(text: &str) -> Option<char> {
    if !WINDOWS_1252.encode(text).2 {
        return None;
    }
    let mut buf = [0u8; 4];
    text.chars()
        .find(|c| WINDOWS_1252.encode(c.encode_utf8(&mut buf)).2)
}

/// `item (";" item)* [";"]` with non-empty items; the final `;` only when `trailing`.
fn list(input: &str, trailing: bool) -> IResult<&str, ()> {
    let item = take_while1(|c| c != ';');
    let (input, _) = separated_list1(char(';'), item).parse(input)?;
    let (input, _) = if trailing {
        opt(char(';')).map(|_| ()).parse(input)?
    } else {
        (input, ())
    };
    eof.map(|_| ()).parse(input)
}

/// `\\server\share[\more]`: two backslashes, a server name, a backslash, a share name.
fn unc_path(input: &str) -> IResult<&str, ()> {
    let name = || take_while1(|c| c != '\\');
    (tag("\\\\"), name(), char('\\'), name(), rest)
        .map(|_| ())
        .parse(input)
}

/// Checks `value` against `kind` and returns its canonical form.
fn canonical_value(kind: Kind, value: &str) -> Option<String> {
    let ok = match kind {
        Kind::Bool => {
            return parse_bool(value).map(|b| if b { "YES" } else { "NO" }.to_owned());
        }
        Kind::Count => parse_decimal(value.as_bytes(), true).is_ok(),
        Kind::BucketId => parse_decimal(value.as_bytes(), false).is_ok(),
        // The spec only asks a URL to hold no line break; its syntax is the client's business.
        Kind::Response => !value.is_empty(),
        Kind::Url => true,
        Kind::List { trailing } => list(value, trailing).is_ok(),
        Kind::UncPath => value.chars().count() <= 260 && unc_path(value).is_ok(),
    };
    ok.then(|| value.to_owned())
}

/// Validates one pair (as for `cerfs status set Key=Value`) and returns its canonical form:
/// the name as the grammar spells it, booleans as `YES`/`NO`, other values as written.
pub fn parse_pair(scope: Scope, key: &str, value: &str) -> Result<(String, String), SettingError> {
    let Some(&(name, kind, allowed)) = KEYS.iter().find(|(name, _, _)| *name == key) else {
        return Err(
            match KEYS.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(key)) {
                Some(&(expected, _, _)) => SettingError::WrongCase {
                    key: key.to_owned(),
                    expected,
                },
                None => SettingError::UnknownKey(key.to_owned()),
            },
        );
    };
    if !allowed.admits(scope) {
        return Err(SettingError::NotInScope {
            key: name.to_owned(),
            scope,
        });
    }
    let bad = |expected| SettingError::BadValue {
        key: name.to_owned(),
        value: value.to_owned(),
        expected,
    };
    if value.contains(['\r', '\n']) {
        return Err(bad("a value on one line (no CR or LF)"));
    }
    if let Some(ch) = first_non_ansi(value) {
        return Err(SettingError::NotAnsi {
            key: name.to_owned(),
            ch,
        });
    }
    let canonical = canonical_value(kind, value).ok_or_else(|| bad(kind.expected()))?;
    Ok((name.to_owned(), canonical))
}

/// Parses a whole file: ANSI bytes, lines ending in CRLF (a bare LF too, the last line may
/// have none). Blank lines are skipped; every other bad line lands in `rejected`.
pub fn parse(scope: Scope, bytes: &[u8]) -> Parsed {
    let text = decode_ansi(bytes);
    let mut parsed = Parsed::default();
    // Accepted name → its line number, for duplicate reports.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (idx, piece) in text.split_inclusive('\n').enumerate() {
        let line = idx + 1;
        let body = match piece.strip_suffix('\n') {
            Some(b) => b.strip_suffix('\r').unwrap_or(b),
            None => piece,
        };
        if body.is_empty() {
            continue;
        }
        let result = body
            .split_once('=')
            .ok_or(SettingError::MissingEquals)
            .and_then(|(key, value)| parse_pair(scope, key, value))
            .and_then(|(key, value)| match seen.get(&key) {
                Some(&first_line) => Err(SettingError::Duplicate { key, first_line }),
                None => Ok((key, value)),
            });
        match result {
            Ok((key, value)) => {
                seen.insert(key.clone(), line);
                parsed.pairs.push((key, value));
            }
            Err(e) => parsed.rejected.push(Rejected {
                line,
                text: body.to_owned(),
                reason: e.to_string(),
            }),
        }
    }
    sort_canonical(&mut parsed.pairs);
    parsed
}

/// Renders stored pairs as the file a client reads (ANSI, CRLF), in the given order.
pub fn render(pairs: &[(String, String)]) -> Vec<u8> {
    let mut text = String::new();
    for (k, v) in pairs {
        text.push_str(k);
        text.push('=');
        text.push_str(v);
        text.push_str("\r\n");
    }
    encode_ansi(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    const EXAMPLE_4_1: &str = "Tracking=YES\r\n\
        Response=1\r\n\
        Crashes per bucket=100\r\n\
        NoSecondLevelCollection=NO\r\n\
        NoFileCollection=NO\r\n\
        RegKey=HKLM\\Software\\Microsoft\\PCHealth\\ErrorReporting;HKLM\\Software\\Microsoft\\PCHealth\\Test\r\n\
        iData=1\r\n\
        fDoc=0\r\n\
        WQL=select * from Win32_logicaldisk\r\n\
        GetFile=%WINDIR%\\system32\\notepad.exe;%WINDIR%\\system32\\faultrep.dll\r\n\
        GetFileVersion=%WINDIR%\\system32\\notepad.exe;%WINDIR%\\system32\\faultrep.dll\r\n";

    #[test]
    fn example_4_1_status_parses_fully() {
        let p = parse(Scope::Status, EXAMPLE_4_1.as_bytes());
        assert_eq!(p.rejected, vec![]);
        let files = r"%WINDIR%\system32\notepad.exe;%WINDIR%\system32\faultrep.dll";
        assert_eq!(
            p.pairs,
            vec![
                pair("Response", "1"),
                pair("iData", "YES"),
                pair(
                    "RegKey",
                    r"HKLM\Software\Microsoft\PCHealth\ErrorReporting;HKLM\Software\Microsoft\PCHealth\Test"
                ),
                pair("fDoc", "NO"),
                pair("WQL", "select * from Win32_logicaldisk"),
                pair("GetFile", files),
                pair("GetFileVersion", files),
                pair("Tracking", "YES"),
                pair("Crashes per bucket", "100"),
                pair("NoSecondLevelCollection", "NO"),
                pair("NoFileCollection", "NO"),
            ]
        );
    }

    #[test]
    fn booleans_in_any_case() {
        for (v, canon) in [
            ("YES", "YES"),
            ("yes", "YES"),
            ("Yes", "YES"),
            ("TRUE", "YES"),
            ("true", "YES"),
            ("tRuE", "YES"),
            ("1", "YES"),
            ("NO", "NO"),
            ("no", "NO"),
            ("False", "NO"),
            ("0", "NO"),
        ] {
            assert_eq!(
                parse_pair(Scope::Policy, "Tracking", v),
                Ok(pair("Tracking", canon)),
                "{v}"
            );
        }
        for v in ["", " YES", "YES ", "Y", "N", "2", "on", "off", "00", "yes!"] {
            assert!(
                matches!(
                    parse_pair(Scope::Status, "fDoc", v),
                    Err(SettingError::BadValue { .. })
                ),
                "{v}"
            );
        }
        assert_eq!(parse_bool("TrUe"), Some(true));
        assert_eq!(parse_bool("nO"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn no_whitespace_trimming() {
        let p = parse(Scope::Policy, b"Tracking= YES\r\nTracking =YES\r\n");
        assert_eq!(p.pairs, vec![]);
        assert_eq!(p.rejected.len(), 2);
        assert_eq!(p.rejected[0].line, 1);
        assert!(p.rejected[0]
            .reason
            .contains("bad value ` YES` for `Tracking`"));
        assert_eq!(p.rejected[1].reason, "unknown name `Tracking `");
    }

    #[test]
    fn scope_rules() {
        assert_eq!(
            parse_pair(Scope::Status, "FileTreeRoot", r"\\srv\share"),
            Err(SettingError::NotInScope {
                key: "FileTreeRoot".into(),
                scope: Scope::Status
            })
        );
        assert_eq!(
            parse_pair(Scope::Policy, "FileTreeRoot", r"\\srv\share"),
            Ok(pair("FileTreeRoot", r"\\srv\share"))
        );
        for key in [
            "Response",
            "Bucket",
            "iData",
            "MemoryDump",
            "RegKey",
            "fDoc",
            "WQL",
            "GetFile",
            "GetFileVersion",
        ] {
            assert!(
                matches!(
                    parse_pair(Scope::Policy, key, "1"),
                    Err(SettingError::NotInScope { .. })
                ),
                "{key}"
            );
        }
        let p = parse(
            Scope::Status,
            b"FileTreeRoot=\\\\srv\\share\r\nTracking=1\r\n",
        );
        assert_eq!(p.pairs, vec![pair("Tracking", "YES")]);
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(
            p.rejected[0].reason,
            "`FileTreeRoot` is not allowed in status.txt"
        );
        assert_eq!(
            known_keys(Scope::Policy).collect::<Vec<_>>(),
            [
                "Tracking",
                "Crashes per bucket",
                "URLLaunch",
                "NoSecondLevelCollection",
                "NoFileCollection",
                "NoExternalURL",
                "FileTreeRoot"
            ]
        );
        assert_eq!(known_keys(Scope::Status).count(), 15);
    }

    #[test]
    fn numbers() {
        let bad = |k, v| {
            matches!(
                parse_pair(Scope::Status, k, v),
                Err(SettingError::BadValue { .. })
            )
        };
        assert!(bad("Bucket", "0"));
        assert!(bad("Bucket", "01"));
        assert!(bad("Bucket", ""));
        assert!(bad("Bucket", "-1"));
        assert!(bad("Bucket", "99999999999999999999"));
        assert_eq!(
            parse_pair(Scope::Status, "Bucket", "501"),
            Ok(pair("Bucket", "501"))
        );
        assert_eq!(
            parse_pair(Scope::Status, "Crashes per bucket", "0"),
            Ok(pair("Crashes per bucket", "0"))
        );
        assert!(bad("Crashes per bucket", "05"));
        assert!(bad("Crashes per bucket", "5 "));
        let p = parse(Scope::Status, b"Bucket=0\r\n");
        assert_eq!(p.pairs, vec![]);
        assert_eq!(p.rejected[0].text, "Bucket=0");
    }

    #[test]
    fn urls_and_response() {
        assert_eq!(
            parse_pair(Scope::Policy, "URLLaunch", ""),
            Ok(pair("URLLaunch", ""))
        );
        assert_eq!(
            parse_pair(Scope::Status, "URLLaunch", "http://x/?a=b"),
            Ok(pair("URLLaunch", "http://x/?a=b"))
        );
        assert_eq!(
            parse_pair(Scope::Status, "Response", "1"),
            Ok(pair("Response", "1"))
        );
        assert_eq!(
            parse_pair(Scope::Status, "Response", "https://support.example/kb/1"),
            Ok(pair("Response", "https://support.example/kb/1"))
        );
        assert!(parse_pair(Scope::Status, "Response", "").is_err());
        assert!(parse_pair(Scope::Status, "URLLaunch", "http://a\r\nb").is_err());
        assert!(parse_pair(Scope::Status, "URLLaunch", "http://a\rb").is_err());
        // The value may itself hold `=`: only the first one splits.
        let p = parse(Scope::Status, b"URLLaunch=http://x/?a=b&c=d\r\n");
        assert_eq!(p.pairs, vec![pair("URLLaunch", "http://x/?a=b&c=d")]);
    }

    #[test]
    fn lists() {
        let ok = |k, v| parse_pair(Scope::Status, k, v).is_ok();
        assert!(ok("RegKey", "a"));
        assert!(ok("RegKey", "a;b"));
        assert!(ok("RegKey", "a;b;"));
        assert!(!ok("RegKey", ""));
        assert!(!ok("RegKey", ";a"));
        assert!(!ok("RegKey", "a;;b"));
        assert!(!ok("RegKey", "a;;"));
        assert!(!ok("RegKey", ";"));
        assert!(ok("GetFile", "a;"));
        assert!(ok("GetFileVersion", "a;b;"));
        assert!(ok("WQL", "select * from x;select * from y"));
        assert!(!ok("WQL", "select * from x;"));
        assert!(!ok("WQL", ""));
    }

    #[test]
    fn file_tree_root() {
        let ok = |v: &str| parse_pair(Scope::Policy, "FileTreeRoot", v).is_ok();
        assert!(ok(r"\\MyCerServer\CERFileShare"));
        assert!(ok(r"\\MyCerServer\CERFileShare\"));
        assert!(ok(r"\\srv\share\sub\dir"));
        assert!(!ok(""));
        assert!(!ok(r"\\srv"));
        assert!(!ok(r"\\srv\"));
        assert!(!ok(r"\\\share"));
        assert!(!ok(r"C:\cer"));
        assert!(!ok("//srv/share"));
        let long = format!(r"\\srv\{}", "s".repeat(254));
        assert_eq!(long.len(), 260);
        assert!(ok(&long));
        assert!(!ok(&format!("{long}s")));
    }

    #[test]
    fn unknown_keys() {
        assert_eq!(
            parse_pair(Scope::Status, "Foo", "1"),
            Err(SettingError::UnknownKey("Foo".into()))
        );
        assert_eq!(
            parse_pair(Scope::Status, "tracking", "1"),
            Err(SettingError::WrongCase {
                key: "tracking".into(),
                expected: "Tracking"
            })
        );
        // The artefact spelling of the flattened spec is not a name.
        assert!(matches!(
            parse_pair(Scope::Policy, "NoSecond LevelCollection", "1"),
            Err(SettingError::UnknownKey(_))
        ));
        let p = parse(Scope::Policy, b"Foo=1\r\nTracking=YES\r\njunk\r\n");
        assert_eq!(p.pairs, vec![pair("Tracking", "YES")]);
        assert_eq!(
            p.rejected,
            vec![
                Rejected {
                    line: 1,
                    text: "Foo=1".into(),
                    reason: "unknown name `Foo`".into()
                },
                Rejected {
                    line: 3,
                    text: "junk".into(),
                    reason: "no `=` in the line (expected Name=Value)".into()
                },
            ]
        );
    }

    #[test]
    fn duplicates_first_accepted_wins() {
        let p = parse(
            Scope::Status,
            b"Tracking=NO\r\nTracking=YES\r\nBucket=0\r\nBucket=7\r\nBucket=8\r\n",
        );
        assert_eq!(p.pairs, vec![pair("Bucket", "7"), pair("Tracking", "NO")]);
        let lines: Vec<_> = p.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 3, 5]);
        assert_eq!(
            p.rejected[0].reason,
            "`Tracking` already set on line 1; the first one wins"
        );
        assert_eq!(
            p.rejected[2].reason,
            "`Bucket` already set on line 4; the first one wins"
        );
    }

    #[test]
    fn line_endings_and_blank_lines() {
        let crlf = parse(Scope::Status, b"Tracking=YES\r\nBucket=5\r\n");
        let lf = parse(Scope::Status, b"Tracking=YES\nBucket=5\n");
        let no_final = parse(Scope::Status, b"Tracking=YES\r\nBucket=5");
        let blanks = parse(Scope::Status, b"\r\nTracking=YES\r\n\r\n\nBucket=5\r\n\r\n");
        assert_eq!(crlf.rejected, vec![]);
        assert_eq!(
            crlf.pairs,
            vec![pair("Bucket", "5"), pair("Tracking", "YES")]
        );
        assert_eq!(lf, crlf);
        assert_eq!(no_final, crlf);
        assert_eq!(blanks, crlf);
        // Line numbers count blank lines.
        let p = parse(Scope::Status, b"\r\n\r\nFoo=1\r\n");
        assert_eq!(p.rejected[0].line, 3);
        // A stray CR is part of the value, which makes it bad.
        let p = parse(Scope::Status, b"Tracking=YES\r\r\n");
        assert_eq!(p.pairs, vec![]);
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(parse(Scope::Policy, b""), Parsed::default());
    }

    #[test]
    fn cp1252_round_trips() {
        let bytes = b"GetFile=C:\\caf\xe9\\x.txt\r\nURLLaunch=http://x/\x80\r\n";
        let p = parse(Scope::Status, bytes);
        assert_eq!(p.rejected, vec![]);
        assert_eq!(
            p.pairs,
            vec![
                pair("GetFile", "C:\\caf\u{e9}\\x.txt"),
                pair("URLLaunch", "http://x/\u{20ac}"),
            ]
        );
        assert_eq!(render(&p.pairs), bytes.to_vec());
    }

    #[test]
    fn every_byte_round_trips_through_decode_encode() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(encode_ansi(&decode_ansi(&all)), all);
    }

    #[test]
    fn non_ansi_values() {
        assert_eq!(
            parse_pair(Scope::Status, "GetFile", "C:\\\u{65e5}.txt"),
            Err(SettingError::NotAnsi {
                key: "GetFile".into(),
                ch: '\u{65e5}'
            })
        );
        // Rendering never panics; unencodable characters become `?`.
        let out = render(&[pair("GetFile", "a\u{65e5}\u{e9}")]);
        assert_eq!(out, b"GetFile=a?\xe9\r\n".to_vec());
    }

    #[test]
    fn render_parse_is_stable() {
        let messy = b"fDoc=true\nTracking=yes\r\nfoo\r\nCrashes per bucket=7\r\n\
                      NoExternalURL=False\r\nRegKey=a;b;\r\nBucket=12\r\nResponse=http://r\r\n";
        let first = parse(Scope::Status, messy);
        let rendered = render(&first.pairs);
        let second = parse(Scope::Status, &rendered);
        assert_eq!(second.rejected, vec![]);
        assert_eq!(second.pairs, first.pairs);
        assert_eq!(render(&second.pairs), rendered);
        assert_eq!(
            rendered,
            b"Response=http://r\r\nBucket=12\r\nRegKey=a;b;\r\nfDoc=YES\r\nTracking=YES\r\n\
              Crashes per bucket=7\r\nNoExternalURL=NO\r\n"
                .to_vec()
        );
        let example = parse(Scope::Status, EXAMPLE_4_1.as_bytes());
        assert_eq!(
            parse(Scope::Status, &render(&example.pairs)).pairs,
            example.pairs
        );
    }

    #[test]
    fn sort_canonical_orders_known_then_unknown() {
        let mut pairs = vec![
            pair("zz", "1"),
            pair("FileTreeRoot", "x"),
            pair("Tracking", "YES"),
            pair("aa", "2"),
            pair("Response", "1"),
        ];
        sort_canonical(&mut pairs);
        let keys: Vec<_> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["Response", "Tracking", "FileTreeRoot", "zz", "aa"]);
        assert_eq!(canonical_rank("Response"), Some(0));
        assert_eq!(canonical_rank("FileTreeRoot"), Some(15));
        assert_eq!(canonical_rank("nope"), None);
    }

    #[test]
    fn garbage_never_panics() {
        let junk: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let p = parse(Scope::Status, &junk);
        assert!(!p.rejected.is_empty());
        let p = parse(Scope::Policy, b"=\r\n==\r\n=YES\r\n");
        assert_eq!(p.rejected.len(), 3);
    }
}
