//! Benchmark 7: running a store for years. (a) A prune of many cabs (filled by SQL) while
//! 16 SMB clients run report cycles against `cerfs serve`: the clients' reports/s during
//! the prune against the same run without it, and the prune's own rate. (b) `cerfs backup`
//! of a multi-GiB store against `cp` of the same file, in the same run.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection};
use sha2::Digest;

use crate::cycles::{make_cabs, remove, smb_run};
use crate::servers::{self, Cerfs};
use crate::{Opts, PORT_SERVE};

const CABS_INO: i64 = 2;
const CLIENTS: usize = 16;

/// Creates the schema with cerfs's own open, then adds `cabs` cabs of one 4 KiB chunk in
/// buckets of 100, by SQL (the share would take hours).
fn fill_cabs(db: &Path, cabs: u64) -> Result<()> {
    drop(cerfs_db::SqliteStore::open(db).context("create the store")?);
    let mut conn = Connection::open(db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    {
        let mut bucket = tx.prepare(
            "INSERT INTO bucket_rows (bucket_id, subpath, kind) VALUES (?1, ?2, 'generic')",
        )?;
        let mut dir = tx.prepare(
            "INSERT INTO nodes (parent, name, role, size, mode, uid, gid, mtime_ns, ctime_ns, \
             crtime_ns) VALUES (?1, ?2, 'dir', 0, 511, 0, 0, 0, 0, 0)",
        )?;
        let mut node = tx.prepare(
            "INSERT INTO nodes (parent, name, role, size, mode, uid, gid, mtime_ns, ctime_ns, \
             crtime_ns, bucket_id) VALUES (?1, ?2, 'cab', 4096, 292, 0, 0, 0, 0, 0, ?3)",
        )?;
        let mut cab = tx.prepare(
            "INSERT INTO cab_rows (ino, bucket_id, name, size, sha256, state, started_at, \
             created_at) VALUES (?1, ?2, ?3, 4096, ?4, 'complete', ?5, ?5)",
        )?;
        let mut chunk = tx.prepare("INSERT INTO chunks (ino, idx, data) VALUES (?1, 0, ?2)")?;
        let data = vec![0x5au8; 4096];
        let sha: String = sha2::Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut folder = 0i64;
        for c in 0..cabs {
            let b = (c / 100 + 1) as i64;
            if c % 100 == 0 {
                let sub = format!("lifecycle{b:06}");
                bucket.execute(params![b + 1000, sub])?;
                dir.execute(params![CABS_INO, sub])?;
                folder = tx.last_insert_rowid();
            }
            let name = format!("{c:08}.cab");
            node.execute(params![folder, name, b + 1000])?;
            let ino = tx.last_insert_rowid();
            let when = format!("2026-01-01T00:00:{:02}.{:03}Z", (c / 1000) % 60, c % 1000);
            cab.execute(params![ino, b + 1000, name, sha, when])?;
            chunk.execute(params![ino, data])?;
        }
    }
    tx.commit()?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(())
}

fn cerfs(db: &Path, args: &[&str]) -> Result<std::process::Output> {
    servers::cerfs_admin(db, args)
}

/// (a) prune under load.
fn prune_under_load(opts: &Opts, out: &mut String) -> Result<()> {
    let cabs: u64 = if opts.quick { 20_000 } else { 100_000 };
    let cycles: u64 = if opts.quick { 4 } else { 16 };
    let base = opts.workdir.join("lifecycle-prune");
    servers::open_dir(&base)?;
    let db = base.join("cer.db");
    fill_cabs(&db, cabs)?;
    let smb_dir = opts.smb_client_dir()?;
    let cab_dir = make_cabs(&opts.workdir.join("lifecycle-cabs"))?;
    let serve = Cerfs::serve(&base, PORT_SERVE)?;
    let without = smb_run(
        &smb_dir,
        &cab_dir,
        PORT_SERVE,
        CLIENTS,
        cycles,
        &serve.mountpoint,
    )?;
    // Keep each bucket's newest cab: every filled bucket loses 99 of its 100.
    cerfs(&db, &["retention", "set", "--keep-last", "1"])?;
    let prune_bin = servers::cerfs_bin()?;
    let db_for_prune = db.clone();
    let prune = std::thread::spawn(move || -> Result<f64> {
        let start = Instant::now();
        let status = Command::new(prune_bin)
            .arg("prune")
            .arg("--db")
            .arg(&db_for_prune)
            .stdout(std::process::Stdio::null())
            .status()
            .context("cannot run cerfs prune")?;
        if !status.success() {
            bail!("cerfs prune failed: {status}");
        }
        Ok(start.elapsed().as_secs_f64())
    });
    let during = smb_run(
        &smb_dir,
        &cab_dir,
        PORT_SERVE,
        CLIENTS,
        cycles,
        &serve.mountpoint,
    )?;
    let prune_secs = prune
        .join()
        .map_err(|_| anyhow::anyhow!("the prune thread panicked"))??;
    drop(serve);
    let pruned = cabs - cabs / 100;
    out.push_str(&format!(
        "\n### Prune under load\n\n{CLIENTS} SMB clients × {cycles} report cycles against \
         `cerfs serve`, first alone, then while `cerfs prune` removes {pruned} of the {cabs} filled cabs \
         (4 KiB each, filled by SQL; retention: keep each bucket's newest, so the clients' \
         older cabs go too).\n\n\
         | | reports/s | errors |\n|---|---|---|\n\
         | without prune | {:.1} | {} |\n| during prune | {:.1} | {} |\n\n\
         Ratio during/without: **{:.2}** (target ≥ 0.8). Prune: {pruned} cabs in {prune_secs:.1} s \
         = **{:.0} cabs/s**.\n",
        without.reports_per_s,
        without.errors,
        during.reports_per_s,
        during.errors,
        during.reports_per_s / without.reports_per_s.max(f64::MIN_POSITIVE),
        pruned as f64 / prune_secs.max(f64::MIN_POSITIVE),
    ));
    remove(&base);
    Ok(())
}

/// (b) backup against cp.
fn backup_vs_cp(opts: &Opts, out: &mut String) -> Result<()> {
    let gib: u64 = if opts.quick { 1 } else { 4 };
    let base = opts.workdir.join("lifecycle-backup");
    servers::open_dir(&base)?;
    let db = base.join("cer.db");
    // 64 KiB chunks of varied bytes: nothing compresses, as with real cabs.
    let chunks_total = gib * 16 * 1024;
    fill_cabs(&db, 0)?;
    {
        let mut conn = Connection::open(&db)?;
        conn.pragma_update(None, "synchronous", "OFF")?;
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO nodes (parent, name, role, size, mode, uid, gid, mtime_ns, ctime_ns, \
             crtime_ns) VALUES (1, 'big', 'file', ?1, 420, 0, 0, 0, 0, 0)",
            [(chunks_total * 65536) as i64],
        )?;
        let ino = tx.last_insert_rowid();
        {
            let mut chunk =
                tx.prepare("INSERT INTO chunks (ino, idx, data) VALUES (?1, ?2, ?3)")?;
            let mut data = vec![0u8; 65536];
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for idx in 0..chunks_total {
                for b in data.chunks_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
                }
                chunk.execute(params![ino, idx as i64, data])?;
            }
        }
        tx.commit()?;
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    }
    let size = std::fs::metadata(&db)?.len();
    let serve = Cerfs::serve(&base, PORT_SERVE)?;
    let dest = base.join("backup.db");
    let start = Instant::now();
    cerfs(&db, &["backup", dest.to_str().context("UTF-8 path")?])?;
    let backup_secs = start.elapsed().as_secs_f64();
    drop(serve);
    let copy = base.join("copy.db");
    let start = Instant::now();
    let status = Command::new("cp").arg(&db).arg(&copy).status()?;
    if !status.success() {
        bail!("cp failed");
    }
    let _ = Command::new("sync").status();
    let cp_secs = start.elapsed().as_secs_f64();
    let mb = size as f64 / 1e6;
    out.push_str(&format!(
        "\n### Backup\n\nA {mb:.0} MB store (incompressible bytes). `cerfs backup` while \
         `cerfs serve` runs (one SQLite snapshot, `VACUUM INTO`, synced) against `cp` of the \
         same file followed by `sync`:\n\n| | seconds | MB/s |\n|---|---|---|\n\
         | cerfs backup | {backup_secs:.1} | {:.0} |\n| cp + sync | {cp_secs:.1} | {:.0} |\n\n\
         Ratio backup/cp: **{:.2}**.\n",
        mb / backup_secs.max(f64::MIN_POSITIVE),
        mb / cp_secs.max(f64::MIN_POSITIVE),
        cp_secs / backup_secs.max(f64::MIN_POSITIVE),
    ));
    remove(&base);
    Ok(())
}

/// Benchmark 7.
pub fn run(opts: &Opts) -> Result<String> {
    servers::require_samba()?;
    let mut out = String::from("\n## 7. Running for years: prune under load, backup\n");
    prune_under_load(opts, &mut out)?;
    backup_vs_cp(opts, &mut out)?;
    Ok(out)
}
