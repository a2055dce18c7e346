//! The indexer walks and signs every minidump it finds, in its bounded worker process, and
//! the rows land in the `frames`, `stacks`, `signatures`, `bucket_signatures` and
//! `missing_symbols` views; reindexing after the rules change signs again. On SQLite and on
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use cerfs_analysis::{stored, AnalysisSettings};
use cerfs_db::ReindexFilter;
use cerfs_index::{index_pending, Analysis, IndexerConfig, Worker};
use cerfs_testkit::{build_cab, read_testdata, testdata};
use common::{stores, Store};

mod common;

const SUB: &str = "TestApp\\1.0.0.0\\test_app.exe\\1.0.0.0\\0000429e";

fn config(symbols: bool) -> IndexerConfig {
    let worker = Worker::Command {
        program: PathBuf::from(env!("CARGO_BIN_EXE_cerfs-index-worker")),
        args: Vec::new(),
    };
    let settings = AnalysisSettings {
        symbol_paths: if symbols {
            vec![testdata().join("symbols")]
        } else {
            Vec::new()
        },
        ..AnalysisSettings::default()
    };
    IndexerConfig {
        analysis: Analysis::On(settings),
        ..IndexerConfig::new(worker)
    }
}

#[test]
fn minidumps_are_walked_signed_and_their_missing_symbols_listed() {
    for s in stores() {
        walked_signed_and_missing_symbols_listed(&s);
    }
}

fn walked_signed_and_missing_symbols_listed(s: &Store) {
    let fs = &s.fs;
    let dump = read_testdata("minidumps/test.dmp");
    let cab = build_cab(&[("test.dmp", &dump)]);
    fs.upload_cab(SUB, "one.cab", &mut std::io::Cursor::new(&cab))
        .unwrap();
    fs.upload_cab("blue", "two.cab", &mut std::io::Cursor::new(&cab))
        .unwrap();
    let broken = build_cab(&[("broken.dmp", b"MDMP\x93\xa7not a dump".as_slice())]);
    fs.upload_cab("blue", "broken.cab", &mut std::io::Cursor::new(&broken))
        .unwrap();
    let mut db = s.index_db();
    index_pending(
        &mut db,
        &config(true),
        &AtomicBool::new(false),
        &mut |_, _, _| {},
    )
    .unwrap();

    let frames = s.rows(
        "SELECT f.thread, f.crashed, f.frame, f.module, f.function, f.line, f.trust \
         FROM frames f JOIN cabs c ON c.cab_id = f.cab_id WHERE c.name = 'one.cab' \
         ORDER BY f.frame",
    );
    assert_eq!(frames.len(), 4, "{frames:?}");
    assert_eq!(
        frames[0],
        [
            "0",
            "1",
            "0",
            "test_app.exe",
            "`anonymous namespace'::CrashFunction",
            "58",
            "context"
        ]
    );
    assert_eq!(frames[1][4], "main");
    assert_eq!(
        frames[3][3..5],
        ["kernel32.dll".to_owned(), "NULL".to_owned()]
    );

    // One signature over two buckets; the broken dump is signed and flagged.
    assert_eq!(
        s.rows("SELECT signature, crashes, buckets FROM signatures ORDER BY crashes DESC"),
        [
            vec![
                "`anonymous namespace'::CrashFunction".to_owned(),
                "2".into(),
                "2".into()
            ],
            vec![
                "EMPTY: not a readable minidump".to_owned(),
                "1".into(),
                "1".into()
            ],
        ]
    );
    let broken_error = s.rows("SELECT error FROM stacks WHERE cab = 'broken.cab'");
    assert!(
        broken_error[0][0].starts_with("not a readable minidump"),
        "{broken_error:?}"
    );
    // Sorted here: PostgreSQL's collation may not order by bytes as SQLite does.
    let mut per_bucket = s.rows("SELECT subpath, crashes FROM bucket_signatures");
    per_bucket.sort();
    assert_eq!(
        per_bucket,
        [
            vec![SUB.to_owned(), "1".into()],
            vec!["blue".to_owned(), "1".into()],
            vec!["blue".to_owned(), "1".into()],
        ]
    );
    assert_eq!(
        s.rows("SELECT module, crashes FROM missing_symbols"),
        [vec!["kernel32.dll".to_owned(), "2".into()]]
    );

    // Other rules, reindex --stacks: the same dumps are signed anew.
    s.store
        .set_server_setting(stored::RULES_IRRELEVANT, Some("`anonymous namespace'::.*"))
        .unwrap();
    let queued = db
        .request_reindex(&ReindexFilter {
            stacks: true,
            ..ReindexFilter::default()
        })
        .unwrap();
    assert_eq!(queued, 3);
    index_pending(
        &mut db,
        &config(true),
        &AtomicBool::new(false),
        &mut |_, _, _| {},
    )
    .unwrap();
    let signatures = s.rows("SELECT DISTINCT signature FROM stacks WHERE error IS NULL");
    assert_eq!(signatures, [vec!["main".to_owned()]]);
}

#[test]
fn without_symbols_frames_and_signatures_still_come() {
    for s in stores() {
        without_symbols(&s);
    }
}

fn without_symbols(s: &Store) {
    let cab = build_cab(&[("test.dmp", read_testdata("minidumps/test.dmp"))]);
    s.upload(SUB, "one.cab", &cab);
    index_pending(
        &mut s.index_db(),
        &config(false),
        &AtomicBool::new(false),
        &mut |_, _, _| {},
    )
    .unwrap();
    let top = s.rows("SELECT module, module_offset, function FROM frames WHERE frame = 0");
    assert_eq!(
        top,
        [vec![
            "test_app.exe".to_owned(),
            "0x429e".into(),
            "NULL".into()
        ]]
    );
    let signature = s.rows("SELECT signature FROM stacks");
    assert!(
        signature[0][0].starts_with("test_app.exe@0x429e"),
        "{signature:?}"
    );
    let missing =
        s.rows("SELECT module, debug_file, debug_id FROM missing_symbols ORDER BY module");
    assert!(missing.contains(&vec![
        "test_app.exe".to_owned(),
        "test_app.pdb".into(),
        "5A9832E5287241C1838ED98914E9B7FF1".into()
    ]));
}
