//! The totals the console reads (schema 9: reports per day and kind, the cab totals, the
//! signatures per day) against the same figures recomputed from the rows they summarise,
//! after each step of a store's life: hits, CER2 reports, cabs, walks, index failures, a
//! re-walk, a prune, a sweep and a bucket's deletion.

#![allow(clippy::unwrap_used)]

mod common;

use cerfs_db::prelude::*;
use cerfs_db::{Audit, ConsoleDb, IndexDb, LogId, Removal, SqliteStore};

use common::{line, raw, store_cab as cab};

fn rows(conn: &rusqlite::Connection, sql: &str) -> Vec<Vec<String>> {
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        (0..n)
            .map(|i| {
                r.get::<_, rusqlite::types::Value>(i)
                    .map(|v| format!("{v:?}"))
            })
            .collect()
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

/// Every summary equals its recomputation.
fn assert_totals(conn: &rusqlite::Connection, step: &str) {
    let reports = rows(
        conn,
        "SELECT day, protocol, kind, reports FROM daily_report_rows WHERE reports > 0 \
         ORDER BY 1, 2, 3",
    );
    let recomputed = rows(
        conn,
        "SELECT day, protocol, kind, count(*) FROM ( \
             SELECT substr(l.received_at, 1, 10) AS day, 'cer1' AS protocol, b.kind AS kind \
             FROM log_lines l JOIN bucket_rows b ON b.bucket_id = l.log_id WHERE l.log_id > 0 \
             UNION ALL \
             SELECT substr(r.received_at, 1, 10), 'cer2', b.kind \
             FROM cer2_report_rows r JOIN bucket_rows b ON b.bucket_id = r.bucket_id) \
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    );
    assert_eq!(reports, recomputed, "reports per day after {step}");
    let cabs = rows(
        conn,
        "SELECT cabs, bytes, backlog, failed FROM cab_total_rows",
    );
    let recomputed = rows(
        conn,
        "SELECT count(*), coalesce(sum(size), 0), count(*) FILTER (WHERE index_status IS NULL), \
                count(*) FILTER (WHERE index_status = 'failed') \
         FROM cab_rows WHERE state = 'complete' AND removal IS NULL",
    );
    assert_eq!(cabs, recomputed, "cab totals after {step}");
    let signatures = rows(
        conn,
        "SELECT day, signature, bucket_id, crashes FROM daily_signature_rows WHERE crashes > 0 \
         ORDER BY 1, 2, 3",
    );
    let recomputed = rows(
        conn,
        "SELECT substr(c.created_at, 1, 10), s.signature, c.bucket_id, count(*) \
         FROM stack_rows s JOIN cab_rows c ON c.ino = s.cab_id GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    );
    assert_eq!(signatures, recomputed, "signatures after {step}");
    let later = rows(
        conn,
        "SELECT s.signature FROM stack_rows s JOIN cab_rows c ON c.ino = s.cab_id \
         LEFT JOIN signature_first_rows f ON f.signature = s.signature \
         WHERE f.first_at IS NULL OR f.first_at > c.created_at",
    );
    assert!(
        later.is_empty(),
        "first seen after a cab has it, after {step}: {later:?}"
    );
}

fn walk(conn: &rusqlite::Connection, cab: u64, signature: &str) {
    conn.execute(
        "INSERT INTO stack_rows (cab_id, member, signature, walked_at) \
         VALUES (?1, 'crash.dmp', ?2, '2026-01-02T00:00:00.000Z')",
        rusqlite::params![cab as i64, signature],
    )
    .unwrap();
}

fn cer2_report(conn: &rusqlite::Connection, bucket: i64, day: &str) {
    conn.execute(
        "INSERT INTO cer2_report_rows (bucket_id, received_at, machine, os_version, lcid, user, \
         app_name, app_path, report_type, event_type, event_time, event_filetime, dump_state) \
         VALUES (?1, ?2, 'PC', '6.1', 1033, 'u', 'a.exe', 'C:\\a.exe', 1, 'APPCRASH', ?2, 0, \
         'none')",
        rusqlite::params![bucket, format!("{day}T08:00:00.000Z")],
    )
    .unwrap();
}

#[test]
fn console_totals_follow_every_change_of_the_rows_they_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cer.db");
    let store = SqliteStore::open(&path).unwrap();
    let conn = raw(&path);
    assert_totals(&conn, "a new store");

    let a = cab(&store, "blue", "a.cab", 1000);
    let b = cab(&store, "blue", "b.cab", 2000);
    let c = cab(&store, "shutdown", "c.cab", 30);
    let blue = store.find_bucket("blue").unwrap().unwrap();
    let shutdown = store.find_bucket("shutdown").unwrap().unwrap();
    store
        .append_log(
            LogId::Hits(blue),
            &[line("No CAB", "PC1"), line("No CAB", "PC2")],
        )
        .unwrap();
    store
        .append_log(LogId::Hits(shutdown), &[line("No CAB", "PC3")])
        .unwrap();
    store
        .append_log(LogId::Crash, &[line("No CAB", "PC4")])
        .unwrap();
    // Reports of other days (lines a server received earlier).
    conn.execute(
        "UPDATE log_lines SET received_at = '2026-01-01T09:00:00.000Z' WHERE machine = 'PC2'",
        [],
    )
    .unwrap();
    cer2_report(&conn, blue as i64, "2026-01-01");
    cer2_report(&conn, shutdown as i64, "2026-01-03");
    cer2_report(&conn, shutdown as i64, "2026-01-03");
    conn.execute(
        "UPDATE cer2_report_rows SET received_at = '2026-01-04T00:00:00.000Z' \
         WHERE report_id = (SELECT max(report_id) FROM cer2_report_rows)",
        [],
    )
    .unwrap();
    assert_totals(&conn, "cabs, hits and CER2 reports");

    walk(&conn, a, "ntoskrnl.exe!KeBugCheckEx");
    walk(&conn, b, "ntoskrnl.exe!KeBugCheckEx");
    walk(&conn, c, "EMPTY: no crashing thread");
    let mut index = IndexDb::open(&path).unwrap();
    index.store_failure(c as i64, "not a cab").unwrap();
    assert_totals(&conn, "walks and an index failure");
    let console = ConsoleDb::open(&path).unwrap();
    let facts = console.store_facts().unwrap();
    assert_eq!(
        (facts.cabs, facts.cab_bytes, facts.index_failed),
        (3, 3030, 1)
    );
    let all = console.top_signatures(None, 10).unwrap();
    assert_eq!(all[0].signature, "ntoskrnl.exe!KeBugCheckEx");
    assert_eq!((all[0].crashes, all[0].buckets), (2, 1));
    // The failed cab's index rows (its walk too) are gone: one signature is left.
    assert_eq!(all.len(), 1);
    walk(&conn, c, "EMPTY: no crashing thread");
    let first = console.signature_page(None, 1, 0).unwrap();
    assert_eq!((first.total, first.items.len()), (2, 1));
    let beyond = console.signature_page(None, 1, 5).unwrap();
    assert_eq!((beyond.total, beyond.items.len()), (2, 0));

    // A re-walk replaces a cab's stack rows.
    conn.execute("DELETE FROM stack_rows WHERE cab_id = ?1", [b as i64])
        .unwrap();
    walk(&conn, b, "other!Function");
    assert_totals(&conn, "a re-walk");

    assert!(store.remove_cab(a, Removal::Pruned, None).unwrap());
    assert_totals(&conn, "a prune");
    while store.sweep(3).unwrap().more {}
    assert_totals(&conn, "a sweep");

    let audit = Audit {
        by: "admin".into(),
        reason: "test".into(),
    };
    store.delete_bucket("blue", &audit).unwrap().unwrap();
    assert_totals(&conn, "a bucket's deletion");
    while store.sweep(3).unwrap().more {}
    assert_totals(&conn, "the deletion's sweep");
    let totals = console.report_totals().unwrap();
    let of = |p: &str, k: &str| {
        totals
            .iter()
            .find(|(pp, kk, _)| *pp == p && *kk == k)
            .unwrap()
            .2
    };
    assert_eq!((of("cer1", "kernel"), of("cer2", "kernel")), (0, 0));
    assert_eq!((of("cer1", "shutdown"), of("cer2", "shutdown")), (1, 2));
}

/// The rows of `sql` on PostgreSQL, each value as text.
fn pg_rows(client: &mut postgres::Client, sql: &str) -> Vec<Vec<String>> {
    client
        .simple_query(sql)
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Every summary of a PostgreSQL store (its shards summed) equals its recomputation.
fn assert_pg_totals(client: &mut postgres::Client, step: &str) {
    let day = |col: &str| format!("({col} AT TIME ZONE 'UTC')::date");
    let pairs = [
        (
            "reports per day",
            "SELECT day, protocol, kind, sum(reports) FROM daily_report_rows \
             GROUP BY 1, 2, 3 HAVING sum(reports) > 0 ORDER BY 1, 2, 3"
                .to_owned(),
            format!(
                "SELECT day, protocol, kind, count(*) FROM ( \
                   SELECT {} AS day, 'cer1' AS protocol, b.kind AS kind \
                   FROM log_lines l JOIN bucket_rows b ON b.bucket_id = l.log_id \
                   WHERE l.log_id > 0 \
                   UNION ALL \
                   SELECT {}, 'cer2', b.kind \
                   FROM cer2_report_rows r JOIN bucket_rows b ON b.bucket_id = r.bucket_id) x \
                 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                day("l.received_at"),
                day("r.received_at")
            ),
        ),
        (
            "hits per day",
            "SELECT day, bucket_id, hits FROM daily_hit_rows WHERE hits > 0 ORDER BY 1, 2"
                .to_owned(),
            format!(
                "SELECT {}, log_id, count(*) FROM log_lines WHERE log_id > 0 \
                 GROUP BY 1, 2 ORDER BY 1, 2",
                day("received_at")
            ),
        ),
        (
            "cab totals",
            "SELECT sum(cabs), sum(bytes), sum(backlog), sum(failed) FROM cab_total_rows"
                .to_owned(),
            "SELECT count(*), coalesce(sum(size), 0), \
                    count(*) FILTER (WHERE index_status IS NULL), \
                    count(*) FILTER (WHERE index_status = 'failed') \
             FROM cab_rows WHERE state = 'complete' AND removal IS NULL"
                .to_owned(),
        ),
        (
            "signatures",
            "SELECT day, signature, bucket_id, crashes FROM daily_signature_rows \
             WHERE crashes > 0 ORDER BY 1, 2, 3"
                .to_owned(),
            format!(
                "SELECT {}, s.signature, c.bucket_id, count(*) FROM stack_rows s \
                 JOIN cab_rows c ON c.ino = s.cab_id GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                day("c.created_at")
            ),
        ),
    ];
    for (what, kept, recomputed) in pairs {
        assert_eq!(
            pg_rows(client, &kept),
            pg_rows(client, &recomputed),
            "{what} after {step}"
        );
    }
    let later = pg_rows(
        client,
        "SELECT s.signature FROM stack_rows s JOIN cab_rows c ON c.ino = s.cab_id \
         LEFT JOIN signature_first_rows f ON f.signature = s.signature \
         WHERE f.first_at IS NULL OR f.first_at > c.created_at",
    );
    assert!(
        later.is_empty(),
        "first seen after a cab has it, after {step}: {later:?}"
    );
}

#[test]
fn console_totals_follow_every_change_of_the_rows_they_count_on_postgresql() {
    let Some(db) = cerfs_testkit::TestDatabase::create() else {
        return;
    };
    let store = cerfs_db::PgStore::open(&db.url).unwrap();
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    assert_pg_totals(&mut client, "a new store");

    let a = cab(&store, "blue", "a.cab", 1000);
    let b = cab(&store, "blue", "b.cab", 2000);
    let c = cab(&store, "shutdown", "c.cab", 30);
    let blue = store.find_bucket("blue").unwrap().unwrap();
    let shutdown = store.find_bucket("shutdown").unwrap().unwrap();
    store
        .append_log(
            LogId::Hits(blue),
            &[line("No CAB", "PC1"), line("No CAB", "PC2")],
        )
        .unwrap();
    store
        .append_log(LogId::Hits(shutdown), &[line("No CAB", "PC3")])
        .unwrap();
    store
        .append_log(LogId::Crash, &[line("No CAB", "PC4")])
        .unwrap();
    // Reports of other days (lines a server received earlier).
    client
        .batch_execute(
            "UPDATE log_lines SET received_at = '2026-01-01T09:00:00Z' WHERE machine = 'PC2'",
        )
        .unwrap();
    for (bucket, at) in [
        (blue, "2026-01-01T08:00:00Z"),
        (shutdown, "2026-01-03T08:00:00Z"),
        (shutdown, "2026-01-03T08:00:00Z"),
    ] {
        client
            .execute(
                "INSERT INTO cer2_report_rows (bucket_id, received_at, machine, os_version, \
                 lcid, \"user\", app_name, app_path, report_type, event_type, event_time, \
                 event_filetime, dump_state) VALUES ($1, $2::text::timestamptz, 'PC', '6.1', \
                 1033, 'u', 'a.exe', 'C:\\a.exe', 1, 'APPCRASH', $2, 0, 'none')",
                &[&bucket, &at],
            )
            .unwrap();
    }
    client
        .batch_execute(
            "UPDATE cer2_report_rows SET received_at = '2026-01-04T00:00:00Z' \
             WHERE report_id = (SELECT max(report_id) FROM cer2_report_rows); \
             UPDATE cer2_report_rows SET machine = 'PC9'",
        )
        .unwrap();
    assert_pg_totals(&mut client, "cabs, hits and CER2 reports");

    let walk = |client: &mut postgres::Client, cab: u64, signature: &str| {
        client
            .execute(
                "INSERT INTO stack_rows (cab_id, member, signature) VALUES ($1, 'crash.dmp', $2)",
                &[&(cab as i64), &signature],
            )
            .unwrap();
    };
    walk(&mut client, a, "ntoskrnl.exe!KeBugCheckEx");
    walk(&mut client, b, "ntoskrnl.exe!KeBugCheckEx");
    walk(&mut client, c, "EMPTY: no crashing thread");
    let location = cerfs_db::StoreLocation::Postgres(db.url.clone());
    let mut index = IndexDb::open_at(&location).unwrap();
    index.store_failure(c as i64, "not a cab").unwrap();
    assert_pg_totals(&mut client, "walks and an index failure");
    let console = ConsoleDb::open_at(&location).unwrap();
    let facts = console.store_facts().unwrap();
    assert_eq!(
        (facts.cabs, facts.cab_bytes, facts.index_failed),
        (3, 3030, 1)
    );
    let all = console.top_signatures(None, 10).unwrap();
    assert_eq!(all[0].signature, "ntoskrnl.exe!KeBugCheckEx");
    assert_eq!((all[0].crashes, all[0].buckets), (2, 1));
    assert_eq!(all.len(), 1);
    walk(&mut client, c, "EMPTY: no crashing thread");
    let first = console.signature_page(None, 1, 0).unwrap();
    assert_eq!((first.total, first.items.len()), (2, 1));
    let beyond = console.signature_page(None, 1, 5).unwrap();
    assert_eq!((beyond.total, beyond.items.len()), (2, 0));

    // A re-walk replaces a cab's stack rows.
    client
        .execute("DELETE FROM stack_rows WHERE cab_id = $1", &[&(b as i64)])
        .unwrap();
    walk(&mut client, b, "other!Function");
    assert_pg_totals(&mut client, "a re-walk");

    assert!(store.remove_cab(a, Removal::Pruned, None).unwrap());
    assert_pg_totals(&mut client, "a prune");
    while store.sweep(3).unwrap().more {}
    assert_pg_totals(&mut client, "a sweep");

    let audit = Audit {
        by: "admin".into(),
        reason: "test".into(),
    };
    store.delete_bucket("blue", &audit).unwrap().unwrap();
    assert_pg_totals(&mut client, "a bucket's deletion");
    while store.sweep(3).unwrap().more {}
    assert_pg_totals(&mut client, "the deletion's sweep");
    let totals = console.report_totals().unwrap();
    let of = |p: &str, k: &str| {
        totals
            .iter()
            .find(|(pp, kk, _)| *pp == p && *kk == k)
            .unwrap()
            .2
    };
    assert_eq!((of("cer1", "kernel"), of("cer2", "kernel")), (0, 0));
    assert_eq!((of("cer1", "shutdown"), of("cer2", "shutdown")), (1, 2));
    // "other!Function" lost its only cab: history keeps it, the new list does not.
    assert!(console
        .new_signatures(30, 10)
        .unwrap()
        .iter()
        .all(|s| s.signature != "other!Function"));
}
