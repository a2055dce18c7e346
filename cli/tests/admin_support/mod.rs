//! A generated store for the admin / query / index tests (and for the outputs shown in
//! docs/sql.md): clients report through fs-core as the MS-CER 3.1.7 steps do (read the
//! settings, count the hit, copy a cab while under the cap, append to crash.log and
//! hits.log), with cabs that wrap real minidumps from testdata/, then the cabs are
//! indexed by the real `cerfs index-one` worker, which walks the minidumps' stacks with
//! testdata's symbols.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use cerfs_db::{IndexDb, SqliteStore};
use cerfs_fs_core::{Caller, CerFs, OpenFlags, SettingsTarget, ROOT_INO};
use cerfs_index::{index_pending, Analysis, IndexerConfig, Worker};

pub const CERFS: &str = env!("CARGO_BIN_EXE_cerfs");

pub const TEST_APP: &str = "TestApp\\1.0.0.0\\test_app.exe\\1.0.0.0\\0000429e";
pub const CRASH_TEST: &str = "CrashTest\\1.0.0.0\\CrashTest.exe\\1.0.0.0\\000000000007a9a3";
pub const LINUX_APP: &str = "crash\\0.1.0\\crash\\0.1.0\\0000000000001d72";
pub const BROKEN: &str = "Broken\\2.0\\broken.exe\\2.0\\00001234";

pub use cerfs_testkit::{build_cab, read_testdata, utf16le_bom};

fn version_txt(os: &str, arch: &str) -> Vec<u8> {
    utf16le_bom(&format!(
        "Windows NT Version {os}\r\nProduct (0x1): Windows XP Professional\r\n\
         Edition: Professional\r\nArchitecture: {arch}\r\nLCID: 1033\r\n"
    ))
}

fn sysdata_xml(osver: &str) -> Vec<u8> {
    utf16le_bom(&format!(
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r\n<SYSTEMINFO><SYSTEM>\
         <OSVER>{osver}</OSVER><OSLANGUAGE>1033</OSLANGUAGE></SYSTEM>\
         <DEVICES><DEVICE><DESCRIPTION>Standard PS/2 Keyboard</DESCRIPTION></DEVICE></DEVICES>\
         </SYSTEMINFO>\r\n"
    ))
}

/// A tiny deterministic generator (no dependency, same store every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() as usize) % from.len()]
    }
}

const MACHINES: &[&str] = &[
    "WS-ACCT-01",
    "WS-ACCT-02",
    "WS-SALES-07",
    "WS-DEV-11",
    "LAPTOP-KM3",
    "KIOSK-4",
];
const USERS: &[&str] = &["alice", "bob", "carol", "dave", "erin"];

pub struct Generated {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
}

/// Builds the demo store in a temp dir (see [`generate_at`]).
pub fn generate() -> Generated {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cer.db");
    generate_at(&db);
    Generated { dir, db }
}

/// The demo store in a new database on the test PostgreSQL server, indexed as a head's
/// indexer does; `None` (after the skip rule) without the server.
pub fn generate_postgres() -> Option<cerfs_testkit::TestDatabase> {
    let db = cerfs_testkit::TestDatabase::create()?;
    fill(&CerFs::new(Arc::new(
        cerfs_db::PgStore::open(&db.url).unwrap(),
    )));
    index_all_at(&cerfs_db::StoreLocation::Postgres(db.url.clone()));
    Some(db)
}

/// A demo store of each backend there is, as `--db` names it.
pub enum Demo {
    Sqlite(Generated),
    Postgres(cerfs_testkit::TestDatabase),
}

impl Demo {
    /// SQLite's, then PostgreSQL's when the test server is there.
    pub fn each() -> Vec<Demo> {
        let mut all = vec![Demo::Sqlite(generate())];
        all.extend(generate_postgres().map(Demo::Postgres));
        all
    }

    /// The `--db` value.
    pub fn db(&self) -> String {
        match self {
            Demo::Sqlite(g) => g.db.to_str().unwrap().to_owned(),
            Demo::Postgres(pg) => pg.url.clone(),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Demo::Postgres(_))
    }
}

/// Builds the demo store at `db` (which must not exist) and indexes its cabs.
pub fn generate_at(db: &Path) {
    fill(&CerFs::new(Arc::new(SqliteStore::open(db).unwrap())));
    index_all(db);
}

/// Reports the demo store's crashes through `fs` (over any store), as clients do.
pub fn fill(fs: &CerFs) {
    fs.set_settings(
        &SettingsTarget::Policy,
        &[
            ("Tracking".into(), "YES".into()),
            ("Crashes per bucket".into(), "5".into()),
        ],
    )
    .unwrap();
    fs.set_settings(
        &SettingsTarget::Status(CRASH_TEST.into()),
        &[
            ("Crashes per bucket".into(), "10".into()),
            ("Bucket".into(), "501".into()),
            ("iData".into(), "YES".into()),
        ],
    )
    .unwrap();
    fs.set_settings(
        &SettingsTarget::Status("shutdown".into()),
        &[("iData".into(), "NO".into())],
    )
    .unwrap();

    let test_dmp = read_testdata("minidumps/test.dmp");
    let param_dmp = read_testdata("minidumps/invalid-parameter.dmp");
    let linux_dmp = read_testdata("minidumps/linux-mini.dmp");
    let xp = || version_txt("5.1 Build: 2600 Service Pack 2", "X86");
    let win10 = || version_txt("10.0 Build: 17134", "AMD64");
    let test_app_cab = build_cab(&[
        ("test.dmp", test_dmp.clone()),
        ("version.txt", xp()),
        ("sysdata.xml", sysdata_xml("5.1.2600 2.0.0.0")),
    ]);
    let crash_test_cab = build_cab(&[
        ("mini.mdmp", param_dmp),
        ("version.txt", win10()),
        ("sysdata.xml", sysdata_xml("10.0.17134 2.0.0.0")),
    ]);
    let linux_cab = build_cab(&[("linux-mini.dmp", linux_dmp)]);
    let blue_cab = build_cab(&[
        ("sysdata.xml", sysdata_xml("5.1.2600 2.0.0.0")),
        ("version.txt", xp()),
    ]);
    let truncated = test_app_cab[..test_app_cab.len() / 2].to_vec();
    let hang = read_testdata("cabs/cve-2010-2800-mszip-infinite-loop.cab");
    let nodata = read_testdata("cabs/partial_nodata.cab");

    // (bucket, reports, cabs to copy in turn)
    let plan: Vec<(&str, usize, Vec<&Vec<u8>>)> = vec![
        (TEST_APP, 40, vec![&test_app_cab]),
        (CRASH_TEST, 25, vec![&crash_test_cab]),
        (LINUX_APP, 8, vec![&linux_cab]),
        ("blue", 12, vec![&blue_cab]),
        ("shutdown", 5, vec![]),
        (BROKEN, 3, vec![&truncated, &hang, &nodata]),
    ];
    let today = time::OffsetDateTime::now_utc().date();
    let mut rng = Lcg(4);
    let mut pid = 1000;
    for (sub, reports, cabs) in plan {
        let limit: u64 = if sub == CRASH_TEST { 10 } else { 5 };
        let item_for_crash_log = if sub == CRASH_TEST { "501" } else { sub };
        let mut gathered = 0u64;
        for n in 0..reports {
            pid += 1;
            let caller = Caller {
                pid,
                uid: 1000,
                gid: 1000,
            };
            let days_ago = (rng.next() % 14) as i64;
            let date = today - time::Duration::days(days_ago);
            let (h, m, s) = (rng.next() % 24, rng.next() % 60, rng.next() % 60);
            let when = format!(
                "{h:02}:{m:02}:{s:02}  {:02}-{:02}-{:04}",
                u8::from(date.month()),
                date.day(),
                date.year()
            );
            let machine = rng.pick(MACHINES);
            let user = rng.pick(USERS);
            let copy = !cabs.is_empty() && gathered < limit;
            let item = if copy {
                let bytes = cabs[n % cabs.len()];
                let name = format!("{:08x}.cab", rng.next());
                fs.upload_cab(sub, &name, &mut std::io::Cursor::new(bytes))
                    .unwrap();
                gathered += 1;
                name
            } else {
                "No CAB".to_owned()
            };
            fs.count_report(sub, u64::from(copy), 1).unwrap();
            let hits_dir = fs
                .resolve(&caller, &format!("cabs\\{sub}"))
                .unwrap_or_else(|_| {
                    let parts = cerfs_fs_core::subpath_parts(sub).unwrap();
                    let ino = fs.ensure_dirs(cerfs_db::CABS_INO, &parts).unwrap();
                    fs.getattr(ino, None).unwrap()
                })
                .ino;
            append(
                fs,
                &caller,
                ROOT_INO,
                "crash.log",
                &format!("{when}\t{machine}\t{user}\t{item_for_crash_log}\r\n"),
            );
            append(
                fs,
                &caller,
                hits_dir,
                "hits.log",
                &format!("{when}\t{machine}\t{user}\t{item}\r\n"),
            );
        }
    }
}

/// Appends a line to a log the way a client does: open (create), write at the end, close.
fn append(fs: &CerFs, caller: &Caller, dir: u64, name: &str, line: &str) {
    let flags = OpenFlags {
        read: true,
        write: true,
        truncate: false,
        append: true,
    };
    let (attr, opened) = fs
        .create(caller, dir, name.as_bytes(), 0o666, flags, false)
        .unwrap();
    fs.write(opened.fh, attr.size, line.as_bytes()).unwrap();
    fs.flush(opened.fh, Some(caller.pid)).unwrap();
    fs.release(opened.fh).unwrap();
}

/// Indexes every queued cab with the real worker (`cerfs index-one`).
pub fn index_all(db: &Path) {
    index_all_at(&cerfs_db::StoreLocation::Sqlite(db.to_path_buf()));
}

/// Indexes every queued cab of the store at `db` with the real worker.
pub fn index_all_at(db: &cerfs_db::StoreLocation) {
    let mut index_db = IndexDb::open_at(db).unwrap();
    let mut config = IndexerConfig::new(Worker::Command {
        program: PathBuf::from(CERFS),
        args: vec!["index-one".into()],
    });
    config.limits.wall_time = std::time::Duration::from_secs(30);
    config.analysis = Analysis::On(cerfs_analysis::AnalysisSettings {
        symbol_paths: vec![cerfs_testkit::testdata().join("symbols")],
        ..cerfs_analysis::AnalysisSettings::default()
    });
    index_pending(
        &mut index_db,
        &config,
        &AtomicBool::new(false),
        &mut |_, _, _| {},
    )
    .unwrap();
}

/// Runs `cerfs ARGS`.
pub fn cerfs(args: &[&str]) -> Output {
    Command::new(CERFS)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run cerfs")
}

/// Runs `cerfs ARGS --db DB` (the db flag goes last, after any subcommand); DB is a file
/// or a PostgreSQL URL.
pub fn cerfs_db(db: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    Command::new(CERFS)
        .args(args)
        .arg("--db")
        .arg(db)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run cerfs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing stderr when it differs.
#[track_caller]
pub fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

/// Adds console accounts with `cerfs web-user add`, the password on stdin.
#[allow(dead_code)] // not every test file that shares this module uses it
pub fn add_users(users: &std::path::Path, accounts: &[(&str, &str, &str)]) {
    use std::io::Write;
    for (name, role, password) in accounts {
        let mut child = Command::new(CERFS)
            .args(["web-user", "add", name, "--role", role, "--users"])
            .arg(users)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run cerfs web-user");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n").as_bytes())
            .expect("password");
        let out = child.wait_with_output().expect("wait");
        assert_code(&out, 0);
    }
}
