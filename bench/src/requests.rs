//! Benchmarks 1b and 2b: where a report cycle's time goes inside cerfs. One client runs
//! cycles against `cerfs serve --web`; cerfs's own /metrics before and after give the FUSE
//! requests per cycle by operation and the time cerfs spent answering them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cycles::{self, RunFigures};
use crate::servers::Cerfs;
use crate::{Opts, PORT_SERVE, PORT_WEB_METRICS};

/// Which client drives the cycles.
#[derive(Debug, Clone, Copy)]
pub enum Via {
    /// The Python SMB client through smbd (benchmark 1's client).
    Smb,
    /// std::fs calls on the mount (benchmark 2's client).
    Mount,
}

/// Request count and seconds spent, per FUSE operation.
type Tally = BTreeMap<String, (f64, f64)>;

/// Fetches cerfs's /metrics.
fn fuse_tally(client: &reqwest::blocking::Client) -> Result<Tally> {
    let url = format!("http://127.0.0.1:{PORT_WEB_METRICS}/metrics");
    let text = client
        .get(&url)
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.text())
        .with_context(|| format!("GET {url}"))?;
    parse_tally(&text)
}

/// Reads `cerfs_request_duration_seconds_{count,sum}{adapter="fuse",op=…}` lines.
fn parse_tally(text: &str) -> Result<Tally> {
    let mut tally = Tally::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cerfs_request_duration_seconds_") else {
            continue;
        };
        let (kind, rest) = match rest.split_once('{') {
            Some((k, r)) if k == "count" || k == "sum" => (k, r),
            _ => continue,
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        if !labels.contains("adapter=\"fuse\"") {
            continue;
        }
        let Some(op) = labels
            .split(',')
            .find_map(|l| l.strip_prefix("op=\""))
            .and_then(|o| o.strip_suffix('"'))
        else {
            continue;
        };
        let value: f64 = value
            .trim()
            .parse()
            .with_context(|| format!("bad line {line:?}"))?;
        let entry = tally.entry(op.to_owned()).or_default();
        if kind == "count" {
            entry.0 = value;
        } else {
            entry.1 = value;
        }
    }
    Ok(tally)
}

/// The section: requests per cycle by operation, µs per request, cerfs's ms per cycle.
pub fn per_cycle(opts: &Opts, via: Via) -> Result<String> {
    let cycles: u64 = if opts.quick { 30 } else { 100 };
    let dir = opts.workdir.join("requests");
    let web = format!("127.0.0.1:{PORT_WEB_METRICS}");
    let cerfs = Cerfs::serve_with(&dir.join("cerfs"), PORT_SERVE, &["--web", &web])?;
    cycles::write_policy(&cerfs.mountpoint)?;
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let before = loop {
        match fuse_tally(&client) {
            Ok(t) => break t,
            Err(e) if Instant::now() > deadline => {
                return Err(e.context("cerfs web never answered"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let run: RunFigures = match via {
        Via::Smb => cycles::smb_run(
            &opts.smb_client_dir()?,
            &cycles::make_cabs(&dir.join("cabs"))?,
            PORT_SERVE,
            1,
            cycles,
            &cerfs.mountpoint,
        )?,
        Via::Mount => cycles::fs_run(
            &std::env::current_exe()?,
            &cycles::make_cabs(&dir.join("cabs"))?,
            1,
            cycles,
            &cerfs.mountpoint,
        )?,
    };
    let after = fuse_tally(&client)?;
    drop(cerfs);
    crate::cycles::remove(&dir);
    if run.cycles_ok == 0 {
        bail!("no cycle succeeded: nothing to divide by");
    }
    Ok(render(via, &before, &after, run.cycles_ok))
}

fn render(via: Via, before: &Tally, after: &Tally, cycles: u64) -> String {
    let (title, who) = match via {
        Via::Smb => ("1b. FUSE requests per SMB report cycle", "one SMB client"),
        Via::Mount => (
            "2b. FUSE requests per report cycle on the mount",
            "one client",
        ),
    };
    let mut out = format!(
        "\n## {title}\n\n{who}, {cycles} cycles against `cerfs serve --web` (the same cycle as \
         above); from cerfs's own `/metrics` before and after: requests per cycle by FUSE \
         operation, and the time cerfs spent answering them, until each answer was ready (inside \
         cerfs: the kernel's round trip and the client's time are not in it).\n\n\
         | operation | requests per cycle | µs per request | cerfs ms per cycle |\n\
         |---|---:|---:|---:|\n"
    );
    let n = cycles as f64;
    let (mut requests, mut secs) = (0.0, 0.0);
    let mut rows: Vec<(String, f64, f64)> = after
        .iter()
        .map(|(op, (count, sum))| {
            let (c0, s0) = before.get(op).copied().unwrap_or_default();
            (op.clone(), count - c0, sum - s0)
        })
        .filter(|(_, count, _)| *count > 0.0)
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (op, count, sum) in &rows {
        requests += count;
        secs += sum;
        out.push_str(&format!(
            "| {op} | {:.1} | {:.0} | {:.2} |\n",
            count / n,
            sum / count * 1e6,
            sum / n * 1e3
        ));
    }
    out.push_str(&format!(
        "| **all** | **{:.1}** | {:.0} | **{:.2}** |\n",
        requests / n,
        if requests > 0.0 {
            secs / requests * 1e6
        } else {
            0.0
        },
        secs / n * 1e3
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cycle_rows_are_deltas_sorted_by_count() {
        let before: Tally = [("getattr".to_owned(), (10.0, 0.001))].into();
        let after: Tally = [
            ("getattr".to_owned(), (30.0, 0.003)),
            ("lookup".to_owned(), (40.0, 0.004)),
            ("statfs".to_owned(), (0.0, 0.0)),
        ]
        .into();
        let t = render(Via::Mount, &before, &after, 10);
        assert!(
            t.contains("| lookup | 4.0 | 100 | 0.40 |\n| getattr | 2.0 | 100 | 0.20 |"),
            "{t}"
        );
        assert!(!t.contains("statfs"), "{t}");
        assert!(t.contains("| **all** | **6.0** | 100 | **0.60** |"), "{t}");
    }

    #[test]
    fn the_fuse_lines_of_metrics_are_read() {
        let text = "# TYPE cerfs_request_duration_seconds histogram\n\
            cerfs_request_duration_seconds_sum{adapter=\"fuse\",op=\"lookup\"} 0.5\n\
            cerfs_request_duration_seconds_count{adapter=\"fuse\",op=\"lookup\"} 7\n\
            cerfs_request_duration_seconds_bucket{adapter=\"fuse\",op=\"lookup\",le=\"0.001\"} 7\n\
            cerfs_request_duration_seconds_count{adapter=\"http\",op=\"report\"} 3\n";
        let t = parse_tally(text).expect("parses");
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t["lookup"], (7.0, 0.5));
    }
}
