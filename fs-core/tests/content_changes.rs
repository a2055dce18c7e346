//! Announcements of changes to volatile content (what lets an adapter cache attributes):
//! each committed change is announced once, after the commit, with what it changed; a close
//! that stores nothing announces nothing; another process's commit is seen by the next
//! check, and this process's own commits never look like another's.

use std::sync::{Arc, Mutex};

use cerfs_db::{CounterStore, Counts, LogId, SettingsScope, SqliteStore};
use cerfs_fs_core::{Caller, CerFs, Changed, Content, OpenFlags, SettingsTarget, ROOT_INO};

const SUB: &str = r"TestApplication\1.0.0.0\TestModule\1.0.0.0\00000000";

/// A server's fs-core over a fresh database, and what it announced.
fn fixture() -> (Arc<CerFs>, Arc<Mutex<Vec<Changed>>>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("cer.db")).expect("open store");
    let fs = Arc::new(CerFs::new(Arc::new(store)));
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&heard);
    let reader = SqliteStore::open_for_admin(&dir.path().join("cer.db")).expect("reader");
    fs.on_content_change(Arc::new(move |change| {
        // Announced after the commit: another connection reads the new state already.
        if let Changed::Content(Content::Counts(b)) = change {
            let hits = reader.counts(b).expect("counts").total_hits;
            assert!(hits > 0, "announced before the commit");
        }
        log.lock().expect("not poisoned").push(change);
    }));
    (fs, heard, dir)
}

fn take(heard: &Mutex<Vec<Changed>>) -> Vec<Changed> {
    std::mem::take(&mut *heard.lock().expect("not poisoned"))
}

#[test]
fn each_committed_change_is_announced_with_what_it_changed() {
    let (fs, heard, _dir) = fixture();
    let before = fs.content_generation();
    fs.count_report(SUB, 0, 1).expect("report");
    let counts = match take(&heard).as_slice() {
        [Changed::Content(c @ Content::Counts(_))] => *c,
        other => panic!("one counts change, got {other:?}"),
    };
    assert!(fs.content_generation() > before, "the generation moves");

    fs.set_counts(
        SUB,
        Counts {
            cabs_gathered: 0,
            total_hits: 5,
        },
    )
    .expect("set");
    assert_eq!(take(&heard), [Changed::Content(counts)]);

    fs.set_settings(
        &SettingsTarget::Policy,
        &[("Tracking".to_owned(), "YES".to_owned())],
    )
    .expect("policy");
    assert_eq!(
        take(&heard),
        [Changed::Content(Content::Settings(SettingsScope::Policy))]
    );

    // Through a handle: a line stored at the close, and a close that stores nothing.
    let who = Caller::default();
    let write = OpenFlags {
        read: false,
        write: true,
        truncate: false,
        append: true,
    };
    let (log, opened) = fs
        .create(&who, ROOT_INO, b"crash.log", 0o666, write, false)
        .expect("create crash.log");
    let fh = opened.fh;
    fs.write(fh, 0, b"15:32:23  04-23-2007\tM1\tU\ta.cab\r\n")
        .expect("write");
    assert!(take(&heard).is_empty(), "nothing stored before the close");
    fs.flush(fh, None).expect("flush");
    fs.release(fh).expect("release");
    assert_eq!(
        take(&heard),
        [Changed::Content(Content::Log(LogId::Crash))],
        "stored once, at the flush"
    );
    let fh = fs.open(&who, log.ino, write).expect("open again").fh;
    fs.flush(fh, None).expect("flush");
    fs.release(fh).expect("release");
    assert!(take(&heard).is_empty(), "a close that stores nothing");

    // policy.txt rewritten through a handle by an admin (root).
    let policy = fs.resolve(&who, "policy.txt").expect("policy.txt");
    let rewrite = OpenFlags {
        read: false,
        write: true,
        truncate: true,
        append: false,
    };
    let fh = fs.open(&who, policy.ino, rewrite).expect("open policy").fh;
    fs.write(fh, 0, b"Tracking=NO\r\n").expect("write policy");
    fs.flush(fh, None).expect("flush");
    fs.release(fh).expect("release");
    assert_eq!(
        take(&heard),
        [Changed::Content(Content::Settings(SettingsScope::Policy))]
    );
}

#[test]
fn another_process_commit_is_seen_by_the_next_check_and_own_commits_never() {
    let (fs, heard, dir) = fixture();
    fs.count_report(SUB, 0, 1).expect("report");
    take(&heard);
    assert!(
        !fs.check_outside_changes().expect("check"),
        "nobody else wrote"
    );
    fs.count_report(SUB, 0, 1).expect("own report");
    assert!(!fs.check_outside_changes().expect("check"), "own commits");
    take(&heard);

    // An admin's command: its own store and fs-core, as `cerfs counts set` opens them.
    let admin = SqliteStore::open_for_admin(&dir.path().join("cer.db")).expect("admin");
    let admin = CerFs::new(Arc::new(admin));
    admin
        .set_counts(
            SUB,
            Counts {
                cabs_gathered: 0,
                total_hits: 40,
            },
        )
        .expect("admin sets");
    let before = fs.content_generation();
    assert!(fs.check_outside_changes().expect("check"));
    assert_eq!(take(&heard), [Changed::ByAnotherProcess]);
    assert!(fs.content_generation() > before, "the generation moves");
    assert!(!fs.check_outside_changes().expect("check"), "seen once");
    assert!(take(&heard).is_empty());
}
