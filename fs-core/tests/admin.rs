//! The admin/server API: counters, settings and uploads by subpath, seen through the share.

use std::sync::Arc;

use cerfs_db::{PgStore, QueryDb, SqliteStore};
use cerfs_fs_core::{Caller, CerFs, FsError, SettingsTarget};

/// A share over one backend, and how to read its store with SQL.
struct Share {
    fs: CerFs,
    dir: tempfile::TempDir,
    /// The PostgreSQL database, if on PostgreSQL (dropped after the share).
    pg: Option<cerfs_testkit::TestDatabase>,
}

impl Share {
    fn query_db(&self) -> QueryDb {
        match &self.pg {
            None => QueryDb::open(&self.dir.path().join("cer.db")),
            Some(db) => QueryDb::open_postgres(&db.url),
        }
        .expect("query connection")
    }
}

/// A share over each backend: SQLite, and PostgreSQL on the test server.
fn shares() -> Vec<Share> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("cer.db")).expect("open store");
    let mut all = vec![Share {
        fs: CerFs::new(Arc::new(store)),
        dir,
        pg: None,
    }];
    if let Some(db) = cerfs_testkit::TestDatabase::create() {
        let store = PgStore::open(&db.url).expect("open the PostgreSQL store");
        all.push(Share {
            fs: CerFs::new(Arc::new(store)),
            dir: tempfile::tempdir().expect("tempdir"),
            pg: Some(db),
        });
    }
    all
}

fn cat(fs: &CerFs, path: &str) -> Vec<u8> {
    let who = Caller::default();
    let attr = fs.resolve(&who, path).expect("resolve");
    let fh = fs
        .open(&who, attr.ino, Default::default())
        .expect("open")
        .fh;
    let data = fs.read(fh, 0, 1 << 20).expect("read");
    fs.release(fh).expect("release");
    assert_eq!(attr.size, data.len() as u64, "stat size of {path}");
    data
}

const SUB: &str = r"TestApplication\1.0.0.0\TestModule\1.0.0.0\00000000";

#[test]
fn a_counted_report_shows_in_count_txt() {
    for share in shares() {
        let fs = &share.fs;
        fs.count_report(SUB, 1, 1).expect("first report");
        let now = fs.count_report(SUB, 0, 1).expect("second report");
        assert_eq!((now.cabs_gathered, now.total_hits), (1, 2));
        let path = "counts/TestApplication/1.0.0.0/TestModule/1.0.0.0/00000000/count.txt";
        assert_eq!(cat(fs, path), b"Cabs Gathered=1\r\nTotal Hits=2\r\n");
        let old = fs.reset_counts(SUB).expect("reset");
        assert_eq!(old.total_hits, 2);
        assert_eq!(cat(fs, path), b"Cabs Gathered=0\r\nTotal Hits=0\r\n");
        assert!(matches!(fs.reset_counts("nope"), Err(FsError::NotFound)));
    }
}

#[test]
fn settings_set_merge_clear_and_override() {
    for share in shares() {
        let fs = &share.fs;
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let bad = fs.set_settings(&SettingsTarget::Policy, &[pair("Tracking", "maybe")]);
        assert!(matches!(bad, Err(FsError::InvalidContent(_))), "{bad:?}");
        assert_eq!(
            fs.settings_of(&SettingsTarget::Policy).expect("read"),
            None,
            "nothing stored"
        );
        fs.set_settings(
            &SettingsTarget::Policy,
            &[pair("Tracking", "yes"), pair("Crashes per bucket", "10")],
        )
        .expect("policy");
        let status = SettingsTarget::Status("blue".into());
        fs.set_settings(
            &status,
            &[pair("Crashes per bucket", "2"), pair("iData", "1")],
        )
        .expect("status");
        assert_eq!(
            cat(fs, "status/blue/status.txt"),
            b"iData=YES\r\nCrashes per bucket=2\r\n"
        );
        assert_eq!(
            fs.effective_settings("blue").expect("effective"),
            [
                pair("iData", "YES"),
                pair("Tracking", "YES"),
                pair("Crashes per bucket", "2")
            ]
        );
        fs.clear_settings(&status, &["iData".to_owned()])
            .expect("clear one");
        assert_eq!(
            cat(fs, "status/blue/status.txt"),
            b"Crashes per bucket=2\r\n"
        );
        fs.clear_settings(&status, &[]).expect("clear all");
        assert!(matches!(
            fs.resolve(&Caller::default(), "status/blue/status.txt"),
            Err(FsError::NotFound)
        ));
    }
}

#[test]
fn uploads_commit_or_leave_nothing() {
    for share in shares() {
        let fs = &share.fs;
        let data = vec![7u8; 3 << 20];
        let size = fs
            .upload_cab("blue", "a.cab", &mut &data[..])
            .expect("upload");
        assert_eq!(size, data.len() as u64);
        let attr = fs
            .resolve(&Caller::default(), "cabs/blue/a.cab")
            .expect("committed cab");
        assert_eq!(attr.size, data.len() as u64);
        assert!(!attr.volatile, "committed");
        let fh = fs.begin_cab("blue", "b.cab").expect("begin");
        fs.write(fh, 0, b"partial").expect("write");
        fs.abort_upload(fh).expect("abort");
        assert!(matches!(
            fs.resolve(&Caller::default(), "cabs/blue/b.cab"),
            Err(FsError::NotFound)
        ));
        assert!(matches!(
            fs.begin_cab("blue", "a.cab"),
            Err(FsError::Exists)
        ));
        assert!(matches!(
            fs.begin_cab("bl:ue", "c.cab"),
            Err(FsError::InvalidName(_))
        ));
    }
}

/// The `buckets` view's `cab_limit` (SQL, in a migration) falls back to the same default
/// as the answers to CER2 clients: the constant is written once, in settings_file.rs, and
/// this test holds the view to it.
#[test]
fn the_default_cab_cap_is_the_same_in_the_views() {
    use cerfs_db::{RowSink, Value};
    use cerfs_fs_core::settings_file::DEFAULT_CRASHES_PER_BUCKET;

    struct One(Option<Value>);
    impl RowSink for One {
        fn columns(&mut self, _: &[String]) -> std::io::Result<()> {
            Ok(())
        }
        fn row(&mut self, values: &[Value]) -> std::io::Result<()> {
            self.0 = values.first().cloned();
            Ok(())
        }
    }
    for share in shares() {
        let fs = &share.fs;
        fs.count_report(SUB, 0, 1).expect("a report");
        assert_eq!(
            fs.report_policy(SUB).expect("policy").cab_cap,
            DEFAULT_CRASHES_PER_BUCKET
        );
        let q = share.query_db();
        let mut cap = One(None);
        q.query(
            "SELECT cab_limit FROM buckets WHERE subpath = ?1",
            &[Value::Text(SUB.into())],
            &mut cap,
        )
        .expect("query");
        assert_eq!(
            cap.0,
            Some(Value::Integer(
                i64::try_from(DEFAULT_CRASHES_PER_BUCKET).expect("small")
            ))
        );
        // A policy that sets the cap is what both follow.
        fs.set_settings(
            &SettingsTarget::Policy,
            &[("Crashes per bucket".into(), "9".into())],
        )
        .expect("policy");
        assert_eq!(fs.report_policy(SUB).expect("policy").cab_cap, 9);
        q.query(
            "SELECT cab_limit FROM buckets WHERE subpath = ?1",
            &[Value::Text(SUB.into())],
            &mut cap,
        )
        .expect("query");
        assert_eq!(cap.0, Some(Value::Integer(9)));
    }
}
