//! The WinFsp mapping without Windows: the call sequences Windows' SMB server sends to
//! WinFsp for a CER client (Create → GetFileInfo → Read/Write → SetFileSize → Cleanup →
//! Close), replayed on the neutral `WinFs` over a real SQLite store, with the FUSE tests'
//! assertions (byte-exact files, no lost increment, immutable cabs).

use std::sync::Arc;

use cerfs_db::SqliteStore;
use cerfs_fs_core::{Caller, CerFs};
use cerfs_testkit::bumped;
use cerfs_winfsp::nt::{
    Disposition, DELETE, FILE_APPEND_DATA, FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_READONLY,
    FILE_DELETE_ON_CLOSE, FILE_DIRECTORY_FILE, FILE_NON_DIRECTORY_FILE, FILE_READ_DATA,
    FILE_WRITE_DATA,
};
use cerfs_winfsp::ntstatus::{
    status_name, STATUS_ACCESS_DENIED, STATUS_DIRECTORY_NOT_EMPTY, STATUS_END_OF_FILE,
    STATUS_FILE_IS_A_DIRECTORY, STATUS_INVALID_PARAMETER, STATUS_NOT_A_DIRECTORY,
    STATUS_OBJECT_NAME_COLLISION, STATUS_OBJECT_NAME_INVALID, STATUS_OBJECT_NAME_NOT_FOUND,
    STATUS_OBJECT_PATH_NOT_FOUND,
};
use cerfs_winfsp::{FileContext, FileInfo, NtError, NtResult, WinFs};

const READ: u32 = FILE_READ_DATA;
const RW: u32 = FILE_READ_DATA | FILE_WRITE_DATA;
const WRITE: u32 = FILE_WRITE_DATA;
const FILE: u32 = FILE_NON_DIRECTORY_FILE;

const APP: &str = "TestApplication\\1.0.0.0\\TestModule\\1.0.0.0\\00000000";
const LINE_PREFIX: &str = "15:32:23  04-23-2007\tTestMachine\tTestUser\t";

struct Share {
    fs: Arc<CerFs>,
    _dir: tempfile::TempDir,
}

impl Share {
    fn new() -> Share {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("cer.db")).expect("open store");
        Share {
            fs: Arc::new(CerFs::new(Arc::new(store))),
            _dir: dir,
        }
    }

    /// A client as the Windows mount sees it: System's pid, no admin rights.
    fn client(&self, pid: u32) -> WinFs {
        WinFs::new(
            self.fs.clone(),
            Caller {
                pid,
                uid: 65534,
                gid: 65534,
            },
        )
    }

    fn admin(&self) -> WinFs {
        WinFs::new(self.fs.clone(), Caller::default())
    }
}

fn status_of<T>(r: NtResult<T>) -> u32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.status,
    }
}

fn expect_status<T>(r: NtResult<T>, status: u32, what: &str) {
    let got = status_of(r);
    assert_eq!(
        got,
        status,
        "{what}: got {} instead of {}",
        status_name(got),
        status_name(status)
    );
}

/// One NtCreateFile as WinFsp's dispatcher splits it (Open / Create / Overwrite), then
/// GetFileInfo as the SMB server does right after.
fn nt_create(
    w: &WinFs,
    path: &str,
    d: Disposition,
    options: u32,
    access: u32,
) -> NtResult<FileContext> {
    let (ctx, info) = w.nt_create(path, d.pack(options), access)?;
    assert_eq!(
        w.file_info(&ctx)?,
        info,
        "GetFileInfo agrees with the create answer"
    );
    Ok(ctx)
}

/// CloseHandle: Cleanup (with the delete flag if a delete is pending), then Close.
fn close(w: &WinFs, ctx: FileContext) -> NtResult<()> {
    let r = w.cleanup(&ctx, ctx.delete_pending());
    w.close(ctx);
    r
}

fn read_all(w: &WinFs, ctx: &FileContext) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        match w.read(ctx, out.len() as u64, 4096) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(e) if e.status == STATUS_END_OF_FILE => return out,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// The client's "mkdir each level" (R5): FILE_OPEN_IF with FILE_DIRECTORY_FILE.
fn mkdirs(w: &WinFs, path: &str) {
    let mut at = String::new();
    for part in path.split('\\').filter(|p| !p.is_empty()) {
        at.push('\\');
        at.push_str(part);
        let ctx = nt_create(w, &at, Disposition::OpenIf, FILE_DIRECTORY_FILE, READ)
            .unwrap_or_else(|e| panic!("mkdir {at}: {e}"));
        close(w, ctx).expect("close dir");
    }
}

/// Reads a whole file through a fresh open, checking that GetFileInfo's size is exact.
fn cat(w: &WinFs, path: &str) -> Vec<u8> {
    let ctx = nt_create(w, path, Disposition::Open, FILE, READ)
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
    let size = w.file_info(&ctx).expect("info").file_size;
    let data = read_all(w, &ctx);
    close(w, ctx).expect("close");
    assert_eq!(
        size,
        data.len() as u64,
        "GetFileInfo size of {path} equals its content"
    );
    data
}

/// Writes a new file (FILE_CREATE) the way CopyFile does: allocation, data, times.
fn copy_new(w: &WinFs, path: &str, data: &[u8]) -> NtResult<()> {
    let ctx = nt_create(w, path, Disposition::Create, FILE, RW)?;
    w.set_file_size(&ctx, data.len() as u64, true)?;
    for (i, chunk) in data.chunks(60_000).enumerate() {
        let (n, _) = w.write(&ctx, chunk, (i * 60_000) as u64, false, false)?;
        assert_eq!(n as usize, chunk.len());
    }
    w.set_basic_info(&ctx, 133_000_000_000_000_000)?;
    close(w, ctx)
}

/// Creates count.txt as a client that found none (FILE_OPEN_IF: created, written) with a
/// first report, then gives it the counters of `text` as an admin would (a client adds
/// one report per write).
fn create_count(w: &WinFs, dir: &str, text: &str) {
    let path = format!("{dir}\\count.txt");
    expect_status(
        nt_create(w, &path, Disposition::Open, FILE, READ),
        STATUS_OBJECT_NAME_NOT_FOUND,
        "no count.txt yet",
    );
    let ctx = nt_create(w, &path, Disposition::OpenIf, FILE, RW).expect("create count.txt");
    w.write(
        &ctx,
        b"Cabs Gathered=0\r\nTotal Hits=1\r\n",
        0,
        false,
        false,
    )
    .expect("write");
    close(w, ctx).expect("close count.txt");
    let sub = dir.trim_start_matches("\\counts\\");
    let wanted = cerfs_fs_core::count_file::parse(text.as_bytes()).expect("counts");
    w.core()
        .set_counts(sub, wanted)
        .expect("an admin sets the counters");
}

/// Pattern a: one handle: open existing read/write, read, write at 0, SetFileSize,
/// Cleanup, Close.
fn bump_one_handle(w: &WinFs, path: &str, cabs: u64) -> NtResult<()> {
    let ctx = nt_create(w, path, Disposition::Open, FILE, RW)?;
    let next = bumped(read_all(w, &ctx), cabs);
    w.write(&ctx, next.as_bytes(), 0, false, false)?;
    w.set_file_size(&ctx, next.len() as u64, false)?;
    close(w, ctx)
}

/// Pattern b: open-read-close, then `d` (FILE_OVERWRITE_IF or FILE_SUPERSEDE), write,
/// Cleanup, Close.
fn bump_overwrite(w: &WinFs, path: &str, cabs: u64, d: Disposition) -> NtResult<()> {
    let seen = cat(w, path);
    let ctx = nt_create(w, path, d, FILE, WRITE)?;
    assert_eq!(
        w.file_info(&ctx)?.file_size,
        0,
        "overwritten handle starts empty"
    );
    w.write(&ctx, bumped(&seen, cabs).as_bytes(), 0, false, false)?;
    close(w, ctx)
}

/// The tracking step (3.1.7 step 9): FILE_OPEN_IF for append, write at the end.
fn append_line(w: &WinFs, path: &str, item: &str) {
    let ctx = nt_create(w, path, Disposition::OpenIf, FILE, FILE_APPEND_DATA).expect("open log");
    let line = format!("{LINE_PREFIX}{item}\r\n");
    let (n, info) = w
        .write(&ctx, line.as_bytes(), 0, true, false)
        .expect("append");
    assert_eq!(n as usize, line.len());
    assert!(info.file_size >= line.len() as u64);
    close(w, ctx).expect("close log");
}

fn fake_cab(len: usize) -> Vec<u8> {
    let mut v = b"MSCF\0\0\0\0".to_vec();
    v.extend((0..len - 8).map(|i| (i * 7 % 251) as u8));
    v
}

fn assert_cab_immutable(w: &WinFs, path: &str, content: &[u8]) {
    for d in [
        Disposition::OverwriteIf,
        Disposition::Supersede,
        Disposition::Overwrite,
    ] {
        expect_status(
            nt_create(w, path, d, FILE, WRITE),
            STATUS_ACCESS_DENIED,
            "overwrite a stored cab",
        );
    }
    expect_status(
        nt_create(w, path, Disposition::Open, FILE, RW),
        STATUS_ACCESS_DENIED,
        "open a stored cab for writing",
    );
    expect_status(
        nt_create(
            w,
            path,
            Disposition::Open,
            FILE | FILE_DELETE_ON_CLOSE,
            DELETE,
        ),
        STATUS_ACCESS_DENIED,
        "delete-on-close of a stored cab",
    );
    let ctx =
        nt_create(w, path, Disposition::Open, FILE, READ | DELETE).expect("open cab to delete");
    expect_status(
        w.set_delete(&ctx, true),
        STATUS_ACCESS_DENIED,
        "delete disposition on a stored cab",
    );
    assert!(!ctx.delete_pending());
    // Even a Cleanup that carries the delete flag (a client that ignored the refusal)
    // deletes nothing: the error is only logged on Windows.
    expect_status(
        w.cleanup(&ctx, true),
        STATUS_ACCESS_DENIED,
        "cleanup-delete of a stored cab",
    );
    w.close(ctx);
    assert_eq!(cat(w, path), content, "the stored cab is unchanged");
    let info = w.get_security_by_name(path).expect("still there");
    assert_ne!(
        info.file_attributes & FILE_ATTRIBUTE_READONLY,
        0,
        "a stored cab is read-only"
    );
}

#[test]
fn example_4_1_application_fault() {
    let share = Share::new();
    let admin = share.admin();
    let w = share.client(4);
    // The admin has set up the bucket's status.txt (Tracking on, 100 cabs).
    mkdirs(&admin, &format!("\\status\\{APP}"));
    let status_path = format!("\\status\\{APP}\\status.txt");
    let status_text = "Tracking=YES\r\nCrashes per bucket=100\r\niData=YES\r\n";
    let ctx = nt_create(&admin, &status_path, Disposition::OverwriteIf, FILE, WRITE)
        .expect("admin creates status.txt");
    admin
        .write(&ctx, status_text.as_bytes(), 0, false, false)
        .expect("write status");
    close(&admin, ctx).expect("status.txt accepted");
    // Earlier reports: count.txt holds 5 / 10.
    mkdirs(&w, &format!("\\counts\\{APP}"));
    create_count(
        &w,
        &format!("\\counts\\{APP}"),
        "Cabs Gathered=5\r\nTotal Hits=10\r\n",
    );

    // 1-2: no policy.txt; status.txt parsed.
    expect_status(
        nt_create(&w, "\\policy.txt", Disposition::Open, FILE, READ),
        STATUS_OBJECT_NAME_NOT_FOUND,
        "policy.txt",
    );
    let status = String::from_utf8(cat(&w, &status_path)).expect("ascii");
    assert!(
        status.contains("Tracking=YES\r\n") && status.contains("Crashes per bucket=100\r\n"),
        "{status}"
    );
    // 3: count.txt read.
    let count_path = format!("\\counts\\{APP}\\count.txt");
    assert_eq!(
        cat(&w, &count_path),
        b"Cabs Gathered=5\r\nTotal Hits=10\r\n"
    );
    // 7: the cab is copied.
    mkdirs(&w, &format!("\\cabs\\{APP}"));
    let cab_path = format!("\\cabs\\{APP}\\d5je031w.cab");
    let cab = fake_cab(150_000);
    copy_new(&w, &cab_path, &cab).expect("copy the cab");
    // 8: count.txt incremented (pattern a).
    bump_one_handle(&w, &count_path, 1).expect("pattern a");
    // 9: tracking lines.
    append_line(&w, "\\crash.log", APP);
    append_line(&w, &format!("\\cabs\\{APP}\\hits.log"), "d5je031w.cab");

    assert_eq!(
        cat(&w, &count_path),
        b"Cabs Gathered=6\r\nTotal Hits=11\r\n"
    );
    assert_eq!(
        cat(&w, "\\crash.log"),
        format!("{LINE_PREFIX}{APP}\r\n").as_bytes()
    );
    assert_eq!(
        cat(&w, &format!("\\cabs\\{APP}\\hits.log")),
        format!("{LINE_PREFIX}d5je031w.cab\r\n").as_bytes()
    );
    assert_eq!(cat(&w, &cab_path), cab);
    assert_cab_immutable(&w, &cab_path, &cab);
    // The client may not change the settings.
    expect_status(
        nt_create(&w, &status_path, Disposition::OverwriteIf, FILE, WRITE),
        STATUS_ACCESS_DENIED,
        "non-admin status.txt",
    );
    let dir = nt_create(
        &w,
        &format!("\\cabs\\{APP}"),
        Disposition::Open,
        FILE_DIRECTORY_FILE,
        READ,
    )
    .expect("open dir");
    let names: Vec<String> = w
        .read_directory(&dir, None)
        .expect("list")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, [".", "..", "d5je031w.cab", "hits.log"]);
    close(&w, dir).expect("close dir");
}

#[test]
fn example_4_2_kernel_fault_with_overwrite() {
    let share = Share::new();
    let w = share.client(4);
    mkdirs(&w, "\\counts\\blue");
    create_count(
        &w,
        "\\counts\\blue",
        "Cabs Gathered=12344\r\nTotal Hits=23455\r\n",
    );
    // No policy.txt, no status.txt (not even its folder).
    expect_status(
        nt_create(&w, "\\policy.txt", Disposition::Open, FILE, READ),
        STATUS_OBJECT_NAME_NOT_FOUND,
        "policy.txt",
    );
    expect_status(
        nt_create(
            &w,
            "\\status\\blue\\status.txt",
            Disposition::Open,
            FILE,
            READ,
        ),
        STATUS_OBJECT_PATH_NOT_FOUND,
        "status.txt of a bucket without a folder",
    );
    mkdirs(&w, "\\cabs\\blue");
    let cab = fake_cab(70_000);
    copy_new(&w, "\\cabs\\blue\\d5JE031w.cab", &cab).expect("copy the cab");
    bump_overwrite(&w, "\\counts\\blue\\count.txt", 1, Disposition::OverwriteIf)
        .expect("pattern b");
    assert_eq!(
        cat(&w, "\\counts\\blue\\count.txt"),
        b"Cabs Gathered=12345\r\nTotal Hits=23456\r\n"
    );
    assert_cab_immutable(&w, "\\cabs\\blue\\d5JE031w.cab", &cab);
}

#[test]
fn both_count_patterns_with_overwrite_if_and_supersede() {
    let share = Share::new();
    let w = share.client(4);
    mkdirs(&w, &format!("\\counts\\{APP}"));
    let dir = format!("\\counts\\{APP}");
    let path = format!("{dir}\\count.txt");
    create_count(&w, &dir, "Cabs Gathered=5\r\nTotal Hits=10\r\n");
    bump_one_handle(&w, &path, 1).expect("pattern a");
    assert_eq!(cat(&w, &path), b"Cabs Gathered=6\r\nTotal Hits=11\r\n");
    bump_overwrite(&w, &path, 0, Disposition::OverwriteIf).expect("pattern b, FILE_OVERWRITE_IF");
    assert_eq!(cat(&w, &path), b"Cabs Gathered=6\r\nTotal Hits=12\r\n");
    bump_overwrite(&w, &path, 1, Disposition::Supersede).expect("pattern b, FILE_SUPERSEDE");
    assert_eq!(cat(&w, &path), b"Cabs Gathered=7\r\nTotal Hits=13\r\n");
    bump_overwrite(&w, &path, 0, Disposition::Overwrite).expect("pattern b, FILE_OVERWRITE");
    assert_eq!(cat(&w, &path), b"Cabs Gathered=7\r\nTotal Hits=14\r\n");
}

#[test]
fn interleaved_contexts_lose_no_increment() {
    let share = Share::new();
    let w = share.client(4);
    mkdirs(&w, "\\counts\\blue");
    let path = "\\counts\\blue\\count.txt";
    create_count(&w, "\\counts\\blue", "Cabs Gathered=5\r\nTotal Hits=10\r\n");
    // Pattern a, two opens of one mount interleaved (both read 5 / 10).
    let a = nt_create(&w, path, Disposition::Open, FILE, RW).expect("open a");
    let b = nt_create(&w, path, Disposition::Open, FILE, RW).expect("open b");
    let next_a = bumped(read_all(&w, &a), 1);
    let next_b = bumped(read_all(&w, &b), 0);
    assert_eq!(
        next_a,
        next_b.replace("Gathered=5", "Gathered=6"),
        "both saw 5 / 10"
    );
    for (ctx, next) in [(&a, &next_a), (&b, &next_b)] {
        w.write(ctx, next.as_bytes(), 0, false, false)
            .expect("write");
        w.set_file_size(ctx, next.len() as u64, false)
            .expect("truncate");
    }
    close(&w, a).expect("close a");
    close(&w, b).expect("close b");
    assert_eq!(cat(&w, path), b"Cabs Gathered=6\r\nTotal Hits=12\r\n");

    // Pattern b, two clients that fs-core can tell apart (distinct pids).
    let (c1, c2) = (share.client(100), share.client(200));
    let seen1 = cat(&c1, path);
    let seen2 = cat(&c2, path);
    for (c, seen) in [(&c1, &seen1), (&c2, &seen2)] {
        let ctx = nt_create(c, path, Disposition::OverwriteIf, FILE, WRITE).expect("overwrite");
        c.write(&ctx, bumped(seen, 1).as_bytes(), 0, false, false)
            .expect("write");
        close(c, ctx).expect("close");
    }
    assert_eq!(cat(&w, path), b"Cabs Gathered=8\r\nTotal Hits=14\r\n");
}

#[test]
fn garbage_or_lower_counts_are_refused_at_flush_and_cleanup() {
    let share = Share::new();
    let w = share.client(4);
    mkdirs(&w, "\\counts\\blue");
    let path = "\\counts\\blue\\count.txt";
    create_count(&w, "\\counts\\blue", "Cabs Gathered=5\r\nTotal Hits=10\r\n");
    for bad in ["garbage\r\n", "Cabs Gathered=4\r\nTotal Hits=9\r\n"] {
        // A client that flushes (FlushFileBuffers) gets the verdict there ...
        let ctx = nt_create(&w, path, Disposition::Open, FILE, RW).expect("open");
        let _ = read_all(&w, &ctx);
        w.write(&ctx, bad.as_bytes(), 0, false, false)
            .expect("buffered");
        w.set_file_size(&ctx, bad.len() as u64, false)
            .expect("truncate");
        expect_status(
            w.flush(Some(&ctx)),
            STATUS_INVALID_PARAMETER,
            "flush of bad count.txt",
        );
        close(&w, ctx).expect("nothing left to apply");
        // ... one that only closes: Cleanup returns it (logged on Windows).
        let ctx = nt_create(&w, path, Disposition::OverwriteIf, FILE, WRITE).expect("overwrite");
        w.write(&ctx, bad.as_bytes(), 0, false, false)
            .expect("buffered");
        expect_status(
            close(&w, ctx),
            STATUS_INVALID_PARAMETER,
            "cleanup of bad count.txt",
        );
    }
    assert_eq!(
        cat(&w, path),
        b"Cabs Gathered=5\r\nTotal Hits=10\r\n",
        "unchanged"
    );
}

#[test]
fn logs_keep_both_appends_and_refuse_rewrites() {
    let share = Share::new();
    let (a, b) = (share.client(4), share.client(5));
    let ca = nt_create(
        &a,
        "\\crash.log",
        Disposition::OpenIf,
        FILE,
        FILE_APPEND_DATA,
    )
    .expect("a");
    let cb = nt_create(
        &b,
        "\\crash.log",
        Disposition::OpenIf,
        FILE,
        FILE_APPEND_DATA,
    )
    .expect("b");
    let la = format!("{LINE_PREFIX}blue\r\n");
    let lb = format!("{LINE_PREFIX}{APP}\r\n");
    a.write(&ca, la.as_bytes(), 0, true, false)
        .expect("append a");
    b.write(&cb, lb.as_bytes(), 0, true, false)
        .expect("append b");
    close(&a, ca).expect("close a");
    close(&b, cb).expect("close b");
    assert_eq!(cat(&a, "\\crash.log"), format!("{la}{lb}").as_bytes());
    // FILE_OVERWRITE_IF ("create it empty") removes nothing stored.
    let ctx =
        nt_create(&a, "\\crash.log", Disposition::OverwriteIf, FILE, WRITE).expect("overwrite log");
    close(&a, ctx).expect("close");
    assert_eq!(cat(&a, "\\crash.log"), format!("{la}{lb}").as_bytes());
    // Rewriting a stored line is refused at the write.
    let ctx = nt_create(&a, "\\crash.log", Disposition::Open, FILE, RW).expect("open rw");
    expect_status(
        a.write(&ctx, b"XX", 0, false, false),
        STATUS_INVALID_PARAMETER,
        "rewrite a log line",
    );
    close(&a, ctx).expect("close");
    let ctx = nt_create(&a, "\\crash.log", Disposition::Open, FILE, READ | DELETE).expect("open");
    expect_status(
        a.set_delete(&ctx, true),
        STATUS_ACCESS_DENIED,
        "delete crash.log",
    );
    close(&a, ctx).expect("close");
}

#[test]
fn an_abandoned_cab_upload_is_removed_by_delete_on_close() {
    let share = Share::new();
    let w = share.client(4);
    mkdirs(&w, "\\cabs\\blue");
    let path = "\\cabs\\blue\\partial.cab";
    let ctx = nt_create(&w, path, Disposition::Create, FILE, RW).expect("create cab");
    w.write(&ctx, &fake_cab(10_000), 0, false, false)
        .expect("write");
    // While it is written it is not listed, and nobody else may write or delete it.
    let other = share.client(5);
    let o = nt_create(&other, path, Disposition::Open, FILE, READ | DELETE).expect("lookup works");
    expect_status(
        other.set_delete(&o, true),
        cerfs_winfsp::ntstatus::STATUS_SHARING_VIOLATION,
        "delete another's upload",
    );
    close(&other, o).expect("close");
    // CopyFile failing: delete disposition, then close.
    w.set_delete(&ctx, true)
        .expect("own upload may be abandoned");
    close(&w, ctx).expect("abandoned");
    expect_status(
        w.get_security_by_name(path),
        STATUS_OBJECT_NAME_NOT_FOUND,
        "gone",
    );
    let dir = nt_create(
        &w,
        "\\cabs\\blue",
        Disposition::Open,
        FILE_DIRECTORY_FILE,
        READ,
    )
    .expect("dir");
    let names: Vec<String> = w
        .read_directory(&dir, None)
        .expect("list")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, [".", ".."]);
    close(&w, dir).expect("close");
}

#[test]
fn directories_list_with_markers_and_delete_rules() {
    let share = Share::new();
    let w = share.client(4);
    mkdirs(&w, "\\scratch\\sub");
    for name in ["b.txt", "a.txt", "c.txt"] {
        copy_new(&w, &format!("\\scratch\\{name}"), name.as_bytes()).expect("file");
    }
    let dir = nt_create(
        &w,
        "\\scratch",
        Disposition::Open,
        FILE_DIRECTORY_FILE,
        READ,
    )
    .expect("dir");
    let names = |m: Option<&str>| -> Vec<String> {
        w.read_directory(&dir, m)
            .expect("list")
            .into_iter()
            .map(|i| i.name)
            .collect()
    };
    assert_eq!(names(None), [".", "..", "a.txt", "b.txt", "c.txt", "sub"]);
    assert_eq!(names(Some(".")), ["..", "a.txt", "b.txt", "c.txt", "sub"]);
    assert_eq!(names(Some("..")), ["a.txt", "b.txt", "c.txt", "sub"]);
    assert_eq!(names(Some("b.txt")), ["c.txt", "sub"]);
    assert_eq!(
        names(Some("bb")),
        ["c.txt", "sub"],
        "a marker that vanished"
    );
    assert!(names(Some("sub")).is_empty());
    let items = w.read_directory(&dir, None).expect("list");
    let sub: Vec<&FileInfo> = items
        .iter()
        .filter(|i| i.name == "sub")
        .map(|i| &i.info)
        .collect();
    assert_ne!(sub[0].file_attributes & FILE_ATTRIBUTE_DIRECTORY, 0);
    let a: Vec<u64> = items
        .iter()
        .filter(|i| i.name == "a.txt")
        .map(|i| i.info.file_size)
        .collect();
    assert_eq!(a, [5]);
    expect_status(
        w.set_delete(&dir, true),
        STATUS_DIRECTORY_NOT_EMPTY,
        "delete a non-empty folder",
    );
    close(&w, dir).expect("close");
    // The root lists no "." / "..", and its fixed folders cannot go.
    let root = nt_create(&w, "\\", Disposition::Open, FILE_DIRECTORY_FILE, READ).expect("root");
    let names: Vec<String> = w
        .read_directory(&root, None)
        .expect("list")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["cabs", "counts", "scratch", "status"]);
    close(&w, root).expect("close");
    let cabs = nt_create(
        &w,
        "\\cabs",
        Disposition::Open,
        FILE_DIRECTORY_FILE,
        READ | DELETE,
    )
    .expect("cabs");
    expect_status(
        w.set_delete(&cabs, true),
        STATUS_ACCESS_DENIED,
        "delete \\cabs",
    );
    close(&w, cabs).expect("close");
    // An empty folder goes with FILE_DELETE_ON_CLOSE.
    let sub = nt_create(
        &w,
        "\\scratch\\sub",
        Disposition::Open,
        FILE_DIRECTORY_FILE | FILE_DELETE_ON_CLOSE,
        DELETE,
    )
    .expect("sub");
    close(&w, sub).expect("rmdir at cleanup");
    expect_status(
        w.get_security_by_name("\\scratch\\sub"),
        STATUS_OBJECT_NAME_NOT_FOUND,
        "removed",
    );
}

#[test]
fn plain_files_write_to_eof_constrained_io_rename_and_delete_on_close() {
    let share = Share::new();
    let w = share.client(4);
    let ctx = nt_create(&w, "\\notes.txt", Disposition::Create, FILE, RW).expect("create");
    w.write(&ctx, b"abc", 0, false, false).expect("write");
    let (_, info) = w.write(&ctx, b"def", 0, true, false).expect("write to eof");
    assert_eq!(info.file_size, 6);
    let (n, info) = w.write(&ctx, b"XYZ", 4, false, true).expect("constrained");
    assert_eq!(
        (n, info.file_size),
        (2, 6),
        "constrained I/O does not extend"
    );
    let (n, _) = w
        .write(&ctx, b"XYZ", 10, false, true)
        .expect("constrained past the end");
    assert_eq!(n, 0);
    close(&w, ctx).expect("close");
    assert_eq!(cat(&w, "\\notes.txt"), b"abcdXY");
    // SetFileSize: allocation never grows the file, a smaller one cuts it.
    let ctx = nt_create(&w, "\\notes.txt", Disposition::Open, FILE, RW).expect("open");
    assert_eq!(
        w.set_file_size(&ctx, 4096, true).expect("alloc").file_size,
        6
    );
    assert_eq!(
        w.set_file_size(&ctx, 3, true)
            .expect("alloc shrink")
            .file_size,
        3
    );
    assert_eq!(
        w.set_file_size(&ctx, 5, false).expect("extend").file_size,
        5
    );
    close(&w, ctx).expect("close");
    assert_eq!(cat(&w, "\\notes.txt"), b"abc\0\0");
    // FILE_CREATE of an existing name; kind checks.
    expect_status(
        nt_create(&w, "\\notes.txt", Disposition::Create, FILE, RW),
        STATUS_OBJECT_NAME_COLLISION,
        "FILE_CREATE existing",
    );
    expect_status(
        nt_create(
            &w,
            "\\notes.txt",
            Disposition::Open,
            FILE_DIRECTORY_FILE,
            READ,
        ),
        STATUS_NOT_A_DIRECTORY,
        "file as folder",
    );
    expect_status(
        nt_create(&w, "\\cabs", Disposition::Open, FILE, READ),
        STATUS_FILE_IS_A_DIRECTORY,
        "folder as file",
    );
    expect_status(
        nt_create(&w, "\\nowhere\\x.txt", Disposition::OpenIf, FILE, RW),
        STATUS_OBJECT_PATH_NOT_FOUND,
        "missing parent",
    );
    // Rename, with and without replace.
    copy_new(&w, "\\other.txt", b"other").expect("other");
    let ctx = nt_create(&w, "\\notes.txt", Disposition::Open, FILE, READ | DELETE).expect("open");
    expect_status(
        w.rename(&ctx, "\\other.txt", false),
        STATUS_OBJECT_NAME_COLLISION,
        "rename onto existing",
    );
    w.rename(&ctx, "\\other.txt", true).expect("replace");
    assert_eq!(ctx.path().to_windows(), "\\other.txt");
    close(&w, ctx).expect("close");
    assert_eq!(cat(&w, "\\other.txt"), b"abc\0\0");
    expect_status(
        w.get_security_by_name("\\notes.txt"),
        STATUS_OBJECT_NAME_NOT_FOUND,
        "moved",
    );
    // FILE_DELETE_ON_CLOSE on a new scratch file.
    let ctx = nt_create(
        &w,
        "\\tmp.txt",
        Disposition::Create,
        FILE | FILE_DELETE_ON_CLOSE,
        RW,
    )
    .expect("create");
    w.write(&ctx, b"x", 0, false, false).expect("write");
    close(&w, ctx).expect("deleted at cleanup");
    expect_status(
        w.get_security_by_name("\\tmp.txt"),
        STATUS_OBJECT_NAME_NOT_FOUND,
        "deleted",
    );
}

#[test]
fn cer_names_are_checked() {
    let share = Share::new();
    let w = share.client(4);
    mkdirs(&w, "\\cabs\\blue");
    for bad in [
        "\\cabs\\blue\\a<b.cab",
        "\\cabs\\blue\\CON.cab",
        "\\cabs\\blue\\caf\u{e9}.cab",
    ] {
        expect_status(
            nt_create(&w, bad, Disposition::Create, FILE, RW),
            STATUS_OBJECT_NAME_INVALID,
            bad,
        );
    }
    let long = format!("\\cabs\\blue\\{}.cab", "x".repeat(260));
    let e: NtError = nt_create(&w, &long, Disposition::Create, FILE, RW).expect_err("too long");
    assert_eq!(status_name(e.status), "STATUS_NAME_TOO_LONG", "{e}");
}

/// What Windows really sends for two clients doing pattern b at once: behind Windows' SMB
/// server both act as one process; fs-core keeps several served values per process and
/// matches each overwrite with the one it is one report after (7 / 12, not 6 / 11).
#[test]
fn interleaved_overwrites_from_one_process_lose_no_increment() {
    let share = Share::new();
    let w = share.client(4);
    mkdirs(&w, "\\counts\\blue");
    let path = "\\counts\\blue\\count.txt";
    create_count(&w, "\\counts\\blue", "Cabs Gathered=5\r\nTotal Hits=10\r\n");
    let seen = [cat(&w, path), cat(&w, path)];
    for s in &seen {
        let ctx = nt_create(&w, path, Disposition::OverwriteIf, FILE, WRITE).expect("overwrite");
        w.write(&ctx, bumped(s, 1).as_bytes(), 0, false, false)
            .expect("write");
        close(&w, ctx).expect("close");
    }
    assert_eq!(cat(&w, path), b"Cabs Gathered=7\r\nTotal Hits=12\r\n");
}
