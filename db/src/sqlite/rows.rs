//! Row helpers shared by the store's method families: SQL values to and from Rust
//! values, reading a node row, and the lookups several families need (a node, a folder, a
//! bucket).

use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::store::{BucketId, BucketKey, Ino, Node, NodeRole, Result};
use crate::store_rules::cab_state_from;
pub(crate) use crate::store_rules::{
    copy_overlap, ino_param, now_ns, ns_to_time, role_from_str, role_str, size_param, time_to_ns,
};
use crate::StoreError;

/// A column holding a non-negative integer.
pub(crate) fn get_u64(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Integer, e.into()))
}

pub(crate) fn bad_text(idx: usize, what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        Type::Text,
        format!("unknown {what} {value:?}").into(),
    )
}

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

pub(crate) fn node_from_row(row: &Row<'_>) -> rusqlite::Result<Node> {
    let role: String = row.get(3)?;
    let role = role_from_str(&role).ok_or_else(|| bad_text(3, "role", &role))?;
    let state: Option<String> = row.get(12)?;
    let cab_state =
        cab_state_from(state.as_deref()).map_err(|other| bad_text(12, "cab state", &other))?;
    Ok(Node {
        ino: get_u64(row, 0)?,
        parent: get_u64(row, 1)?,
        name: row.get(2)?,
        role,
        size: get_u64(row, 4)?,
        mode: row.get(5)?,
        uid: row.get(6)?,
        gid: row.get(7)?,
        mtime: ns_to_time(row.get(8)?),
        ctime: ns_to_time(row.get(9)?),
        crtime: ns_to_time(row.get(10)?),
        bucket: row.get(11)?,
        cab_state,
    })
}

pub(crate) fn get_node(conn: &Connection, ino: Ino) -> Result<Option<Node>> {
    let mut stmt = conn.prepare_cached(select_node!("WHERE n.ino = ?1"))?;
    Ok(stmt.query_row([ino_param(ino)], node_from_row).optional()?)
}

pub(crate) fn require_node(conn: &Connection, ino: Ino) -> Result<Node> {
    get_node(conn, ino)?.ok_or(StoreError::NotFound(ino))
}

pub(crate) fn lookup_in(conn: &Connection, parent: Ino, name: &str) -> Result<Option<Node>> {
    // `n.ino <> n.parent`: the root is not its own child named ''.
    let mut stmt = conn.prepare_cached(select_node!(
        "WHERE n.parent = ?1 AND n.name = ?2 AND n.ino <> n.parent"
    ))?;
    Ok(stmt
        .query_row(params![ino_param(parent), name], node_from_row)
        .optional()?)
}

/// The directory `ino`: `NotFound` if missing, `NotDir` if it is something else.
pub(crate) fn require_dir(conn: &Connection, ino: Ino) -> Result<Node> {
    let node = require_node(conn, ino)?;
    if node.role != NodeRole::Dir {
        return Err(StoreError::NotDir(ino));
    }
    Ok(node)
}

pub(crate) fn bucket_exists(conn: &Connection, bucket: BucketId) -> Result<bool> {
    let mut stmt =
        conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM bucket_rows WHERE bucket_id = ?1)")?;
    Ok(stmt.query_row([bucket], |row| row.get(0))?)
}

pub(crate) fn require_bucket(conn: &Connection, bucket: BucketId) -> Result<()> {
    if bucket_exists(conn, bucket)? {
        Ok(())
    } else {
        Err(StoreError::NoBucket(bucket))
    }
}

pub(crate) fn find_bucket(conn: &Connection, subpath: &str) -> Result<Option<BucketId>> {
    let mut stmt = conn.prepare_cached("SELECT bucket_id FROM bucket_rows WHERE subpath = ?1")?;
    Ok(stmt.query_row([subpath], |row| row.get(0)).optional()?)
}

pub(crate) fn ensure_bucket_in(conn: &Connection, key: &BucketKey) -> Result<BucketId> {
    crate::store_rules::check_bucket_key(key)?;
    if let Some(id) = find_bucket(conn, &key.subpath)? {
        return Ok(id);
    }
    let [app, app_ver, module, mod_ver, offset] = match &key.app {
        Some([a, b, c, d, e]) => [Some(a), Some(b), Some(c), Some(d), Some(e)],
        None => [None; 5],
    };
    let mut stmt = conn.prepare_cached(
        "INSERT INTO bucket_rows (subpath, kind, app, app_ver, module, mod_ver, fault_offset) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    stmt.execute(params![
        key.subpath,
        key.kind,
        app,
        app_ver,
        module,
        mod_ver,
        offset
    ])?;
    Ok(conn.last_insert_rowid())
}
