//! The namespace family of the SQLite store: folders and files, names, attributes.

use rusqlite::{params, Connection};

use super::rows::{
    ensure_bucket_in, get_node, ino_param, lookup_in, node_from_row, now_ns, require_dir,
    require_node, role_str, select_node, time_to_ns,
};
use super::{finish, SqliteStore};
use crate::store::{AttrChange, Ino, NamespaceStore, NewNode, Node, NodeRole, Result, ROOT_INO};
use crate::store_rules::{check_move, check_name, may_replace, new_node};
use crate::StoreError;

impl NamespaceStore for SqliteStore {
    fn lookup(&self, parent: Ino, name: &str) -> Result<Option<Node>> {
        finish(self.read(|tx| lookup_in(tx, parent, name)))
    }

    fn node(&self, ino: Ino) -> Result<Option<Node>> {
        finish(self.read(|tx| get_node(tx, ino)))
    }

    fn children(&self, parent: Ino) -> Result<Vec<Node>> {
        finish(self.read(|tx| {
            require_dir(tx, parent)?;
            let mut stmt = tx.prepare_cached(select_node!(
                "WHERE n.parent = ?1 AND n.ino <> n.parent ORDER BY n.name"
            ))?;
            let rows = stmt.query_map([ino_param(parent)], node_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        }))
    }

    fn create_node(&self, new: &NewNode<'_>) -> Result<Node> {
        finish(self.write(|tx| {
            check_name(new.name)?;
            require_dir(tx, new.parent)?;
            let needs_bucket = matches!(
                new.role,
                NodeRole::Cab | NodeRole::Count | NodeRole::Status | NodeRole::HitsLog
            );
            if needs_bucket && new.bucket.is_none() {
                return Err(StoreError::Invalid(format!(
                    "a {} node needs a bucket",
                    role_str(new.role)
                )));
            }
            if lookup_in(tx, new.parent, new.name)?.is_some() {
                return Err(StoreError::Exists(new.name.to_owned()));
            }
            let bucket = new
                .bucket
                .map(|key| ensure_bucket_in(tx, key))
                .transpose()?;
            let now = now_ns();
            tx.prepare_cached(
                "INSERT INTO nodes (parent, name, role, size, mode, uid, gid, \
                 mtime_ns, ctime_ns, crtime_ns, bucket_id) \
                 VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7, ?7, ?7, ?8)",
            )?
            .execute(params![
                ino_param(new.parent),
                new.name,
                role_str(new.role),
                new.mode,
                new.uid,
                new.gid,
                now,
                bucket
            ])?;
            let ino = tx.last_insert_rowid();
            if let (NodeRole::Cab, Some(bucket)) = (new.role, bucket) {
                tx.prepare_cached(
                    "INSERT INTO cab_rows (ino, bucket_id, name, bytes_from) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    ino,
                    bucket,
                    new.name,
                    super::cab_db::CAB_DB_FROM as i64
                ])?;
            }
            touch_dir(tx, new.parent, now)?;
            new_node(ino, new, bucket, now)
        }))
    }

    fn remove_node(&self, ino: Ino) -> Result<()> {
        let role = finish(self.write(|tx| {
            let node = require_node(tx, ino)?;
            remove_in(tx, &node)?;
            touch_dir(tx, node.parent, now_ns())?;
            Ok(node.role)
        }))?;
        if role == NodeRole::Cab {
            // After the row: a crash in between leaves bytes the next start drops.
            self.cab_db.delete(&[ino])?;
        }
        Ok(())
    }

    fn rename_node(&self, ino: Ino, new_parent: Ino, new_name: &str, replace: bool) -> Result<()> {
        finish(self.write(|tx| {
            if ino == ROOT_INO {
                return Err(StoreError::Invalid("the root cannot be renamed".into()));
            }
            check_name(new_name)?;
            let node = require_node(tx, ino)?;
            require_dir(tx, new_parent)?;
            if node.role == NodeRole::Dir {
                check_move(ino, new_parent, |cur| Ok(require_node(tx, cur)?.parent))?;
            }
            if let Some(target) = lookup_in(tx, new_parent, new_name)? {
                if !may_replace(&node, &target, replace)? {
                    return Ok(());
                }
                remove_in(tx, &target)?;
            }
            let now = now_ns();
            tx.prepare_cached(
                "UPDATE nodes SET parent = ?2, name = ?3, ctime_ns = ?4 WHERE ino = ?1",
            )?
            .execute(params![
                ino_param(ino),
                ino_param(new_parent),
                new_name,
                now
            ])?;
            if node.role == NodeRole::Cab {
                tx.prepare_cached("UPDATE cab_rows SET name = ?2 WHERE ino = ?1")?
                    .execute(params![ino_param(ino), new_name])?;
            }
            touch_dir(tx, node.parent, now)?;
            if new_parent != node.parent {
                touch_dir(tx, new_parent, now)?;
            }
            Ok(())
        }))
    }

    fn set_attr(&self, ino: Ino, change: &AttrChange) -> Result<Node> {
        finish(self.write(|tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE nodes SET mode = coalesce(?2, mode), uid = coalesce(?3, uid), \
                     gid = coalesce(?4, gid), mtime_ns = coalesce(?5, mtime_ns), \
                     ctime_ns = ?6 WHERE ino = ?1",
                )?
                .execute(params![
                    ino_param(ino),
                    change.mode,
                    change.uid,
                    change.gid,
                    change.mtime.map(time_to_ns),
                    now_ns()
                ])?;
            if changed == 0 {
                return Err(StoreError::NotFound(ino));
            }
            require_node(tx, ino)
        }))
    }
}

fn has_children(conn: &Connection, ino: Ino) -> Result<bool> {
    let mut stmt =
        conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM nodes WHERE parent = ?1 AND ino <> ?1)")?;
    Ok(stmt.query_row([ino_param(ino)], |row| row.get(0))?)
}

/// Sets mtime and ctime of a directory whose entries changed.
fn touch_dir(conn: &Connection, ino: Ino, now: i64) -> Result<()> {
    let mut stmt =
        conn.prepare_cached("UPDATE nodes SET mtime_ns = ?2, ctime_ns = ?2 WHERE ino = ?1")?;
    stmt.execute(params![ino_param(ino), now])?;
    Ok(())
}

/// Removes `node` and what it owns (see [`Store::remove_node`]); the caller touches the parent.
fn remove_in(conn: &Connection, node: &Node) -> Result<()> {
    if node.ino == ROOT_INO {
        return Err(StoreError::Invalid("the root cannot be removed".into()));
    }
    if node.role == NodeRole::Dir && has_children(conn, node.ino)? {
        return Err(StoreError::NotEmpty(node.ino));
    }
    match (node.role, node.bucket) {
        (NodeRole::Status, Some(bucket)) => {
            let mut stmt = conn.prepare_cached("DELETE FROM setting_rows WHERE bucket_id = ?1")?;
            stmt.execute([bucket])?;
        }
        (NodeRole::Policy, _) => {
            let mut stmt =
                conn.prepare_cached("DELETE FROM setting_rows WHERE bucket_id IS NULL")?;
            stmt.execute([])?;
        }
        _ => {}
    }
    let ino = ino_param(node.ino);
    // ON DELETE CASCADE does the same; explicit, so that it holds whatever the pragma says.
    conn.prepare_cached("DELETE FROM chunks WHERE ino = ?1")?
        .execute([ino])?;
    conn.prepare_cached("DELETE FROM cab_rows WHERE ino = ?1")?
        .execute([ino])?;
    conn.prepare_cached("DELETE FROM nodes WHERE ino = ?1")?
        .execute([ino])?;
    Ok(())
}
