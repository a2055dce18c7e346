//! Alerts on a real store: raised once each, delivered to a webhook receiver on loopback,
//! retried after a failure (also across a reopen of the store), in each body format. On
//! SQLite, and on PostgreSQL on the test server (`CERFS_TEST_POSTGRES`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use cerfs_alerts::{round, AlertBackend, AlertSettings, Format, Receiver};
use cerfs_db::{PgStore, SqliteStore, Store};
use cerfs_fs_core::{Caller, CerFs, OpenFlags};
use cerfs_testkit::{poll_until, WebhookReceiver};

/// Where a test's store lives, to open it (again, as a restart does).
enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(cerfs_testkit::TestDatabase),
}

impl Db {
    /// Where the store is, for the cab indexer.
    fn location(&self) -> cerfs_db::StoreLocation {
        match self {
            Db::Sqlite(dir) => cerfs_db::StoreLocation::Sqlite(dir.path().join("cer.db")),
            Db::Postgres(db) => cerfs_db::StoreLocation::Postgres(db.url.clone()),
        }
    }

    /// The store, as the share and as the alert worker see it.
    fn open(&self) -> (Arc<dyn Store>, Arc<dyn AlertBackend>) {
        match self {
            Db::Sqlite(dir) => {
                let store = Arc::new(SqliteStore::open(&dir.path().join("cer.db")).unwrap());
                (store.clone(), store)
            }
            Db::Postgres(db) => {
                let store = Arc::new(PgStore::open(&db.url).unwrap());
                (store.clone(), store)
            }
        }
    }
}

/// A fresh store of each backend there is.
fn each_db() -> Vec<Db> {
    let mut all = vec![Db::Sqlite(tempfile::tempdir().unwrap())];
    all.extend(cerfs_testkit::TestDatabase::create().map(Db::Postgres));
    all
}

fn settings(receivers: Vec<Receiver>) -> AlertSettings {
    AlertSettings {
        receivers,
        retry: Duration::from_secs(1),
        ..AlertSettings::default()
    }
}

fn json(url: &str) -> Receiver {
    Receiver {
        format: Format::Json,
        url: url.to_owned(),
    }
}

/// Reports `n` hits to bucket `sub` (count.txt and hits.log lines), as clients do.
fn hits(fs: &CerFs, sub: &str, n: usize) {
    let caller = Caller {
        pid: 4242,
        uid: 1000,
        gid: 1000,
    };
    fs.count_report(sub, 0, n as u64).unwrap();
    let parts = cerfs_fs_core::subpath_parts(sub).unwrap();
    let dir = fs.ensure_dirs(cerfs_db::CABS_INO, &parts).unwrap();
    let flags = OpenFlags {
        read: true,
        write: true,
        truncate: false,
        append: true,
    };
    for i in 0..n {
        let (attr, opened) = fs
            .create(&caller, dir, b"hits.log", 0o666, flags, false)
            .unwrap();
        let line = format!("10:00:{:02}  12-01-2026\tPC{i}\tuser\tNo CAB\r\n", i % 60);
        fs.write(opened.fh, attr.size, line.as_bytes()).unwrap();
        fs.flush(opened.fh, Some(caller.pid)).unwrap();
        fs.release(opened.fh).unwrap();
    }
}

fn kinds(receiver: &WebhookReceiver) -> Vec<(String, String)> {
    receiver
        .received()
        .iter()
        .map(|b| {
            (
                b["kind"].as_str().unwrap_or("").to_owned(),
                b["subject"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn news_is_raised_once_and_delivered_and_old_news_is_not() {
    for db in each_db() {
        let (shared, store) = db.open();
        let fs = CerFs::new(shared);
        hits(&fs, "before", 1);
        let receiver = WebhookReceiver::start(&[]);
        let slack = WebhookReceiver::start(&[]);
        settings(vec![
            json(&receiver.url),
            Receiver {
                format: Format::Slack,
                url: slack.url.clone(),
            },
        ])
        .store(&*store)
        .unwrap();
        let client = cerfs_alerts::client().unwrap();

        // The first look is the baseline: what was there is not news.
        assert!(round(&*store, &client, "test", None).unwrap().is_empty());
        hits(&fs, "blue", 25);
        let raised = round(&*store, &client, "test", None).unwrap();
        let raised: Vec<&str> = raised.iter().map(|a| a.kind.as_str()).collect();
        // 25 hits in the hour against no history: a spike too.
        assert_eq!(raised, ["new_bucket", "spike"]);
        assert_eq!(
            kinds(&receiver),
            [
                ("new_bucket".to_owned(), "blue".to_owned()),
                ("spike".to_owned(), "blue".to_owned())
            ]
        );
        let text = slack.received()[0]["text"].as_str().unwrap().to_owned();
        assert!(
            text.contains("a new kernel bucket") || text.contains("a new blue bucket"),
            "{text}"
        );
        // Nothing twice.
        assert!(round(&*store, &client, "test", None).unwrap().is_empty());
        assert_eq!(receiver.received().len(), 2);

        // The store near its quota: once.
        store
            .set_server_setting(cerfs_fs_core::MAX_STORE_SETTING, Some("1000"))
            .unwrap();
        let raised = round(&*store, &client, "test", None).unwrap();
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].kind, "store_near_quota");
        assert!(round(&*store, &client, "test", None).unwrap().is_empty());
    }
}

/// Records, as the cab indexer does, that the queued cab's minidump has `signature`.
fn sign_queued_cab(db: &Db, signature: &str) {
    let mut index = cerfs_db::IndexDb::open_at(&db.location()).unwrap();
    let cab = index.pending(1).unwrap().remove(0);
    let stacks = vec![cerfs_db::StackRow {
        member: "crash.dmp".to_owned(),
        signature: signature.to_owned(),
        ..cerfs_db::StackRow::default()
    }];
    let found = cerfs_db::CabIndex {
        stacks,
        ..cerfs_db::CabIndex::default()
    };
    assert!(index.store_index(cab.cab_id, &found).unwrap().is_some());
}

#[test]
fn a_new_signature_is_news_once_and_an_old_or_empty_one_is_not() {
    for db in each_db() {
        let (shared, store) = db.open();
        let fs = CerFs::new(shared);
        let receiver = WebhookReceiver::start(&[]);
        settings(vec![json(&receiver.url)]).store(&*store).unwrap();
        let client = cerfs_alerts::client().unwrap();
        let cab = |name: &str| {
            fs.upload_cab("blue", name, &mut std::io::Cursor::new(b"MSCF"))
                .unwrap();
        };
        // Signed before alerts began: an old signature.
        cab("old.cab");
        sign_queued_cab(&db, "old.exe@0x10");
        assert!(round(&*store, &client, "test", None).unwrap().is_empty());

        cab("new.cab");
        sign_queued_cab(&db, "app.exe@0x4242");
        let raised = round(&*store, &client, "test", None).unwrap();
        let raised: Vec<(&str, &str)> = raised
            .iter()
            .map(|a| (a.kind.as_str(), a.subject.as_str()))
            .collect();
        assert_eq!(raised, [("new_signature", "app.exe@0x4242")]);

        // Its next crash, the old signature again, and a dump that could not be walked.
        cab("again.cab");
        sign_queued_cab(&db, "app.exe@0x4242");
        cab("old-again.cab");
        sign_queued_cab(&db, "old.exe@0x10");
        cab("broken.cab");
        sign_queued_cab(&db, "EMPTY: not a readable minidump");
        assert!(round(&*store, &client, "test", None).unwrap().is_empty());
        assert_eq!(
            kinds(&receiver),
            [("new_signature".to_owned(), "app.exe@0x4242".to_owned())]
        );
    }
}

#[test]
fn a_failed_delivery_is_retried_also_after_a_restart() {
    for db in each_db() {
        let receiver = WebhookReceiver::start(&[500]);
        {
            let (shared, store) = db.open();
            settings(vec![json(&receiver.url)]).store(&*store).unwrap();
            let client = cerfs_alerts::client().unwrap();
            round(&*store, &client, "test", None).unwrap();
            let fs = CerFs::new(shared);
            hits(&fs, "App\\1.0\\app.exe\\1.0\\0000abcd", 1);
            let raised = round(&*store, &client, "test", None).unwrap();
            assert_eq!(raised.len(), 1);
            assert!(receiver.received().is_empty(), "the receiver failed");
        }
        // A new process: the outbox is in the database.
        let (_, store) = db.open();
        let client = cerfs_alerts::client().unwrap();
        poll_until(Duration::from_secs(30), "the retried delivery", || {
            round(&*store, &client, "test", None).unwrap();
            (!receiver.received().is_empty()).then_some(())
        });
        assert_eq!(
            kinds(&receiver),
            [(
                "new_bucket".to_owned(),
                "App\\1.0\\app.exe\\1.0\\0000abcd".to_owned()
            )]
        );
    }
}

#[test]
fn a_round_with_nothing_new_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cer.db");
    let store = Arc::new(SqliteStore::open(&db).unwrap());
    let fs = CerFs::new(Arc::clone(&store) as Arc<_>);
    hits(&fs, "blue", 1);
    let client = cerfs_alerts::client().unwrap();
    assert!(round(&*store, &client, "test", None).unwrap().is_empty());
    hits(&fs, "shutdown", 1);
    assert_eq!(round(&*store, &client, "test", None).unwrap().len(), 1);
    // PRAGMA data_version changes when another connection commits a change.
    let watcher = rusqlite::Connection::open(&db).unwrap();
    let version = || -> i64 {
        watcher
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .unwrap()
    };
    let before = version();
    for _ in 0..3 {
        assert!(round(&*store, &client, "test", None).unwrap().is_empty());
    }
    assert_eq!(version(), before, "quiet rounds wrote to the database");
}
