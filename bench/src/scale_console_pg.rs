//! Benchmark 5b on PostgreSQL: the store of benchmark 5 — the same buckets, hits, cabs and
//! signatures, dated the same way — written by SQL into a PostgreSQL store created by
//! `PgStore::open` (its triggers keep the console's totals as the rows go in), for
//! `cerfs web --db URL` to be timed beside the SQLite store.

use anyhow::{Context, Result};

use crate::scale::Scale;

/// Fills the PostgreSQL store at `url` with `s`'s store; returns (hits, cabs).
pub(crate) fn fill(url: &str, s: &Scale) -> Result<(u64, u64)> {
    let mut client =
        postgres::Client::connect(url, postgres::NoTls).context("connect to PostgreSQL")?;
    let mut tx = client.transaction()?;
    tx.batch_execute("SET LOCAL synchronous_commit = off")?;
    let (buckets, hits, big, per, total) = (
        i64::try_from(s.buckets)?,
        i64::try_from(s.hits_per_bucket)?,
        i64::try_from(s.big_bucket_cabs)?,
        i64::try_from(s.cabs_per_bucket)?,
        i64::try_from(s.total_cabs)?,
    );
    // Bucket b: seen (b % 20) days ago at noon UTC, `ncabs` cabs (the first bucket the
    // most), one application in 100 buckets and its signature.
    tx.execute(
        "CREATE TEMP TABLE plan ON COMMIT DROP AS \
         SELECT b, (current_date - (b % 20)::int)::timestamp AT TIME ZONE 'UTC' \
                    + interval '12 hours' AS seen, \
                CASE WHEN b = 1 THEN $2::bigint \
                     ELSE least($3::bigint, \
                                greatest($4::bigint - $2::bigint - (b - 2) * $3::bigint, 0)) \
                END AS ncabs \
         FROM generate_series(1::bigint, $1::bigint) AS b",
        &[&buckets, &big, &per, &total],
    )?;
    tx.batch_execute(
        "INSERT INTO bucket_rows (bucket_id, subpath, kind, app, app_ver, module, mod_ver, \
                                  fault_offset, cabs_gathered, total_hits, first_seen, \
                                  last_seen) \
         SELECT b, format('ScaleApp%s\\1.0.0.0\\scale.dll\\2.0.0.0\\%s', \
                          lpad((b / 100)::text, 5, '0'), lpad(to_hex(b % 100), 8, '0')), \
                'app', format('ScaleApp%s', lpad((b / 100)::text, 5, '0')), '1.0.0.0', \
                'scale.dll', '2.0.0.0', lpad(to_hex(b % 100), 8, '0'), ncabs, 0, seen, seen \
         FROM plan; \
         SELECT setval(pg_get_serial_sequence('bucket_rows', 'bucket_id'), \
                       (SELECT max(b) FROM plan)); \
         INSERT INTO logs (log_id, bucket_id, length, line_count) SELECT b, b, 0, 0 FROM plan",
    )?;
    tx.execute(
        "INSERT INTO log_lines (log_id, start_offset, bytes, time_text, date_text, machine, \
                                \"user\", item, client_time, flagged, received_at) \
         SELECT b, h * 64, convert_to(format('12:%s:00  01-01-2026\tPC-%s\tuser%s\t%s' \
                || chr(13) || chr(10), lpad(h::text, 2, '0'), (b * 7 + h) % 50000, h % 10, \
                CASE WHEN h < ncabs THEN lpad(to_hex(h), 8, '0') || '.cab' ELSE 'No CAB' END), \
                'UTF8'), \
                format('12:%s:00', lpad(h::text, 2, '0')), '01-01-2026', \
                format('PC-%s', lpad(((b * 7 + h) % 50000)::text, 5, '0')), \
                format('user%s', h % 10), \
                CASE WHEN h < ncabs THEN lpad(to_hex(h), 8, '0') || '.cab' ELSE 'No CAB' END, \
                to_char(seen AT TIME ZONE 'UTC', 'YYYY-MM-DD') || 'T12:00:00', false, seen \
         FROM plan, generate_series(0::bigint, $1::bigint - 1) AS h",
        &[&hits],
    )?;
    tx.batch_execute(
        "UPDATE logs l SET line_count = x.n, length = x.n * 64, bucket_id = l.log_id \
         FROM (SELECT log_id, count(*) AS n FROM log_lines WHERE log_id > 0 GROUP BY 1) x \
         WHERE x.log_id = l.log_id; \
         UPDATE bucket_rows b SET total_hits = \
             (SELECT l.line_count FROM logs l WHERE l.log_id = b.bucket_id); \
         CREATE TEMP TABLE cabs ON COMMIT DROP AS \
         SELECT b, c, seen, 1000000 + row_number() OVER (ORDER BY b, c) AS ino \
         FROM plan, generate_series(0::bigint, ncabs - 1) AS c; \
         INSERT INTO nodes (ino, parent, name, role, size, mode, uid, gid, mtime_ns, ctime_ns, \
                            crtime_ns, bucket_id) \
         SELECT ino, 2, format('%s-%s.cab', b, c), 'cab', 16, 292, 0, 0, 0, 0, 0, b FROM cabs; \
         INSERT INTO cab_rows (ino, bucket_id, name, size, sha256, state, started_at, \
                               created_at, index_status, indexed_at) \
         SELECT ino, b, lpad(to_hex(c), 8, '0') || '.cab', 16, repeat('0', 64), 'complete', \
                seen, seen, 'indexed', seen FROM cabs; \
         INSERT INTO stack_rows (cab_id, member, signature, walked_at) \
         SELECT ino, 'crash.dmp', format('scale.dll!Crash%s', lpad((b / 100)::text, 4, '0')), \
                seen FROM cabs",
    )?;
    let counted = tx.query_one(
        "SELECT (SELECT count(*) FROM log_lines), (SELECT count(*) FROM cab_rows)",
        &[],
    )?;
    let (lines, cabs): (i64, i64) = (counted.get(0), counted.get(1));
    tx.commit()?;
    // What autovacuum does soon after such a load: index-only scans need the visibility map.
    client.batch_execute("VACUUM ANALYZE")?;
    Ok((u64::try_from(lines)?, u64::try_from(cabs)?))
}
