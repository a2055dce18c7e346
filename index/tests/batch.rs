//! Several cabs per worker process: what a worker that dies (or hangs, or runs out of CPU
//! time) on the middle cab of its batch leaves behind, and how many processes a queue costs.
//!
//! The faults are injected the way the isolation tests of testdata.rs do it, by a worker
//! command of the test's own: a bash wrapper that runs the real worker
//! (`cerfs-index-worker`), passes its progress lines on, and misbehaves when the real worker
//! starts a given cab. It also logs each of its runs, which counts the worker processes.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use cerfs_db::{IndexDb, ReindexFilter, SqliteStore};
use cerfs_fs_core::CerFs;
use cerfs_index::{index_pending, IndexerConfig, Limits, Summary, Worker};
use cerfs_testkit::read_testdata;

const SUB: &str = "TestApp\\1.0.0.0\\test_app.exe\\1.0.0.0\\0000429e";

/// `wrapper REAL LOG HOW CAB`: runs the real worker REAL on the job, forwarding its lines,
/// and when it starts cab CAB: `crash` dies of SIGSEGV; `hang` stops answering (the shell
/// becomes a `sleep`); `cpu` dies of SIGXCPU unless CAB is the first cab of this process
/// (a cab fine alone that meets the process's CPU limit after others); `cpu-always` dies
/// of SIGXCPU. `slow` delays every answer by a second; `none` only forwards.
const WRAPPER: &str = r#"
ulimit -c 0
real=$1 log=$2 how=$3 cab=$4
echo run >> "$log"
exec 3< <("$real")
starts=0
while IFS= read -r line <&3; do
  printf '%s\n' "$line"
  case $line in '{"Start":'*) starts=$((starts + 1)) ;; esac
  case $how in slow) case $line in '{"Start":'*) sleep 1 ;; esac ;; esac
  if [ "$line" = "{\"Start\":$cab}" ]; then
    case $how in
      crash) kill -SEGV $$ ;;
      hang) exec sleep 60 ;;
      cpu) if [ $starts -gt 1 ]; then kill -XCPU $$; fi ;;
      cpu-always) kill -XCPU $$ ;;
    esac
  fi
done
"#;

/// A fresh store with cabs `names` (each a copy of a small libmspack cabinet of two
/// members), uploaded in that order (the queue's order).
struct Store {
    dir: tempfile::TempDir,
    db: PathBuf,
}

fn store(names: &[&str]) -> Store {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cer.db");
    let fs = CerFs::new(Arc::new(SqliteStore::open(&db).unwrap()));
    let cab = read_testdata("cabs/normal_2files_1folder.cab");
    for name in names {
        fs.upload_cab(SUB, name, &mut std::io::Cursor::new(&cab))
            .unwrap();
    }
    Store { dir, db }
}

impl Store {
    fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db).unwrap()
    }

    /// (index_status, index_error, members listed) of a cab.
    fn status(&self, name: &str) -> (String, Option<String>, i64) {
        self.conn()
            .query_row(
                "SELECT index_status, index_error, \
                 (SELECT count(*) FROM cab_files f WHERE f.cab_id = c.cab_id) \
                 FROM cabs c WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    }

    fn cab_id(&self, name: &str) -> i64 {
        self.conn()
            .query_row("SELECT cab_id FROM cabs WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .unwrap()
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("runs.log")
    }

    /// How many worker processes the wrapper ran.
    fn runs(&self) -> usize {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// Indexes the queue with the wrapper doing `how` on cab `fault` (a name).
    fn index(&self, how: &str, fault: Option<&str>, limits: Limits, batch: usize) -> Summary {
        let cab = fault.map_or(0, |name| self.cab_id(name));
        let worker = Worker::Command {
            program: PathBuf::from("bash"),
            args: vec![
                "-c".into(),
                WRAPPER.into(),
                "wrapper".into(),
                env!("CARGO_BIN_EXE_cerfs-index-worker").into(),
                self.log().into(),
                how.into(),
                cab.to_string().into(),
            ],
        };
        let config = IndexerConfig {
            limits,
            batch,
            ..IndexerConfig::new(worker)
        };
        let mut db = IndexDb::open(&self.db).unwrap();
        let mut seen = Vec::new();
        let summary = index_pending(&mut db, &config, &AtomicBool::new(false), &mut |c, s, _| {
            seen.push((c.name.clone(), s))
        })
        .unwrap();
        assert!(db.pending(100).unwrap().is_empty());
        // Every cab is reported once, in the queue's order.
        let mut names: Vec<&String> = seen.iter().map(|(n, _)| n).collect();
        names.dedup();
        assert_eq!(names.len(), seen.len(), "{seen:?}");
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        summary
    }
}

fn limits() -> Limits {
    Limits {
        wall_time: Duration::from_secs(20),
        ..Limits::default()
    }
}

fn indexed(s: &Store, name: &str) {
    assert_eq!(s.status(name), ("indexed".to_owned(), None, 2), "{name}");
}

#[test]
fn a_worker_that_crashes_on_the_middle_cab_fails_that_cab_only() {
    let s = store(&["a.cab", "b.cab", "c.cab"]);
    let summary = s.index("crash", Some("b.cab"), limits(), 16);
    // a was answered before the crash: its rows stay. b is flagged like a lone cab that
    // crashes its worker. c goes to a second worker.
    indexed(&s, "a.cab");
    let (status, error, members) = s.status("b.cab");
    assert_eq!((status.as_str(), members), ("failed", 0));
    assert_eq!(error.as_deref(), Some("the indexer crashed (SIGSEGV)"));
    indexed(&s, "c.cab");
    assert_eq!((summary.indexed, summary.failed), (2, 1), "{summary:?}");
    assert_eq!(s.runs(), 2);
}

#[test]
fn a_worker_that_hangs_on_the_middle_cab_is_killed_at_that_cabs_wall_time() {
    let s = store(&["a.cab", "b.cab", "c.cab"]);
    let limits = Limits {
        wall_time: Duration::from_secs(3),
        ..Limits::default()
    };
    let summary = s.index("hang", Some("b.cab"), limits, 16);
    indexed(&s, "a.cab");
    let (status, error, _) = s.status("b.cab");
    assert_eq!(status, "failed");
    assert!(
        error.as_deref().unwrap().contains("longer than 3 s"),
        "{error:?}"
    );
    indexed(&s, "c.cab");
    assert_eq!((summary.indexed, summary.failed), (2, 1), "{summary:?}");
    assert_eq!(s.runs(), 2);
}

#[test]
fn the_wall_time_bounds_each_cab_not_the_batch() {
    // Four cabs of a second each in one worker, with 3 s per cab: none is late.
    let s = store(&["a.cab", "b.cab", "c.cab", "d.cab"]);
    let limits = Limits {
        wall_time: Duration::from_secs(3),
        ..Limits::default()
    };
    let summary = s.index("slow", None, limits, 16);
    for name in ["a.cab", "b.cab", "c.cab", "d.cab"] {
        indexed(&s, name);
    }
    assert_eq!(summary.indexed, 4, "{summary:?}");
    assert_eq!(s.runs(), 1);
}

#[test]
fn a_cab_that_meets_the_cpu_limit_after_others_is_retried_alone() {
    // SIGXCPU on b only after a ran in the same process: the CPU limit counts the whole
    // process, so b gets a worker of its own, where it is fine.
    let s = store(&["a.cab", "b.cab", "c.cab"]);
    let summary = s.index("cpu", Some("b.cab"), limits(), 16);
    for name in ["a.cab", "b.cab", "c.cab"] {
        indexed(&s, name);
    }
    assert_eq!(summary.indexed, 3, "{summary:?}");
    assert_eq!(s.runs(), 2);
}

#[test]
fn a_cab_that_meets_the_cpu_limit_alone_fails() {
    // SIGXCPU on b wherever it runs: after a, then again as the first cab of a worker,
    // where it is flagged like a lone cab that uses up its CPU time.
    let s = store(&["a.cab", "b.cab", "c.cab"]);
    let summary = s.index("cpu-always", Some("b.cab"), limits(), 16);
    indexed(&s, "a.cab");
    let (status, error, _) = s.status("b.cab");
    assert_eq!(status, "failed");
    assert!(
        error.as_deref().unwrap().contains("s of CPU time"),
        "{error:?}"
    );
    indexed(&s, "c.cab");
    assert_eq!((summary.indexed, summary.failed), (2, 1), "{summary:?}");
    assert_eq!(s.runs(), 3);
}

#[test]
fn a_queue_of_cabs_takes_one_worker_per_batch() {
    let names: Vec<String> = (0..10).map(|i| format!("cab{i:02}.cab")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let s = store(&refs);
    let summary = s.index("none", None, limits(), 16);
    assert_eq!(summary.indexed, 10, "{summary:?}");
    assert_eq!(s.runs(), 1);
    for name in &names {
        indexed(&s, name);
    }

    // Again in batches of 4: 3 workers for 10 cabs.
    let mut db = IndexDb::open(&s.db).unwrap();
    let n = db.request_reindex(&ReindexFilter::default()).unwrap();
    assert_eq!(n, 10);
    let summary = s.index("none", None, limits(), 4);
    assert_eq!(summary.indexed, 10, "{summary:?}");
    assert_eq!(s.runs(), 1 + 3);
}

/// Cabs that arrive while a short batch is indexed wait for the next poll: a steady trickle
/// of reports costs a worker process per poll, not one per cab or two.
#[test]
fn cabs_queued_during_a_short_batch_wait_for_the_next_call() {
    let s = store(&["cab00.cab", "cab01.cab"]);
    let fs = CerFs::new(Arc::new(SqliteStore::open(&s.db).unwrap()));
    let cab = read_testdata("cabs/normal_2files_1folder.cab");
    let config = IndexerConfig {
        limits: limits(),
        batch: 16,
        ..IndexerConfig::new(Worker::Command {
            program: PathBuf::from(env!("CARGO_BIN_EXE_cerfs-index-worker")),
            args: Vec::new(),
        })
    };
    let mut db = IndexDb::open(&s.db).unwrap();
    let mut uploaded = false;
    let first = index_pending(&mut db, &config, &AtomicBool::new(false), &mut |_, _, _| {
        if !uploaded {
            // A report arriving while the worker runs.
            fs.upload_cab(SUB, "cab02.cab", &mut std::io::Cursor::new(&cab))
                .unwrap();
            uploaded = true;
        }
    })
    .unwrap();
    assert_eq!(first.indexed, 2, "{first:?}");
    let waiting = db.pending(100).unwrap();
    assert_eq!(waiting.len(), 1, "the new cab waits for the next poll");
    assert_eq!(waiting[0].name, "cab02.cab");
    let next = index_pending(&mut db, &config, &AtomicBool::new(false), &mut |_, _, _| {}).unwrap();
    assert_eq!(next.indexed, 1, "{next:?}");
    indexed(&s, "cab02.cab");
}
