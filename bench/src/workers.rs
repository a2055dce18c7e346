//! Client processes: started together, released at once, each reporting one JSON summary.
//!
//! A worker prints `ready` when it is connected and set up, waits for a line on its standard
//! input, does its work and prints one JSON object. The bench starts every worker, waits
//! for all the `ready` lines, then releases them all, so start-up (Python imports, SMB
//! sessions) is outside the measurement.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cerfs_e2e::client::{self, CabSource, CountPattern, Identity, Rng, Subpath};
use serde_json::{json, Value};

/// Runs `commands` as released-together workers; returns their JSON summaries and the
/// wall time from the release to the last exit.
pub fn run(commands: Vec<Command>) -> Result<(Vec<Value>, f64)> {
    let mut running: Vec<(Child, BufReader<ChildStdout>)> = Vec::new();
    for mut cmd in commands {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start worker {cmd:?}"))?;
        let out = BufReader::new(child.stdout.take().context("piped stdout")?);
        running.push((child, out));
    }
    let result = release(&mut running);
    if result.is_err() {
        for (child, _) in &mut running {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    result
}

fn release(running: &mut [(Child, BufReader<ChildStdout>)]) -> Result<(Vec<Value>, f64)> {
    for (i, (_, out)) in running.iter_mut().enumerate() {
        let mut line = String::new();
        out.read_line(&mut line)?;
        if line.trim() != "ready" {
            bail!("worker {i} did not get ready (printed {line:?}; its errors are above)");
        }
    }
    let start = Instant::now();
    for (child, _) in running.iter_mut() {
        let stdin = child.stdin.as_mut().context("piped stdin")?;
        stdin.write_all(b"go\n")?;
        stdin.flush()?;
    }
    let mut summaries = Vec::new();
    for (i, (child, out)) in running.iter_mut().enumerate() {
        let mut text = String::new();
        out.read_to_string(&mut text)?;
        let status = child.wait()?;
        let value: Value = serde_json::from_str(text.trim())
            .with_context(|| format!("worker {i} ({status}) printed no summary: {text:?}"))?;
        summaries.push(value);
    }
    Ok((summaries, start.elapsed().as_secs_f64()))
}

/// Waits for the release line on stdin after printing `ready`.
fn ready_and_wait() -> Result<()> {
    println!("ready");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(())
}

/// `worker-fs`: `cycles` MS-CER 3.1.7 cycles on the directory `root` into bucket `bucket`,
/// each copying one of the cabs in `cab_dir` picked at random, count.txt pattern (a) or (b)
/// at random. Prints the summary (same keys as the SMB worker's).
pub fn fs_cycles(
    root: &Path,
    client_id: u64,
    bucket: usize,
    cycles: u64,
    cab_dir: &Path,
) -> Result<()> {
    let mut pool: Vec<_> = std::fs::read_dir(cab_dir)
        .with_context(|| format!("read {}", cab_dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    pool.sort();
    if pool.is_empty() {
        bail!("no cabs in {}", cab_dir.display());
    }
    let sub = Subpath::app_bucket(bucket);
    let who = Identity {
        machine: format!("BENCH{client_id:02}"),
        user: format!("user{client_id}"),
    };
    let mut rng = Rng::new(client_id * 7919 + 1);
    ready_and_wait()?;
    let (mut hits, mut cabs_counted, mut logged, mut ok) = (0u64, 0u64, 0u64, 0u64);
    let (mut cab_names, mut errors, mut lat) = (Vec::new(), Vec::new(), Vec::new());
    let mut cab_bytes = 0u64;
    let start = Instant::now();
    for _ in 0..cycles {
        let cab = CabSource::File(pool[rng.below(pool.len() as u64) as usize].clone());
        let pattern = if rng.below(2) == 0 {
            CountPattern::A
        } else {
            CountPattern::B
        };
        let t = Instant::now();
        let out = client::report(root, &sub, &mut rng, &cab, pattern, &who);
        lat.push(t.elapsed().as_secs_f64());
        if let Some(c) = &out.cab {
            cab_names.push(c.name.clone());
            cab_bytes += c.len;
        }
        if out.counts.is_some() {
            hits += 1;
            cabs_counted += u64::from(out.cab.is_some());
        }
        logged += u64::from(out.logged);
        ok += u64::from(out.errors.is_empty());
        errors.extend(out.errors);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "cycles": ok, "hits": hits, "cabs_counted": cabs_counted, "cabs": cab_names,
            "crash_count": logged, "hits_count": logged, "errors": errors, "secs": secs,
            "lat": lat, "bucket": sub.backslashed(), "cab_bytes": cab_bytes,
        })
    );
    Ok(())
}

/// `worker-count`: increments count.txt of bucket 0 under `root` with pattern (a) as fast
/// as it can for `secs` seconds. Prints `{"ok": N, "errors": M}`.
pub fn count(root: &Path, secs: f64) -> Result<()> {
    let sub = Subpath::app_bucket(0);
    ready_and_wait()?;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (mut ok, mut errors) = (0u64, 0u64);
    let mut first_error = None;
    while Instant::now() < deadline {
        match client::increment_counts(root, &sub, 0, CountPattern::A) {
            Ok(Some(_)) => ok += 1,
            Ok(None) => errors += 1,
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    println!(
        "{}",
        json!({"ok": ok, "errors": errors, "first_error": first_error})
    );
    Ok(())
}
