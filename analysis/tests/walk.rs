//! Stack walking against references: rust-minidump's own minidump-stackwalk output for
//! `test.dmp` with its symbols; a Microsoft-style symbol server on loopback serving the real
//! PDB and PE of `mini.dmp`'s program; hostile symbol servers; corrupt dumps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use cerfs_analysis::{AnalysisSettings, FetchLimits, Walker};
use cerfs_testkit::{mini_dmp_symbol_server, read_testdata, testdata, SymbolServer};

fn reference() -> String {
    read_testdata("reference/test.dmp-human-symbols.txt")
        .into_iter()
        .map(char::from)
        .collect()
}

fn with_symbols() -> AnalysisSettings {
    AnalysisSettings {
        symbol_paths: vec![testdata().join("symbols")],
        ..AnalysisSettings::default()
    }
}

#[test]
fn the_report_is_what_minidump_stackwalk_prints() {
    let walker = Walker::new(&with_symbols()).unwrap();
    let report = walker
        .report(&read_testdata("minidumps/test.dmp"), true)
        .unwrap();
    assert_eq!(report.trim_end(), reference().trim_end());
}

/// The reference's frames of the crashing thread: (function, file, line, trust).
fn reference_frames() -> Vec<(String, Option<String>, Option<u32>, String)> {
    let text = reference();
    let mut frames = Vec::new();
    let mut lines = text.lines().skip_while(|l| !l.starts_with("Thread 0 "));
    lines.next();
    let mut current: Option<(String, Option<String>, Option<u32>)> = None;
    for line in lines {
        if line.is_empty() {
            break;
        }
        if let Some(found) = line.strip_prefix("    Found by: ") {
            let trust = match found {
                "given as instruction pointer in context" => "context",
                "call frame info" => "cfi",
                "stack scanning" => "scan",
                "previous frame's frame pointer" => "frame_pointer",
                other => other,
            };
            let (f, file, l) = current.take().unwrap();
            frames.push((f, file, l, trust.to_owned()));
        } else if line.len() > 4 && line.as_bytes()[2] == b' ' && !line.starts_with("    ") {
            let body = &line[4..];
            let (function, file, l) = match body.split_once(" [") {
                Some((f, rest)) => {
                    let (file, after) = rest.split_once(" : ").unwrap();
                    let l: u32 = after
                        .split(' ')
                        .next()
                        .unwrap()
                        .trim_end_matches(']')
                        .parse()
                        .unwrap();
                    (f.to_owned(), Some(file.to_owned()), Some(l))
                }
                None => (body.to_owned(), None, None),
            };
            current = Some((function, file, l));
        }
    }
    frames
}

#[test]
fn stored_frames_match_minidump_stackwalk() {
    let walker = Walker::new(&with_symbols()).unwrap();
    let row = walker.walk("test.dmp", &read_testdata("minidumps/test.dmp"));
    assert_eq!(row.error, None);
    assert_eq!(
        row.crash_reason.as_deref(),
        Some("EXCEPTION_ACCESS_VIOLATION_WRITE")
    );
    assert_eq!(row.crash_address, Some(0x45));
    assert_eq!(row.crashing_thread, Some(0));
    let expected = reference_frames();
    assert_eq!(expected.len(), 4, "{expected:?}");
    assert_eq!(row.frames.len(), expected.len());
    for (frame, (function, file, line, trust)) in row.frames.iter().zip(&expected) {
        let shown = match (&frame.module, &frame.function) {
            (Some(m), Some(f)) => format!("{m}!{f}"),
            (Some(m), None) => format!("{m} + {:#x}", frame.module_offset.unwrap()),
            _ => String::new(),
        };
        let shown_function = shown.split(" + ").next().unwrap().to_owned();
        let expected_function = function.split(" + ").next().unwrap().to_owned();
        assert_eq!(shown_function, expected_function);
        let base = frame
            .file
            .as_deref()
            .map(|f| f.rsplit(['\\', '/']).next().unwrap().to_owned());
        assert_eq!(&base, file);
        assert_eq!(&frame.line, line);
        assert_eq!(&frame.trust, trust);
        assert!(frame.crashed);
    }
    assert_eq!(row.signature, "`anonymous namespace'::CrashFunction");
    assert!(row
        .missing_symbols
        .iter()
        .any(|m| m.module == "kernel32.dll"));
}

#[test]
fn without_symbols_frames_keep_module_and_offset() {
    let walker = Walker::new(&AnalysisSettings::default()).unwrap();
    let row = walker.walk("test.dmp", &read_testdata("minidumps/test.dmp"));
    let top = &row.frames[0];
    assert_eq!(top.module.as_deref(), Some("test_app.exe"));
    assert_eq!(top.module_offset, Some(0x429e));
    assert_eq!(top.function, None);
    assert_eq!(
        row.signature.split(" | ").next(),
        Some("test_app.exe@0x429e")
    );
    assert!(row
        .missing_symbols
        .iter()
        .any(|m| m.module == "test_app.exe"
            && m.debug_file == "test_app.pdb"
            && m.debug_id == "5A9832E5287241C1838ED98914E9B7FF1"));
}

#[test]
fn corrupt_dumps_are_flagged_not_fatal() {
    let walker = Walker::new(&AnalysisSettings::default()).unwrap();
    for name in [
        "invalid-range.dmp",
        "invalid-record-count.dmp",
        "invalid-parameter.dmp",
    ] {
        let row = walker.walk(name, &read_testdata(&format!("minidumps/{name}")));
        assert!(!row.signature.is_empty(), "{name}");
        if row.error.is_some() {
            assert!(
                row.signature.starts_with("EMPTY: "),
                "{name}: {}",
                row.signature
            );
        }
    }
    let row = walker.walk("garbage.dmp", b"MDMP\x93\xa7garbage");
    assert!(row.error.is_some());
    assert!(
        row.signature.starts_with("EMPTY: not a readable minidump"),
        "{}",
        row.signature
    );
}

fn windows(name: &str) -> Vec<u8> {
    read_testdata(&format!("windows/{name}"))
}

fn server_settings(url: &str, cache: &std::path::Path) -> AnalysisSettings {
    AnalysisSettings {
        symbol_urls: vec![url.to_owned()],
        symbol_cache: Some(cache.to_path_buf()),
        fetch: FetchLimits {
            timeout: Duration::from_secs(2),
            ..FetchLimits::default()
        },
        ..AnalysisSettings::default()
    }
}

#[test]
fn a_microsoft_symbol_server_pdb_and_pe_symbolicate_and_are_cached() {
    let server = mini_dmp_symbol_server();
    let cache = tempfile::tempdir().unwrap();
    let dump = windows("mini.dmp");
    let walker = Walker::new(&server_settings(&server.url, cache.path())).unwrap();
    let row = walker.walk("mini.dmp", &dump);
    assert_eq!(row.error, None);
    let functions: Vec<&str> = row
        .frames
        .iter()
        .filter_map(|f| f.function.as_deref())
        .collect();
    assert!(
        functions.iter().any(|f| f.contains("crash")),
        "{functions:?}"
    );
    assert!(
        functions.iter().any(|f| f.starts_with("main")),
        "{functions:?}"
    );
    assert!(row
        .frames
        .iter()
        .any(|f| f.file.as_deref().is_some_and(|p| p.ends_with("main.cpp"))));
    assert!(walker.take_fetch_problems().is_empty());
    let first = server.requests();
    assert!(first >= 2, "the PDB and the PE were fetched");
    assert!(cache
        .path()
        .join("crash.pdb/3249D99D0C4049318610F4E4FB0B69361/crash.sym")
        .is_file());
    // A new walker (a new worker process) finds everything in the cache, and remembers
    // what no source had: no request at all.
    let again = Walker::new(&server_settings(&server.url, cache.path())).unwrap();
    let row2 = again.walk("mini.dmp", &dump);
    assert_eq!(row2.signature, row.signature);
    assert_eq!(server.requests(), first, "asked again");
}

#[test]
fn hostile_symbol_servers_are_bounded_and_recorded() {
    let cache = tempfile::tempdir().unwrap();
    let dump = windows("mini.dmp");
    for (server_path, outcome) in [
        ("redirect-loop", "redirects"),
        ("hang", "timeout"),
        ("huge", "too_large"),
    ] {
        let server = SymbolServer::start(HashMap::new());
        let url = format!("{}/{server_path}", server.url);
        let settings = AnalysisSettings {
            symbol_cache: Some(cache.path().join(server_path)),
            ..server_settings(&url, cache.path())
        };
        let walker = Walker::new(&settings).unwrap();
        let started = std::time::Instant::now();
        let row = walker.walk("mini.dmp", &dump);
        assert!(started.elapsed() < Duration::from_secs(60), "{server_path}");
        assert_eq!(row.error, None, "{server_path}");
        assert!(
            !row.frames.is_empty(),
            "{server_path}: frames without symbols"
        );
        let problems = walker.take_fetch_problems();
        assert!(
            problems.iter().any(|p| p.outcome == outcome),
            "{server_path}: {problems:?}"
        );
    }
    // Garbage where the PDB should be: recorded as unreadable, frames still walked.
    let mut files = HashMap::new();
    files.insert(
        "/crash.pdb/3249d99d0c4049318610f4e4fb0b69361/crash.pdb".to_owned(),
        b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0 not really".to_vec(),
    );
    let server = SymbolServer::start(files);
    let walker = Walker::new(&server_settings(&server.url, &cache.path().join("garbage"))).unwrap();
    let row = walker.walk("mini.dmp", &dump);
    assert!(!row.frames.is_empty());
    let problems = walker.take_fetch_problems();
    assert!(
        problems.iter().any(|p| p.outcome == "unreadable"),
        "{problems:?}"
    );
}
