//! A head's place in the cluster. Each `PgStore` registers as a head (`head_rows`) and
//! holds a session advisory lock of its own on a connection it keeps open for its life.
//! PostgreSQL releases that lock when the connection ends, whatever ended it (kill -9, a
//! power cut, the network): so whoever can take a head's lock knows the head is gone and
//! may remove what it left unfinished — its uploads in progress, which no client will
//! complete — without ever racing a live head. A head's cab writes check, in their own
//! transaction, that its row is still there: once another head gave its uploads up, they
//! fail instead of landing in rows that are gone.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use fallible_iterator::FallibleIterator;
use postgres::NoTls;

use super::pool::{OwnedClient, Tx};
use super::rows::{get_u64, ino_param};
use super::{describe, PgStore};
use crate::store::{Ino, Result};
use crate::{OpenError, PurgedCab, StoreError};

/// The channel every head notifies its content changes on (counters, settings, logs),
/// with its head id as the payload, and listens to: another head's kernel caches are taken
/// back when they hear of it (`Store::outside_changes`).
pub(crate) const CHANGES_CHANNEL: &str = "cerfs_changes";

/// High half of the advisory lock keys of heads ('cerh'); the low half is the head id.
const HEAD_LOCK_BASE: i64 = 0x6365_7268_0000_0000;

/// The advisory lock key head `head_id` holds while it lives.
pub(crate) fn head_lock_key(head_id: i64) -> i64 {
    HEAD_LOCK_BASE | (head_id & 0xffff_ffff)
}

/// This process's head: its id, and the connection holding its lock (kept open and
/// unused: its session holds the lock). Both are replaced when the head was given up and
/// registers again.
pub(crate) struct Head {
    id: AtomicI64,
    life: Mutex<OwnedClient>,
    /// Changes heard of from other heads so far.
    heard: AtomicU64,
    /// The head id whose lock connection holds the background jobs' lock (0: none).
    leading: AtomicI64,
}

impl Head {
    pub(crate) fn id(&self) -> i64 {
        self.id.load(Ordering::Acquire)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Registers a new head and takes its lock.
pub(crate) fn register(
    config: &postgres::Config,
    shown: &str,
) -> std::result::Result<Head, OpenError> {
    let fail = |e: postgres::Error| {
        OpenError::Unusable(format!(
            "PostgreSQL at {shown}: cannot register this head: {}",
            describe(&e)
        ))
    };
    let mut life = super::lock_holder(config).connect(NoTls).map_err(fail)?;
    let id: i64 = life
        .query_one(
            "INSERT INTO head_rows (host, pid) VALUES ($1, $2) RETURNING head_id",
            &[&hostname(), &i64::from(std::process::id())],
        )
        .map_err(fail)?
        .get(0);
    life.execute("SELECT pg_advisory_lock($1)", &[&head_lock_key(id)])
        .map_err(fail)?;
    // The same session hears what every head changes (see `outside_changes`).
    life.batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))
        .map_err(fail)?;
    Ok(Head {
        id: AtomicI64::new(id),
        life: Mutex::new(life.into()),
        heard: AtomicU64::new(0),
        leading: AtomicI64::new(0),
    })
}

/// Locks this head's row for the rest of `tx` (shared: many writes at once) and says
/// whether it is still there; another head removing it waits for `tx`.
pub(crate) fn still_registered(tx: &mut Tx<'_>, head: i64) -> Result<bool> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM head_rows WHERE head_id = $1 FOR SHARE",
            &[&head],
        )?
        .is_some())
}

/// Why a cab write of a head that was given up fails.
pub(crate) fn given_up(ino: Ino) -> StoreError {
    StoreError::Invalid(format!(
        "cab inode {ino}: this head lost its connection to PostgreSQL and another head gave \
         its uploads in progress up; the client must copy the report again"
    ))
}

/// Tells every head, at the commit of `tx`, that head `head` changed what synthesized
/// files show.
pub(crate) fn notify_change(tx: &mut Tx<'_>, head: i64) -> Result<()> {
    tx.execute(
        "SELECT pg_notify('cerfs_changes', $1)",
        &[&head.to_string()],
    )?;
    Ok(())
}

impl PgStore {
    /// How many changes other heads committed that this head has heard of: what the
    /// server polls (`Store::outside_changes`). Notifications from this head are not
    /// counted (fs-core announced them itself). Takes about a millisecond.
    pub(crate) fn heard_changes(&self) -> Result<u64> {
        let own = self.head.id().to_string();
        let mut life = self
            .head
            .life
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut notes = life.notifications();
        // Waits a moment, not at all: the connection reads what arrived only while its
        // runtime waits (a merely polled iterator sees nothing new).
        let mut pending = notes.timeout_iter(std::time::Duration::from_millis(1));
        let mut others = 0;
        while let Some(note) = pending.next()? {
            if note.payload() != own {
                others += 1;
            }
        }
        Ok(self.head.heard.fetch_add(others, Ordering::AcqRel) + others)
    }

    /// Runs [`PgStore::recover_dead_heads`] every `every` on a thread of its own until the
    /// store is dropped: what a serving head does, so that whoever notices a gone head
    /// cleans up after it.
    pub fn keep_recovering(
        self: &std::sync::Arc<Self>,
        every: std::time::Duration,
    ) -> std::io::Result<()> {
        let store = std::sync::Arc::downgrade(self);
        std::thread::Builder::new()
            .name("cerfs-head-recovery".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                let Some(store) = store.upgrade() else {
                    return;
                };
                if let Err(e) = store.recover_dead_heads() {
                    tracing::warn!("cannot look for gone heads: {e}");
                }
            })
            .map(drop)
    }

    /// Whether this head runs the background jobs: the one whose lock connection holds
    /// their session lock. When that head goes, its lock goes with its connection, and the
    /// next head that asks takes it over.
    pub(crate) fn background_lead(&self) -> Result<bool> {
        let mut life = self
            .head
            .life
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Under the life lock: a head registering again replaces the connection and the id
        // together, and the new connection holds nothing yet.
        let id = self.head.id();
        if self.head.leading.load(Ordering::Acquire) == id {
            return Ok(true);
        }
        let got: bool = life
            .query_one(
                "SELECT pg_try_advisory_lock($1)",
                &[&super::lock_key::BACKGROUND],
            )?
            .get(0);
        if got {
            self.head.leading.store(id, Ordering::Release);
            tracing::info!(
                head = id,
                "this head runs the background jobs (retention, sweep, scrub)"
            );
        }
        Ok(got)
    }

    /// This head's id (`head_rows.head_id`).
    pub fn head_id(&self) -> i64 {
        self.head.id()
    }

    /// The head id a new upload is recorded under: this head's, registered again first
    /// when another head gave it up (its lock connection had ended). Its uploads in
    /// progress stay given up; new ones go on.
    pub(crate) fn upload_head(&self, tx: &mut Tx<'_>) -> Result<i64> {
        let id = self.head.id();
        if still_registered(tx, id)? {
            return Ok(id);
        }
        let mut life = self
            .head
            .life
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.head.id() == id {
            let fresh = register(&self.config, &self.shown)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            let new = fresh.id();
            tracing::warn!(old = id, new, "this head had been given up by another (its connection to PostgreSQL ended): registered again; its uploads in progress are lost");
            *life = fresh
                .life
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Changes made while it was cut off went unheard: count one, so that every
            // cache is taken back.
            self.head.heard.fetch_add(1, Ordering::AcqRel);
            self.head.id.store(new, Ordering::Release);
        }
        Ok(self.head.id())
    }

    /// Removes what heads that are gone left: their unfinished uploads (node, bytes, row)
    /// and their `head_rows` row. A head is gone when its lock can be taken; a live head's
    /// is never touched. Returns the uploads removed. Run at open and by the server's
    /// upkeep, on any head.
    pub fn recover_dead_heads(&self) -> Result<Vec<PurgedCab>> {
        let heads: Vec<i64> = self.read(|tx| {
            Ok(tx
                .query(
                    "SELECT head_id FROM head_rows WHERE head_id <> $1 ORDER BY head_id",
                    &[&self.head.id()],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })?;
        let mut purged = Vec::new();
        for head in heads {
            // Taken for this transaction only: the head is gone if it can be.
            let removed = self.write(|tx| {
                let gone: bool = tx
                    .query_one(
                        "SELECT pg_try_advisory_xact_lock($1)",
                        &[&head_lock_key(head)],
                    )?
                    .get(0);
                if gone {
                    remove_head(tx, head)
                } else {
                    Ok(Vec::new())
                }
            })?;
            for cab in &removed {
                tracing::warn!(head, ino = cab.ino, subpath = %cab.subpath, name = %cab.name,
                    bytes = cab.bytes, "removed an upload its head left unfinished (the head is gone)");
            }
            purged.extend(removed);
        }
        Ok(purged)
    }
}

/// In one transaction: head `head`'s row is locked first (waiting for its writes in
/// flight, which hold it shared, and failing those after), then its unfinished uploads go,
/// then the row.
fn remove_head(tx: &mut Tx<'_>, head: i64) -> Result<Vec<PurgedCab>> {
    tx.execute(
        "SELECT 1 FROM head_rows WHERE head_id = $1 FOR UPDATE",
        &[&head],
    )?;
    tx.execute(
        "UPDATE cab_rows SET head_id = NULL WHERE head_id = $1 AND state <> 'writing'",
        &[&head],
    )?;
    let writing = tx.query(
        "SELECT c.ino, b.subpath, c.name, n.size FROM cab_rows c \
         JOIN bucket_rows b ON b.bucket_id = c.bucket_id JOIN nodes n ON n.ino = c.ino \
         WHERE c.head_id = $1 AND c.state = 'writing' ORDER BY c.ino",
        &[&head],
    )?;
    let mut purged = Vec::new();
    for row in writing {
        let cab = PurgedCab {
            ino: get_u64(&row, 0)?,
            subpath: row.try_get(1)?,
            name: row.try_get(2)?,
            bytes: get_u64(&row, 3)?,
        };
        let key = ino_param(cab.ino);
        tx.execute("DELETE FROM chunks WHERE ino = $1", &[&key])?;
        tx.execute("DELETE FROM cab_rows WHERE ino = $1", &[&key])?;
        tx.execute("DELETE FROM nodes WHERE ino = $1", &[&key])?;
        purged.push(cab);
    }
    tx.execute("DELETE FROM head_rows WHERE head_id = $1", &[&head])?;
    Ok(purged)
}
