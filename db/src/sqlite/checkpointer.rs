//! The WAL checkpointer: a background thread that copies committed pages from the `-wal`
//! file into the database file, so that no file system request waits for a checkpoint.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold and
//! fsyncs twice there: with the default threshold (1000 pages, 4 MiB) a cab upload paid
//! for one every 4 MiB and ran at a third of the speed it has without. Here the writer's
//! threshold is only a backstop ([`WRITER_BACKSTOP_PAGES`]); after commits, this thread runs
//! `PRAGMA wal_checkpoint(PASSIVE)` on its own connection, which never blocks the writer
//! or the readers. A process killed meanwhile loses nothing: the next open replays the WAL.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::pool::lock;
use crate::OpenError;

/// The writer checkpoints by itself only past this many WAL pages (64 MiB of 4 KiB pages):
/// when the background thread cannot keep up or is not running.
pub(crate) const WRITER_BACKSTOP_PAGES: u32 = 16 * 1024;

/// The WAL file is truncated back to this size when it is reset after having grown larger.
pub(crate) const WAL_SIZE_LIMIT: i64 = 64 << 20;

/// Least time between two checkpoints: commits in between are copied by one checkpoint
/// (each checkpoint that copies anything fsyncs the WAL and the database).
const MIN_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Default)]
struct State {
    /// Commits since the last checkpoint started.
    commits: u64,
    /// The store is closing.
    stop: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// The running checkpointer; stops (after its current checkpoint) when dropped.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread with its own connection to the database at `path`.
    pub(crate) fn start(path: &Path) -> Result<Checkpointer, OpenError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("cerfs-checkpoint".to_owned())
            .spawn(move || run(&conn, &theirs))
            .map_err(|e| OpenError::Unusable(format!("cannot start the WAL checkpointer: {e}")))?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// Tells the thread that a transaction was committed.
    pub(crate) fn note_commit(&self) {
        let mut state = lock(&self.shared.state);
        state.commits += 1;
        if state.commits == 1 {
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the WAL checkpointer panicked");
            }
        }
    }
}

fn run(conn: &Connection, shared: &Shared) {
    loop {
        {
            let state = lock(&shared.state);
            let mut state = shared
                .wake
                .wait_while(state, |s| s.commits == 0 && !s.stop)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if state.stop {
                return;
            }
            state.commits = 0;
        }
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        }) {
            Ok((log, copied)) => tracing::trace!(log, copied, "WAL checkpoint"),
            // A full disk, say: the WAL keeps the data, the next checkpoint tries again.
            Err(e) => tracing::warn!("WAL checkpoint failed (retried after the next commit): {e}"),
        }
        // Let the next commits gather; wake early only to stop.
        let state = lock(&shared.state);
        let _state = shared
            .wake
            .wait_timeout_while(state, MIN_INTERVAL, |s| !s.stop)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
}
