//! Property tests of the [MS-CER2] formats: the level-1 answer (render → parse gives the
//! answer back; parse never panics) and the WERREPORT XML (a report written from values
//! parses back to those values in every encoding a client uses; arbitrary bytes never make
//! the parser panic; every parsed report maps to a bucket path a CER 1.0 client can use).

use cerfs_fs_core::settings_file::decode_ansi;
use cerfs_fs_core::share_path;
use cerfs_http::{map_report, parse_report, Level1Answer};
use proptest::prelude::*;

/// ANSI text without CR or LF, not starting with a space (the parser trims those).
fn answer_text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 1..40).prop_filter_map("blank", |mut b| {
        b.retain(|c| !matches!(c, b'\r' | b'\n'));
        while b.first() == Some(&b' ') {
            b.remove(0);
        }
        (!b.is_empty()).then(|| decode_ansi(&b))
    })
}

/// `item (";" item)*` with non-empty ANSI items.
fn answer_list() -> impl Strategy<Value = String> {
    prop::collection::vec(answer_text(), 1..4).prop_filter_map("empty item", |items| {
        let items: Vec<String> = items.into_iter().map(|i| i.replace(';', "_")).collect();
        let v = items.join(";");
        (!v.starts_with(' ')).then_some(v)
    })
}

fn level1_answer() -> impl Strategy<Value = Level1Answer> {
    (
        (
            prop::option::of(prop_oneof![Just("1".to_owned()), answer_text()]),
            1u64..,
            1u64..,
            any::<bool>(),
            prop::option::of(any::<bool>()),
            prop::option::of(answer_list()),
        ),
        (
            prop::option::of(any::<bool>()),
            prop::option::of(answer_list()),
            prop::option::of(answer_list()),
            prop::option::of(answer_list()),
            prop::option::of(answer_text()),
            prop::option::of(answer_list()),
        ),
    )
        .prop_map(
            |(
                (response, bucket, bucket_table, idata, memory_dump, reg_key),
                (fdoc, wql, get_file, get_file_version, dump_file, reg_tree),
            )| Level1Answer {
                response,
                bucket,
                bucket_table,
                idata,
                memory_dump,
                reg_key,
                fdoc,
                wql,
                get_file,
                get_file_version,
                dump_file,
                reg_tree,
            },
        )
}

/// Arbitrary bytes, biased towards the answer grammar's characters.
fn answer_soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"Bucket=".to_vec()),
        Just(b"BucketTable=".to_vec()),
        Just(b"iData=".to_vec()),
        Just(b"Response = ".to_vec()),
        Just(b"RegKey=".to_vec()),
        Just(b"DumpFile=".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b";".to_vec()),
        Just(b"1".to_vec()),
        Just(b"0".to_vec()),
        prop::collection::vec(any::<u8>(), 0..8),
    ];
    prop::collection::vec(token, 0..30).prop_map(|t| t.concat())
}

proptest! {
    #[test]
    fn answer_render_then_parse_gives_back_the_answer(a in level1_answer()) {
        let bytes = a.render();
        prop_assert_eq!(Level1Answer::parse(&bytes), Ok(a));
    }

    #[test]
    fn answer_parse_never_panics_and_accepted_answers_round_trip(bytes in answer_soup()) {
        if let Ok(a) = Level1Answer::parse(&bytes) {
            // An answer without BucketTable= renders BucketTable=0, which the grammar refuses.
            if a.bucket_table != 0 {
                prop_assert_eq!(Level1Answer::parse(&a.render()), Ok(a));
            }
        }
    }

    #[test]
    fn answer_parse_of_random_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Level1Answer::parse(&bytes);
    }
}

// ---------------------------------------------------------------------------------------
// WERREPORT
// ---------------------------------------------------------------------------------------

/// Values of one report, as a client would put them in the XML.
#[derive(Debug, Clone)]
struct Values {
    machine: String,
    os: String,
    lcid: u32,
    user: String,
    app_name: String,
    app_path: String,
    company: Option<String>,
    report_type: u32,
    event_type: String,
    friendly: Option<String>,
    filetime: u64,
    params: Vec<(String, String)>,
    files: Vec<(String, Option<u32>)>,
}

/// Attribute text: letters, digits, XML's special characters, non-ASCII, no whitespace
/// but single spaces inside (attribute-value normalisation would change the others).
fn attr(non_blank: bool) -> impl Strategy<Value = String> {
    "[A-Za-z0-9 &<>\"'\\\\.:_é€中😀-]{0,24}".prop_filter("blank or unnormalised", move |s| {
        !(non_blank && s.trim().is_empty())
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn values() -> impl Strategy<Value = Values> {
    (
        (
            attr(true),
            attr(true),
            any::<u32>(),
            attr(false),
            attr(true),
            attr(false),
            prop::option::of(attr(false)),
        ),
        (
            0u32..10,
            prop_oneof![
                Just("APPCRASH".to_owned()),
                Just("BlueScreen".to_owned()),
                attr(true)
            ],
            prop::option::of(attr(false)),
            // 1601-01-01 .. roughly 2200.
            0u64..190_000_000_000_000_000,
            prop::collection::vec((attr(false), attr(false)), 1..10),
            prop::collection::vec((attr(true), prop::option::of(0u32..5)), 0..4),
        ),
    )
        .prop_map(
            |(
                (machine, os, lcid, user, app_name, app_path, company),
                (report_type, event_type, friendly, filetime, params, files),
            )| Values {
                machine,
                os,
                lcid,
                user,
                app_name,
                app_path,
                company,
                report_type,
                event_type,
                friendly,
                filetime,
                params,
                files,
            },
        )
}

/// The report as a client writes it.
fn render(v: &Values) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r\n<WERREPORT>\r\n");
    x += &format!(
        "<MACHINEINFO machinename=\"{}\" os=\"{}\" lcid=\"{}\"/>\r\n",
        escape(&v.machine),
        escape(&v.os),
        v.lcid
    );
    x += &format!("<USERINFO username=\"{}\"/>\r\n", escape(&v.user));
    x += &format!(
        "<APPLICATIONINFO appname=\"{}\" apppath=\"{}\"{}/>\r\n",
        escape(&v.app_name),
        escape(&v.app_path),
        v.company
            .as_ref()
            .map(|c| format!(" appcompany=\"{}\"", escape(c)))
            .unwrap_or_default()
    );
    x += &format!(
        "<EVENTINFO reporttype=\"{}\" eventtime=\"{}\" eventtype=\"{}\"{}/>\r\n",
        v.report_type,
        v.filetime,
        escape(&v.event_type),
        v.friendly
            .as_ref()
            .map(|f| format!(" friendlyeventname=\"{}\"", escape(f)))
            .unwrap_or_default()
    );
    x += "<SIGNATURE>\r\n";
    for (i, (name, value)) in v.params.iter().enumerate() {
        x += &format!(
            "<PARAMETER id=\"{i}\" name=\"{}\" value=\"{}\"/>\r\n",
            escape(name),
            escape(value)
        );
    }
    x += "</SIGNATURE>\r\n<FILES>\r\n";
    for (name, ty) in &v.files {
        let ty = ty.map(|t| format!(" filetype=\"{t}\"")).unwrap_or_default();
        x += &format!("<FILE{ty} filename=\"{}\"/>\r\n", escape(name));
    }
    x += "</FILES>\r\n</WERREPORT>\r\n";
    x
}

fn utf16(text: &str, le: bool, bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if bom {
        out.extend_from_slice(if le { &[0xFF, 0xFE] } else { &[0xFE, 0xFF] });
    }
    for unit in text.encode_utf16() {
        out.extend_from_slice(&if le {
            unit.to_le_bytes()
        } else {
            unit.to_be_bytes()
        });
    }
    out
}

proptest! {
    #[test]
    fn werreport_written_then_parsed_gives_back_the_values(
        v in values(),
        encoding in 0usize..5,
    ) {
        let xml = render(&v);
        let body = match encoding {
            0 => xml.clone().into_bytes(),
            1 => [&[0xEF, 0xBB, 0xBF][..], xml.as_bytes()].concat(),
            2 => utf16(&xml, true, true),
            3 => utf16(&xml, true, false),
            _ => utf16(&xml, false, true),
        };
        let r = parse_report(&body).map_err(|e| TestCaseError::fail(format!("{e}\n{xml}")))?;
        prop_assert_eq!(&r.machine, &v.machine);
        prop_assert_eq!(&r.os_version, &v.os);
        prop_assert_eq!(r.lcid, v.lcid);
        prop_assert_eq!(&r.user, &v.user);
        prop_assert_eq!(&r.app_name, &v.app_name);
        prop_assert_eq!(&r.app_path, &v.app_path);
        prop_assert_eq!(&r.company, &v.company);
        prop_assert_eq!(r.report_type, i64::from(v.report_type));
        prop_assert_eq!(&r.event_type, &v.event_type);
        prop_assert_eq!(&r.friendly_event_name, &v.friendly);
        prop_assert_eq!(r.event_filetime, v.filetime);
        let params: Vec<(String, String)> =
            r.params.iter().map(|p| (p.name.clone(), p.value.clone())).collect();
        prop_assert_eq!(params, v.params.clone());
        let ids: Vec<Option<String>> = r.params.iter().map(|p| p.id.clone()).collect();
        let expected: Vec<Option<String>> = (0..v.params.len()).map(|i| Some(i.to_string())).collect();
        prop_assert_eq!(ids, expected);
        let files: Vec<(String, Option<i64>)> =
            r.files.iter().map(|f| (f.name.clone(), f.file_type)).collect();
        let expected: Vec<(String, Option<i64>)> =
            v.files.iter().map(|(n, t)| (n.clone(), t.map(i64::from))).collect();
        prop_assert_eq!(files, expected);
        check_mapping(&r)?;
    }

    #[test]
    fn werreport_parse_of_random_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(r) = parse_report(&bytes) {
            check_mapping(&r)?;
        }
    }

    #[test]
    fn werreport_parse_of_mangled_reports_never_panics(
        v in values(),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        utf16le in any::<bool>(),
    ) {
        // A valid report with a few bytes overwritten: the parser must answer, not panic.
        let xml = render(&v);
        let mut body = if utf16le { utf16(&xml, true, true) } else { xml.into_bytes() };
        for (at, byte) in cuts {
            let i = at.index(body.len());
            body[i] = byte;
        }
        if let Ok(r) = parse_report(&body) {
            check_mapping(&r)?;
        }
    }
}

/// Every report maps to a bucket whose components are names R3 admits, within R4.
fn check_mapping(r: &cerfs_http::WerReport) -> Result<(), TestCaseError> {
    let m = map_report(r);
    prop_assert!(!m.components.is_empty());
    for c in &m.components {
        prop_assert!(
            share_path::check_component(c.as_bytes()).is_ok(),
            "component {:?} of {:?} is not an R3 name",
            c,
            m.components
        );
    }
    // `\cabs\<sub>\<guid>.cab` must fit the 260-character client path.
    let guid = "01234567-89ab-cdef-0123-456789abcdef";
    let cab = cerfs_http::bucket::cab_name(guid);
    let parts: Vec<&str> = std::iter::once("cabs")
        .chain(m.components.iter().map(String::as_str))
        .chain(std::iter::once(cab.as_str()))
        .collect();
    prop_assert!(
        share_path::client_path_len(parts.iter().copied()) <= share_path::MAX_CLIENT_PATH,
        "{:?} is longer than 260 characters",
        parts
    );
    Ok(())
}
