//! Benchmark 5: scale. Fills a store (created by `SqliteStore::open`, so with cerfs's own
//! schema) with hits, buckets and cabs by SQL through rusqlite — bypassing the share, which
//! would take hours — then times the docs/sql.md queries, `ls` through a `cerfs mount`, and
//! the database size per hit.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use rusqlite::{params, Connection};
use sha2::Digest;

use crate::cycles::remove;
use crate::servers::{self, Cerfs};
use crate::Opts;

/// Root, cabs/, counts/ inodes of a fresh store (migration 1).
const CABS_INO: i64 = 2;
const COUNTS_INO: i64 = 4;
const DIR_MODE: i64 = 0o777;
const FILE_MODE: i64 = 0o666;
const CAB_MODE: i64 = 0o444;
/// Every filled cab's 16 bytes.
const CAB_BYTES: &[u8; 16] = b"MSCF\0\0\0\0bench-ca";

/// The size of a run.
pub(crate) struct Scale {
    pub(crate) buckets: u64,
    pub(crate) hits_per_bucket: u64,
    pub(crate) big_bucket_cabs: u64,
    /// Cabs in every other bucket, until `total_cabs` is reached.
    pub(crate) cabs_per_bucket: u64,
    pub(crate) total_cabs: u64,
}

/// The size of a run: 100,000 buckets (10,000 with `--quick`).
fn scale(opts: &Opts) -> Scale {
    if opts.quick {
        Scale {
            buckets: 10_000,
            hits_per_bucket: 10,
            big_bucket_cabs: 10_000,
            cabs_per_bucket: 2,
            total_cabs: 20_000,
        }
    } else {
        Scale {
            buckets: 100_000,
            hits_per_bucket: 10,
            big_bucket_cabs: 10_000,
            cabs_per_bucket: 2,
            total_cabs: 200_000,
        }
    }
}

/// Bucket `b`'s five levels: 1 app in 100 buckets, so counts/ holds buckets/100 folders.
fn levels(b: u64) -> [String; 5] {
    [
        format!("ScaleApp{:05}", b / 100),
        "1.0.0.0".to_owned(),
        "scale.dll".to_owned(),
        "2.0.0.0".to_owned(),
        format!("{:08x}", b % 100),
    ]
}

fn subpath(b: u64) -> String {
    levels(b).join("\\")
}

/// Inserts everything in one transaction.
fn fill(db: &Path, s: &Scale) -> Result<(u64, u64)> {
    let mut conn = Connection::open(db)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    // hits.log's `logs` row is written after its lines (its length is their sum).
    tx.pragma_update(None, "defer_foreign_keys", "ON")?;
    let now_ns: i64 = 1_763_700_000_000_000_000;
    // Dated relative to the run, so that "this week" and "the last 30 days" hold data: bucket
    // b was seen (b % 20) days ago.
    let days: Vec<String> = (0..20)
        .map(|d| {
            tx.query_row("SELECT date('now', ?1)", [format!("-{d} days")], |r| {
                r.get(0)
            })
        })
        .collect::<rusqlite::Result<_>>()?;
    let mut dirs: HashMap<(i64, String), i64> = HashMap::new();
    // Right sizes and digests, so that the server's scrub finds the cabs sound.
    let cab_sha = format!("{:x}", sha2::Sha256::digest(CAB_BYTES));
    let (mut hits, mut cabs) = (0u64, 0u64);
    {
        let mut node = tx.prepare(
            "INSERT INTO nodes (parent, name, role, size, mode, uid, gid, mtime_ns, ctime_ns, \
             crtime_ns, bucket_id) VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, ?6, ?6, ?6, ?7)",
        )?;
        let mut bucket = tx.prepare(
            "INSERT INTO bucket_rows (bucket_id, subpath, kind, app, app_ver, module, mod_ver, \
             fault_offset, cabs_gathered, total_hits, first_seen, last_seen) \
             VALUES (?1, ?2, 'app', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        )?;
        let mut log = tx.prepare(
            "INSERT INTO logs (log_id, bucket_id, length, line_count) VALUES (?1, ?1, ?2, ?3)",
        )?;
        let mut line = tx.prepare(
            "INSERT INTO log_lines (log_id, start_offset, bytes, time_text, date_text, machine, \
             user, item, client_time, flagged, received_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10)",
        )?;
        let mut cab = tx.prepare(
            "INSERT INTO cab_rows (ino, bucket_id, name, size, sha256, state, started_at, \
             created_at, index_status, indexed_at) \
             VALUES (?1, ?2, ?3, 16, ?4, 'complete', ?5, ?5, 'indexed', ?5)",
        )?;
        let mut chunk = tx.prepare("INSERT INTO chunks (ino, idx, data) VALUES (?1, 0, ?2)")?;
        // Every cab walked: one signature per application (1,000 of them).
        let mut stack = tx.prepare(
            "INSERT INTO stack_rows (cab_id, member, signature, walked_at) \
             VALUES (?1, 'crash.dmp', ?2, ?3)",
        )?;
        let mut dir_node = tx.prepare(
            "INSERT INTO nodes (parent, name, role, size, mode, uid, gid, mtime_ns, ctime_ns, \
             crtime_ns) VALUES (?1, ?2, 'dir', 0, ?3, 0, 0, ?4, ?4, ?4)",
        )?;
        let mut dir = |parent: i64, name: &str| -> Result<i64> {
            if let Some(ino) = dirs.get(&(parent, name.to_owned())) {
                return Ok(*ino);
            }
            dir_node.execute(params![parent, name, DIR_MODE, now_ns])?;
            let ino = tx.last_insert_rowid();
            dirs.insert((parent, name.to_owned()), ino);
            Ok(ino)
        };
        let mut files = Vec::new();
        for b in 1..=s.buckets {
            let lv = levels(b);
            let ncabs = if b == 1 {
                s.big_bucket_cabs
            } else {
                s.cabs_per_bucket.min(
                    s.total_cabs
                        .saturating_sub(s.big_bucket_cabs + (b - 2) * s.cabs_per_bucket),
                )
            };
            let day = &days[(b % 20) as usize];
            let seen = format!("{day}T12:00:00.000Z");
            // The client's MM-DD-YYYY.
            let client_date = format!("{}-{}-{}", &day[5..7], &day[8..10], &day[0..4]);
            bucket.execute(params![
                b as i64,
                subpath(b),
                lv[0],
                lv[1],
                lv[2],
                lv[3],
                lv[4],
                ncabs as i64,
                s.hits_per_bucket as i64,
                seen
            ])?;
            let (mut cab_dir, mut count_dir) = (CABS_INO, COUNTS_INO);
            for level in &lv {
                cab_dir = dir(cab_dir, level)?;
                count_dir = dir(count_dir, level)?;
            }
            files.push((count_dir, "count.txt".to_owned(), "count", 0, FILE_MODE, b));
            // hits.log: hits_per_bucket lines.
            let mut offset = 0i64;
            for h in 0..s.hits_per_bucket {
                let (time, date) = (format!("12:{:02}:{:02}", h % 60, b % 60), &client_date);
                let machine = format!("PC-{:05}", (b * 7 + h) % 50_000);
                let item = if h < ncabs {
                    format!("{h:08x}.cab")
                } else {
                    "No CAB".to_owned()
                };
                let text = format!("{time}  {date}\t{machine}\tuser{}\t{item}\r\n", h % 10);
                line.execute(params![
                    b as i64,
                    offset,
                    text.as_bytes(),
                    time,
                    date,
                    machine,
                    format!("user{}", h % 10),
                    item,
                    format!("{day}T{time}"),
                    seen
                ])?;
                offset += text.len() as i64;
                hits += 1;
            }
            log.execute(params![b as i64, offset, s.hits_per_bucket as i64])?;
            files.push((
                cab_dir,
                "hits.log".to_owned(),
                "hitslog",
                offset,
                FILE_MODE,
                b,
            ));
            for c in 0..ncabs {
                node.execute(params![
                    cab_dir,
                    format!("{c:08x}.cab"),
                    "cab",
                    16,
                    CAB_MODE,
                    now_ns,
                    b as i64
                ])?;
                let ino = tx.last_insert_rowid();
                cab.execute(params![
                    ino,
                    b as i64,
                    format!("{c:08x}.cab"),
                    &cab_sha,
                    seen
                ])?;
                chunk.execute(params![ino, CAB_BYTES.as_slice()])?;
                stack.execute(params![ino, format!("scale.dll!Crash{:04}", b / 100), seen])?;
                cabs += 1;
            }
        }
        for (parent, name, role, size, mode, b) in files {
            node.execute(params![parent, name, role, size, mode, now_ns, b as i64])?;
        }
    }
    tx.commit()?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok((hits, cabs))
}

/// The docs/sql.md queries, with this store's subpaths.
fn queries() -> Vec<(&'static str, String)> {
    let one = subpath(2);
    vec![
        ("1. top buckets this week", "WITH week AS (SELECT bucket_id, sum(hits) AS hits FROM daily_hits WHERE day >= date('now', '-7 days') GROUP BY bucket_id ORDER BY hits DESC, bucket_id LIMIT 10) SELECT b.subpath, week.hits, (SELECT count(DISTINCT machine) FROM hits h WHERE h.bucket_id = week.bucket_id AND h.received_at >= date('now', '-7 days')) AS machines FROM week JOIN buckets b USING (bucket_id) ORDER BY week.hits DESC, b.subpath".to_owned()),
        ("1b. the same from every hit of the week (not in docs/sql.md)", "SELECT subpath, count(*) AS hits, count(DISTINCT machine) AS machines FROM hits WHERE received_at >= date('now', '-7 days') GROUP BY subpath ORDER BY hits DESC LIMIT 10".to_owned()),
        ("2. machines and users behind one bucket", format!("SELECT machine, user, count(*) AS hits, min(client_time) AS first, max(client_time) AS last FROM hits WHERE subpath = '{one}' GROUP BY machine, user ORDER BY hits DESC, machine, user LIMIT 8")),
        ("3. hits per day for a bucket", format!("SELECT substr(client_time, 1, 10) AS day, count(*) AS hits, sum(item <> 'No CAB') AS with_cab FROM hits WHERE subpath = '{one}' GROUP BY day ORDER BY day")),
        ("4. buckets that reached their cab cap", "SELECT subpath, cabs_gathered, cab_limit, cabs_stored, total_hits FROM buckets WHERE cabs_gathered >= cab_limit ORDER BY total_hits DESC".to_owned()),
        ("5. cabs by faulting module", "SELECT crash_module, crash_offset, exception_code, crash_reason, count(*) AS dumps, count(DISTINCT subpath) AS buckets FROM minidumps WHERE crash_module IS NOT NULL GROUP BY crash_module, crash_offset, exception_code ORDER BY dumps DESC".to_owned()),
        ("6. new buckets since a date", "SELECT subpath, kind, first_seen, total_hits FROM buckets WHERE first_seen >= date('now', '-1 days') ORDER BY first_seen".to_owned()),
        ("7. reports the indexer could not read", "SELECT subpath, name, index_status, index_error FROM cabs WHERE index_status IN ('failed', 'partial')".to_owned()),
        ("8. full-text search", "SELECT t.subpath, t.cab, t.member, snippet(cab_text_search, 0, '[', ']', '…', 6) AS context FROM cab_text_search s JOIN cab_texts t ON t.text_id = s.rowid WHERE cab_text_search MATCH 'keyboard' ORDER BY t.text_id LIMIT 3".to_owned()),
        ("9. fields of the cabs' text files", "SELECT value AS os_version, count(DISTINCT cab_id) AS cabs FROM cab_facts WHERE key = 'SYSTEMINFO/SYSTEM/OSVER' GROUP BY value".to_owned()),
        ("10. dumps that agree with their bucket", "SELECT d.subpath, count(*) AS dumps FROM minidumps d JOIN buckets b ON b.subpath = d.subpath WHERE d.crash_module = b.module AND d.crash_offset = b.offset GROUP BY d.subpath".to_owned()),
    ]
}

/// Runs `sql` to the end; returns (ms, rows).
fn time_query(conn: &Connection, sql: &str) -> Result<(f64, usize)> {
    let t = Instant::now();
    let mut stmt = conn
        .prepare(sql)
        .with_context(|| format!("prepare {sql}"))?;
    let mut rows = stmt.query([])?;
    let mut n = 0;
    while rows.next()?.is_some() {
        n += 1;
    }
    Ok((t.elapsed().as_secs_f64() * 1000.0, n))
}

/// `ls` (readdir only, `stat` false) or `ls -l` (readdir and a stat of every entry);
/// returns (ms, entries).
fn time_ls(dir: &Path, stat: bool) -> Result<(f64, usize)> {
    let t = Instant::now();
    let mut n = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("ls {}", dir.display()))? {
        let entry = entry?;
        if stat {
            std::fs::symlink_metadata(entry.path())?;
        }
        n += 1;
    }
    Ok((t.elapsed().as_secs_f64() * 1000.0, n))
}

/// Runs benchmark 5.
pub fn run(opts: &Opts) -> Result<String> {
    let s = scale(opts);
    let base = opts.workdir.join("scale");
    servers::open_dir(&base)?;
    let db = base.join("cerfs").join("cer.db");
    servers::open_dir(&base.join("cerfs"))?;
    drop(cerfs_db::SqliteStore::open(&db).context("create the store")?);
    let t = Instant::now();
    let (hits, cabs) = fill(&db, &s)?;
    let fill_s = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&db)?.len();
    let mut out = format!(
        "\n## 5. Scale\n\nA store created by `SqliteStore::open`, filled **by SQL, bypassing the \
         share** (rusqlite, one transaction, {fill_s:.0} s): {} buckets, {hits} hits (hits.log \
         lines, {} per bucket), {cabs} tiny cabs (16 bytes; one bucket holds {} of them). Then \
         each docs/sql.md query on a fresh read-only connection (cold: first run; warm: second), \
         and listings through a `cerfs mount` (the store's only server): `ls` = readdir, `ls -l` = readdir and a stat of each entry.\n\n\
         Database: {:.1} MB, {:.0} bytes per hit (everything included: cabs, nodes, buckets).\n\n\
         | query | rows | cold ms | warm ms |\n|---|---:|---:|---:|\n",
        s.buckets,
        s.hits_per_bucket,
        s.big_bucket_cabs,
        size as f64 / 1e6,
        size as f64 / hits as f64
    );
    let conn = Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    for (name, sql) in queries() {
        let (cold, rows) = time_query(&conn, &sql)?;
        let (warm, _) = time_query(&conn, &sql)?;
        out.push_str(&format!("| {name} | {rows} | {cold:.2} | {warm:.2} |\n"));
    }
    drop(conn);
    let cerfs = Cerfs::mount_db(&base.join("cerfs"))?;
    let counts = cerfs.mountpoint.join("counts");
    let big = cerfs
        .mountpoint
        .join("cabs")
        .join(levels(1).iter().collect::<std::path::PathBuf>());
    out.push_str(
        "\n| listing through the mount | entries | `ls` ms (readdir) | `ls -l` ms (readdir + stat each), first | `ls -l` ms, second |\n|---|---:|---:|---:|---:|\n",
    );
    for (name, dir) in [
        ("`counts/`", &counts),
        ("the bucket with the most cabs", &big),
    ] {
        let (plain, n) = time_ls(dir, false)?;
        let (first, _) = time_ls(dir, true)?;
        let (second, _) = time_ls(dir, true)?;
        out.push_str(&format!(
            "| {name} | {n} | {plain:.1} | {first:.1} | {second:.1} |\n"
        ));
    }
    drop(cerfs);
    console_both(opts, &db, &s, &mut out)?;
    crate::console_load::run(opts, &base.join("cerfs"), &mut out)?;
    remove(&base);
    Ok(out)
}

/// Benchmark 5b alone: the store of benchmark 5 on SQLite and on PostgreSQL, and the web
/// console over each.
pub fn console_only(opts: &Opts) -> Result<String> {
    let s = scale(opts);
    let base = opts.workdir.join("scale");
    servers::open_dir(&base)?;
    servers::open_dir(&base.join("cerfs"))?;
    let db = base.join("cerfs").join("cer.db");
    drop(cerfs_db::SqliteStore::open(&db).context("create the store")?);
    fill(&db, &s)?;
    let mut out = String::from("\n## 5b. The web console at scale, SQLite and PostgreSQL\n");
    console_both(opts, &db, &s, &mut out)?;
    remove(&base);
    Ok(out)
}

/// The console over the SQLite store `db`, then over the same store in PostgreSQL (a
/// cluster of its own), side by side.
fn console_both(opts: &Opts, db: &Path, s: &Scale, out: &mut String) -> Result<()> {
    let sqlite = console(&db.to_string_lossy())?;
    let mut cluster = crate::scale_out::PgCluster::start(&opts.workdir)?;
    let url = cluster.database()?;
    drop(cerfs_db::PgStore::open(&url).context("create the PostgreSQL store")?);
    let t = Instant::now();
    let (hits, cabs) = crate::scale_console_pg::fill(&url, s)?;
    let fill_s = t.elapsed().as_secs_f64();
    let pg = console(&url)?;
    drop(cluster);
    out.push_str(&format!(
        "\nThe same store in PostgreSQL 15 (a cluster of its own on this machine, defaults), \
         filled by SQL in one transaction with its triggers keeping the console's totals \
         ({hits} hits, {cabs} cabs, {fill_s:.0} s). Each page and API call timed twice (the \
         whole response, over loopback, one client); rows: the API answer's items (or the \
         overview's top buckets).\n\n\
         | the web console | rows | SQLite first ms | SQLite second ms | PostgreSQL rows | \
         PostgreSQL first ms | PostgreSQL second ms | PostgreSQL / SQLite (second) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n"
    ));
    for (a, b) in sqlite.iter().zip(&pg) {
        out.push_str(&format!(
            "| `{}` | {} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {:.2} |\n",
            a.path,
            a.rows,
            a.first,
            a.second,
            b.rows,
            b.first,
            b.second,
            b.second / a.second.max(0.001)
        ));
    }
    Ok(())
}

/// One page or API call of the console, timed.
struct ConsoleTime {
    path: &'static str,
    rows: String,
    first: f64,
    second: f64,
}

/// The web console over the store `db` (a file or a URL): each page and API call, first
/// and second time.
fn console(db: &str) -> Result<Vec<ConsoleTime>> {
    let addr = format!("127.0.0.1:{}", crate::PORT_WEB);
    let mut child = std::process::Command::new(servers::cerfs_bin()?)
        .args(["web", "--db"])
        .arg(db)
        .args(["--listen", &addr])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("cannot run cerfs web")?;
    let result = (|| -> Result<Vec<ConsoleTime>> {
        let start = Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            if start.elapsed() > std::time::Duration::from_secs(30) {
                anyhow::bail!("cerfs web did not listen on {addr} within 30 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50)); // a bench's start poll
        }
        let client = reqwest::blocking::Client::new();
        // (ms, bytes, rows): rows = the API answer's `items` (or top buckets), so that a
        // fast figure from an empty answer shows.
        let get = |path: &str| -> Result<(f64, usize, String)> {
            let t = Instant::now();
            let response = client
                .get(format!("http://{addr}{path}"))
                .send()
                .with_context(|| format!("GET {path}"))?;
            if !response.status().is_success() {
                anyhow::bail!("GET {path}: {}", response.status());
            }
            let body = response.bytes()?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            let rows = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v.as_array().map(Vec::len).or_else(|| {
                        ["items", "top_buckets"]
                            .iter()
                            .find_map(|k| v.get(k).and_then(|a| a.as_array()).map(Vec::len))
                    })
                })
                .map_or_else(|| "page".to_owned(), |n| n.to_string());
            Ok((ms, body.len(), rows))
        };
        let mut times = Vec::new();
        for path in [
            "/",
            "/api/v1/overview?days=90",
            "/buckets",
            "/api/v1/buckets?sort=last_seen&limit=50",
            "/api/v1/buckets?q=ScaleApp00042&kind=application",
            "/api/v1/buckets?offset=99950",
            "/api/v1/buckets?sort=last_seen&offset=99950",
            "/buckets/1",
            "/buckets/2",
            "/api/v1/buckets/1",
            "/signatures",
            "/api/v1/signatures?days=7",
            "/api/v1/signatures",
            "/metrics",
        ] {
            let (first, _, rows) = get(path)?;
            let (second, _, _) = get(path)?;
            times.push(ConsoleTime {
                path,
                rows,
                first,
                second,
            });
        }
        Ok(times)
    })();
    // Stopped by its pid; it holds nothing a kill could damage (read-only).
    let _ = child.kill();
    let _ = child.wait();
    result
}
