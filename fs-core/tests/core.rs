//! fs-core without a mount: the handle semantics of every kind of file, driven the way the
//! FUSE and WinFsp adapters drive them, over each real store: SQLite in a temp dir, and
//! PostgreSQL on the test server (`CERFS_TEST_POSTGRES`; skipped without it by the one
//! skip rule).

use std::sync::Arc;

use cerfs_db::{ContentStore, PgStore, SqliteStore, CABS_INO, COUNTS_INO, ROOT_INO, STATUS_INO};
use cerfs_fs_core::{Caller, CerFs, FileKind, FsError, Ino, OpenFlags, SetAttr};
use cerfs_testkit::bumped;

struct Fixture {
    fs: CerFs,
    /// The store's unit of whole writes (its chunk size).
    unit: u64,
    /// What the store lives in (a temp dir, a test database), dropped after it.
    _keep: Box<dyn std::any::Any>,
}

/// A share over each backend.
fn fixtures() -> Vec<Fixture> {
    fixtures_with(|fs| fs)
}

/// A share over each backend, `shaped` (limits, admins).
fn fixtures_with(shaped: impl Fn(CerFs) -> CerFs) -> Vec<Fixture> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("cer.db")).expect("open store");
    let mut all = vec![Fixture {
        unit: store.write_alignment(0),
        fs: shaped(CerFs::new(Arc::new(store))),
        _keep: Box::new(dir),
    }];
    if let Some(db) = cerfs_testkit::TestDatabase::create() {
        let store = PgStore::open(&db.url).expect("open the PostgreSQL store");
        eprintln!("and on PostgreSQL");
        all.push(Fixture {
            unit: store.write_alignment(0),
            fs: shaped(CerFs::new(Arc::new(store))),
            _keep: Box::new(db),
        });
    }
    all
}

fn client(pid: u32) -> Caller {
    Caller {
        pid,
        uid: 0,
        gid: 0,
    }
}

const RW: OpenFlags = OpenFlags {
    read: true,
    write: true,
    truncate: false,
    append: false,
};
const RO: OpenFlags = OpenFlags {
    read: true,
    write: false,
    truncate: false,
    append: false,
};
const WTRUNC: OpenFlags = OpenFlags {
    read: false,
    write: true,
    truncate: true,
    append: false,
};

/// mkdir -p below `top`, one level at a time (R5), returning the last directory.
fn mkdirs(fs: &CerFs, top: Ino, parts: &[&str]) -> Ino {
    let mut dir = top;
    for p in parts {
        dir = match fs.mkdir(&client(1), dir, p.as_bytes(), 0o755) {
            Ok(a) => a.ino,
            Err(FsError::Exists) => {
                fs.lookup(&client(1), dir, p.as_bytes())
                    .expect("lookup")
                    .ino
            }
            Err(e) => panic!("mkdir {p}: {e}"),
        };
    }
    dir
}

fn read_all(fs: &CerFs, fh: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let chunk = fs.read(fh, out.len() as u64, 4096).expect("read");
        if chunk.is_empty() {
            return out;
        }
        out.extend_from_slice(&chunk);
    }
}

fn cat(fs: &CerFs, dir: Ino, name: &str) -> Vec<u8> {
    let attr = fs
        .lookup(&client(99), dir, name.as_bytes())
        .expect("lookup");
    let fh = fs.open(&client(99), attr.ino, RO).expect("open").fh;
    let data = read_all(fs, fh);
    fs.release(fh).expect("release");
    assert_eq!(
        attr.size,
        data.len() as u64,
        "stat size of {name} equals its content"
    );
    data
}

/// Creates count.txt as a client that found none: an increment from zero.
fn first_report(fs: &CerFs, pid: u32, dir: Ino, text: &str) {
    let (_, o) = fs
        .create(&client(pid), dir, b"count.txt", 0o644, WTRUNC, false)
        .expect("create");
    fs.write(o.fh, 0, text.as_bytes()).expect("write");
    fs.flush(o.fh, None).expect("flush");
    fs.release(o.fh).expect("release");
}

/// Creates count.txt of bucket `sub` (whose counts folder is `dir`) with a first report,
/// then gives it the counters of `text` as an admin would (a client adds one report per
/// write).
fn create_count(fs: &CerFs, pid: u32, dir: Ino, sub: &str, text: &str) {
    first_report(fs, pid, dir, "Cabs Gathered=0\r\nTotal Hits=1\r\n");
    let wanted = cerfs_fs_core::count_file::parse(text.as_bytes()).expect("counts");
    fs.set_counts(sub, wanted)
        .expect("an admin sets the counters");
}

/// Pattern (a): one handle: read, seek 0, write, truncate, close.
fn bump_one_handle(fs: &CerFs, pid: u32, ino: Ino, cabs: u64) -> Result<(), FsError> {
    let fh = fs.open(&client(pid), ino, RW)?.fh;
    let next = bumped(read_all(fs, fh), cabs);
    fs.write(fh, 0, next.as_bytes())?;
    fs.setattr(
        &client(pid),
        ino,
        Some(fh),
        &SetAttr {
            size: Some(next.len() as u64),
            ..Default::default()
        },
    )?;
    let r = fs.flush(fh, None);
    fs.release(fh).ok();
    r
}

/// Pattern (b): open-read-close, then open with truncate, write, close.
fn read_count(fs: &CerFs, pid: u32, ino: Ino) -> String {
    let fh = fs.open(&client(pid), ino, RO).expect("open").fh;
    let text = String::from_utf8(read_all(fs, fh)).expect("ascii");
    fs.flush(fh, None).expect("flush");
    fs.release(fh).expect("release");
    text
}

fn overwrite_count(fs: &CerFs, pid: u32, ino: Ino, text: &str) -> Result<(), FsError> {
    let fh = fs.open(&client(pid), ino, WTRUNC)?.fh;
    fs.write(fh, 0, text.as_bytes())?;
    let r = fs.flush(fh, None);
    fs.release(fh).ok();
    r
}

#[test]
fn root_holds_the_three_trees_and_nothing_else() {
    for f in fixtures() {
        let dh = f.fs.opendir(ROOT_INO).expect("opendir");
        let names: Vec<String> =
            f.fs.readdir(dh, 0)
                .expect("readdir")
                .into_iter()
                .map(|e| e.name)
                .collect();
        assert_eq!(names, ["cabs", "counts", "status"]);
        assert!(matches!(
            f.fs.lookup(&client(1), ROOT_INO, b"policy.txt"),
            Err(FsError::NotFound)
        ));
        assert!(matches!(
            f.fs.lookup(&client(1), ROOT_INO, b"crash.log"),
            Err(FsError::NotFound)
        ));
        assert!(matches!(
            f.fs.rmdir(&client(1), ROOT_INO, b"cabs"),
            Err(FsError::NotPermitted(_))
        ));
    }
}

#[test]
fn count_created_from_nothing_then_pattern_a_and_b() {
    for f in fixtures() {
        let dir = mkdirs(&f.fs, COUNTS_INO, &["blue"]);
        create_count(
            &f.fs,
            10,
            dir,
            "blue",
            "Cabs Gathered=1\r\nTotal Hits=1\r\n",
        );
        let ino =
            f.fs.lookup(&client(10), dir, b"count.txt")
                .expect("lookup")
                .ino;
        bump_one_handle(&f.fs, 10, ino, 1).expect("pattern a");
        let seen = read_count(&f.fs, 11, ino);
        overwrite_count(&f.fs, 11, ino, &bumped(&seen, 0)).expect("pattern b");
        assert_eq!(
            cat(&f.fs, dir, "count.txt"),
            b"Cabs Gathered=2\r\nTotal Hits=3\r\n"
        );
    }
}

#[test]
fn interleaved_clients_lose_no_increment() {
    for f in fixtures() {
        let dir = mkdirs(&f.fs, COUNTS_INO, &["App", "1.0", "Mod", "1.0", "00001234"]);
        create_count(
            &f.fs,
            1,
            dir,
            "App/1.0/Mod/1.0/00001234",
            "Cabs Gathered=5\r\nTotal Hits=10\r\n",
        );
        let ino =
            f.fs.lookup(&client(1), dir, b"count.txt")
                .expect("lookup")
                .ino;
        // Three clients read the same values before any of them writes.
        let a = read_count(&f.fs, 21, ino);
        let b = read_count(&f.fs, 22, ino);
        let c_fh = f.fs.open(&client(23), ino, RW).expect("open").fh;
        let c = String::from_utf8(read_all(&f.fs, c_fh)).expect("ascii");
        assert_eq!(a, b);
        overwrite_count(&f.fs, 21, ino, &bumped(&a, 1)).expect("client a");
        overwrite_count(&f.fs, 22, ino, &bumped(&b, 0)).expect("client b");
        let next = bumped(&c, 1);
        f.fs.write(c_fh, 0, next.as_bytes()).expect("write");
        f.fs.flush(c_fh, None).expect("client c");
        f.fs.release(c_fh).expect("release");
        assert_eq!(
            cat(&f.fs, dir, "count.txt"),
            b"Cabs Gathered=7\r\nTotal Hits=13\r\n"
        );
    }
}

#[test]
fn two_clients_creating_count_from_zero_both_count() {
    for f in fixtures() {
        let dir = mkdirs(&f.fs, COUNTS_INO, &["shutdown"]);
        // Both look and find nothing, then both create-or-overwrite.
        for pid in [31, 32] {
            assert!(matches!(
                f.fs.lookup(&client(pid), dir, b"count.txt"),
                Err(FsError::NotFound)
            ));
        }
        first_report(&f.fs, 31, dir, "Cabs Gathered=1\r\nTotal Hits=1\r\n");
        first_report(&f.fs, 32, dir, "Cabs Gathered=0\r\nTotal Hits=1\r\n");
        assert_eq!(
            cat(&f.fs, dir, "count.txt"),
            b"Cabs Gathered=1\r\nTotal Hits=2\r\n"
        );
    }
}

#[test]
fn garbage_or_lower_counts_are_refused_and_change_nothing() {
    for f in fixtures() {
        let dir = mkdirs(&f.fs, COUNTS_INO, &["blue"]);
        create_count(&f.fs, 1, dir, "blue", "Cabs Gathered=3\r\nTotal Hits=4\r\n");
        let ino =
            f.fs.lookup(&client(1), dir, b"count.txt")
                .expect("lookup")
                .ino;
        read_count(&f.fs, 2, ino);
        let err = overwrite_count(&f.fs, 2, ino, "hello\r\n").expect_err("garbage");
        assert!(matches!(err, FsError::InvalidContent(_)), "{err}");
        read_count(&f.fs, 3, ino);
        let err = overwrite_count(&f.fs, 3, ino, "Cabs Gathered=1\r\nTotal Hits=4\r\n")
            .expect_err("lower");
        assert!(matches!(err, FsError::InvalidContent(_)), "{err}");
        assert_eq!(
            cat(&f.fs, dir, "count.txt"),
            b"Cabs Gathered=3\r\nTotal Hits=4\r\n"
        );
    }
}

#[test]
fn logs_keep_both_appends_at_the_same_end() {
    for f in fixtures() {
        let line1 = b"15:32:23  04-23-2007\tTestMachine\tTestUser\tblue\r\n";
        let line2 = b"15:32:24  04-23-2007\tOther\tSomeone\tblue\r\n";
        let (_, o1) =
            f.fs.create(&client(1), ROOT_INO, b"crash.log", 0o644, RW, false)
                .expect("create");
        let (_, o2) =
            f.fs.create(&client(2), ROOT_INO, b"crash.log", 0o644, RW, false)
                .expect("open");
        f.fs.write(o1.fh, 0, line1).expect("write 1");
        f.fs.write(o2.fh, 0, line2).expect("write 2");
        for o in [o1, o2] {
            f.fs.flush(o.fh, None).expect("flush");
            f.fs.release(o.fh).expect("release");
        }
        let mut want = line1.to_vec();
        want.extend_from_slice(line2);
        assert_eq!(cat(&f.fs, ROOT_INO, "crash.log"), want);
    }
}

#[test]
fn a_log_line_that_does_not_parse_is_kept_verbatim() {
    for f in fixtures() {
        let (_, o) =
            f.fs.create(&client(1), ROOT_INO, b"crash.log", 0o644, RW, false)
                .expect("create");
        f.fs.write(o.fh, 0, b"not a log line\r\nhalf a line")
            .expect("write");
        f.fs.flush(o.fh, None).expect("flush");
        // The partial line stays pending until release, then is kept (with CRLF added).
        assert_eq!(cat(&f.fs, ROOT_INO, "crash.log"), b"not a log line\r\n");
        f.fs.release(o.fh).expect("release");
        assert_eq!(
            cat(&f.fs, ROOT_INO, "crash.log"),
            b"not a log line\r\nhalf a line\r\n"
        );
    }
}

#[test]
fn stored_log_lines_cannot_be_rewritten() {
    for f in fixtures() {
        let line = b"15:32:23  04-23-2007\tTestMachine\tTestUser\tblue\r\n";
        let (_, o) =
            f.fs.create(&client(1), ROOT_INO, b"crash.log", 0o644, RW, false)
                .expect("create");
        f.fs.write(o.fh, 0, line).expect("write");
        f.fs.release(o.fh).expect("release");
        let ino =
            f.fs.lookup(&client(1), ROOT_INO, b"crash.log")
                .expect("lookup")
                .ino;
        let fh = f.fs.open(&client(1), ino, RW).expect("open").fh;
        // Rewriting the same bytes is harmless; changing them is refused.
        f.fs.write(fh, 0, line).expect("same bytes");
        assert!(matches!(
            f.fs.write(fh, 0, b"XX"),
            Err(FsError::InvalidContent(_))
        ));
        f.fs.release(fh).expect("release");
        assert_eq!(cat(&f.fs, ROOT_INO, "crash.log"), line);
    }
}

#[test]
fn cab_is_hidden_until_closed_then_read_only() {
    for f in fixtures() {
        let dir = mkdirs(&f.fs, CABS_INO, &["blue"]);
        let (attr, o) =
            f.fs.create(&client(1), dir, b"d5JE031w.cab", 0o644, RW, true)
                .expect("create");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for (i, piece) in data.chunks(65_536).enumerate() {
            f.fs.write(o.fh, (i * 65_536) as u64, piece).expect("write");
        }
        let dh = f.fs.opendir(dir).expect("opendir");
        assert!(
            f.fs.readdir(dh, 0).expect("readdir").is_empty(),
            "incomplete cab is not listed"
        );
        f.fs.flush(o.fh, None).expect("commit");
        f.fs.release(o.fh).expect("release");
        assert_eq!(cat(&f.fs, dir, "d5JE031w.cab"), data);
        let dh = f.fs.opendir(dir).expect("opendir");
        assert_eq!(f.fs.readdir(dh, 0).expect("readdir").len(), 1);
        assert!(matches!(
            f.fs.open(&client(2), attr.ino, RW),
            Err(FsError::NotPermitted(_))
        ));
        assert!(matches!(
            f.fs.unlink(&client(2), dir, b"d5JE031w.cab"),
            Err(FsError::NotPermitted(_))
        ));
        let trunc = SetAttr {
            size: Some(0),
            ..Default::default()
        };
        assert!(f.fs.setattr(&client(2), attr.ino, None, &trunc).is_err());
        assert_eq!(cat(&f.fs, dir, "d5JE031w.cab"), data);
    }
}

#[test]
fn names_breaking_r3_and_r4_are_refused() {
    for f in fixtures() {
        for bad in ["a:b", "CON", "nul.txt", "caf\u{e9}", "x*y"] {
            let r = f.fs.mkdir(&client(1), CABS_INO, bad.as_bytes(), 0o755);
            assert!(matches!(r, Err(FsError::InvalidName(_))), "{bad}: {r:?}");
        }
        let long = "a".repeat(60);
        let dir = mkdirs(&f.fs, CABS_INO, &[&long, &long, &long, &long]);
        // \cabs + 4 × (1 + 60) = 249 characters so far; 12 more would make 261.
        let r =
            f.fs.mkdir(&client(1), dir, "b".repeat(11).as_bytes(), 0o755);
        assert!(matches!(r, Err(FsError::NameTooLong(261))), "{r:?}");
        f.fs.mkdir(&client(1), dir, "b".repeat(10).as_bytes(), 0o755)
            .expect("260 is fine");
    }
}

#[test]
fn settings_written_through_the_share_are_parsed() {
    for f in fixtures() {
        let dir = mkdirs(&f.fs, STATUS_INO, &["blue"]);
        assert!(matches!(
            f.fs.lookup(&client(1), dir, b"status.txt"),
            Err(FsError::NotFound)
        ));
        let (_, o) =
            f.fs.create(&client(1), dir, b"status.txt", 0o644, WTRUNC, false)
                .expect("create");
        f.fs.write(o.fh, 0, b"Tracking=yes\r\nBogus=1\r\niData=1\r\n")
            .expect("write");
        assert!(
            matches!(f.fs.flush(o.fh, None), Err(FsError::InvalidContent(_))),
            "a bad line is reported"
        );
        f.fs.release(o.fh).expect("release");
        let text = String::from_utf8(cat(&f.fs, dir, "status.txt")).expect("ascii");
        assert!(text.contains("Tracking=YES\r\n"), "{text}");
        assert!(text.contains("iData=YES\r\n"), "{text}");
        assert!(!text.contains("Bogus"), "{text}");
    }
}

#[test]
fn plain_files_behave_normally() {
    for f in fixtures() {
        let scratch = mkdirs(&f.fs, ROOT_INO, &["scratch"]);
        let (a, o) =
            f.fs.create(&client(1), scratch, b"notes.txt", 0o644, RW, true)
                .expect("create");
        assert_eq!(a.kind, FileKind::RegularFile);
        f.fs.write(o.fh, 0, b"hello world").expect("write");
        f.fs.write(o.fh, 6, b"there").expect("overwrite");
        f.fs.release(o.fh).expect("release");
        assert_eq!(cat(&f.fs, scratch, "notes.txt"), b"hello there");
        f.fs.rename(
            &client(1),
            scratch,
            b"notes.txt",
            ROOT_INO,
            b"readme.txt",
            false,
        )
        .expect("rename");
        assert_eq!(cat(&f.fs, ROOT_INO, "readme.txt"), b"hello there");
        f.fs.unlink(&client(1), ROOT_INO, b"readme.txt")
            .expect("unlink");
        f.fs.rmdir(&client(1), ROOT_INO, b"scratch").expect("rmdir");
    }
}

#[test]
fn only_admins_change_settings() {
    for f in fixtures() {
        let guest = Caller {
            pid: 5,
            uid: 65534,
            gid: 65534,
        };
        let r =
            f.fs.create(&guest, ROOT_INO, b"policy.txt", 0o644, WTRUNC, false);
        assert!(matches!(r, Err(FsError::AccessDenied(_))), "{r:?}");
        let (_, o) =
            f.fs.create(&client(1), ROOT_INO, b"policy.txt", 0o644, WTRUNC, false)
                .expect("admin");
        f.fs.write(o.fh, 0, b"Tracking=YES\r\n").expect("write");
        f.fs.flush(o.fh, None).expect("flush");
        f.fs.release(o.fh).expect("release");
        let attr =
            f.fs.lookup(&guest, ROOT_INO, b"policy.txt")
                .expect("lookup");
        assert_eq!((attr.perm, attr.uid), (0o644, 0));
        assert!(matches!(
            f.fs.open(&guest, attr.ino, RW),
            Err(FsError::AccessDenied(_))
        ));
        assert!(matches!(
            f.fs.unlink(&guest, ROOT_INO, b"policy.txt"),
            Err(FsError::AccessDenied(_))
        ));
        // Reading is for everyone.
        let fh = f.fs.open(&guest, attr.ino, RO).expect("guest reads").fh;
        assert_eq!(read_all(&f.fs, fh), b"Tracking=YES\r\n");
        f.fs.release(fh).expect("release");
    }
}

#[test]
fn a_forked_copy_closing_does_not_commit_the_cab() {
    for f in fixtures() {
        let dir = mkdirs(&f.fs, CABS_INO, &["blue"]);
        let (_, o) =
            f.fs.create(&client(40), dir, b"a.cab", 0o644, RW, true)
                .expect("create");
        f.fs.write(o.fh, 0, b"first half ").expect("write");
        // A child of the writer exec()s: its inherited descriptor is closed (flush, other pid).
        f.fs.flush(o.fh, Some(41)).expect("foreign flush");
        f.fs.write(o.fh, 11, b"second half")
            .expect("the upload goes on");
        f.fs.flush(o.fh, Some(40)).expect("owner's close commits");
        assert!(matches!(
            f.fs.write(o.fh, 0, b"x"),
            Err(FsError::NotPermitted(_))
        ));
        f.fs.release(o.fh).expect("release");
        assert_eq!(cat(&f.fs, dir, "a.cab"), b"first half second half");
    }
}

#[test]
fn an_empty_flush_before_the_write_keeps_the_clients_base() {
    // A shell's `>`: open(O_TRUNC), dup2, close (an empty flush), write, close.
    for f in fixtures() {
        let dir = mkdirs(&f.fs, COUNTS_INO, &["blue"]);
        create_count(&f.fs, 1, dir, "blue", "Cabs Gathered=1\r\nTotal Hits=1\r\n");
        let ino =
            f.fs.lookup(&client(1), dir, b"count.txt")
                .expect("lookup")
                .ino;
        let a = read_count(&f.fs, 51, ino);
        let b = read_count(&f.fs, 52, ino);
        for (pid, seen) in [(51, a), (52, b)] {
            let fh = f.fs.open(&client(pid), ino, WTRUNC).expect("open").fh;
            f.fs.flush(fh, Some(pid)).expect("empty flush");
            f.fs.write(fh, 0, bumped(&seen, 1).as_bytes())
                .expect("write");
            f.fs.flush(fh, Some(pid)).expect("flush");
            f.fs.release(fh).expect("release");
        }
        assert_eq!(
            cat(&f.fs, dir, "count.txt"),
            b"Cabs Gathered=3\r\nTotal Hits=3\r\n"
        );
    }
}

#[test]
fn clients_sharing_one_process_lose_no_increment() {
    // Behind Windows' SMB server every client is the same process: two read-close, then
    // both overwrite. Each write is matched with the values it is one report after.
    for f in fixtures() {
        let dir = mkdirs(&f.fs, COUNTS_INO, &["blue"]);
        create_count(
            &f.fs,
            4,
            dir,
            "blue",
            "Cabs Gathered=5\r\nTotal Hits=10\r\n",
        );
        let ino =
            f.fs.lookup(&client(4), dir, b"count.txt")
                .expect("lookup")
                .ino;
        let a = read_count(&f.fs, 4, ino);
        let b = read_count(&f.fs, 4, ino);
        overwrite_count(&f.fs, 4, ino, &bumped(&a, 1)).expect("first client");
        overwrite_count(&f.fs, 4, ino, &bumped(&b, 0)).expect("second client");
        assert_eq!(
            cat(&f.fs, dir, "count.txt"),
            b"Cabs Gathered=6\r\nTotal Hits=12\r\n"
        );
    }
}

#[test]
fn a_close_before_the_first_write_does_not_commit_an_empty_cab() {
    // `cat report.cab > x.cab` and `dd of=x.cab`: the new descriptor is dup2()ed and the
    // original closed (a flush by the owner) before the first write.
    for f in fixtures() {
        let dir = mkdirs(&f.fs, CABS_INO, &["blue"]);
        let (_, o) =
            f.fs.create(&client(50), dir, b"r.cab", 0o644, RW, true)
                .expect("create");
        f.fs.flush(o.fh, Some(50))
            .expect("close of the original descriptor");
        let dh = f.fs.opendir(dir).expect("opendir");
        assert!(
            f.fs.readdir(dh, 0).expect("readdir").is_empty(),
            "nothing committed yet"
        );
        f.fs.write(o.fh, 0, b"the whole report")
            .expect("the upload goes on");
        f.fs.flush(o.fh, Some(50)).expect("the last close commits");
        f.fs.release(o.fh).expect("release");
        assert_eq!(cat(&f.fs, dir, "r.cab"), b"the whole report");
    }
}

#[test]
fn an_empty_cab_is_committed_at_its_last_close() {
    for f in fixtures() {
        let dir = mkdirs(&f.fs, CABS_INO, &["blue"]);
        let (attr, o) =
            f.fs.create(&client(51), dir, b"empty.cab", 0o644, RW, true)
                .expect("create");
        f.fs.flush(o.fh, Some(51)).expect("close");
        f.fs.release(o.fh).expect("release");
        assert_eq!(cat(&f.fs, dir, "empty.cab"), b"");
        assert!(matches!(
            f.fs.open(&client(52), attr.ino, RW),
            Err(FsError::NotPermitted(_))
        ));
    }
}

#[test]
fn readdir_plus_gives_what_lookup_gives_and_stops_when_full() {
    for f in fixtures() {
        let counts = mkdirs(&f.fs, COUNTS_INO, &["blue"]);
        create_count(
            &f.fs,
            60,
            counts,
            "blue",
            "Cabs Gathered=1\r\nTotal Hits=7\r\n",
        );
        mkdirs(&f.fs, counts, &["sub"]);
        let dh = f.fs.opendir(counts).expect("opendir");
        let mut seen = Vec::new();
        f.fs.readdir_plus(dh, 0, |entry, attr| {
            seen.push((entry.name.clone(), attr.clone()));
            false
        })
        .expect("readdir_plus");
        let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        let listed: Vec<String> =
            f.fs.readdir(dh, 0)
                .expect("readdir")
                .into_iter()
                .map(|e| e.name)
                .collect();
        assert_eq!(names, listed);
        for (name, attr) in &seen {
            let looked =
                f.fs.lookup(&client(61), counts, name.as_bytes())
                    .expect("lookup");
            assert_eq!(
                (attr.ino, attr.size, attr.kind, attr.perm),
                (looked.ino, looked.size, looked.kind, looked.perm),
                "{name}"
            );
        }
        let mut taken = 0;
        f.fs.readdir_plus(dh, 0, |_, _| {
            taken += 1;
            true
        })
        .expect("readdir_plus");
        assert_eq!(taken, 1, "nothing is offered after the caller is full");
        f.fs.releasedir(dh);
    }
}

#[test]
fn smb_sized_pieces_are_stored_in_whole_chunks_and_the_writer_sees_everything() {
    for f in fixtures() {
        let dir = mkdirs(&f.fs, CABS_INO, &["blue"]);
        let (attr, o) =
            f.fs.create(&client(70), dir, b"smb.cab", 0o644, RW, true)
                .expect("create");
        let data: Vec<u8> = (0..2_600_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let piece = 61_440; // what smbd writes for a 60 KiB SMB2 WRITE
        for (i, p) in data.chunks(piece).enumerate() {
            f.fs.write(o.fh, (i * piece) as u64, p).expect("write");
            let seen = f.fs.getattr(attr.ino, Some(o.fh)).expect("fstat");
            assert_eq!(
                seen.size,
                ((i * piece) + p.len()) as u64,
                "fstat after write {i}"
            );
        }
        // Another opener sees the whole chunks stored so far (1 MiB on SQLite, 256 KiB on
        // PostgreSQL), never a wrong byte.
        let reader =
            f.fs.open(&client(71), attr.ino, RO)
                .expect("open for reading");
        let so_far = read_all(&f.fs, reader.fh);
        let whole = data.len() as u64 / f.unit * f.unit;
        assert_eq!(so_far.len() as u64, whole, "the whole chunks stored");
        assert_eq!(so_far, data[..so_far.len()]);
        f.fs.release(reader.fh).expect("release reader");
        // Reading through the writer's own handle sees everything it wrote.
        assert_eq!(read_all(&f.fs, o.fh), data);
        f.fs.flush(o.fh, Some(70)).expect("commit");
        f.fs.release(o.fh).expect("release");
        assert_eq!(cat(&f.fs, dir, "smb.cab"), data);
    }
}

#[test]
fn uploads_hold_unstored_bytes_within_one_budget_and_lose_nothing_past_it() {
    // Room for one upload's unstored piece, not two.
    for f in fixtures_with(|fs| fs.with_cab_tail_budget(100_000)) {
        let fs = &f.fs;
        let bucket = mkdirs(fs, CABS_INO, &["blue"]);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let piece = 61_440;
        let (_, a) = fs
            .create(&client(90), bucket, b"a.cab", 0o644, RW, true)
            .expect("create a");
        let (_, b) = fs
            .create(&client(91), bucket, b"b.cab", 0o644, RW, true)
            .expect("create b");
        fs.write(a.fh, 0, &data[..piece])
            .expect("a holds its piece");
        assert_eq!(fs.cab_bytes_held(), piece);
        // b finds the budget spent: its pieces are stored as they come, none held.
        for (i, p) in data.chunks(piece).enumerate() {
            fs.write(b.fh, (i * piece) as u64, p).expect("b writes");
            assert_eq!(fs.cab_bytes_held(), piece, "b holds nothing");
        }
        for (i, p) in data.chunks(piece).enumerate().skip(1) {
            fs.write(a.fh, (i * piece) as u64, p).expect("a writes");
            assert!(fs.cab_bytes_held() <= 100_000, "within the budget");
        }
        for (fh, pid) in [(a.fh, 90), (b.fh, 91)] {
            fs.flush(fh, Some(pid)).expect("commit");
            fs.release(fh).expect("release");
        }
        assert_eq!(fs.cab_bytes_held(), 0, "all given back");
        assert_eq!(cat(fs, bucket, "a.cab"), data);
        assert_eq!(cat(fs, bucket, "b.cab"), data);
    }
}

#[test]
fn a_small_cab_reaches_the_store_whole_at_its_close() {
    // SQLite only: where the bytes went is that store's layout (`bytes_from` NULL: all in
    // the metadata database, committed with the cab).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cer.db");
    let fs = CerFs::new(Arc::new(SqliteStore::open(&path).expect("open store")));
    let bucket = mkdirs(&fs, CABS_INO, &["blue"]);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let upload = |name: &str, read_midway: bool| -> Ino {
        let (attr, o) = fs
            .create(&client(90), bucket, name.as_bytes(), 0o644, RW, true)
            .expect("create");
        for (i, piece) in data.chunks(61_440).enumerate() {
            fs.write(o.fh, (i * 61_440) as u64, piece).expect("write");
            if read_midway && i == 1 {
                assert_eq!(fs.read(o.fh, 0, 4).expect("read"), data[..4]);
            }
        }
        fs.flush(o.fh, Some(90)).expect("commit");
        fs.release(o.fh).expect("release");
        attr.ino
    };
    let whole = upload("whole.cab", false);
    let stored_early = upload("stored-early.cab", true);
    let meta = rusqlite::Connection::open(&path).expect("open the database");
    let split = |ino: Ino| -> Option<i64> {
        meta.query_row(
            "SELECT bytes_from FROM cab_rows WHERE ino = ?1 AND state = 'complete'",
            [ino as i64],
            |r| r.get(0),
        )
        .expect("a complete cab")
    };
    assert_eq!(split(whole), None, "stored whole at its close");
    assert_eq!(
        split(stored_early),
        Some(0),
        "a read through its writer stored its bytes first, in the cab database"
    );
    assert_eq!(cat(&fs, bucket, "whole.cab"), data);
    assert_eq!(cat(&fs, bucket, "stored-early.cab"), data);
}

#[test]
fn a_cab_written_in_any_order_matches_a_model() {
    for f in fixtures() {
        let dir = mkdirs(&f.fs, CABS_INO, &["blue"]);
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..8 {
            let name = format!("m{round}.cab");
            let (_, o) =
                f.fs.create(&client(80), dir, name.as_bytes(), 0o644, RW, true)
                    .expect("create");
            let mut model: Vec<u8> = Vec::new();
            for step in 0..40 {
                let len = 1 + next(100_000) as usize;
                let byte = (round * 40 + step) as u8;
                // Mostly appends, sometimes a write elsewhere or a truncate.
                let offset = match next(10) {
                    0 => next(model.len() as u64 + 1) as usize,
                    1 => {
                        let size = next(model.len() as u64 + 70_000) as usize;
                        let ino =
                            f.fs.lookup(&client(80), dir, name.as_bytes())
                                .expect("lookup")
                                .ino;
                        f.fs.setattr(
                            &client(80),
                            ino,
                            Some(o.fh),
                            &SetAttr {
                                size: Some(size as u64),
                                ..Default::default()
                            },
                        )
                        .expect("truncate");
                        model.resize(size, 0);
                        continue;
                    }
                    _ => model.len(),
                };
                f.fs.write(o.fh, offset as u64, &vec![byte; len])
                    .expect("write");
                if model.len() < offset + len {
                    model.resize(offset + len, 0);
                }
                model[offset..offset + len].fill(byte);
            }
            f.fs.flush(o.fh, Some(80)).expect("commit");
            f.fs.release(o.fh).expect("release");
            assert_eq!(cat(&f.fs, dir, &name), model, "round {round}");
        }
    }
}

fn user(uid: u32) -> Caller {
    Caller {
        pid: 7000 + uid,
        uid,
        gid: uid,
    }
}

/// What the share presents (docs/semantics.md, "Ownership and modes") and who may change
/// it: the kernel checks modes against these (default_permissions), smbd maps them to the
/// ACLs it checks, so they must say the share's rules.
#[test]
fn ownership_and_modes_present_the_share_rules_and_only_owners_change_plain_ones() {
    for f in fixtures_with(|fs| fs.with_admin_uids([990])) {
        let fs = &f.fs;
        let guest = user(65534);
        let attr = |ino| fs.getattr(ino, None).expect("getattr");
        let shown = |ino| {
            let a = attr(ino);
            (a.perm, a.uid)
        };
        // CER folders: sticky and open to all, root's.
        for ino in [ROOT_INO, CABS_INO, COUNTS_INO, STATUS_INO] {
            assert_eq!(shown(ino), (0o1777, 0), "inode {ino}");
        }
        let bucket = mkdirs(fs, CABS_INO, &["blue"]);
        assert_eq!(shown(bucket), (0o1777, 0), "a bucket folder");
        // A cab: the writer's while it is written, root's and read-only once stored.
        let (cab, opened) = fs
            .create(&guest, bucket, b"r.cab", 0o644, RW, true)
            .expect("create a cab");
        assert_eq!(shown(cab.ino), (0o666, 65534), "uploading");
        fs.write(opened.fh, 0, b"MSCF").expect("write");
        fs.flush(opened.fh, None).expect("commit");
        fs.release(opened.fh).expect("release");
        assert_eq!(shown(cab.ino), (0o444, 0), "stored");
        // Settings: the admin account's (the first admin uid other than root).
        let (policy, opened) = fs
            .create(&user(990), ROOT_INO, b"policy.txt", 0o644, WTRUNC, false)
            .expect("the admin creates policy.txt");
        fs.release(opened.fh).expect("release");
        assert_eq!(shown(policy.ino), (0o644, 990));

        let set_mode = |mode| SetAttr {
            mode: Some(mode),
            ..Default::default()
        };
        // A chmod of a CER node by its owner (smbd does it on files it creates) succeeds and
        // changes nothing; anybody else's is refused; nobody gives one to another owner.
        fs.setattr(&user(0), bucket, None, &set_mode(0o700))
            .expect("root's chmod of a CER folder is accepted");
        assert_eq!(shown(bucket), (0o1777, 0), "and changes nothing");
        assert!(matches!(
            fs.setattr(&guest, bucket, None, &set_mode(0o700)),
            Err(FsError::NotPermitted(_))
        ));
        let chown = SetAttr {
            uid: Some(65534),
            ..Default::default()
        };
        assert!(matches!(
            fs.setattr(&user(0), cab.ino, None, &chown),
            Err(FsError::NotPermitted(_))
        ));
        // A stored cab's time stays, whoever asks.
        let touch = SetAttr {
            mtime: Some(std::time::UNIX_EPOCH),
            ..Default::default()
        };
        assert!(matches!(
            fs.setattr(&user(0), cab.ino, None, &touch),
            Err(FsError::NotPermitted(_))
        ));
        // A synthesized file's time change is accepted and not kept.
        let before = attr(policy.ino).mtime;
        let after = fs
            .setattr(&user(990), policy.ino, None, &touch)
            .expect("accepted");
        assert_eq!((after.mtime, attr(policy.ino).mtime), (before, before));

        // Plain files: their creator's, with the mode asked for; POSIX rules for changes.
        let (plain, opened) = fs
            .create(&user(1000), ROOT_INO, b"notes.txt", 0o600, RW, true)
            .expect("a plain file");
        fs.release(opened.fh).expect("release");
        assert_eq!(shown(plain.ino), (0o600, 1000));
        assert!(matches!(
            fs.setattr(&user(1001), plain.ino, None, &set_mode(0o666)),
            Err(FsError::NotPermitted(_))
        ));
        assert!(matches!(
            fs.setattr(&user(1000), plain.ino, None, &chown),
            Err(FsError::NotPermitted(_))
        ));
        fs.setattr(&user(1000), plain.ino, None, &set_mode(0o640))
            .expect("the owner's chmod");
        assert_eq!(shown(plain.ino), (0o640, 1000));
        fs.setattr(&user(0), plain.ino, None, &chown)
            .expect("root's chown");
        assert_eq!(shown(plain.ino).1, 65534);
    }
}

/// Names are at most 255 bytes (NAME_MAX), in lookups and in every new name.
#[test]
fn a_name_over_255_bytes_is_refused_as_too_long() {
    for f in fixtures() {
        let fs = &f.fs;
        let long = "n".repeat(256);
        let fits = "n".repeat(255);
        let too_long = |r: Result<_, FsError>| matches!(r, Err(FsError::ComponentTooLong(256)));
        assert!(too_long(
            fs.mkdir(&client(1), ROOT_INO, long.as_bytes(), 0o755)
                .map(|_| ())
        ));
        assert!(too_long(
            fs.create(&client(1), ROOT_INO, long.as_bytes(), 0o644, RW, true)
                .map(|_| ())
        ));
        assert!(too_long(
            fs.lookup(&client(1), ROOT_INO, long.as_bytes()).map(|_| ())
        ));
        let (_, opened) = fs
            .create(&client(1), ROOT_INO, fits.as_bytes(), 0o644, RW, true)
            .expect("255 bytes fit");
        fs.release(opened.fh).expect("release");
        assert!(too_long(fs.rename(
            &client(1),
            ROOT_INO,
            fits.as_bytes(),
            ROOT_INO,
            long.as_bytes(),
            false
        )));
    }
}

/// A write by someone other than the owner makes the kernel clear set-user-ID and
/// set-group-ID (as that writer): allowed; any other mode change by him is not.
#[test]
fn clearing_set_id_bits_is_allowed_to_writers() {
    for f in fixtures() {
        let fs = &f.fs;
        let (attr, opened) = fs
            .create(&user(1000), ROOT_INO, b"tool", 0o777, RW, true)
            .expect("create");
        fs.release(opened.fh).expect("release");
        let set_mode = |mode| SetAttr {
            mode: Some(mode),
            ..Default::default()
        };
        fs.setattr(&user(1000), attr.ino, None, &set_mode(0o6777))
            .expect("the owner sets the bits");
        assert!(matches!(
            fs.setattr(&user(1001), attr.ino, None, &set_mode(0o666)),
            Err(FsError::NotPermitted(_))
        ));
        fs.setattr(&user(1001), attr.ino, None, &set_mode(0o777))
            .expect("clearing set-id bits");
        assert_eq!(fs.getattr(attr.ino, None).expect("getattr").perm, 0o777);
    }
}

/// An open listing is a snapshot taken at its first read; a rewind (what smbd does for
/// each new search on a folder it keeps open) lists the folder as it is now.
#[test]
fn a_rewound_listing_shows_what_was_created_since() {
    for f in fixtures() {
        let fs = &f.fs;
        let dir = fs
            .mkdir(&client(1), ROOT_INO, b"scratch", 0o755)
            .expect("mkdir")
            .ino;
        let dh = fs.opendir(dir).expect("opendir");
        let (_, opened) = fs
            .create(&client(1), dir, b"early", 0o644, RW, true)
            .expect("create");
        fs.release(opened.fh).expect("release");
        let names = |entries: Vec<cerfs_fs_core::DirEntry>| {
            entries.into_iter().map(|e| e.name).collect::<Vec<_>>()
        };
        // Opened before the create, first read after it: the file is there.
        assert_eq!(names(fs.readdir(dh, 0).expect("readdir")), ["early"]);
        let (_, opened) = fs
            .create(&client(1), dir, b"late", 0o644, RW, true)
            .expect("create");
        fs.release(opened.fh).expect("release");
        assert_eq!(
            names(fs.readdir(dh, 0).expect("readdir")),
            ["early"],
            "a listing being read is a stable snapshot"
        );
        fs.rewinddir(dh).expect("rewind");
        assert_eq!(
            names(fs.readdir(dh, 0).expect("readdir")),
            ["early", "late"]
        );
        fs.releasedir(dh);
        assert!(matches!(fs.rewinddir(dh), Err(FsError::BadHandle)));
    }
}

/// A folder made at the root is a plain folder: it may be renamed (smbtorture's
/// rename_dir_bench does), but never over cabs, status or counts.
#[test]
fn plain_folders_at_the_root_move_and_fixed_ones_stay() {
    for f in fixtures() {
        let fs = &f.fs;
        fs.mkdir(&client(1), ROOT_INO, b"dir-0", 0o755)
            .expect("mkdir");
        fs.rename(&client(1), ROOT_INO, b"dir-0", ROOT_INO, b"dir-0-0", false)
            .expect("a plain folder at the root moves");
        assert!(matches!(
            fs.rename(&client(1), ROOT_INO, b"dir-0-0", ROOT_INO, b"cabs", false),
            Err(FsError::NotPermitted(_))
        ));
        let bucket = mkdirs(fs, CABS_INO, &["blue"]);
        let _ = bucket;
        assert!(matches!(
            fs.rename(&client(1), CABS_INO, b"blue", ROOT_INO, b"moved", false),
            Err(FsError::NotPermitted(_))
        ));
    }
}
