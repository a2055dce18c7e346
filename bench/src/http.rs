//! Benchmark 6: MS-CER2 over HTTP (`cerfs http`): level-1 reports/s with many concurrent
//! clients, and level-2 cab upload MB/s. No baseline: a plain share has no HTTP side.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cerfs_http::Level1Answer;

use crate::cycles::remove;
use crate::servers::{self, cerfs_bin};
use crate::stats::{self, Figure, Report};
use crate::{Opts, PORT_HTTP};

/// Concurrent level-1 clients.
const CLIENTS: usize = 64;

/// An APPCRASH level-1 report (UTF-16LE with BOM, as Windows sends it) for bucket `k`.
fn report(k: u64) -> Vec<u8> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r\n\
         <WERREPORT xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\r\n\
         <MACHINEINFO machinename=\"PC-{k:04}\" os=\"6.1.7601.2.1.0.256.48\" lcid=\"1031\"/>\r\n\
         <USERINFO username=\"CORP\\bench\"/>\r\n\
         <APPLICATIONINFO appname=\"Bench App\" apppath=\"C:\\Bench\\BenchApp.exe\" appcompany=\"Bench\"/>\r\n\
         <EVENTINFO reporttype=\"1\" eventtime=\"129000000000000000\" eventtype=\"APPCRASH\" friendlyeventname=\"Stopped working\"/>\r\n\
         <SIGNATURE>\r\n\
         <PARAMETER id=\"0\" name=\"Application Name\" value=\"BenchApp.exe\"/>\r\n\
         <PARAMETER id=\"1\" name=\"Application Version\" value=\"1.0.0.0\"/>\r\n\
         <PARAMETER id=\"2\" name=\"Application Timestamp\" value=\"4a5bc9d4\"/>\r\n\
         <PARAMETER id=\"3\" name=\"Fault Module Name\" value=\"bench.dll\"/>\r\n\
         <PARAMETER id=\"4\" name=\"Fault Module Version\" value=\"2.0.0.0\"/>\r\n\
         <PARAMETER id=\"5\" name=\"Fault Module Timestamp\" value=\"4a5bdb3b\"/>\r\n\
         <PARAMETER id=\"6\" name=\"Exception Code\" value=\"c0000005\"/>\r\n\
         <PARAMETER id=\"7\" name=\"Exception Offset\" value=\"{k:08x}\"/>\r\n\
         </SIGNATURE>\r\n<FILES>\r\n<FILE filetype=\"1\" filename=\"WER1234.tmp.mdmp\"/>\r\n</FILES>\r\n\
         </WERREPORT>\r\n"
    );
    let mut out = vec![0xFF, 0xFE];
    for unit in xml.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

fn client() -> Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(300))
        .build()
        .context("http client")
}

/// POSTs report `k`; returns the parsed answer.
fn post(c: &reqwest::blocking::Client, base: &str, k: u64) -> Result<Level1Answer> {
    let resp = c
        .post(format!("{base}/stage2.htm"))
        .header("Content-Type", "text/xml")
        .body(report(k))
        .send()?;
    let status = resp.status();
    let body = resp.bytes()?;
    if !status.is_success() {
        bail!(
            "POST /stage2.htm: {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Level1Answer::parse(&body).map_err(|e| anyhow::anyhow!("bad level-1 answer: {e}"))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: kill(2) on the server this program started.
            #[allow(unsafe_code)]
            let _ = unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.0.wait();
    }
}

fn start(db: &Path) -> Result<Server> {
    let child = Command::new(cerfs_bin()?)
        .arg("http")
        .arg("--db")
        .arg(db)
        .args(["--listen", &format!("127.0.0.1:{PORT_HTTP}")])
        .args(["--max-cab-size", "1073741824"])
        // One address (this process) plays 64 clients reporting 1000 new buckets.
        .args(["--max-connections-per-address", "128"])
        .args(["--new-buckets-per-minute", "1000000"])
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run cerfs http")?;
    let server = Server(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", PORT_HTTP)).is_err() {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("cerfs http did not listen on port {PORT_HTTP} within 60 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(server)
}

/// `SELECT ...` through `cerfs query` (CSV); the first value of the first row.
fn query_number(db: &Path, sql: &str) -> Result<i64> {
    let out = Command::new(cerfs_bin()?)
        .args(["query", "--format", "csv", "--db"])
        .arg(db)
        .arg(sql)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("cerfs query {sql:?} printed {text:?}"))
}

/// Runs benchmark 6.
pub fn run(opts: &Opts) -> Result<Report> {
    let secs = if opts.quick { 5.0 } else { 20.0 };
    let cab_mib: usize = if opts.quick { 16 } else { 64 };
    let dir = opts.workdir.join("http");
    servers::open_dir(&dir)?;
    let db = dir.join("cer.db");
    let server = start(&db)?;
    let base = format!("http://127.0.0.1:{PORT_HTTP}");

    // Level 1: CLIENTS threads POST reports over 1000 buckets for `secs`.
    let ok = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let t0 = Instant::now();
    let mut lat = Vec::new();
    thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..CLIENTS as u64)
            .map(|t| {
                let (ok, failed, base) = (&ok, &failed, &base);
                s.spawn(move || -> Result<Vec<f64>> {
                    let c = client()?;
                    let mut lat = Vec::new();
                    let mut k = t;
                    while Instant::now() < deadline {
                        let t1 = Instant::now();
                        match post(&c, base, 0x1000 + k % 1000) {
                            Ok(_) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                    eprintln!("level-1 error: {e:#}");
                                }
                            }
                        }
                        lat.push(t1.elapsed().as_secs_f64());
                        k += CLIENTS as u64;
                    }
                    Ok(lat)
                })
            })
            .collect();
        for h in handles {
            lat.extend(h.join().map_err(|_| anyhow::anyhow!("client panicked"))??);
        }
        Ok(())
    })?;
    let wall = t0.elapsed().as_secs_f64();
    let ok = ok.into_inner();
    let failed = failed.into_inner();
    let level1_per_s = ok as f64 / wall;

    // Level 2: 1 and 4 clients, each one report and one PUT of a cab_mib cab.
    let mut block = vec![0u8; cab_mib << 20];
    std::io::Read::read_exact(
        &mut cerfs_e2e::client::RandomBytes::new(7, block.len() as u64),
        &mut block,
    )?;
    block[..4].copy_from_slice(b"MSCF");
    let mut level2 = Vec::new();
    for (round, writers) in [1u64, 4].into_iter().enumerate() {
        let c = client()?;
        let dumps = (0..writers)
            .map(|w| {
                let answer = post(&c, &base, 0x0100_0000 + round as u64 * 16 + w)?;
                answer
                    .dump_file
                    .context("the level-1 answer asked for no cab (DumpFile missing)")
            })
            .collect::<Result<Vec<_>>>()?;
        let t0 = Instant::now();
        thread::scope(|s| -> Result<()> {
            let handles: Vec<_> = dumps
                .iter()
                .map(|dump| {
                    let (base, block) = (&base, &block);
                    s.spawn(move || -> Result<()> {
                        let url = format!("{base}/{}", dump.replace('\\', "%5C"));
                        let resp = client()?.put(url).body(block.clone()).send()?;
                        if !resp.status().is_success() {
                            bail!("PUT {dump}: {}", resp.status());
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join().map_err(|_| anyhow::anyhow!("PUT panicked"))??;
            }
            Ok(())
        })?;
        let mb_s = (writers as usize * block.len()) as f64 / 1e6 / t0.elapsed().as_secs_f64();
        level2.push((writers, mb_s));
    }
    let rss = servers::vm_hwm_mib(server.0.id())?;
    drop(server);
    let stored = query_number(&db, "SELECT sum(total_hits) FROM buckets")?;
    let sent = ok as i64 + level2.iter().map(|(w, _)| *w as i64).sum::<i64>();
    remove(&dir);

    let out = format!(
        "\n## 6. CER V2 over HTTP\n\n`cerfs http` alone (no baseline: a plain share has no \
         HTTP side). Level 1: {CLIENTS} threads, each with its own keep-alive connection, POST \
         APPCRASH reports (UTF-16) over 1000 buckets for {secs} s. Level 2: 1 then 4 clients \
         each POST a report and PUT a {cab_mib} MiB cab to its DumpFile. Hits lost = reports \
         answered 200 − sum(total_hits) of the buckets view after the run.\n"
    );
    let mut rows = vec![
        Figure::measure("level-1 reports/s", level1_per_s),
        Figure::measure(
            "level-1 p50 latency, ms",
            stats::percentile(&lat, 50.0) * 1000.0,
        ),
        Figure::measure(
            "level-1 p99 latency, ms",
            stats::percentile(&lat, 99.0) * 1000.0,
        ),
        Figure::count("level-1 failed requests", failed as f64, f64::NAN),
        Figure::count("hits lost", (sent - stored) as f64, f64::NAN),
    ];
    for (w, mb_s) in level2 {
        rows.push(Figure::measure(
            format!("level-2 MB/s, {w} uploader(s)"),
            mb_s,
        ));
    }
    rows.push(Figure::count("peak RSS of cerfs http, MiB", rss, f64::NAN));
    let mut report = Report::from_text(out);
    report.table("cerfs http", "baseline", rows);
    Ok(report)
}
