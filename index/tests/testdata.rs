//! The indexer on real files nobody on this project wrote (`testdata/`, see its
//! README): Breakpad / rust-minidump minidumps and libmspack's cabinets (valid, truncated,
//! and ones that crashed or hung other readers), in process and through the bounded worker
//! process; plus cabs that wrap those minidumps, built with the `cab` crate and `gcab`.
//! What the indexer records is checked on SQLite and on PostgreSQL (the test server of
//! `CERFS_TEST_POSTGRES`), through the views SQL users read.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use cerfs_db::{CabIndex, IndexStatus, ReindexFilter};
use cerfs_index::{
    index_cab, index_isolated, index_pending, parse_minidump, spawn_indexer_with, IndexerConfig,
    Limits, Outcome, Worker,
};
use cerfs_testkit::{build_cab, sha256_hex, testdata, utf16le_bom};
use common::{store, stores, Store};

mod common;

const SUB: &str = "TestApp\\1.0.0.0\\test_app.exe\\1.0.0.0\\0000429e";

fn minidump(name: &str) -> Vec<u8> {
    std::fs::read(testdata().join("minidumps").join(name)).unwrap()
}

fn cab_path(name: &str) -> PathBuf {
    testdata().join("cabs").join(name)
}

fn worker() -> Worker {
    Worker::Command {
        program: PathBuf::from(env!("CARGO_BIN_EXE_cerfs-index-worker")),
        args: Vec::new(),
    }
}

fn config(limits: Limits) -> IndexerConfig {
    IndexerConfig {
        limits,
        ..IndexerConfig::new(worker())
    }
}

fn short_limits() -> Limits {
    Limits {
        wall_time: Duration::from_secs(20),
        cpu_time: Duration::from_secs(10),
        ..Limits::default()
    }
}

const VERSION_TXT: &str = "Windows NT Version 5.1 Build: 2600 Service Pack 2\r\n\
                           Product (0x1): Windows XP Professional\r\n\
                           Architecture: X86\r\nLCID: 1033\r\n";
const SYSDATA_XML: &str = "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r\n\
                           <SYSTEMINFO><SYSTEM><OSVER>5.1.2600 2.0.0.0</OSVER>\
                           <OSLANGUAGE>1033</OSLANGUAGE></SYSTEM></SYSTEMINFO>\r\n";

#[test]
fn minidumps_parse_to_what_breakpad_recorded() {
    let d = parse_minidump("test.dmp", &minidump("test.dmp"));
    assert_eq!(d.error, None);
    assert_eq!(d.os.as_deref(), Some("Windows NT"));
    assert_eq!(d.os_version.as_deref(), Some("5.1.2600 Service Pack 2"));
    assert_eq!(d.cpu.as_deref(), Some("x86"));
    assert_eq!(d.exception_code.as_deref(), Some("0xc0000005"));
    assert_eq!(
        d.crash_reason.as_deref(),
        Some("EXCEPTION_ACCESS_VIOLATION_WRITE")
    );
    assert_eq!(d.crash_address.as_deref(), Some("0x0040429e"));
    assert_eq!(d.crash_module.as_deref(), Some("test_app.exe"));
    assert_eq!(d.crash_offset.as_deref(), Some("0000429e"));
    assert_eq!(d.process_name.as_deref(), Some("test_app.exe"));
    assert_eq!(d.thread_count, Some(2));
    assert_eq!(d.module_count, Some(13));
    assert_eq!(d.dump_time.as_deref(), Some("2007-02-14T19:13:55Z"));

    let l = parse_minidump("linux-mini.dmp", &minidump("linux-mini.dmp"));
    assert_eq!(l.error, None);
    assert_eq!(
        (l.os.as_deref(), l.cpu.as_deref()),
        (Some("Linux"), Some("amd64"))
    );
    assert_eq!(l.crash_reason.as_deref(), Some("SIGSEGV"));
    assert_eq!(l.process_name.as_deref(), Some("crash"));
    // 64-bit: the offset has 16 digits, like an R1 Offset of a 64-bit module.
    assert_eq!(l.crash_offset.as_deref().map(str::len), Some(16));
    assert_eq!(l.crash_module.as_deref(), Some("crash"));

    // A dump of a crash by an invalid parameter (not corrupt): read in full.
    let p = parse_minidump("invalid-parameter.dmp", &minidump("invalid-parameter.dmp"));
    assert_eq!(p.error, None);
    assert_eq!(p.crash_reason.as_deref(), Some("STATUS_INVALID_PARAMETER"));
    assert_eq!(p.process_name.as_deref(), Some("CrashTest.exe"));

    // The corrupt ones: rejected with a reason, nothing invented.
    for name in ["invalid-range.dmp", "invalid-record-count.dmp"] {
        let bad = parse_minidump(name, &minidump(name));
        assert!(bad.error.is_some(), "{name}: {bad:?}");
        assert_eq!(bad.crash_module, None, "{name}");
        assert_eq!(bad.exception_code, None, "{name}");
    }
    // Not a minidump at all, and a truncated one.
    let junk = parse_minidump("junk.dmp", b"MDMP");
    assert!(
        junk.error
            .as_deref()
            .unwrap()
            .contains("not a readable minidump"),
        "{junk:?}"
    );
    let whole = minidump("test.dmp");
    let cut = parse_minidump("cut.dmp", &whole[..whole.len() / 3]);
    assert!(cut.error.is_some(), "{cut:?}");
}

fn in_process(name: &str) -> CabIndex {
    index_cab(
        std::fs::File::open(cab_path(name)).unwrap(),
        &Limits::default(),
    )
}

#[test]
fn libmspack_cabinets_in_process() {
    let two = in_process("normal_2files_1folder.cab");
    assert_eq!(two.status(), IndexStatus::Indexed);
    let names: Vec<(&str, u64, &str)> = two
        .members
        .iter()
        .map(|m| (&*m.name, m.size, &*m.compression))
        .collect();
    assert_eq!(names, [("hello.c", 77, "none"), ("welcome.c", 74, "none")]);
    assert_eq!(
        two.members[0].modified.as_deref(),
        Some("1997-03-12T11:13:52")
    );

    let mixed = in_process("mszip_lzx_qtm.cab");
    let kinds: Vec<&str> = mixed.members.iter().map(|m| &*m.compression).collect();
    assert_eq!(kinds, ["mszip", "lzx", "quantum"]);
    assert_eq!(mixed.status(), IndexStatus::Partial);
    assert!(mixed.texts[0]
        .text
        .contains("MSZIP decompressor is working"));
    assert!(mixed.texts[1].text.contains("LZX decompressor is working"));
    assert!(mixed.members[2]
        .error
        .as_deref()
        .unwrap()
        .contains("Quantum"));

    let long = in_process("normal_255c_filename.cab");
    assert_eq!(long.members[0].name.len(), 255);
    assert_eq!(in_process("reserve_HFD.cab").status(), IndexStatus::Indexed);

    // The members are listed but their data is missing: each one says so.
    let nodata = in_process("partial_nodata.cab");
    assert_eq!(nodata.status(), IndexStatus::Partial);
    assert!(
        nodata.members.iter().all(|m| m.error.is_some()),
        "{nodata:?}"
    );

    for name in [
        "bad_folderindex.cab",
        "bad_nofiles.cab",
        "bad_signature.cab",
        "partial_shortfile1.cab",
        "partial_shortheader.cab",
        "partial_str_nofname.cab",
        "cve-2014-9732-folders-segfault.cab",
        "cve-2015-4471-lzx-under-read.cab",
    ] {
        let index = in_process(name);
        assert_eq!(index.status(), IndexStatus::Failed, "{name}: {index:?}");
        assert!(index.problem().is_some(), "{name}");
    }
}

#[test]
fn every_testdata_cab_through_the_worker_process_is_stored_intact() {
    for s in stores() {
        every_testdata_cab_is_stored_intact(&s);
    }
}

fn every_testdata_cab_is_stored_intact(s: &Store) {
    let mut names: Vec<String> = std::fs::read_dir(testdata().join("cabs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".cab"))
        .collect();
    names.sort();
    assert!(names.len() >= 15, "{names:?}");
    for name in &names {
        s.upload(SUB, name, &std::fs::read(cab_path(name)).unwrap());
    }
    let mut db = s.index_db();
    let started = Instant::now();
    let summary = index_pending(
        &mut db,
        &config(short_limits()),
        &AtomicBool::new(false),
        &mut |_, _, _| {},
    )
    .unwrap();
    assert_eq!(summary.total(), names.len(), "{summary:?}");
    assert!(db.pending(100).unwrap().is_empty());
    // Bounded: even the cab that sent other readers into an infinite loop ends.
    assert!(started.elapsed() < Duration::from_secs(20 * names.len() as u64));

    for name in &names {
        let (status, error) = s.status(name);
        let expected = match name.as_str() {
            "normal_2files_1folder.cab"
            | "normal_2files_2folders.cab"
            | "normal_255c_filename.cab"
            | "reserve_HFD.cab" => "indexed",
            "mszip_lzx_qtm.cab" | "partial_nodata.cab" => "partial",
            "cve-2010-2800-mszip-infinite-loop.cab" => status.as_str(), // see below
            _ => "failed",
        };
        assert_eq!(status, expected, "{name}: {error:?}");
        assert_eq!(status == "indexed", error.is_none(), "{name}: {error:?}");
        // Whatever the index says, the report is kept byte for byte.
        assert_eq!(
            s.sha256(name),
            sha256_hex(&std::fs::read(cab_path(name)).unwrap()),
            "{name}"
        );
    }
    let (status, error) = s.status("cve-2010-2800-mszip-infinite-loop.cab");
    assert_ne!(status, "indexed", "{error:?}");
    assert!(error.is_some());

    let files = s.rows(
        "SELECT name, compression, size FROM cab_files \
         WHERE cab = 'normal_2files_2folders.cab' ORDER BY position",
    );
    assert_eq!(
        files,
        [
            ["mszip1.txt", "mszip", "31"],
            ["mszip2.txt", "mszip", "36"],
            ["lzx1.txt", "lzx", "23"],
            ["lzx2.txt", "lzx", "28"],
        ]
    );
    // The texts are searchable, with each backend's own full-text search.
    let search = if s.is_postgres() {
        "SELECT t.cab || '/' || t.member FROM cab_text_search f \
         JOIN cab_texts t ON t.text_id = f.text_id \
         WHERE f.search @@ websearch_to_tsquery('simple', 'LZX') ORDER BY 1"
    } else {
        "SELECT t.cab || '/' || t.member FROM cab_text_search f \
         JOIN cab_texts t ON t.text_id = f.rowid \
         WHERE cab_text_search MATCH 'LZX' ORDER BY 1"
    };
    assert_eq!(
        s.rows(search),
        [
            ["mszip_lzx_qtm.cab/lzx.txt"],
            ["normal_2files_2folders.cab/lzx1.txt"],
            ["normal_2files_2folders.cab/lzx2.txt"]
        ]
    );
}

#[test]
fn a_cab_wrapping_a_real_minidump_is_indexed_and_a_truncated_copy_is_flagged() {
    for s in stores() {
        a_real_minidump_is_indexed(&s);
    }
}

fn a_real_minidump_is_indexed(s: &Store) {
    let dump = minidump("test.dmp");
    let version = utf16le_bom(VERSION_TXT);
    let sysdata = utf16le_bom(SYSDATA_XML);
    let whole = build_cab(&[
        ("test.dmp", &dump),
        ("version.txt", &version),
        ("sysdata.xml", &sysdata),
    ]);
    s.upload(SUB, "whole.cab", &whole);
    s.upload(SUB, "cut.cab", &whole[..whole.len() / 2]);
    let mut db = s.index_db();
    let summary = index_pending(
        &mut db,
        &config(short_limits()),
        &AtomicBool::new(false),
        &mut |_, _, _| {},
    )
    .unwrap();
    assert_eq!((summary.indexed, summary.total()), (1, 2), "{summary:?}");

    assert_eq!(s.status("whole.cab"), ("indexed".to_owned(), None));
    let row = s.rows(
        "SELECT subpath, crash_module, crash_offset, exception_code, os_version, \
         thread_count, module_count FROM minidumps WHERE cab = 'whole.cab'",
    );
    assert_eq!(
        row,
        [[
            SUB,
            "test_app.exe",
            "0000429e",
            "0xc0000005",
            "5.1.2600 Service Pack 2",
            "2",
            "13"
        ]]
    );
    // The dump's module and offset match the bucket's R1 fields.
    let matches = s.one(
        "SELECT count(*) FROM minidumps d JOIN buckets b ON b.subpath = d.subpath \
         WHERE d.crash_module = b.module AND d.crash_offset = b.\"offset\"",
    );
    assert_eq!(matches, "1");
    let facts =
        s.rows("SELECT member, key, value FROM cab_facts WHERE cab = 'whole.cab' ORDER BY key");
    let fact = |k: &str| facts.iter().find(|f| f[1] == k).map(|f| f[2].as_str());
    assert_eq!(fact("Architecture"), Some("X86"));
    assert_eq!(fact("Product (0x1)"), Some("Windows XP Professional"));
    assert_eq!(fact("SYSTEMINFO/SYSTEM/OSVER"), Some("5.1.2600 2.0.0.0"));

    // Half a cab: a report all the same, stored intact, flagged with the reason.
    let (status, error) = s.status("cut.cab");
    assert_ne!(status, "indexed");
    assert!(error.is_some());
    assert_eq!(s.sha256("cut.cab"), sha256_hex(&whole[..whole.len() / 2]));
}

#[test]
fn gcab_cabinets_wrapping_real_minidumps() {
    if Command::new("gcab").arg("--version").output().is_err()
        && cerfs_testkit::unavailable("gcab is not installed (apt-get install gcab)")
    {
        return;
    }
    let s = store();
    let work = tempfile::tempdir().unwrap();
    for name in ["test.dmp", "linux-mini.dmp", "invalid-range.dmp"] {
        std::fs::write(work.path().join(name), minidump(name)).unwrap();
    }
    std::fs::write(work.path().join("version.txt"), utf16le_bom(VERSION_TXT)).unwrap();
    for (cab, zip, members) in [
        ("gcab-mszip.cab", true, &["test.dmp", "version.txt"][..]),
        (
            "gcab-plain.cab",
            false,
            &["linux-mini.dmp", "invalid-range.dmp"][..],
        ),
    ] {
        let mut cmd = Command::new("gcab");
        cmd.current_dir(work.path()).arg("-c");
        if zip {
            cmd.arg("-z");
        }
        let out = cmd.arg(cab).args(members).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        s.upload(SUB, cab, &std::fs::read(work.path().join(cab)).unwrap());
    }
    index_pending(
        &mut s.index_db(),
        &config(short_limits()),
        &AtomicBool::new(false),
        &mut |_, _, _| {},
    )
    .unwrap();
    assert_eq!(s.status("gcab-mszip.cab"), ("indexed".to_owned(), None));
    // One dump of the two is corrupt: the cab is partial, the good dump is indexed.
    let (status, error) = s.status("gcab-plain.cab");
    assert_eq!(status, "partial");
    assert!(error.unwrap().contains("invalid-range.dmp"));
    let rows = s.rows(
        "SELECT member, compression, crash_module, minidumps.error FROM minidumps \
         JOIN cab_files USING (cab_id) WHERE cab_files.name = minidumps.member \
         ORDER BY cab_id, member",
    );
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0][..3], ["test.dmp", "mszip", "test_app.exe"]);
    assert_eq!(rows[1][..2], ["invalid-range.dmp", "none"]);
    assert_ne!(rows[1][3], "NULL");
    assert_eq!(rows[2][0], "linux-mini.dmp");
    assert_eq!(rows[2][2], "crash");
}

#[test]
fn a_worker_that_hangs_is_killed_at_its_wall_time() {
    let s = store();
    s.upload(
        SUB,
        "a.cab",
        &std::fs::read(cab_path("normal_2files_1folder.cab")).unwrap(),
    );
    let mut db = s.index_db();
    let cab = db.pending(1).unwrap().remove(0);
    let sleeper = Worker::Command {
        program: PathBuf::from("sleep"),
        args: vec!["30".into()],
    };
    let limits = Limits {
        wall_time: Duration::from_millis(500),
        ..Limits::default()
    };
    let started = Instant::now();
    let outcome = index_isolated(&sleeper, &s.db, &cab, &limits, &AtomicBool::new(false));
    assert!(started.elapsed() < Duration::from_secs(10));
    match outcome {
        Outcome::Failed(reason) => assert!(reason.contains("longer than"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // A missing worker binary is not the cab's fault: nothing is recorded.
    let missing = Worker::Command {
        program: PathBuf::from("/nonexistent/cerfs"),
        args: Vec::new(),
    };
    let outcome = index_isolated(&missing, &s.db, &cab, &limits, &AtomicBool::new(false));
    assert!(matches!(outcome, Outcome::Unavailable(_)), "{outcome:?}");
    assert_eq!(db.pending(10).unwrap().len(), 1);
}

#[test]
fn a_dump_too_big_for_the_memory_bound_fails_the_cab_not_the_server() {
    let s = store();
    // 96 MiB of zeros compress to little; the worker may use 64 MiB of address space.
    let big = vec![0u8; 96 << 20];
    s.upload(SUB, "big.cab", &build_cab(&[("huge.dmp", &big)]));
    let limits = Limits {
        memory_bytes: 64 << 20,
        ..short_limits()
    };
    let summary = index_pending(
        &mut s.index_db(),
        &config(limits),
        &AtomicBool::new(false),
        &mut |_, _, _| {},
    )
    .unwrap();
    // Reading the dump runs out of the worker's memory: the member says so (or, if the
    // allocator aborts, the whole cab does); either way the server goes on.
    assert_eq!(summary.total(), 1, "{summary:?}");
    let (status, error) = s.status("big.cab");
    assert_ne!(status, "indexed");
    println!("{status}: {error:?}");
    assert!(error.as_deref().unwrap().contains("memory"), "{error:?}");
}

#[test]
fn background_indexer_picks_up_new_cabs_and_reindex_redoes_them() {
    for s in stores() {
        background_indexer_and_reindex(&s);
    }
}

fn background_indexer_and_reindex(s: &Store) {
    let dump = minidump("test.dmp");
    s.upload(SUB, "first.cab", &build_cab(&[("test.dmp", &dump)]));
    let handle = spawn_indexer_with(
        &s.db,
        IndexerConfig {
            poll_interval: Duration::from_millis(50),
            ..config(short_limits())
        },
    )
    .unwrap();
    let wait_for = |name: &str, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, _) = s.status(name);
            if status == want {
                return;
            }
            assert!(Instant::now() < deadline, "{name} still {status}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("first.cab", "indexed");
    // A cab committed while the indexer runs.
    s.upload(SUB, "second.cab", &build_cab(&[("test.dmp", &dump)]));
    wait_for("second.cab", "indexed");

    // Reindex the bucket: both go back to the queue and are indexed again, once each.
    let mut db = s.index_db();
    let n = db
        .request_reindex(&ReindexFilter {
            bucket: Some(SUB.to_owned()),
            failed_only: false,
            ..ReindexFilter::default()
        })
        .unwrap();
    assert_eq!(n, 2);
    handle.wake();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !db.pending(10).unwrap().is_empty() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for("first.cab", "indexed");
    assert_eq!(s.one("SELECT count(*) FROM minidumps"), "2");
    let started = Instant::now();
    handle.stop();
    assert!(started.elapsed() < Duration::from_secs(5));

    // An unknown bucket is refused with advice.
    let err = db
        .request_reindex(&ReindexFilter {
            bucket: Some("nope".into()),
            failed_only: false,
            ..ReindexFilter::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("cerfs buckets"), "{err}");
}

/// A cab whose bytes the store cannot give (here its cab database was replaced by junk)
/// is not the cab's fault: it is not recorded as unreadable, it stays queued for a later
/// pass, in process and in a worker alike.
#[test]
fn a_store_that_cannot_be_read_leaves_the_cab_queued() {
    let s = store();
    // Padded past 1 MiB, so that its bytes are in the cab database (smaller cabs are not).
    let mut cab = std::fs::read(cab_path("normal_2files_1folder.cab")).unwrap();
    cab.resize(1 << 20, 0);
    s.upload(SUB, "a.cab", &cab);
    let mut db = s.index_db();
    let cab = db.pending(1).unwrap().remove(0);
    let mut cab_db = s.db.sqlite_path().unwrap().as_os_str().to_owned();
    cab_db.push("-cabs");
    std::fs::write(&cab_db, vec![0x5a; 1 << 20]).unwrap();
    for worker in [Worker::InProcess, worker()] {
        let outcome = index_isolated(
            &worker,
            &s.db,
            &cab,
            &short_limits(),
            &AtomicBool::new(false),
        );
        match outcome {
            Outcome::Unavailable(why) => assert!(why.contains("not a database"), "{why}"),
            other => panic!("{worker:?}: {other:?}"),
        }
    }
    assert_eq!(db.pending(10).unwrap().len(), 1);
    assert_eq!(s.status("a.cab").0, "pending");
}
