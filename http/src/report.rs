//! The level-1 report: the WERREPORT XML a client POSTs to `/stage2.htm` ([MS-CER2] 4.3,
//! 4.4), decoded from UTF-16 or UTF-8, parsed with quick-xml and validated.

use cerfs_db::{NewReport, ParamKind, ReportFile, ReportParam};
use encoding_rs::{Encoding, UTF_16BE, UTF_16LE};
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// At most this many signature parameters are accepted (real reports have about ten).
pub const MAX_PARAMS: usize = 256;
/// At most this many FILE elements are accepted.
pub const MAX_FILES: usize = 1024;

/// FILETIME of 1970-01-01T00:00:00Z (100 ns ticks since 1601-01-01).
const FILETIME_UNIX_EPOCH: i128 = 116_444_736_000_000_000;

/// Why a level-1 report was refused. Every message is one line, meant for the client's
/// administrator (it is the body of the 400 answer) and for the server's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The body is empty.
    #[error("the report is empty")]
    Empty,
    /// The bytes are not valid in the encoding they announce (or that was guessed).
    #[error("the report is not valid {encoding}: {detail}")]
    Encoding {
        /// `UTF-16LE`, `UTF-16BE` or `UTF-8`.
        encoding: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The text is not well-formed XML.
    #[error("malformed XML near character {position}: {detail}")]
    Xml {
        /// Where the parser stopped (bytes into the decoded text, as UTF-8).
        position: u64,
        /// The parser's complaint.
        detail: String,
    },
    /// The root element is not WERREPORT.
    #[error("the root element is <{0}>, expected <WERREPORT>")]
    NotWerReport(String),
    /// A required element is missing.
    #[error("<{0}> is missing")]
    MissingElement(&'static str),
    /// A required attribute is missing.
    #[error("<{element}> has no {attribute}= attribute")]
    MissingAttribute {
        /// The element.
        element: &'static str,
        /// The attribute.
        attribute: &'static str,
    },
    /// An attribute value does not fit its syntax.
    #[error("<{element}> {attribute}={value:?} is not {expected}")]
    BadAttribute {
        /// The element.
        element: &'static str,
        /// The attribute.
        attribute: &'static str,
        /// The value as sent (cut to 80 characters).
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// An element that may appear once appears again.
    #[error("<{0}> appears more than once")]
    Duplicate(&'static str),
    /// SIGNATURE holds no PARAMETER (kernel faults may carry SECONDARYPARAMETERs only).
    #[error("<SIGNATURE> holds no <PARAMETER> element")]
    NoParameters,
    /// Too many parameters or files.
    #[error("more than {limit} <{element}> elements")]
    TooMany {
        /// The element.
        element: &'static str,
        /// The limit.
        limit: usize,
    },
}

/// A validated level-1 report: exactly the fields the store records.
pub type WerReport = NewReport;

/// What the bucket mapping asks of a report.
pub trait WerReportExt {
    /// Whether this is a kernel fault (`eventtype="BlueScreen"`, any case).
    fn is_kernel_fault(&self) -> bool;
    /// The PARAMETER values, in document order.
    fn primary_values(&self) -> impl Iterator<Item = &str>;
}

impl WerReportExt for WerReport {
    fn is_kernel_fault(&self) -> bool {
        self.event_type.eq_ignore_ascii_case("BlueScreen")
    }

    fn primary_values(&self) -> impl Iterator<Item = &str> {
        self.params
            .iter()
            .filter(|p| p.kind == ParamKind::Primary)
            .map(|p| p.value.as_str())
    }
}

/// Decodes a level-1 body: a byte order mark decides (UTF-16LE, UTF-16BE, UTF-8); without
/// one, a body starting with `<` followed by a zero byte is UTF-16LE (what Windows sends),
/// a zero byte then `<` UTF-16BE, anything else UTF-8. Malformed sequences are refused,
/// never replaced.
pub fn decode_body(body: &[u8]) -> Result<String, ReportError> {
    if body.is_empty() {
        return Err(ReportError::Empty);
    }
    let (encoding, text): (&'static Encoding, &[u8]) = match body {
        [0xFF, 0xFE, rest @ ..] => (UTF_16LE, rest),
        [0xFE, 0xFF, rest @ ..] => (UTF_16BE, rest),
        [0xEF, 0xBB, 0xBF, rest @ ..] => return utf8(rest),
        [a, 0, ..] if *a != 0 => (UTF_16LE, body),
        [0, b, ..] if *b != 0 => (UTF_16BE, body),
        _ => return utf8(body),
    };
    let name = if encoding == UTF_16LE {
        "UTF-16LE"
    } else {
        "UTF-16BE"
    };
    if text.len() % 2 != 0 {
        return Err(ReportError::Encoding {
            encoding: name,
            detail: format!("odd number of bytes ({})", text.len()),
        });
    }
    match encoding.decode_without_bom_handling_and_without_replacement(text) {
        Some(decoded) => Ok(decoded.into_owned()),
        None => Err(ReportError::Encoding {
            encoding: name,
            detail: "unpaired surrogate".into(),
        }),
    }
}

fn utf8(bytes: &[u8]) -> Result<String, ReportError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|e| ReportError::Encoding {
            encoding: "UTF-8",
            detail: format!("invalid byte sequence at byte {}", e.valid_up_to()),
        })
}

/// Decodes, parses and validates a level-1 body.
pub fn parse_report(body: &[u8]) -> Result<WerReport, ReportError> {
    let text = decode_body(body)?;
    parse_xml(&text)
}

/// Where the parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// Inside WERREPORT.
    Root,
    /// Inside SIGNATURE.
    Signature,
    /// Inside FILES.
    Files,
    /// Inside anything else (ignored).
    Other,
}

/// The attributes of one element, unescaped and normalised.
struct Attrs(Vec<(String, String)>);

impl Attrs {
    fn of(e: &BytesStart<'_>, position: u64) -> Result<Attrs, ReportError> {
        let xml = |detail: String| ReportError::Xml { position, detail };
        let mut out = Vec::new();
        for attr in e.attributes() {
            let attr = attr.map_err(|err| xml(err.to_string()))?;
            let key = attr.key.as_ref().to_owned();
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| xml(err.to_string()))?;
            out.push((key, value.into_owned()));
        }
        Ok(Attrs(out))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(
        &self,
        element: &'static str,
        attribute: &'static str,
    ) -> Result<&str, ReportError> {
        self.get(attribute)
            .ok_or(ReportError::MissingAttribute { element, attribute })
    }

    /// A required attribute that must not be empty (or blank).
    fn non_empty(
        &self,
        element: &'static str,
        attribute: &'static str,
    ) -> Result<String, ReportError> {
        let v = self.required(element, attribute)?;
        if v.trim().is_empty() {
            return Err(bad(element, attribute, v, "a non-empty value"));
        }
        Ok(v.to_owned())
    }
}

fn bad(
    element: &'static str,
    attribute: &'static str,
    value: &str,
    expected: &'static str,
) -> ReportError {
    ReportError::BadAttribute {
        element,
        attribute,
        value: value.chars().take(80).collect(),
        expected,
    }
}

/// A decimal number: ASCII digits only (no sign, no spaces), at most `max`.
fn decimal(value: &str, max: u64) -> Option<u64> {
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u64>().ok().filter(|v| *v <= max)
}

/// A FILETIME as ISO-8601 UTC with milliseconds (`2008-03-11T16:53:37.904Z`); `None` outside
/// the years 1601-9999.
pub fn filetime_to_iso(filetime: u64) -> Option<String> {
    let nanos = (i128::from(filetime) - FILETIME_UNIX_EPOCH) * 100;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    if !(1601..=9999).contains(&t.year()) {
        return None;
    }
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    ))
}

/// The elements of WERREPORT that may appear once, as they are filled in.
#[derive(Default)]
struct Seen {
    machine: Option<(String, String, u32)>,
    user: Option<String>,
    app: Option<(String, String, Option<String>)>,
    event: Option<(i64, String, Option<String>, u64, String)>,
    signature: bool,
    files: bool,
    params: Vec<ReportParam>,
    file_list: Vec<ReportFile>,
}

fn once<T>(slot: &mut Option<T>, element: &'static str, value: T) -> Result<(), ReportError> {
    if slot.is_some() {
        return Err(ReportError::Duplicate(element));
    }
    *slot = Some(value);
    Ok(())
}

/// Parses and validates the decoded XML text.
pub fn parse_xml(text: &str) -> Result<WerReport, ReportError> {
    // XML 1.0 allows no control character but TAB, CR and LF, in any form.
    if let Some((at, c)) = text
        .char_indices()
        .find(|(_, c)| (*c as u32) < 0x20 && !matches!(c, '\t' | '\r' | '\n'))
    {
        return Err(ReportError::Xml {
            position: at as u64,
            detail: format!("control character U+{:04X} is not allowed in XML", c as u32),
        });
    }
    let mut reader = Reader::from_str(text);
    {
        let config = reader.config_mut();
        config.trim_text(true);
        config.check_end_names = true;
        config.expand_empty_elements = false;
        config.check_comments = true;
    }
    let mut stack: Vec<Ctx> = Vec::new();
    let mut root_done = false;
    let mut seen = Seen::default();
    loop {
        let event = reader.read_event().map_err(|e| ReportError::Xml {
            position: reader.error_position(),
            detail: e.to_string(),
        })?;
        let position = reader.buffer_position();
        let outside = |what: &str| ReportError::Xml {
            position,
            detail: format!("{what} outside the root element"),
        };
        match event {
            Event::Start(e) => {
                if stack.is_empty() {
                    check_root(&e, position, root_done)?;
                    stack.push(Ctx::Root);
                } else {
                    let ctx = element(&e, position, &stack, &mut seen)?;
                    stack.push(ctx);
                }
            }
            Event::Empty(e) => {
                if stack.is_empty() {
                    check_root(&e, position, root_done)?;
                    root_done = true;
                } else {
                    element(&e, position, &stack, &mut seen)?;
                }
            }
            Event::End(_) => {
                stack.pop();
                if stack.is_empty() {
                    root_done = true;
                }
            }
            Event::Text(t) if stack.is_empty() && !t.as_ref().trim().is_empty() => {
                return Err(outside("text"));
            }
            Event::CData(_) | Event::GeneralRef(_) if stack.is_empty() => {
                return Err(outside("text"));
            }
            Event::DocType(_) => {
                return Err(ReportError::Xml {
                    position,
                    detail: "a DOCTYPE is not accepted".into(),
                });
            }
            Event::Eof => break,
            // Declarations, comments, processing instructions, text inside elements.
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(ReportError::Xml {
            position: text.len() as u64,
            detail: "the document ends inside an element".into(),
        });
    }
    if !root_done {
        return Err(ReportError::MissingElement("WERREPORT"));
    }
    finish(seen)
}

/// The root element: WERREPORT, and only one.
fn check_root(e: &BytesStart<'_>, position: u64, root_done: bool) -> Result<(), ReportError> {
    if root_done {
        return Err(ReportError::Xml {
            position,
            detail: "a second root element".into(),
        });
    }
    let name = e.name().as_ref().to_owned();
    if name != "WERREPORT" {
        return Err(ReportError::NotWerReport(name.chars().take(80).collect()));
    }
    Ok(())
}

/// Handles one element below the root; returns the context its children are in.
fn element(
    e: &BytesStart<'_>,
    position: u64,
    stack: &[Ctx],
    seen: &mut Seen,
) -> Result<Ctx, ReportError> {
    let parent = stack.last().copied().unwrap_or(Ctx::Other);
    let name = e.name();
    let name = name.as_ref();
    match (parent, name) {
        (Ctx::Root, "MACHINEINFO") => {
            let a = Attrs::of(e, position)?;
            let machine = a.non_empty("MACHINEINFO", "machinename")?;
            let os = a.non_empty("MACHINEINFO", "os")?;
            let lcid_text = a.required("MACHINEINFO", "lcid")?;
            let lcid = decimal(lcid_text, u64::from(u32::MAX))
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| bad("MACHINEINFO", "lcid", lcid_text, "a decimal locale id"))?;
            once(&mut seen.machine, "MACHINEINFO", (machine, os, lcid))?;
            Ok(Ctx::Other)
        }
        (Ctx::Root, "USERINFO") => {
            let a = Attrs::of(e, position)?;
            let user = a.required("USERINFO", "username")?.to_owned();
            once(&mut seen.user, "USERINFO", user)?;
            Ok(Ctx::Other)
        }
        (Ctx::Root, "APPLICATIONINFO") => {
            let a = Attrs::of(e, position)?;
            let app = a.non_empty("APPLICATIONINFO", "appname")?;
            let path = a.required("APPLICATIONINFO", "apppath")?.to_owned();
            let company = a.get("appcompany").map(str::to_owned);
            once(&mut seen.app, "APPLICATIONINFO", (app, path, company))?;
            Ok(Ctx::Other)
        }
        (Ctx::Root, "EVENTINFO") => {
            let a = Attrs::of(e, position)?;
            let rt_text = a.required("EVENTINFO", "reporttype")?;
            let report_type = decimal(rt_text, i64::MAX as u64)
                .and_then(|v| i64::try_from(v).ok())
                .ok_or_else(|| bad("EVENTINFO", "reporttype", rt_text, "a decimal number"))?;
            let event_type = a.non_empty("EVENTINFO", "eventtype")?;
            let friendly = a.get("friendlyeventname").map(str::to_owned);
            let et_text = a.required("EVENTINFO", "eventtime")?;
            let expected = "a FILETIME (decimal 100 ns ticks since 1601, up to the year 9999)";
            let filetime = decimal(et_text, i64::MAX as u64)
                .ok_or_else(|| bad("EVENTINFO", "eventtime", et_text, expected))?;
            let iso = filetime_to_iso(filetime)
                .ok_or_else(|| bad("EVENTINFO", "eventtime", et_text, expected))?;
            once(
                &mut seen.event,
                "EVENTINFO",
                (report_type, event_type, friendly, filetime, iso),
            )?;
            Ok(Ctx::Other)
        }
        (Ctx::Root, "SIGNATURE") => {
            if std::mem::replace(&mut seen.signature, true) {
                return Err(ReportError::Duplicate("SIGNATURE"));
            }
            Ok(Ctx::Signature)
        }
        (Ctx::Root, "FILES") => {
            if std::mem::replace(&mut seen.files, true) {
                return Err(ReportError::Duplicate("FILES"));
            }
            Ok(Ctx::Files)
        }
        (Ctx::Signature, "PARAMETER" | "SECONDARYPARAMETER") => {
            let primary = name == "PARAMETER";
            let element = if primary {
                "PARAMETER"
            } else {
                "SECONDARYPARAMETER"
            };
            if seen.params.len() >= MAX_PARAMS {
                return Err(ReportError::TooMany {
                    element,
                    limit: MAX_PARAMS,
                });
            }
            let a = Attrs::of(e, position)?;
            let param = ReportParam {
                kind: if primary {
                    ParamKind::Primary
                } else {
                    ParamKind::Secondary
                },
                id: if primary {
                    a.get("id").map(str::to_owned)
                } else {
                    None
                },
                name: a.required(element, "name")?.to_owned(),
                value: a.required(element, "value")?.to_owned(),
            };
            seen.params.push(param);
            Ok(Ctx::Other)
        }
        (Ctx::Files, "FILE") => {
            if seen.file_list.len() >= MAX_FILES {
                return Err(ReportError::TooMany {
                    element: "FILE",
                    limit: MAX_FILES,
                });
            }
            let a = Attrs::of(e, position)?;
            let name = a.non_empty("FILE", "filename")?;
            let file_type = match a.get("filetype") {
                None => None,
                Some(t) => Some(
                    decimal(t, i64::MAX as u64)
                        .and_then(|v| i64::try_from(v).ok())
                        .ok_or_else(|| bad("FILE", "filetype", t, "a decimal number"))?,
                ),
            };
            seen.file_list.push(ReportFile { name, file_type });
            Ok(Ctx::Other)
        }
        // Unknown elements (and anything inside the known leaves) are ignored.
        _ => Ok(Ctx::Other),
    }
}

fn finish(seen: Seen) -> Result<WerReport, ReportError> {
    let (machine, os_version, lcid) = seen
        .machine
        .ok_or(ReportError::MissingElement("MACHINEINFO"))?;
    let user = seen.user.ok_or(ReportError::MissingElement("USERINFO"))?;
    let (app_name, app_path, company) = seen
        .app
        .ok_or(ReportError::MissingElement("APPLICATIONINFO"))?;
    let (report_type, event_type, friendly_event_name, event_filetime, event_time) =
        seen.event.ok_or(ReportError::MissingElement("EVENTINFO"))?;
    if !seen.signature {
        return Err(ReportError::MissingElement("SIGNATURE"));
    }
    let report = WerReport {
        machine,
        os_version,
        lcid,
        user,
        app_name,
        app_path,
        company,
        report_type,
        event_type,
        friendly_event_name,
        event_filetime,
        event_time,
        params: seen.params,
        files: seen.file_list,
    };
    let has_primary = report.params.iter().any(|p| p.kind == ParamKind::Primary);
    // A kernel fault's signature is its bug check (SECONDARYPARAMETERs, [MS-CER2] 4.3);
    // every other event is bucketed by its PARAMETERs.
    let kernel_with_params = report.is_kernel_fault() && !report.params.is_empty();
    if !has_primary && !kernel_with_params {
        return Err(ReportError::NoParameters);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const GENERIC: &str = r#"<?xml version="1.0" encoding="UTF-16"?>
<WERREPORT xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<MACHINEINFO machinename="m" os="6.1" lcid="1033"/>
<USERINFO username="u"/>
<APPLICATIONINFO appname="Test" apppath="E:\tools\wersample.exe" appcompany="T &amp; C"/>
<EVENTINFO reporttype="1" eventtime="128497001160460289" eventtype="MikeTest" friendlyeventname="MikeTest"/>
<SIGNATURE>
<PARAMETER id="0" name="Problem Signature 01" value="1000"/>
<PARAMETER id="1" name="Problem Signature 02" value="a&lt;b&#65;"/>
</SIGNATURE>
</WERREPORT>"#;

    fn utf16le(text: &str, bom: bool) -> Vec<u8> {
        let mut out = if bom { vec![0xFF, 0xFE] } else { Vec::new() };
        for u in text.encode_utf16() {
            out.extend_from_slice(&u.to_le_bytes());
        }
        out
    }

    fn utf16be(text: &str) -> Vec<u8> {
        let mut out = vec![0xFE, 0xFF];
        for u in text.encode_utf16() {
            out.extend_from_slice(&u.to_be_bytes());
        }
        out
    }

    #[test]
    fn every_encoding_decodes_to_the_same_report() {
        let want = parse_report(GENERIC.as_bytes()).unwrap();
        assert_eq!(want.company.as_deref(), Some("T & C"));
        assert_eq!(want.params[1].value, "a<bA");
        assert_eq!(want.event_time, "2008-03-11T09:08:36.046Z");
        assert_eq!(want.event_filetime, 128_497_001_160_460_289);
        let mut bom8 = vec![0xEF, 0xBB, 0xBF];
        bom8.extend_from_slice(GENERIC.as_bytes());
        for body in [
            utf16le(GENERIC, true),
            utf16le(GENERIC, false),
            utf16be(GENERIC),
            bom8,
        ] {
            assert_eq!(parse_report(&body).unwrap(), want);
        }
    }

    #[test]
    fn broken_encodings_are_refused() {
        let mut odd = utf16le(GENERIC, true);
        odd.pop();
        assert!(matches!(
            parse_report(&odd),
            Err(ReportError::Encoding {
                encoding: "UTF-16LE",
                ..
            })
        ));
        let mut lone = vec![0xFF, 0xFE];
        lone.extend_from_slice(&0xD800u16.to_le_bytes());
        lone.extend_from_slice(&utf16le("<a/>", false));
        assert!(matches!(
            parse_report(&lone),
            Err(ReportError::Encoding { .. })
        ));
        let latin1 = GENERIC
            .replace("MikeTest", "M\u{e9}")
            .replace('\u{e9}', "\u{0}");
        let mut bytes = latin1.into_bytes();
        if let Some(b) = bytes.iter_mut().find(|b| **b == 0) {
            *b = 0xE9;
        }
        assert!(matches!(
            parse_report(&bytes),
            Err(ReportError::Encoding {
                encoding: "UTF-8",
                ..
            })
        ));
        assert_eq!(parse_report(b""), Err(ReportError::Empty));
    }

    #[test]
    fn structure_is_validated() {
        let cases: [(&str, &str, ReportError); 8] = [
            ("<USERINFO username=\"u\"/>", "", ReportError::MissingElement("USERINFO")),
            (
                "<MACHINEINFO machinename=\"m\" os=\"6.1\" lcid=\"1033\"/>",
                "<MACHINEINFO machinename=\"m\" os=\"6.1\" lcid=\"x\"/>",
                ReportError::BadAttribute {
                    element: "MACHINEINFO",
                    attribute: "lcid",
                    value: "x".into(),
                    expected: "a decimal locale id",
                },
            ),
            (
                " appcompany=\"T &amp; C\"",
                " appcompany=\"T &amp; C\" appname=\"again\"",
                ReportError::Xml {
                    position: 0,
                    detail: String::new(),
                },
            ),
            (
                "<SIGNATURE>",
                "<SIGNATURE><PARAMETER name=\"x\"/>",
                ReportError::MissingAttribute {
                    element: "PARAMETER",
                    attribute: "value",
                },
            ),
            (
                "eventtime=\"128497001160460289\"",
                "eventtime=\"99999999999999999999\"",
                ReportError::BadAttribute {
                    element: "EVENTINFO",
                    attribute: "eventtime",
                    value: "99999999999999999999".into(),
                    expected: "a FILETIME (decimal 100 ns ticks since 1601, up to the year 9999)",
                },
            ),
            ("</WERREPORT>", "", ReportError::Xml { position: 0, detail: String::new() }),
            ("<USERINFO username=\"u\"/>", "<USERINFO username=\"u\"/><USERINFO username=\"v\"/>", ReportError::Duplicate("USERINFO")),
            (
                "<PARAMETER id=\"0\" name=\"Problem Signature 01\" value=\"1000\"/>\n<PARAMETER id=\"1\" name=\"Problem Signature 02\" value=\"a&lt;b&#65;\"/>",
                "<SECONDARYPARAMETER name=\"x\" value=\"y\"/>",
                ReportError::NoParameters,
            ),
        ];
        for (from, to, want) in cases {
            let doc = GENERIC.replace(from, to);
            assert_ne!(doc, GENERIC, "{from}");
            let got = parse_report(doc.as_bytes()).unwrap_err();
            match (&got, &want) {
                (ReportError::Xml { .. }, ReportError::Xml { .. }) => {}
                _ => assert_eq!(got, want, "{from} -> {to}"),
            }
            assert!(!got.to_string().contains('\n'), "{got}");
        }
        assert!(matches!(
            parse_report(b"<REPORT/>"),
            Err(ReportError::NotWerReport(n)) if n == "REPORT"
        ));
        let two_roots = format!("{GENERIC}<WERREPORT/>");
        assert!(matches!(
            parse_report(two_roots.as_bytes()),
            Err(ReportError::Xml { .. })
        ));
        let dtd = GENERIC.replace("<WERREPORT ", "<!DOCTYPE x [<!ENTITY e \"x\">]><WERREPORT ");
        assert!(matches!(
            parse_report(dtd.as_bytes()),
            Err(ReportError::Xml { .. })
        ));
        let ctl = GENERIC.replace("value=\"1000\"", "value=\"10\u{1}00\"");
        assert!(matches!(
            parse_report(ctl.as_bytes()),
            Err(ReportError::Xml { .. })
        ));
    }

    #[test]
    fn filetimes_convert_to_utc() {
        assert_eq!(
            filetime_to_iso(128_496_996_179_046_077).as_deref(),
            Some("2008-03-11T09:00:17.904Z")
        );
        assert_eq!(
            filetime_to_iso(0).as_deref(),
            Some("1601-01-01T00:00:00.000Z")
        );
        assert_eq!(
            filetime_to_iso(116_444_736_000_000_000).as_deref(),
            Some("1970-01-01T00:00:00.000Z")
        );
        assert_eq!(filetime_to_iso(u64::MAX), None);
    }
}
