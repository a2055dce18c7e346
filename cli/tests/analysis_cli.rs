//! Crash analysis through the `cerfs` binary: `reindex` walks and signs with the symbols
//! given, `stack` prints what rust-minidump's minidump-stackwalk prints, `signatures` and
//! `signature-rules` and `symbols` do what their help says. On a SQLite file and on a
//! PostgreSQL store (the test server of `CERFS_TEST_POSTGRES`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;
use std::sync::Arc;

use cerfs_db::Store;
use cerfs_testkit::{build_cab, read_testdata, testdata, TestDatabase};

mod admin_support;

/// Runs `cerfs ARGS --db DB`.
fn cerfs(db: &str, args: &[&str]) -> Output {
    admin_support::cerfs_db(db, args)
}

/// Its stdout, after checking that it succeeded.
fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        admin_support::stderr(out)
    );
    admin_support::stdout(out)
}

/// What keeps a store alive: its directory, or its database on the test server.
#[allow(dead_code)]
enum Keep {
    Dir(tempfile::TempDir),
    Postgres(TestDatabase),
}

/// A store of each backend there is with one cab holding a minidump, not indexed yet;
/// with the `--db` value that names it.
fn stores_with_dumps() -> Vec<(Keep, String)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cer.db");
    let mut all: Vec<(Keep, String, Arc<dyn Store>)> = vec![(
        Keep::Dir(dir),
        path.to_str().unwrap().to_owned(),
        Arc::new(cerfs_db::SqliteStore::open(&path).unwrap()),
    )];
    if let Some(pg) = TestDatabase::create() {
        let store = Arc::new(cerfs_db::PgStore::open(&pg.url).unwrap());
        let url = pg.url.clone();
        all.push((Keep::Postgres(pg), url, store));
    }
    all.into_iter()
        .map(|(keep, db, store)| {
            let fs = cerfs_fs_core::CerFs::new(store);
            let cab = build_cab(&[("test.dmp", read_testdata("minidumps/test.dmp"))]);
            fs.upload_cab("blue", "one.cab", &mut std::io::Cursor::new(&cab))
                .unwrap();
            (keep, db)
        })
        .collect()
}

#[test]
fn stack_prints_what_minidump_stackwalk_prints() {
    for (_keep, db) in stores_with_dumps() {
        stack_prints(&db);
    }
}

fn stack_prints(db: &str) {
    let symbols = testdata().join("symbols");
    let symbols = symbols.to_str().unwrap();
    let all = ok(
        &cerfs(
            db,
            &[
                "stack",
                "blue/one.cab",
                "--all-threads",
                "--symbols-path",
                symbols,
            ],
        ),
        "stack",
    );
    let reference: String = read_testdata("reference/test.dmp-human-symbols.txt")
        .into_iter()
        .map(char::from)
        .collect();
    assert_eq!(all.trim_end(), reference.trim_end());
    // The crashing thread alone by default.
    let brief = ok(
        &cerfs(db, &["stack", "blue/one.cab", "--symbols-path", symbols]),
        "stack",
    );
    assert!(
        brief.contains("test_app.exe!main [test_app.cc : 65 + 0x4]"),
        "{brief}"
    );
    assert!(!brief.contains("Loaded modules"), "{brief}");
    // Stored sources serve when no flag is given.
    ok(
        &cerfs(db, &["symbols", "set", "--path", symbols]),
        "symbols set",
    );
    let stored = ok(
        &cerfs(db, &["stack", "blue/one.cab"]),
        "stack with stored symbols",
    );
    assert_eq!(stored, brief);
    let missing = cerfs(db, &["stack", "blue/nope.cab"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no stored cab"));
}

#[test]
fn reindex_signs_and_signature_rules_change_the_signatures() {
    for (_keep, db) in stores_with_dumps() {
        reindex_signs(&db);
    }
}

fn reindex_signs(db: &str) {
    let symbols = testdata().join("symbols");
    ok(
        &cerfs(
            db,
            &["reindex", "--symbols-path", symbols.to_str().unwrap()],
        ),
        "reindex",
    );
    let listed = ok(
        &cerfs(db, &["signatures", "--format", "csv", "--since", "7d"]),
        "signatures",
    );
    assert!(
        listed.contains("`anonymous namespace'::CrashFunction,1,1,"),
        "{listed}"
    );
    // A rule that does not compile is refused, naming its line; nothing is stored.
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rules.path(), "main\n(unclosed\n").unwrap();
    let bad = cerfs(
        db,
        &[
            "signature-rules",
            "set",
            "--prefix-file",
            rules.path().to_str().unwrap(),
        ],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("prefix rule on line 2"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    std::fs::write(rules.path(), "`anonymous namespace'::.*\n").unwrap();
    ok(
        &cerfs(
            db,
            &[
                "signature-rules",
                "set",
                "--irrelevant-file",
                rules.path().to_str().unwrap(),
            ],
        ),
        "rules set",
    );
    let shown = ok(
        &cerfs(db, &["signature-rules", "show", "--list", "irrelevant"]),
        "show",
    );
    assert_eq!(shown, "`anonymous namespace'::.*\n");
    ok(
        &cerfs(
            db,
            &[
                "reindex",
                "--stacks",
                "--symbols-path",
                symbols.to_str().unwrap(),
            ],
        ),
        "reindex --stacks",
    );
    let listed = ok(&cerfs(db, &["signatures", "--format", "csv"]), "signatures");
    assert!(listed.contains("\nmain,1,1,"), "{listed}");
    ok(&cerfs(db, &["signature-rules", "reset"]), "reset");
    let shown = ok(
        &cerfs(db, &["signature-rules", "show", "--list", "irrelevant"]),
        "show",
    );
    assert!(shown.contains("KiUserExceptionDispatcher"), "{shown}");
}
