//! `cer-client`: a [MS-CER] 1.0 client simulator. It makes error reports on a CER file
//! share with plain file operations, exactly as section 3.1.7 describes, so that it works
//! the same on a cerfs FUSE mount, a plain directory or a path behind Samba.
//!
//! ```text
//! cer-client --root DIR [--buckets N] [--cycles N] [--pattern a|b|mixed]
//!            [--machine NAME] [--user NAME] [--cab-size BYTES | --cab-file PATH] [--seed N]
//! ```
//!
//! Each cycle picks one of `N` application-fault buckets
//! (`App<k>\1.0.0.0\Mod<k>\2.0.0.0\<offset>`) and:
//! 1. reads `policy.txt` and `status/<sub>/status.txt` if present (ENOENT is fine);
//! 2. reads `counts/<sub>/count.txt` if present (step 3: the cab limit);
//! 3. creates `cabs/<sub>` and `counts/<sub>` one level at a time (EEXIST is fine, R5);
//! 4. unless the limit is reached or `iData` says no: writes `cabs/<sub>/<8 chars>.cab`
//!    (pseudo-random bytes of `--cab-size`, or a copy of `--cab-file`);
//! 5. creates count.txt (create + truncate) or increments it with pattern (a) (one
//!    read+write handle: read, seek 0, write, set_len, close) or (b) (read-only open, read,
//!    close; then open with truncate, write, close); `mixed` picks one per cycle;
//! 6. if tracking is on: opens crash.log and `cabs/<sub>/hits.log` for writing (created
//!    if missing, not truncated), seeks to the end and writes one entry each.
//!
//! Every error is printed to stderr and counted; the report goes on where the spec says
//! so. On stdout, at the end, for the caller to verify:
//!
//! ```text
//! cab <sub> <name> <sha256 hex> <length>                 one per cab written
//! bucket <sub> hits=<n> cabs=<n> logged=<n>              one per bucket used
//! cycles=<n> cabs=<n> hits=<n> errors=<n>                last line
//! ```
//!
//! `<sub>` is written with backslashes. The exit status is 1 if any error occurred.
//! Everything random (bucket choice, pattern, cab names and bytes) derives from `--seed`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use cerfs_e2e::client::{self, CabSource, CountPattern, Identity, Rng, Subpath};
use clap::{Parser, ValueEnum};

/// Command line of the simulator.
#[derive(Debug, Parser)]
#[command(about = "MS-CER 1.0 client simulator: error reports with plain file operations")]
struct Args {
    /// The share root (a cerfs mount, a plain directory, a path behind Samba).
    #[arg(long)]
    root: PathBuf,
    /// Number of application-fault buckets to spread the reports over.
    #[arg(long, default_value_t = 1)]
    buckets: usize,
    /// Number of reports.
    #[arg(long, default_value_t = 1)]
    cycles: u64,
    /// How count.txt is incremented.
    #[arg(long, value_enum, default_value_t = PatternArg::Mixed)]
    pattern: PatternArg,
    /// Machine name written into the logs.
    #[arg(long, default_value = "SIMMACHINE")]
    machine: String,
    /// User name written into the logs.
    #[arg(long, default_value = "simuser")]
    user: String,
    /// Size of each (pseudo-random) cab in bytes.
    #[arg(long, default_value_t = 2048)]
    cab_size: u64,
    /// Copy this file as each cab instead of random bytes (e.g. a real cabinet).
    #[arg(long)]
    cab_file: Option<PathBuf>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// `--pattern`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PatternArg {
    /// Always pattern (a).
    A,
    /// Always pattern (b).
    B,
    /// Pattern (a) or (b) at random per cycle.
    Mixed,
}

/// What the run did to one bucket.
#[derive(Debug, Default)]
struct BucketTally {
    hits: u64,
    cabs: u64,
    logged: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.buckets == 0 {
        eprintln!("cer-client: --buckets must be at least 1");
        return ExitCode::from(2);
    }
    let who = Identity {
        machine: args.machine.clone(),
        user: args.user.clone(),
    };
    let cab = match &args.cab_file {
        Some(path) => CabSource::File(path.clone()),
        None => CabSource::Random(args.cab_size),
    };
    let buckets: Vec<Subpath> = (0..args.buckets).map(Subpath::app_bucket).collect();
    let mut rng = Rng::new(args.seed);
    let mut tally: BTreeMap<Subpath, BucketTally> = BTreeMap::new();
    let mut cab_lines = Vec::new();
    let (mut cabs, mut hits, mut errors) = (0u64, 0u64, 0u64);

    for cycle in 0..args.cycles {
        let sub = &buckets[rng.below(buckets.len() as u64) as usize];
        let pattern = match args.pattern {
            PatternArg::A => CountPattern::A,
            PatternArg::B => CountPattern::B,
            PatternArg::Mixed if rng.below(2) == 0 => CountPattern::A,
            PatternArg::Mixed => CountPattern::B,
        };
        let out = client::report(&args.root, sub, &mut rng, &cab, pattern, &who);
        let t = tally.entry(sub.clone()).or_default();
        if let Some(c) = &out.cab {
            cabs += 1;
            cab_lines.push(format!("cab {} {} {} {}", c.sub, c.name, c.sha256, c.len));
        }
        if out.counts.is_some() {
            hits += 1;
            t.hits += 1;
            // A cab counts only if the count.txt update that carried it succeeded.
            t.cabs += u64::from(out.cab.is_some());
        }
        t.logged += u64::from(out.logged);
        for e in &out.errors {
            eprintln!("cer-client[{}] cycle {cycle}: {e}", args.machine);
        }
        errors += out.errors.len() as u64;
    }

    for line in &cab_lines {
        println!("{line}");
    }
    for (sub, t) in &tally {
        println!(
            "bucket {sub} hits={} cabs={} logged={}",
            t.hits, t.cabs, t.logged
        );
    }
    println!(
        "cycles={} cabs={cabs} hits={hits} errors={errors}",
        args.cycles
    );
    if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
