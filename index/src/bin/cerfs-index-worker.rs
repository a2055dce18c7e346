//! The cab indexer's worker as a binary of its own: what `cerfs index-one` runs, for hosts
//! other than the `cerfs` binary (and this crate's tests). Reads one job on stdin, indexes
//! the cab within the job's resource limits, prints the answer as JSON on stdout.

fn main() -> std::process::ExitCode {
    let code = cerfs_index::worker_main();
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
