//! Row helpers of the PostgreSQL store: a node row to a [`Node`], the lookups several
//! families need (a node, a folder, a bucket), numbers between Rust and SQL.

use postgres::Row;

use super::pool::Tx;
use crate::store::{BucketId, BucketKey, Ino, Node, NodeRole, Result};
use crate::store_rules::{cab_state_from, ns_to_time, role_from_str};
pub(crate) use crate::store_rules::{ino_param, size_param};
use crate::StoreError;

/// `SELECT` of a full [`Node`] (read by [`node_from_row`]) followed by `$tail`.
macro_rules! select_node {
    ($tail:literal) => {
        concat!(
            "SELECT n.ino, n.parent, n.name, n.role, n.size, n.mode, n.uid, n.gid, ",
            "n.mtime_ns, n.ctime_ns, n.crtime_ns, n.bucket_id, coalesce(c.removal, c.state) ",
            "FROM nodes n LEFT JOIN cab_rows c ON c.ino = n.ino ",
            $tail
        )
    };
}
pub(crate) use select_node;

/// An ISO-8601 UTC text with milliseconds, as the SQLite store keeps times.
macro_rules! iso {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        )
    };
}
pub(crate) use iso;

/// A column that holds a non-negative number.
pub(crate) fn get_u64(row: &Row, idx: usize) -> Result<u64> {
    let v: i64 = row.try_get(idx)?;
    u64::try_from(v).map_err(|_| StoreError::Invalid(format!("negative value {v} in column {idx}")))
}

fn get_u32(row: &Row, idx: usize) -> Result<u32> {
    let v: i64 = row.try_get(idx)?;
    u32::try_from(v)
        .map_err(|_| StoreError::Invalid(format!("value {v} in column {idx} is not a u32")))
}

pub(crate) fn node_from_row(row: &Row) -> Result<Node> {
    let role: String = row.try_get(3)?;
    let role = role_from_str(&role)
        .ok_or_else(|| StoreError::Invalid(format!("unknown role {role:?}")))?;
    let state: Option<String> = row.try_get(12)?;
    let cab_state = cab_state_from(state.as_deref())
        .map_err(|other| StoreError::Invalid(format!("unknown cab state {other:?}")))?;
    Ok(Node {
        ino: get_u64(row, 0)?,
        parent: get_u64(row, 1)?,
        name: row.try_get(2)?,
        role,
        size: get_u64(row, 4)?,
        mode: get_u32(row, 5)?,
        uid: get_u32(row, 6)?,
        gid: get_u32(row, 7)?,
        mtime: ns_to_time(row.try_get(8)?),
        ctime: ns_to_time(row.try_get(9)?),
        crtime: ns_to_time(row.try_get(10)?),
        bucket: row.try_get(11)?,
        cab_state,
    })
}

pub(crate) fn get_node(tx: &mut Tx<'_>, ino: Ino) -> Result<Option<Node>> {
    tx.query_opt(select_node!("WHERE n.ino = $1"), &[&ino_param(ino)])?
        .map(|row| node_from_row(&row))
        .transpose()
}

/// The node `ino`, its row locked until the transaction ends (a write of its bytes).
pub(crate) fn lock_node(tx: &mut Tx<'_>, ino: Ino) -> Result<Node> {
    tx.query_opt(
        select_node!("WHERE n.ino = $1 FOR UPDATE OF n"),
        &[&ino_param(ino)],
    )?
    .map(|row| node_from_row(&row))
    .transpose()?
    .ok_or(StoreError::NotFound(ino))
}

pub(crate) fn require_node(tx: &mut Tx<'_>, ino: Ino) -> Result<Node> {
    get_node(tx, ino)?.ok_or(StoreError::NotFound(ino))
}

pub(crate) fn lookup_in(tx: &mut Tx<'_>, parent: Ino, name: &str) -> Result<Option<Node>> {
    // `n.ino <> n.parent`: the root is not its own child named ''.
    tx.query_opt(
        select_node!("WHERE n.parent = $1 AND n.name = $2 AND n.ino <> n.parent"),
        &[&ino_param(parent), &name],
    )?
    .map(|row| node_from_row(&row))
    .transpose()
}

/// The directory `ino`: `NotFound` if missing, `NotDir` if it is something else.
pub(crate) fn require_dir(tx: &mut Tx<'_>, ino: Ino) -> Result<Node> {
    let node = require_node(tx, ino)?;
    if node.role != NodeRole::Dir {
        return Err(StoreError::NotDir(ino));
    }
    Ok(node)
}

pub(crate) fn require_bucket(tx: &mut Tx<'_>, bucket: BucketId) -> Result<()> {
    match tx.query_opt("SELECT 1 FROM bucket_rows WHERE bucket_id = $1", &[&bucket])? {
        Some(_) => Ok(()),
        None => Err(StoreError::NoBucket(bucket)),
    }
}

pub(crate) fn find_bucket(tx: &mut Tx<'_>, subpath: &str) -> Result<Option<BucketId>> {
    Ok(tx
        .query_opt(
            "SELECT bucket_id FROM bucket_rows WHERE subpath = $1",
            &[&subpath],
        )?
        .map(|row| row.get(0)))
}

/// The bucket of `key`, created if missing (a concurrent creation by another head wins
/// quietly: its row is the one returned).
pub(crate) fn ensure_bucket_in(tx: &mut Tx<'_>, key: &BucketKey) -> Result<BucketId> {
    crate::store_rules::check_bucket_key(key)?;
    if let Some(id) = find_bucket(tx, &key.subpath)? {
        return Ok(id);
    }
    let [app, app_ver, module, mod_ver, offset] = match &key.app {
        Some([a, b, c, d, e]) => [Some(a), Some(b), Some(c), Some(d), Some(e)],
        None => [None; 5],
    };
    let inserted = tx.query_opt(
        "INSERT INTO bucket_rows (subpath, kind, app, app_ver, module, mod_ver, fault_offset) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (subpath) DO NOTHING RETURNING bucket_id",
        &[
            &key.subpath,
            &key.kind,
            &app,
            &app_ver,
            &module,
            &mod_ver,
            &offset,
        ],
    )?;
    match inserted {
        Some(row) => Ok(row.get(0)),
        None => find_bucket(tx, &key.subpath)?
            .ok_or_else(|| StoreError::Invalid(format!("bucket {:?} vanished", key.subpath))),
    }
}
