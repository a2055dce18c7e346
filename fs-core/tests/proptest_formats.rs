//! Property tests of the MS-CER 1.0 formats fs-core parses and renders: count.txt,
//! policy.txt / status.txt, crash.log / hits.log lines and share paths.
//!
//! For each format: what the renderer writes parses back to the same value, what the
//! parser accepts renders and parses again to the same value, and no input (arbitrary
//! bytes) makes the parser panic.

use cerfs_db::{Counts, LogFields};
use cerfs_fs_core::settings_file::{self, Scope};
use cerfs_fs_core::{count_file, log_line, share_path};
use proptest::prelude::*;

/// Arbitrary bytes, biased towards the characters the grammars care about (half of them
/// are drawn from those, the rest from all 256 values).
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    const INTERESTING: &[u8] = b"\r\n\t=; 09\\:-";
    prop::collection::vec(any::<(bool, u8)>(), 0..300).prop_map(|v| {
        v.into_iter()
            .map(|(pick, b)| {
                if pick {
                    INTERESTING[usize::from(b) % INTERESTING.len()]
                } else {
                    b
                }
            })
            .collect()
    })
}

/// Counter values with both ends of the range well represented.
fn counter() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(u64::MAX), 0u64..1000, any::<u64>()]
}

/// `Total Hits` values: R6 makes it positive (`%x31-39 *DIGIT`).
fn hits() -> impl Strategy<Value = u64> {
    prop_oneof![Just(1u64), Just(u64::MAX), 1u64..1000, 1u64..]
}

// ---------------------------------------------------------------------------------------
// count.txt
// ---------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn count_render_then_parse_gives_back_the_counts(cabs in counter(), hits in hits()) {
        let c = Counts { cabs_gathered: cabs, total_hits: hits };
        let text = count_file::render(c);
        prop_assert_eq!(count_file::parse(text.as_bytes()), Ok(c));
        // What Linux tools write: bare LF, no final terminator, the lines swapped.
        let lf = format!("Cabs Gathered={cabs}\nTotal Hits={hits}");
        prop_assert_eq!(count_file::parse(lf.as_bytes()), Ok(c));
        let swapped = format!("Total Hits={hits}\r\nCabs Gathered={cabs}\r\n");
        prop_assert_eq!(count_file::parse(swapped.as_bytes()), Ok(c));
    }

    #[test]
    fn count_parse_never_panics_and_accepted_text_round_trips(bytes in hostile_bytes()) {
        if let Ok(c) = count_file::parse(&bytes) {
            prop_assert_eq!(count_file::parse(count_file::render(c).as_bytes()), Ok(c));
        }
    }

    #[test]
    fn count_parse_refuses_any_change_to_a_valid_file(
        cabs in counter(),
        hits in hits(),
        at in any::<prop::sample::Index>(),
        junk in prop_oneof![Just(b' '), Just(b'+'), Just(b'x'), Just(b'\r'), Just(b'\t')],
    ) {
        // One foreign byte inserted anywhere before the final CRLF is never accepted.
        let text = count_file::render(Counts { cabs_gathered: cabs, total_hits: hits });
        let mut bytes = text.into_bytes();
        let pos = at.index(bytes.len() - 2);
        bytes.insert(pos, junk);
        prop_assert!(count_file::parse(&bytes).is_err(), "{:?}", String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn decimal_round_trips(n in any::<u64>()) {
        prop_assert_eq!(count_file::parse_decimal(n.to_string().as_bytes(), true), Ok(n));
        let leading_zero = format!("0{n}");
        prop_assert!(count_file::parse_decimal(leading_zero.as_bytes(), true).is_err());
    }

    #[test]
    fn zero_hits_is_refused(cabs in counter()) {
        let text = format!("Cabs Gathered={cabs}\r\nTotal Hits=0\r\n");
        prop_assert!(count_file::parse(text.as_bytes()).is_err());
    }
}

// ---------------------------------------------------------------------------------------
// policy.txt and status.txt
// ---------------------------------------------------------------------------------------

/// Text of code page 1252 without CR or LF (any byte but those, decoded).
fn ansi_text(min: usize, max: usize, exclude: &'static [u8]) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), min..max).prop_map(move |mut bytes| {
        bytes.retain(|b| !matches!(b, b'\r' | b'\n') && !exclude.contains(b));
        settings_file::decode_ansi(&bytes)
    })
}

/// A `;`-separated list of non-empty items.
fn list(trailing: bool) -> impl Strategy<Value = String> {
    (
        prop::collection::vec(ansi_text(1, 12, b";"), 1..4),
        any::<bool>(),
    )
        .prop_filter_map("empty item", move |(items, end)| {
            if items.iter().any(String::is_empty) {
                return None;
            }
            let mut v = items.join(";");
            if trailing && end {
                v.push(';');
            }
            Some(v)
        })
}

/// A value whose canonical form is itself.
fn same(s: String) -> (String, String) {
    (s.clone(), s)
}

/// A valid value (as written by a client, maybe not canonical) for `key`, with its
/// canonical form.
fn value_for(key: &'static str) -> BoxedStrategy<(String, String)> {
    match key {
        "iData"
        | "MemoryDump"
        | "fDoc"
        | "Tracking"
        | "NoSecondLevelCollection"
        | "NoFileCollection"
        | "NoExternalURL" => prop_oneof![
            Just(("YES", "YES")),
            Just(("true", "YES")),
            Just(("1", "YES")),
            Just(("No", "NO")),
            Just(("FALSE", "NO")),
            Just(("0", "NO")),
        ]
        .prop_map(|(w, c)| (w.to_owned(), c.to_owned()))
        .boxed(),
        "Crashes per bucket" => any::<u64>().prop_map(|n| same(n.to_string())).boxed(),
        "Bucket" => (1u64..).prop_map(|n| same(n.to_string())).boxed(),
        "Response" => prop_oneof![Just("1".to_owned()), ansi_text(1, 40, b"")]
            .prop_filter("non-empty", |v| !v.is_empty())
            .prop_map(same)
            .boxed(),
        "URLLaunch" => ansi_text(0, 40, b"").prop_map(same).boxed(),
        "RegKey" | "GetFile" | "GetFileVersion" => list(true).prop_map(same).boxed(),
        "WQL" => list(false).prop_map(same).boxed(),
        "FileTreeRoot" => (
            "[a-z0-9]{1,15}",
            "[A-Za-z0-9$]{1,12}",
            "(\\\\[a-z]{1,8}){0,3}",
        )
            .prop_map(|(server, share, more)| same(format!("\\\\{server}\\{share}{more}")))
            .boxed(),
        other => panic!("no value strategy for {other}"),
    }
}

/// Some of the names `scope` admits, each with a valid value, in a random order.
fn settings(scope: Scope) -> impl Strategy<Value = Vec<(String, String, String)>> {
    let keys: Vec<&'static str> = settings_file::known_keys(scope).collect();
    let per_key: Vec<BoxedStrategy<Option<(String, String, String)>>> = keys
        .into_iter()
        .map(|k| {
            prop::option::of(value_for(k).prop_map(move |(w, c)| (k.to_owned(), w, c))).boxed()
        })
        .collect();
    per_key
        .prop_map(|v| v.into_iter().flatten().collect::<Vec<_>>())
        .prop_shuffle()
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![Just(Scope::Policy), Just(Scope::Status)]
}

proptest! {
    #[test]
    fn settings_written_then_parsed_gives_canonical_pairs(
        (scope, lines) in scope().prop_flat_map(|s| (Just(s), settings(s))),
        lf in any::<bool>(),
    ) {
        let eol = if lf { "\n" } else { "\r\n" };
        let mut text = String::new();
        for (k, written, _) in &lines {
            text.push_str(&format!("{k}={written}{eol}"));
        }
        let bytes = settings_file::encode_ansi(&text);
        let parsed = settings_file::parse(scope, &bytes);
        prop_assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        let mut expected: Vec<(String, String)> =
            lines.iter().map(|(k, _, c)| (k.clone(), c.clone())).collect();
        settings_file::sort_canonical(&mut expected);
        prop_assert_eq!(&parsed.pairs, &expected);
        // And the canonical rendering parses to the very same pairs.
        let again = settings_file::parse(scope, &settings_file::render(&parsed.pairs));
        prop_assert!(again.rejected.is_empty());
        prop_assert_eq!(again.pairs, expected);
    }

    #[test]
    fn settings_parse_never_panics_and_accepted_pairs_round_trip(
        scope in scope(),
        bytes in hostile_bytes(),
    ) {
        let parsed = settings_file::parse(scope, &bytes);
        let again = settings_file::parse(scope, &settings_file::render(&parsed.pairs));
        prop_assert!(again.rejected.is_empty(), "{:?}", again.rejected);
        prop_assert_eq!(again.pairs, parsed.pairs);
    }

    #[test]
    fn settings_parse_of_key_value_soup_never_panics(
        scope in scope(),
        lines in prop::collection::vec(
            (
                prop::sample::select(vec![
                    "Response", "Bucket", "iData", "MemoryDump", "RegKey", "fDoc", "WQL",
                    "GetFile", "GetFileVersion", "Tracking", "Crashes per bucket",
                    "URLLaunch", "NoSecondLevelCollection", "NoFileCollection",
                    "NoExternalURL", "FileTreeRoot", "tracking", "Unknown", "",
                ]),
                ansi_text(0, 30, b""),
            ),
            0..20,
        ),
    ) {
        let text: String = lines.iter().map(|(k, v)| format!("{k}={v}\r\n")).collect();
        let parsed = settings_file::parse(scope, &settings_file::encode_ansi(&text));
        // Every non-blank line is either accepted or rejected, never lost.
        prop_assert_eq!(parsed.pairs.len() + parsed.rejected.len(), lines.len());
    }

    #[test]
    fn ansi_decode_then_encode_is_the_identity(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(settings_file::encode_ansi(&settings_file::decode_ansi(&bytes)), bytes);
    }
}

// ---------------------------------------------------------------------------------------
// crash.log and hits.log lines
// ---------------------------------------------------------------------------------------

/// A field of 1..=max ANSI characters without TAB, CR or LF.
fn log_field(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 1..=max).prop_filter_map("empty field", |mut b| {
        b.retain(|c| !matches!(c, b'\t' | b'\r' | b'\n'));
        (!b.is_empty()).then(|| settings_file::decode_ansi(&b))
    })
}

fn days_in(month: u32, year: u32) -> u32 {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn log_fields() -> impl Strategy<Value = LogFields> {
    let time = (0u32..24, 0u32..60, 0u32..60).prop_map(|(h, m, s)| format!("{h:02}:{m:02}:{s:02}"));
    let date = (1u32..=12, 0u32..=9999)
        .prop_flat_map(|(m, y)| (Just(m), 1..=days_in(m, y), Just(y)))
        .prop_map(|(m, d, y)| format!("{m:02}-{d:02}-{y:04}"));
    (
        time,
        date,
        log_field(log_line::MAX_MACHINE),
        log_field(log_line::MAX_USER),
        log_field(log_line::MAX_ITEM),
    )
        .prop_map(|(time, date, machine, user, item)| LogFields {
            client_time: format!("{}-{}-{}T{time}", &date[6..10], &date[0..2], &date[3..5]),
            time,
            date,
            machine,
            user,
            item,
        })
}

proptest! {
    #[test]
    fn log_render_then_parse_gives_back_the_fields(f in log_fields()) {
        let bytes = log_line::render(&f);
        prop_assert_eq!(log_line::parse(&bytes), Ok(f.clone()));
        let stored = log_line::to_log_line(&bytes);
        prop_assert_eq!(stored.bytes, bytes);
        prop_assert_eq!(stored.fields, Some(f));
    }

    #[test]
    fn log_parse_never_panics_and_accepted_lines_are_byte_exact(bytes in hostile_bytes()) {
        if let Ok(f) = log_line::parse(&bytes) {
            prop_assert_eq!(log_line::render(&f), bytes.clone());
        }
        // What the store keeps: never loses a byte, always one terminated line.
        let stored = log_line::to_log_line(&bytes);
        prop_assert!(stored.bytes.starts_with(&bytes) || stored.fields.is_some());
        if !bytes.is_empty() {
            prop_assert!(stored.bytes.ends_with(b"\n"));
        }
    }

    #[test]
    fn split_lines_loses_nothing(bytes in hostile_bytes()) {
        let (lines, tail) = log_line::split_lines(&bytes);
        let mut joined: Vec<u8> = lines.concat();
        prop_assert!(lines.iter().all(|l| l.ends_with(b"\n")));
        prop_assert!(!tail.contains(&b'\n'));
        joined.extend_from_slice(tail);
        prop_assert_eq!(joined, bytes);
    }

    #[test]
    fn log_line_with_one_byte_changed_in_a_separator_is_refused(
        f in log_fields(),
        which in 0usize..4,
        junk in prop_oneof![Just(b'\t'), Just(b' '), Just(b'x'), Just(b'\r')],
    ) {
        // Positions of: the first space, the tab before machine, the final CR, the ':'.
        let mut bytes = log_line::render(&f);
        let pos = [8, 20, bytes.len() - 2, 2][which];
        if bytes[pos] != junk {
            bytes[pos] = junk;
            prop_assert!(log_line::parse(&bytes).is_err());
        }
    }
}

// ---------------------------------------------------------------------------------------
// share paths
// ---------------------------------------------------------------------------------------

/// A name R3 admits: ASCII printable, none of `<>:"/\|?*`, not ending in dot or space.
fn good_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_~!@#$%^&()+=,;'\\[\\]{}` .-]{0,30}[A-Za-z0-9_)-]".prop_filter(
        "reserved device name or dot name",
        |n| {
            let base = n.split('.').next().unwrap_or(n).trim_end_matches(' ');
            !share_path::RESERVED_NAMES
                .iter()
                .any(|r| r.eq_ignore_ascii_case(base))
        },
    )
}

proptest! {
    #[test]
    fn check_component_never_panics_and_accepts_only_r3(name in hostile_bytes()) {
        if let Ok(text) = share_path::check_component(&name) {
            prop_assert_eq!(text.as_bytes(), &name[..]);
            prop_assert!(!text.is_empty() && text.is_ascii());
            prop_assert!(!text.bytes().any(|b| b.is_ascii_control()
                || share_path::FORBIDDEN_CHARS.contains(&b)));
            prop_assert!(!text.ends_with(['.', ' ']));
            prop_assert!(text != "." && text != "..");
        }
    }

    #[test]
    fn good_names_are_accepted_as_written(name in good_name()) {
        prop_assert_eq!(share_path::check_component(name.as_bytes()), Ok(name.as_str()));
    }

    #[test]
    fn one_forbidden_byte_makes_a_name_invalid(
        name in good_name(),
        at in any::<prop::sample::Index>(),
        bad in prop::sample::select(b"<>:\"/\\|?*\x00\x01\x1f\x7f\x80\xff".to_vec()),
    ) {
        let mut bytes = name.into_bytes();
        let pos = at.index(bytes.len() + 1);
        bytes.insert(pos, bad);
        prop_assert!(share_path::check_component(&bytes).is_err());
    }

    #[test]
    fn bucket_key_gives_back_its_components(parts in prop::collection::vec(good_name(), 1..7)) {
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let key = share_path::bucket_key(&refs);
        prop_assert_eq!(&key.subpath, &parts.join("\\"));
        let back: Vec<&str> = key.subpath.split('\\').collect();
        prop_assert_eq!(&back, &refs);
        prop_assert_eq!(share_path::client_path_len(refs.iter().copied()), key.subpath.len() + 1);
        match key.kind.as_str() {
            "app" => {
                let app = key.app.clone().expect("app fields");
                prop_assert_eq!(app.to_vec(), parts.clone());
            }
            "blue" | "shutdown" => prop_assert_eq!(parts.len(), 1),
            "generic" => prop_assert!(key.app.is_none()),
            other => prop_assert!(false, "unknown kind {}", other),
        }
    }

    #[test]
    fn r1_subpaths_are_app_buckets(
        app in "[A-Za-z][A-Za-z0-9_]{0,20}",
        app_ver in "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}",
        module in "[A-Za-z][A-Za-z0-9_]{0,20}\\.(exe|dll)",
        mod_ver in "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}",
        offset in prop_oneof!["[0-9a-fA-F]{8}", "[0-9a-fA-F]{16}"],
    ) {
        let parts = [app, app_ver, module, mod_ver, offset];
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let key = share_path::bucket_key(&refs);
        prop_assert_eq!(key.kind.as_str(), "app");
        prop_assert_eq!(key.app, Some(parts.clone()));
    }
}
