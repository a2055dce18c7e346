//! `cerfs query` and `cerfs buckets` on a generated store: every query of docs/sql.md (and
//! the output it shows), the three output formats, refusal of writes, usage errors, and the
//! plain sqlite3 shell on the same file.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod admin_support;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use admin_support::*;

/// Writes the demo store used for docs/sql.md to $CERFS_DEMO_DB:
/// `CERFS_DEMO_DB=/tmp/demo.db cargo test -p cerfs --test query_cli -- --ignored`.
#[test]
#[ignore = "generates the docs' demo store on request"]
fn generate_demo_store() {
    let path = std::env::var_os("CERFS_DEMO_DB").expect("set CERFS_DEMO_DB");
    generate_at(Path::new(&path));
}

/// One generated store shared by the tests of this file (they only read it).
fn store() -> &'static Path {
    static STORE: OnceLock<Generated> = OnceLock::new();
    &STORE.get_or_init(generate).db
}

/// The ```sql blocks of docs/sql.md with the ```text block that follows each.
fn doc_queries() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/sql.md"))
        .unwrap();
    let mut out = Vec::new();
    let mut rest = doc.as_str();
    while let Some(at) = rest.find("```sql\n") {
        rest = &rest[at + 7..];
        let end = rest.find("\n```").unwrap();
        let sql = rest[..end].to_owned();
        rest = &rest[end + 4..];
        let text_at = rest.find("```text\n").unwrap();
        let body = &rest[text_at + 8..];
        let text_end = body.find("\n```").unwrap();
        out.push((sql, body[..text_end].to_owned()));
        rest = &body[text_end + 4..];
    }
    out
}

#[test]
fn every_query_of_the_docs_runs_and_shows_what_the_docs_show() {
    let db = store();
    let queries = doc_queries();
    assert!(
        queries.len() >= 6,
        "{} queries in docs/sql.md",
        queries.len()
    );
    for (sql, shown) in &queries {
        let out = cerfs_db(db, &["query", sql]);
        assert_code(&out, 0);
        let got = stdout(&out);
        let got = got.trim_end();
        // Same columns, same number of rows.
        assert_eq!(
            got.lines().next(),
            shown.lines().next(),
            "header of:\n{sql}"
        );
        assert_eq!(
            got.lines().count(),
            shown.lines().count(),
            "rows of:\n{sql}\ngot:\n{got}"
        );
        assert!(got.lines().count() > 2, "no rows for:\n{sql}");
        // Output that depends on neither today's date nor the time of the run is shown
        // exactly as it comes out.
        let depends_on_time = sql.contains("client_time")
            || sql.contains("first_seen")
            || sql.contains("received_at, ");
        if !depends_on_time {
            assert_eq!(got, shown, "output of:\n{sql}");
        }
    }
}

#[test]
fn csv_and_json_carry_full_typed_values() {
    let db = store();
    let sql = "SELECT subpath, total_hits, cab_limit, first_seen FROM buckets \
               ORDER BY total_hits DESC LIMIT 2";
    let out = cerfs_db(db, &["query", "--format", "csv", sql]);
    assert_code(&out, 0);
    let csv = stdout(&out);
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(lines[0], "subpath,total_hits,cab_limit,first_seen");
    assert!(lines[1].starts_with(&format!("{TEST_APP},40,5,")), "{csv}");
    assert!(
        lines[2].starts_with(&format!("{CRASH_TEST},25,10,")),
        "{csv}"
    );

    let out = cerfs_db(db, &["query", "--format", "json", sql]);
    assert_code(&out, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v[0]["subpath"], TEST_APP);
    assert_eq!(v[0]["total_hits"], 40);
    assert_eq!(v[1]["cab_limit"], 10);
    assert!(v[0]["first_seen"].as_str().unwrap().ends_with('Z'));

    // A long text value is cut in the table, whole in CSV.
    let sql = "SELECT text FROM cab_texts WHERE member = 'sysdata.xml' LIMIT 1";
    let table = stdout(&cerfs_db(db, &["query", sql]));
    assert!(table.contains('…'), "{table}");
    let full = stdout(&cerfs_db(db, &["query", "--format", "csv", sql]));
    assert!(full.contains("</SYSTEMINFO>"), "{full}");

    // From stdin.
    let mut child = Command::new(CERFS)
        .args(["query", "--format", "csv", "-", "--db"])
        .arg(db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"SELECT count(*) AS n FROM hits;\n",
    )
    .unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "n\r\n93\r\n");
}

#[test]
fn writes_are_refused_and_change_nothing() {
    let db = store();
    let before = stdout(&cerfs_db(
        db,
        &["query", "--format", "csv", "SELECT * FROM buckets"],
    ));
    for sql in [
        "DELETE FROM log_lines",
        "UPDATE bucket_rows SET total_hits = 0",
        "DROP VIEW buckets",
        "INSERT INTO setting_rows (bucket_id, position, key, value) VALUES (NULL, 5, 'x', 'y')",
        "PRAGMA user_version = 1",
    ] {
        let out = cerfs_db(db, &["query", sql]);
        assert_code(&out, 1);
        assert!(
            stderr(&out).contains("would change the database"),
            "{sql}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty());
    }
    let out = cerfs_db(db, &["query", "SELECT 1; DELETE FROM log_lines"]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("one statement at a time"),
        "{}",
        stderr(&out)
    );
    let out = cerfs_db(db, &["query", "SELECT nope FROM buckets"]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("no such column: nope"),
        "{}",
        stderr(&out)
    );
    let after = stdout(&cerfs_db(
        db,
        &["query", "--format", "csv", "SELECT * FROM buckets"],
    ));
    assert_eq!(before, after);
}

/// A statement that would run forever is stopped at the time limit, with advice.
#[test]
fn a_runaway_query_is_stopped_at_its_time_limit() {
    let db = store();
    let endless = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) \
                   SELECT count(*) FROM n";
    let out = cerfs_db(db, &["query", "--timeout", "1", endless]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("ran longer than 1 s and was stopped"),
        "{}",
        stderr(&out)
    );
    // 0: no limit.
    let out = cerfs_db(db, &["query", "--timeout", "0", "SELECT 1"]);
    assert_code(&out, 0);
}

#[test]
fn usage_and_missing_database() {
    let db = store();
    let out = cerfs_db(db, &["query", "--format", "xml", "SELECT 1"]);
    assert_code(&out, 2);
    let out = cerfs_db(db, &["query"]);
    assert_code(&out, 2);
    let out = cerfs_db(db, &["buckets", "--since", "last tuesday"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("is not a date"), "{}", stderr(&out));
    let out = cerfs_db(db, &["buckets", "--top", "-3"]);
    assert_code(&out, 2);

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.db");
    for args in [&["query", "SELECT 1"][..], &["buckets"][..]] {
        let out = cerfs_db(&missing, args);
        assert_code(&out, 1);
        assert!(stderr(&out).contains("no database at"), "{}", stderr(&out));
    }
    assert!(!missing.exists());
    // The default is ./cer.db.
    let out = Command::new(CERFS)
        .args(["buckets"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_code(&out, 1);
    assert!(stderr(&out).contains("cer.db"), "{}", stderr(&out));
}

#[test]
fn buckets_top_since_and_formats() {
    let db = store();
    let out = cerfs_db(db, &["buckets", "--top", "2", "--format", "json"]);
    assert_code(&out, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["subpath"], TEST_APP);
    assert_eq!(rows[0]["cabs_stored"], 5);
    assert_eq!(rows[1]["subpath"], CRASH_TEST);
    assert_eq!(rows[1]["cab_limit"], 10);

    let all = stdout(&cerfs_db(
        db,
        &["buckets", "--since", "7d", "--format", "csv"],
    ));
    assert_eq!(
        all.split("\r\n").filter(|l| !l.is_empty()).count(),
        7,
        "{all}"
    );
    let none = stdout(&cerfs_db(
        db,
        &["buckets", "--since", "2999-01-01", "--format", "csv"],
    ));
    assert_eq!(
        none,
        "subpath,kind,total_hits,cabs_gathered,cabs_stored,cab_limit,first_seen,last_seen\r\n"
    );
    let table = stdout(&cerfs_db(db, &["buckets"]));
    let first_rows: Vec<&str> = table
        .lines()
        .skip(2)
        .map(|l| l.split("  ").next().unwrap())
        .collect();
    assert_eq!(first_rows[0], TEST_APP);
    assert_eq!(first_rows.len(), 6);
}

#[test]
fn the_plain_sqlite3_shell_reads_the_views() {
    if !cerfs_testkit::skip::tool_usable("sqlite3", "sqlite3") {
        return;
    }
    let version = Command::new("sqlite3").arg("--version").output().unwrap();
    assert!(version.status.success());
    let db = store();
    let out = Command::new("sqlite3")
        .arg("-readonly")
        .arg(db)
        .arg(
            "SELECT subpath, total_hits, cabs_stored, cab_limit FROM buckets \
             ORDER BY total_hits DESC LIMIT 1; \
             SELECT count(*) FROM minidumps WHERE crash_module = 'test_app.exe'; \
             SELECT count(*) FROM cab_text_search WHERE cab_text_search MATCH 'keyboard'; \
             SELECT count(*) FROM crashes WHERE item = '501' AND subpath IS NOT NULL;",
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{TEST_APP}|40|5|5\n5\n20\n25\n"));
}
