//! Pruning many cabs: the candidates are paged through (each page ranks every cab on the
//! share, so a page per few cabs would be quadratic), and applying prunes exactly what a
//! dry run lists. On SQLite, and on PostgreSQL on the test server (`CERFS_TEST_POSTGRES`).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cerfs_db::{
    Audit, BucketContents, CabCheck, CabEntry, Ino, LifecycleStore, PgStore, PruneCandidate,
    Removal, RetentionPolicy, SqliteStore, Store, StoreUsage, SweepStep,
};
use cerfs_fs_core::CerFs;

type Result<T> = std::result::Result<T, cerfs_db::StoreError>;

/// A store that counts the candidate queries.
struct Counting<'a> {
    inner: &'a dyn LifecycleStore,
    queries: AtomicUsize,
}

impl LifecycleStore for Counting<'_> {
    fn retention(&self) -> Result<RetentionPolicy> {
        self.inner.retention()
    }
    fn set_retention(&self, policy: &RetentionPolicy) -> Result<()> {
        self.inner.set_retention(policy)
    }
    fn server_setting(&self, key: &str) -> Result<Option<String>> {
        self.inner.server_setting(key)
    }
    fn set_server_setting(&self, key: &str, value: Option<&str>) -> Result<()> {
        self.inner.set_server_setting(key, value)
    }
    fn prune_candidates(
        &self,
        policy: &RetentionPolicy,
        after: Option<&CabEntry>,
        limit: usize,
    ) -> Result<Vec<PruneCandidate>> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        self.inner.prune_candidates(policy, after, limit)
    }
    fn remove_cab(&self, ino: Ino, removal: Removal, audit: Option<&Audit>) -> Result<bool> {
        self.inner.remove_cab(ino, removal, audit)
    }
    fn prune_cabs(&self, inos: &[Ino]) -> Result<Vec<Ino>> {
        self.inner.prune_cabs(inos)
    }
    fn sweep(&self, max_chunks: usize) -> Result<SweepStep> {
        self.inner.sweep(max_chunks)
    }
    fn find_cab(&self, subpath: &str, name: &str) -> Result<Option<(CabEntry, Option<Removal>)>> {
        self.inner.find_cab(subpath, name)
    }
    fn bucket_contents(&self, subpath: &str) -> Result<Option<BucketContents>> {
        self.inner.bucket_contents(subpath)
    }
    fn delete_bucket(&self, subpath: &str, audit: &Audit) -> Result<Option<BucketContents>> {
        self.inner.delete_bucket(subpath, audit)
    }
    fn cabs_after(&self, after: Ino, limit: usize) -> Result<Vec<CabEntry>> {
        self.inner.cabs_after(after, limit)
    }
    fn check_cab(&self, ino: Ino) -> Result<CabCheck> {
        self.inner.check_cab(ino)
    }
    fn integrity(&self) -> Result<String> {
        self.inner.integrity()
    }
    fn cab_file_integrity(&self) -> Result<Option<String>> {
        self.inner.cab_file_integrity()
    }
    fn usage(&self) -> Result<StoreUsage> {
        self.inner.usage()
    }
    fn release_free_space(&self, max_bytes: u64) -> Result<Option<u64>> {
        self.inner.release_free_space(max_bytes)
    }
    fn backup_to(&self, dest: &Path) -> Result<()> {
        self.inner.backup_to(dest)
    }
}

#[test]
fn thousands_of_cabs_are_pruned_in_a_few_queries_exactly_as_the_dry_run_lists() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores: Vec<(Arc<dyn Store>, Option<cerfs_testkit::TestDatabase>)> = vec![(
        Arc::new(SqliteStore::open(&dir.path().join("cer.db")).unwrap()),
        None,
    )];
    if let Some(db) = cerfs_testkit::TestDatabase::create() {
        stores.push((Arc::new(PgStore::open(&db.url).unwrap()), Some(db)));
    }
    for (store, _db) in stores {
        let fs = CerFs::new(Arc::clone(&store));
        let buckets = [("blue", 3000), ("shutdown", 2200)];
        for (bucket, cabs) in buckets {
            for i in 0..cabs {
                let body = format!("cab {i} of {bucket}");
                fs.upload_cab(bucket, &format!("{i:05}.cab"), &mut body.as_bytes())
                    .unwrap();
            }
        }
        drop(fs);
        store
            .set_retention(&RetentionPolicy {
                keep_first: Some(1),
                keep_last: Some(1),
                ..RetentionPolicy::default()
            })
            .unwrap();
        let expected: u64 = buckets.iter().map(|(_, n)| n - 2).sum();
        let counting = Counting {
            inner: &*store,
            queries: AtomicUsize::new(0),
        };

        let mut listed = Vec::new();
        let dry =
            cerfs_lifecycle::prune(&counting, true, &mut |c| listed.push(c.cab.ino), &|| true)
                .unwrap();
        assert_eq!(dry.cabs, expected);
        let mut pruned = Vec::new();
        counting.queries.store(0, Ordering::Relaxed);
        let applied =
            cerfs_lifecycle::prune(&counting, false, &mut |c| pruned.push(c.cab.ino), &|| true)
                .unwrap();
        assert_eq!(applied.cabs, expected);
        assert_eq!(pruned, listed, "applying prunes what the dry run listed");
        // Pages of 2,048 candidates: 3 pages and the empty one that ends the run.
        assert!(
            counting.queries.load(Ordering::Relaxed) <= 4,
            "{} candidate queries for {expected} cabs",
            counting.queries.load(Ordering::Relaxed)
        );
        // Each bucket keeps its oldest and its newest cab.
        for (bucket, cabs) in buckets {
            for (name, kept) in [
                ("00000.cab".to_owned(), true),
                (format!("{:05}.cab", cabs - 1), true),
                ("00001.cab".to_owned(), false),
                (format!("{:05}.cab", cabs - 2), false),
            ] {
                let (_, removal) = store.find_cab(bucket, &name).unwrap().unwrap();
                assert_eq!(removal.is_none(), kept, "{bucket}/{name}");
            }
        }
        // Nothing is left to prune.
        let again = cerfs_lifecycle::prune(&*store, false, &mut |_| {}, &|| true).unwrap();
        assert_eq!(again.cabs, 0);
    }
}
