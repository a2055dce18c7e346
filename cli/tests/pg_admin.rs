//! The admin commands, `cerfs query` and `cerfs http` on a PostgreSQL store (`--db
//! postgres://…`): docs/sql.md's demo reports, reported through the share's logic on
//! PostgreSQL and indexed, answer every documented query (in its PostgreSQL form where the
//! doc gives one) as the doc shows; settings, counts, cab copies, retention, deletions,
//! quotas and verify work; writes through `cerfs query` are refused; an admin command
//! never creates or migrates a store; the commands of a SQLite file (backup, compact)
//! refuse with a reason; and a CER V2 report and its cab land in the store over HTTP,
//! where the head's indexer indexes the cab. (The cab index's commands run on both
//! backends in analysis_cli.rs, the console in web_console.rs.)
//! Needs the test PostgreSQL server (`CERFS_TEST_POSTGRES`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod admin_support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use admin_support::*;
use cerfs_db::PgStore;
use cerfs_testkit::{poll_until, post_stage2, reserve_port, sha256_hex, ChildGuard, TestDatabase};

/// `cerfs ARGS --db URL`, which must succeed; its stdout.
fn ok(url: &str, args: &[&str]) -> String {
    let out = cerfs_db(url, args);
    assert_code(&out, 0);
    stdout(&out)
}

/// `cerfs query --format csv SQL` as lines.
fn csv(url: &str, sql: &str) -> Vec<String> {
    ok(url, &["query", "--format", "csv", sql])
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Each documented query: its PostgreSQL form (the ```sql postgres block after it, else
/// the query itself) and the output the doc shows.
fn doc_queries_for_postgres() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/sql.md"),
    )
    .unwrap();
    let block = |text: &str, fence: &str| -> Option<(String, usize)> {
        let at = text.find(fence)? + fence.len();
        let end = at + text[at..].find("\n```")?;
        Some((text[at..end].to_owned(), end + 4))
    };
    let mut out = Vec::new();
    let mut rest = doc.as_str();
    while let Some((sql, next)) = block(rest, "```sql\n") {
        rest = &rest[next..];
        let text_at = rest.find("```text\n").unwrap();
        let pg = match block(&rest[..text_at], "```sql postgres\n") {
            Some((pg, _)) => pg,
            None => sql,
        };
        let (shown, next) = block(&rest[text_at..], "```text\n").unwrap();
        out.push((pg, shown));
        rest = &rest[text_at + next..];
    }
    out
}

#[test]
fn documented_queries_answer_on_postgresql_as_the_doc_shows() {
    let Some(db) = generate_postgres() else {
        return;
    };
    let mut ran = 0;
    for (sql, shown) in doc_queries_for_postgres() {
        let got = ok(&db.url, &["query", &sql]);
        let got = got.trim_end();
        // The same columns (their widths follow the values: times are longer here).
        let names = |text: &str| -> Vec<String> {
            let header = text.lines().next().unwrap_or_default();
            header.split_whitespace().map(str::to_owned).collect()
        };
        assert_eq!(names(got), names(&shown), "header of:\n{sql}");
        assert_eq!(
            got.lines().count(),
            shown.lines().count(),
            "rows of:\n{sql}\ngot:\n{got}"
        );
        // Shown times are SQLite's (ISO text, the doc's run), and its snippets FTS5's; the
        // rest is the same.
        let differs = sql.contains("client_time")
            || sql.contains("first_seen")
            || sql.contains("ts_headline");
        if !differs {
            assert_eq!(got, shown, "output of:\n{sql}");
        }
        ran += 1;
    }
    assert!(ran >= 13, "{ran} documented queries ran on PostgreSQL");

    // Typed values: numbers as numbers, times as UTC text.
    let json = ok(
        &db.url,
        &[
            "query",
            "--format",
            "json",
            "SELECT subpath, total_hits, cab_limit, first_seen FROM buckets \
             ORDER BY total_hits DESC LIMIT 1",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["subpath"], TEST_APP);
    assert_eq!(v[0]["total_hits"], 40);
    assert_eq!(v[0]["cab_limit"], 5);
    assert!(
        v[0]["first_seen"].as_str().unwrap().ends_with("+00"),
        "{json}"
    );

    // `cerfs buckets` is the buckets view on PostgreSQL too.
    let top = ok(
        &db.url,
        &["buckets", "--top", "2", "--format", "csv", "--since", "1d"],
    );
    let lines: Vec<&str> = top.split("\r\n").collect();
    assert!(
        lines[1].starts_with(&format!("{TEST_APP},app,40,5,5,5,")),
        "{top}"
    );
    assert!(
        lines[2].starts_with(&format!("{CRASH_TEST},app,25,10,10,10,")),
        "{top}"
    );
    assert_eq!(lines.len(), 4, "{top}");
}

#[test]
fn query_refuses_writes_and_stops_at_its_time_limit_on_postgresql() {
    let Some(db) = generate_postgres() else {
        return;
    };
    let count = "SELECT count(*) AS n FROM buckets";
    assert_eq!(csv(&db.url, count), ["n", "6"]);
    for (sql, why) in [
        ("DELETE FROM bucket_rows", "refused"),
        (
            "INSERT INTO deletion_rows (deleted_by, kind, subpath, reason, detail) \
          VALUES ('x', 'cab', 'x', 'x', 'x') RETURNING deletion_id",
            "refused",
        ),
        (
            "WITH d AS (DELETE FROM bucket_rows RETURNING subpath) SELECT * FROM d",
            "refused",
        ),
        (
            "SELECT 1; DELETE FROM bucket_rows",
            "more than one SQL statement",
        ),
        (
            "SELECT nosuchcolumn FROM buckets",
            "postgresql: column \"nosuchcolumn\"",
        ),
        ("", "no statement that returns rows"),
    ] {
        let out = cerfs_db(&db.url, &["query", sql]);
        assert_code(&out, 1);
        assert!(stderr(&out).contains(why), "{sql}: {}", stderr(&out));
    }
    assert_eq!(csv(&db.url, count), ["n", "6"], "nothing changed");

    let out = cerfs_db(&db.url, &["query", "--timeout", "1", "SELECT pg_sleep(30)"]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("ran longer than 1 s"),
        "{}",
        stderr(&out)
    );

    // More rows than one fetch: every one arrives.
    let many = "SELECT g AS n FROM generate_series(1, 1234) AS g";
    assert_eq!(csv(&db.url, many).len(), 1235);

    // A database without a store, and a server that is not there, say what to do.
    let bare = TestDatabase::create().unwrap();
    let out = cerfs_db(&bare.url, &["query", count]);
    assert_code(&out, 1);
    assert!(stderr(&out).contains("no cerfs store"), "{}", stderr(&out));
    // An admin command neither creates a store nor changes a schema (heads do).
    let out = cerfs_db(&bare.url, &["policy", "set", "Tracking=YES"]);
    assert_code(&out, 1);
    assert!(stderr(&out).contains("no cerfs store"), "{}", stderr(&out));
    let out = cerfs_db(&bare.url, &["query", count]);
    assert!(
        stderr(&out).contains("no cerfs store"),
        "still none: {}",
        stderr(&out)
    );
    let out = cerfs_db("postgres://nobody@127.0.0.1:1/none", &["query", count]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("cannot connect to PostgreSQL"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn settings_counts_and_cab_copies_on_postgresql() {
    let Some(db) = generate_postgres() else {
        return;
    };
    let url = db.url.as_str();
    assert_eq!(
        ok(
            url,
            &["policy", "set", "Tracking=no", "Crashes per bucket=7"]
        ),
        "Tracking=NO\nCrashes per bucket=7\n"
    );
    assert_eq!(
        csv(url, "SELECT cab_limit FROM buckets WHERE subpath = 'blue'"),
        ["cab_limit", "7"]
    );
    let out = cerfs_db(url, &["policy", "set", "Colour=blue"]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("unknown name `Colour`"),
        "{}",
        stderr(&out)
    );
    ok(url, &["status", "set", "blue", "Crashes per bucket=9"]);
    assert!(ok(url, &["status", "show", "blue"]).contains("Crashes per bucket=9"));
    assert_eq!(
        csv(url, "SELECT cab_limit FROM buckets WHERE subpath = 'blue'"),
        ["cab_limit", "9"]
    );

    let out = ok(url, &["counts", "reset", "blue"]);
    assert!(out.contains("(was 5, 12)"), "{out}");
    assert_eq!(
        csv(
            url,
            "SELECT cabs_gathered, total_hits FROM buckets WHERE subpath = 'blue'"
        ),
        ["cabs_gathered,total_hits", "0,0"]
    );

    // A cab copied out is the cab stored, byte for byte.
    let rows = csv(
        url,
        "SELECT name, sha256 FROM cabs WHERE subpath = 'blue' ORDER BY name LIMIT 1",
    );
    let (name, sha) = rows[1].split_once(',').unwrap();
    let out = cerfs_db(url, &["cab", "get", &format!("blue\\{name}"), "-o", "-"]);
    assert_code(&out, 0);
    assert_eq!(sha256_hex(&out.stdout), sha);
}

#[test]
fn retention_deletions_quotas_and_verify_on_postgresql() {
    let Some(db) = generate_postgres() else {
        return;
    };
    let url = db.url.as_str();
    let stored = |sub: &str| {
        csv(
            url,
            &format!("SELECT count(*) FROM cabs WHERE subpath = '{sub}' AND state = 'complete'"),
        )[1]
        .clone()
    };
    assert_eq!(stored("blue"), "5");

    let verified = cerfs_db(url, &["verify"]);
    assert_code(&verified, 0);
    assert!(
        stderr(&verified).contains("verified 28 cabs"),
        "{}",
        stderr(&verified)
    );

    ok(
        url,
        &["retention", "set", "--keep-first", "1", "--keep-last", "1"],
    );
    ok(url, &["prune"]);
    assert_eq!(stored("blue"), "2", "the first and the last cab are kept");

    let refused = cerfs_db(url, &["bucket", "delete", "shutdown"]);
    assert_ne!(refused.status.code(), Some(0), "a deletion asks first");
    ok(
        url,
        &["bucket", "delete", "shutdown", "--yes", "--reason", "PII 1"],
    );
    assert_eq!(
        csv(
            url,
            "SELECT count(*) FROM buckets WHERE subpath = 'shutdown'"
        ),
        ["count", "0"]
    );
    let name = csv(
        url,
        "SELECT name FROM cabs WHERE subpath = 'blue' AND state = 'complete' LIMIT 1",
    )[1]
    .clone();
    ok(
        url,
        &[
            "cab",
            "delete",
            &format!("blue/{name}"),
            "--yes",
            "--reason",
            "PII 2",
        ],
    );
    assert_eq!(stored("blue"), "1");
    assert_eq!(
        csv(
            url,
            "SELECT kind, subpath, reason FROM deletions ORDER BY deletion_id"
        ),
        [
            "kind,subpath,reason",
            "bucket,shutdown,PII 1",
            "cab,blue,PII 2"
        ]
    );

    // Alerts: their settings and their log are in the store.
    ok(
        url,
        &[
            "alerts",
            "set",
            "--webhook",
            "http://127.0.0.1:9/hook",
            "--spike-min",
            "7",
        ],
    );
    let shown = ok(url, &["alerts", "show"]);
    assert!(shown.contains("http://127.0.0.1:9/hook"), "{shown}");
    assert!(shown.contains("7 hits in an hour"), "{shown}");

    ok(url, &["quota", "set", "--max-store", "1G"]);
    let shown = ok(url, &["quota", "show"]);
    assert!(shown.contains("1073741824"), "{shown}");
    ok(url, &["quota", "clear"]);

    let verified = cerfs_db(url, &["verify"]);
    assert_code(&verified, 0);
    assert!(
        stderr(&verified).contains("0 corrupt"),
        "{}",
        stderr(&verified)
    );
}

#[test]
fn commands_of_a_sqlite_file_refuse_a_postgresql_store_with_a_reason() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    // A store exists once a head opened it.
    drop(PgStore::open(&db.url).unwrap());
    let url = db.url.as_str();
    for (args, why) in [
        (
            &["backup", "/tmp/cerfs-pg-backup-never.db"][..],
            "pg_basebackup",
        ),
        (&["compact"], "autovacuum"),
    ] {
        let out = cerfs_db(url, args);
        assert_code(&out, 1);
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
    }
    assert!(!std::path::Path::new("/tmp/cerfs-pg-backup-never.db").exists());
}

#[test]
fn cer2_reports_and_their_cabs_reach_postgresql_over_http() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let port = reserve_port();
    let addr = port.addr().to_string();
    // Killed if the test fails before it stops the server.
    let mut child = ChildGuard(
        Command::new(CERFS)
            .args(["http", "--db", &db.url, "--listen", &addr])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    poll_until(Duration::from_secs(30), "cerfs http listens", || {
        if let Ok(Some(status)) = child.0.try_wait() {
            let mut err = String::new();
            child
                .0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("cerfs http exited with {status}: {err}");
        }
        std::net::TcpStream::connect(&addr).ok()
    });

    let xml = r#"<?xml version="1.0" encoding="UTF-16"?><WERREPORT><MACHINEINFO machinename="m1" os="6.1.6561.2.0.0.256.1" lcid="1033"/><USERINFO username="u1"/><APPLICATIONINFO appname="Windows" apppath="C:\Windows\System32\WerFault.exe" appcompany="Test Corporation"/><EVENTINFO reporttype="4" eventtime="128496996179046077" eventtype="BlueScreen" friendlyeventname="Shut down unexpectedly"/><SIGNATURE><SECONDARYPARAMETER name="BCCode" value="f4"/></SIGNATURE></WERREPORT>"#;
    let body = cerfs_testkit::utf16le_bom(xml);
    let (status, answer) = post_stage2(&addr, &body);
    assert_eq!(status, 200, "{answer}");
    let dump = answer
        .lines()
        .find_map(|l| l.strip_prefix("DumpFile="))
        .unwrap_or_else(|| panic!("no DumpFile in {answer}"))
        .trim()
        .to_owned();

    // The client uploads its cab where DumpFile says.
    let cab = cerfs_testkit::build_cab(&[("sysdata.xml", b"<SYSTEMINFO/>".to_vec())]);
    let path = dump.replace('\\', "/");
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        cab.len()
    )
    .unwrap();
    conn.write_all(&cab).unwrap();
    let mut put_answer = String::new();
    conn.read_to_string(&mut put_answer).unwrap();
    assert!(put_answer.starts_with("HTTP/1.1 2"), "{put_answer}");

    assert_eq!(
        csv(
            &db.url,
            "SELECT machine, dump_state, cab_sha256 FROM cer2_reports"
        ),
        [
            "machine,dump_state,cab_sha256".to_owned(),
            format!("m1,uploaded,{}", sha256_hex(&cab))
        ]
    );
    assert_eq!(
        csv(
            &db.url,
            "SELECT subpath, cabs_gathered, total_hits FROM buckets"
        ),
        ["subpath,cabs_gathered,total_hits", "blue,1,1"]
    );
    // The head's indexer (its worker process reading the cab from PostgreSQL) indexes it.
    poll_until(Duration::from_secs(60), "the head indexes the cab", || {
        let rows = csv(&db.url, "SELECT index_status, file_count FROM cabs");
        (rows[1] != "pending,0").then_some(())
    });
    assert_eq!(
        csv(&db.url, "SELECT index_status, file_count FROM cabs")[1],
        "indexed,1"
    );
    assert_eq!(
        csv(&db.url, "SELECT name, kind FROM cab_files"),
        ["name,kind", "sysdata.xml,text"]
    );

    let status = child.stop(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "cerfs http stops cleanly");
}
