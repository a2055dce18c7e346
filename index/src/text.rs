//! Text members of a cab (version.txt, sysdata.xml, manifest.txt, appcompat.txt, Report.wer
//! ...): decoding (UTF-16 with or without BOM, UTF-8, else ANSI code page 1252) and the
//! fields worth a row: `Key: Value` / `Key=Value` lines, XML element texts and attributes.
//!
//! Everything here is linear in the input and bounded by the caller's limits: hostile text
//! can make no more than `max_facts` rows of bounded length.

use cerfs_db::FactRow;
use encoding_rs::{UTF_16BE, UTF_16LE, WINDOWS_1252};

/// Longest key kept for a fact (longer ones are not fields).
const MAX_KEY: usize = 200;
/// Longest value kept for a fact (cut at a character boundary).
const MAX_VALUE: usize = 2000;
/// Deepest XML element path followed.
const MAX_DEPTH: usize = 32;

/// Members known to be text in CER / WER cabs (lower case).
const KNOWN_TEXT: &[&str] = &[
    "version.txt",
    "sysdata.xml",
    "manifest.txt",
    "appcompat.txt",
    "werinternalmetadata.xml",
];

/// Extensions treated as text (lower case, without the dot).
const TEXT_EXTENSIONS: &[&str] = &["txt", "xml", "wer", "log", "ini", "inf", "csv"];

/// Whether a member is a text file worth keeping, from its name.
pub(crate) fn is_text_name(name: &str) -> bool {
    let base = base_name(name).to_ascii_lowercase();
    KNOWN_TEXT.contains(&base.as_str())
        || base
            .rsplit_once('.')
            .is_some_and(|(_, ext)| TEXT_EXTENSIONS.contains(&ext))
}

/// The last component of a member name (cab members may carry `dir\file` paths).
pub(crate) fn base_name(name: &str) -> &str {
    name.rsplit(['\\', '/']).next().unwrap_or(name)
}

/// Decodes a text file: a BOM decides; else UTF-16LE when every other byte is mostly NUL
/// (Windows writes its report files in UTF-16 without a BOM too); else UTF-8 when valid;
/// else code page 1252. NUL characters are dropped.
pub fn decode(bytes: &[u8]) -> String {
    let text = if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        UTF_16LE.decode_without_bom_handling(rest).0.into_owned()
    } else if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        UTF_16BE.decode_without_bom_handling(rest).0.into_owned()
    } else if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        String::from_utf8_lossy(rest).into_owned()
    } else if looks_utf16le(bytes) {
        UTF_16LE.decode_without_bom_handling(bytes).0.into_owned()
    } else {
        match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
                .into_owned(),
        }
    };
    text.replace('\0', "")
}

/// UTF-16LE of mostly ASCII text has a NUL in most odd positions.
fn looks_utf16le(bytes: &[u8]) -> bool {
    let sample = bytes.get(..bytes.len().min(4096)).unwrap_or(bytes);
    let pairs = sample.len() / 2;
    if pairs < 2 {
        return false;
    }
    let nul_high = sample.chunks_exact(2).filter(|p| p[1] == 0).count();
    let nul_low = sample.chunks_exact(2).filter(|p| p[0] == 0).count();
    nul_high * 10 >= pairs * 7 && nul_low * 10 < pairs
}

/// The fields of a decoded text member, at most `max` of them.
pub fn facts(member: &str, text: &str, max: usize) -> Vec<FactRow> {
    let mut out = Vec::new();
    if max == 0 {
        return out;
    }
    if text.trim_start().starts_with('<') {
        xml_facts(member, text, max, &mut out);
    } else {
        line_facts(member, text, max, &mut out);
    }
    out
}

fn push(out: &mut Vec<FactRow>, max: usize, member: &str, key: &str, value: &str) {
    let key = key.trim();
    let value = value.trim();
    if out.len() >= max || key.is_empty() || value.is_empty() || key.len() > MAX_KEY {
        return;
    }
    out.push(FactRow {
        member: member.to_owned(),
        key: key.to_owned(),
        value: cut(value, MAX_VALUE).to_owned(),
    });
}

/// `s` cut to at most `max` bytes, at a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// `Key=Value` (manifest.txt, Report.wer) or `Key: Value` (version.txt) lines.
fn line_facts(member: &str, text: &str, max: usize, out: &mut Vec<FactRow>) {
    for line in text.lines() {
        if out.len() >= max {
            break;
        }
        let eq = line.find('=');
        let colon = line
            .find(": ")
            .or_else(|| line.strip_suffix(':').map(|_| line.len()));
        let split = match (eq, colon) {
            (Some(e), Some(c)) => Some(e.min(c)),
            (e, c) => e.or(c),
        };
        if let Some(at) = split {
            let (key, value) = line.split_at(at);
            let value = value.get(1..).unwrap_or_default();
            push(out, max, member, key, value);
        }
    }
}

/// Element texts (`ROOT/CHILD/LEAF` = text) and attributes (`ROOT/CHILD@NAME` = value) of
/// an XML document, read by a tolerant scanner: it never fails, it stops at what it cannot
/// follow.
fn xml_facts(member: &str, text: &str, max: usize, out: &mut Vec<FactRow>) {
    let mut path: Vec<&str> = Vec::new();
    let mut rest = text;
    while out.len() < max {
        let Some(lt) = rest.find('<') else { break };
        let between = rest.get(..lt).unwrap_or_default();
        if !between.trim().is_empty() && !path.is_empty() {
            push(out, max, member, &path.join("/"), &unescape(between));
        }
        rest = rest.get(lt..).unwrap_or_default();
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after
                .find("-->")
                .map_or("", |e| after.get(e + 3..).unwrap_or_default());
            continue;
        }
        if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>").unwrap_or(after.len());
            if !path.is_empty() {
                push(
                    out,
                    max,
                    member,
                    &path.join("/"),
                    after.get(..end).unwrap_or_default(),
                );
            }
            rest = after.get(end + 3..).unwrap_or_default();
            continue;
        }
        let Some(gt) = rest.find('>') else { break };
        let tag = rest.get(1..gt).unwrap_or_default();
        rest = rest.get(gt + 1..).unwrap_or_default();
        if tag.starts_with('?') || tag.starts_with('!') {
            continue; // declaration, processing instruction, doctype
        }
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim();
            // Pop to the matching element (tolerates unclosed children).
            if let Some(pos) = path.iter().rposition(|p| *p == name) {
                path.truncate(pos);
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name_end = tag.find(|c: char| c.is_whitespace()).unwrap_or(tag.len());
        let name = tag.get(..name_end).unwrap_or_default();
        if name.is_empty() {
            continue;
        }
        let here = if path.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", path.join("/"))
        };
        for (attr, value) in attributes(tag.get(name_end..).unwrap_or_default()) {
            push(
                out,
                max,
                member,
                &format!("{here}@{attr}"),
                &unescape(value),
            );
        }
        if !self_closing && path.len() < MAX_DEPTH {
            path.push(name);
        }
    }
}

/// `name="value"` / `name='value'` pairs of a tag.
fn attributes(mut s: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        let Some(eq) = s.find('=') else { break };
        let name = s.get(..eq).unwrap_or_default().trim();
        let after = s.get(eq + 1..).unwrap_or_default().trim_start();
        let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            break;
        };
        let body = after.get(1..).unwrap_or_default();
        let Some(end) = body.find(quote) else { break };
        if !name.is_empty() && !name.contains(char::is_whitespace) {
            out.push((name, body.get(..end).unwrap_or_default()));
        }
        s = body.get(end + 1..).unwrap_or_default();
    }
    out
}

/// The five predefined entities and numeric character references.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        let after = rest.get(amp + 1..).unwrap_or_default();
        let semi = after.find(';').filter(|i| *i <= 10);
        let decoded = semi.and_then(|semi| {
            let ent = after.get(..semi)?;
            let c = match ent {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                _ => {
                    let n = if let Some(hex) = ent.strip_prefix("#x").or(ent.strip_prefix("#X")) {
                        u32::from_str_radix(hex, 16).ok()?
                    } else {
                        ent.strip_prefix('#')?.parse().ok()?
                    };
                    char::from_u32(n)?
                }
            };
            Some((c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = after.get(semi + 1..).unwrap_or_default();
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn utf16le(s: &str, bom: bool) -> Vec<u8> {
        let mut out = if bom { vec![0xFF, 0xFE] } else { Vec::new() };
        for u in s.encode_utf16() {
            out.extend_from_slice(&u.to_le_bytes());
        }
        out
    }

    #[test]
    fn decodes_utf16_with_and_without_bom_utf8_and_ansi() {
        assert_eq!(decode(&utf16le("OS=5.1\r\n", true)), "OS=5.1\r\n");
        assert_eq!(decode(&utf16le("Server=watson", false)), "Server=watson");
        assert_eq!(decode("café".as_bytes()), "café");
        assert_eq!(decode(b"caf\xe9 \x80"), "café €");
        assert_eq!(decode(b""), "");
    }

    #[test]
    fn key_value_and_colon_lines() {
        let text = "Windows NT Version 5.1 Build: 2600 Service Pack 2\r\n\
                    Product (0x1): Windows XP Professional\r\nno separator here\r\n\
                    Server=watson.microsoft.com\r\nEmpty=\r\n";
        let f = facts("version.txt", text, 100);
        let pairs: Vec<(&str, &str)> = f.iter().map(|f| (&*f.key, &*f.value)).collect();
        assert_eq!(
            pairs,
            [
                ("Windows NT Version 5.1 Build", "2600 Service Pack 2"),
                ("Product (0x1)", "Windows XP Professional"),
                ("Server", "watson.microsoft.com"),
            ]
        );
        assert_eq!(facts("m.txt", text, 1).len(), 1);
    }

    #[test]
    fn xml_texts_and_attributes() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r\n<!-- c -->\
                   <SYSTEMINFO><SYSTEM><OSVER>5.1.2600 2.0.0.0</OSVER>\
                   <OSLANGUAGE>1033</OSLANGUAGE></SYSTEM>\
                   <EXE NAME=\"app.exe\" FILTER='GRABMI_FILTER_THISFILEONLY' SIZE=\"4&amp;2\"/>\
                   <NOTE><![CDATA[a <b>]]></NOTE><BAD attr=unquoted>x &#65;&#x42; &zz;</BAD>";
        let f = facts("sysdata.xml", xml, 100);
        let pairs: Vec<(&str, &str)> = f.iter().map(|f| (&*f.key, &*f.value)).collect();
        assert_eq!(
            pairs,
            [
                ("SYSTEMINFO/SYSTEM/OSVER", "5.1.2600 2.0.0.0"),
                ("SYSTEMINFO/SYSTEM/OSLANGUAGE", "1033"),
                ("SYSTEMINFO/EXE@NAME", "app.exe"),
                ("SYSTEMINFO/EXE@FILTER", "GRABMI_FILTER_THISFILEONLY"),
                ("SYSTEMINFO/EXE@SIZE", "4&2"),
                ("SYSTEMINFO/NOTE", "a <b>"),
                ("SYSTEMINFO/BAD", "x AB &zz;"),
            ]
        );
    }

    #[test]
    fn hostile_xml_is_bounded_and_never_fails() {
        let deep = "<a>".repeat(10_000) + "x";
        assert!(facts("d.xml", &deep, 50).len() <= 1);
        let many = "<e k=\"v\"/>".repeat(10_000);
        assert_eq!(facts("m.xml", &many, 50).len(), 50);
        for s in ["<", "<a", "<a b=\"", "<!--", "<![CDATA[", "</>", "<a></b>"] {
            let _ = facts("x.xml", s, 10);
        }
    }

    #[test]
    fn text_names() {
        assert!(is_text_name("VERSION.TXT"));
        assert!(is_text_name("sub\\sysdata.xml"));
        assert!(is_text_name("Report.wer"));
        assert!(!is_text_name("mini.dmp"));
        assert!(!is_text_name("notes"));
    }
}
