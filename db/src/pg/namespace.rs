//! The namespace family of the PostgreSQL store: folders and files, names, attributes.
//! Changes take the namespace lock ([`lock_key::NAMESPACE`]): a rename's cycle check and
//! a create's name check see every head's committed changes and no half of another's.

use super::pool::Tx;
use super::rows::{
    ensure_bucket_in, ino_param, lookup_in, node_from_row, require_dir, require_node, select_node,
};
use super::{lock_key, PgStore};
use crate::store::{AttrChange, Ino, NamespaceStore, NewNode, Node, NodeRole, Result, ROOT_INO};
use crate::store_rules::{
    check_move, check_name, may_replace, new_node, now_ns, role_str, time_to_ns,
};
use crate::StoreError;

impl NamespaceStore for PgStore {
    fn lookup(&self, parent: Ino, name: &str) -> Result<Option<Node>> {
        self.read(|tx| lookup_in(tx, parent, name))
    }

    fn node(&self, ino: Ino) -> Result<Option<Node>> {
        self.read(|tx| super::rows::get_node(tx, ino))
    }

    fn children(&self, parent: Ino) -> Result<Vec<Node>> {
        self.read(|tx| {
            require_dir(tx, parent)?;
            tx.query(
                select_node!(
                    "WHERE n.parent = $1 AND n.ino <> n.parent ORDER BY n.name COLLATE \"C\""
                ),
                &[&ino_param(parent)],
            )?
            .iter()
            .map(node_from_row)
            .collect()
        })
    }

    fn create_node(&self, new: &NewNode<'_>) -> Result<Node> {
        check_name(new.name)?;
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
        self.write(|tx| {
            tx.lock(lock_key::NAMESPACE)?;
            require_dir(tx, new.parent)?;
            if lookup_in(tx, new.parent, new.name)?.is_some() {
                return Err(StoreError::Exists(new.name.to_owned()));
            }
            let bucket = new
                .bucket
                .map(|key| ensure_bucket_in(tx, key))
                .transpose()?;
            let now = now_ns();
            let ino: i64 = tx
                .query_one(
                    "INSERT INTO nodes (parent, name, role, size, mode, uid, gid, \
                     mtime_ns, ctime_ns, crtime_ns, bucket_id) \
                     VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $7, $7, $8) RETURNING ino",
                    &[
                        &ino_param(new.parent),
                        &new.name,
                        &role_str(new.role),
                        &i64::from(new.mode),
                        &i64::from(new.uid),
                        &i64::from(new.gid),
                        &now,
                        &bucket,
                    ],
                )?
                .get(0);
            if let (NodeRole::Cab, Some(bucket)) = (new.role, bucket) {
                // The upload is this head's until its commit.
                let head = self.upload_head(tx)?;
                tx.execute(
                    "INSERT INTO cab_rows (ino, bucket_id, name, head_id) VALUES ($1, $2, $3, $4)",
                    &[&ino, &bucket, &new.name, &head],
                )?;
            }
            touch_dir(tx, new.parent, now)?;
            new_node(ino, new, bucket, now)
        })
    }

    fn remove_node(&self, ino: Ino) -> Result<()> {
        self.write(|tx| {
            tx.lock(lock_key::NAMESPACE)?;
            let node = require_node(tx, ino)?;
            remove_in(tx, &node)?;
            touch_dir(tx, node.parent, now_ns())
        })
    }

    fn rename_node(&self, ino: Ino, new_parent: Ino, new_name: &str, replace: bool) -> Result<()> {
        if ino == ROOT_INO {
            return Err(StoreError::Invalid("the root cannot be renamed".into()));
        }
        check_name(new_name)?;
        self.write(|tx| {
            tx.lock(lock_key::NAMESPACE)?;
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
            tx.execute(
                "UPDATE nodes SET parent = $2, name = $3, ctime_ns = $4 WHERE ino = $1",
                &[&ino_param(ino), &ino_param(new_parent), &new_name, &now],
            )?;
            if node.role == NodeRole::Cab {
                tx.execute(
                    "UPDATE cab_rows SET name = $2 WHERE ino = $1",
                    &[&ino_param(ino), &new_name],
                )?;
            }
            touch_dir(tx, node.parent, now)?;
            if new_parent != node.parent {
                touch_dir(tx, new_parent, now)?;
            }
            Ok(())
        })
    }

    fn set_attr(&self, ino: Ino, change: &AttrChange) -> Result<Node> {
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE nodes SET mode = coalesce($2, mode), uid = coalesce($3, uid), \
                 gid = coalesce($4, gid), mtime_ns = coalesce($5, mtime_ns), ctime_ns = $6 \
                 WHERE ino = $1",
                &[
                    &ino_param(ino),
                    &change.mode.map(i64::from),
                    &change.uid.map(i64::from),
                    &change.gid.map(i64::from),
                    &change.mtime.map(time_to_ns),
                    &now_ns(),
                ],
            )?;
            if changed == 0 {
                return Err(StoreError::NotFound(ino));
            }
            require_node(tx, ino)
        })
    }
}

/// Sets mtime and ctime of a directory whose entries changed.
fn touch_dir(tx: &mut Tx<'_>, ino: Ino, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE nodes SET mtime_ns = $2, ctime_ns = $2 WHERE ino = $1",
        &[&ino_param(ino), &now],
    )?;
    Ok(())
}

/// Removes `node` and what it owns; the caller touches the parent.
fn remove_in(tx: &mut Tx<'_>, node: &Node) -> Result<()> {
    if node.ino == ROOT_INO {
        return Err(StoreError::Invalid("the root cannot be removed".into()));
    }
    let ino = ino_param(node.ino);
    if node.role == NodeRole::Dir
        && tx
            .query_opt(
                "SELECT 1 FROM nodes WHERE parent = $1 AND ino <> $1 LIMIT 1",
                &[&ino],
            )?
            .is_some()
    {
        return Err(StoreError::NotEmpty(node.ino));
    }
    match (node.role, node.bucket) {
        (NodeRole::Status, Some(bucket)) => {
            tx.execute("DELETE FROM setting_rows WHERE bucket_id = $1", &[&bucket])?;
        }
        (NodeRole::Policy, _) => {
            tx.execute("DELETE FROM setting_rows WHERE bucket_id IS NULL", &[])?;
        }
        _ => {}
    }
    tx.execute("DELETE FROM chunks WHERE ino = $1", &[&ino])?;
    tx.execute("DELETE FROM cab_rows WHERE ino = $1", &[&ino])?;
    tx.execute("DELETE FROM nodes WHERE ino = $1", &[&ino])?;
    Ok(())
}
