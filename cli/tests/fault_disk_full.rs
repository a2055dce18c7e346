//! Disk full: the database lives on a 128 MiB tmpfs. Uploads past its capacity fail with
//! ENOSPC to the client (at a write or at close); everything acknowledged before still
//! reads back with its sha256; once the tmpfs is grown (`mount -o remount,size=`) the same
//! mount keeps serving: new cabs, count.txt increments, listings; and the database is
//! sound after a clean stop.

mod fault_support;
mod running_mount;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cerfs_testkit::{increment, poll_until};

use fault_support::{close_checked, list, sha256_file, sha256_hex, Rng, Tmpfs};
use running_mount::{unavailable, Running};

// Three times the cab database's page cache: its pages reach the disk while the cab's
// writes still come, so a full disk can refuse one of them, not only the close.
const CAB_SIZE: usize = 12 << 20;

/// Writes `data` as a new cab and closes it; the first error, if any.
fn upload(path: &Path, data: &[u8]) -> io::Result<()> {
    let (write, close) = upload_both(path, data)?;
    write.and(close)
}

/// Writes `data` as a new cab, stopping at the first failed write, and closes it: the
/// result of the writes and the result of close(2).
fn upload_both(path: &Path, data: &[u8]) -> io::Result<(io::Result<()>, io::Result<()>)> {
    let mut f = File::create(path)?;
    let mut write = Ok(());
    for piece in data.chunks(256 << 10) {
        if let Err(e) = f.write_all(piece) {
            write = Err(e);
            break;
        }
    }
    Ok((write, close_checked(f)))
}

/// A mount whose store's disk was filled: what was stored, what was refused and how.
struct Filled {
    // Field order is drop order: the mount goes before the tmpfs under it.
    running: Running,
    tmpfs: Tmpfs,
    db: PathBuf,
    cabs: PathBuf,
    count: PathBuf,
    rng: Rng,
    /// Acknowledged uploads: (name, sha256).
    stored: Vec<(String, String)>,
    /// The last upload that failed: name, bytes sent, error of a write (or create), of close.
    refused: (String, Vec<u8>, Option<io::Error>, Option<io::Error>),
    _dir: tempfile::TempDir,
}

/// Mounts a store on a 128 MiB tmpfs and uploads 12 MiB cabs until one is refused at a write
/// (the full disk may first refuse one at its close: that one is not kept, and the uploads
/// go on).
fn fill_disk() -> Option<Filled> {
    let (dir, root) = fault_support::tempdir();
    let store_dir = root.join("store");
    let tmpfs = match Tmpfs::mount(&store_dir, "128m") {
        Ok(t) => t,
        Err(why) => {
            unavailable(&format!("cannot mount a tmpfs (needs root): {why}"));
            return None;
        }
    };
    let db = store_dir.join("cer.db");
    let mnt = root.join("mnt");
    fs::create_dir(&mnt).expect("mkdir mountpoint");
    let running = Running::mounted(&db, &mnt)?;
    let cabs = mnt.join("cabs/blue");
    fs::create_dir_all(&cabs).expect("mkdir cabs/blue");
    fs::create_dir_all(mnt.join("counts/blue")).expect("mkdir counts/blue");
    let count = mnt.join("counts/blue/count.txt");
    let mut f = File::create(&count).expect("create count.txt");
    f.write_all(b"Cabs Gathered=1\r\nTotal Hits=1\r\n")
        .expect("write count.txt");
    close_checked(f).expect("close count.txt");

    let mut rng = Rng::new(0xd15c_f011);
    let mut stored: Vec<(String, String)> = Vec::new();
    let mut refused = None;
    for n in 0..40 {
        let name = format!("fill{n:02}.cab");
        let data = rng.bytes(CAB_SIZE);
        match upload_both(&cabs.join(&name), &data) {
            Ok((Ok(()), Ok(()))) => stored.push((name, sha256_hex(&data))),
            Ok((write, close)) => {
                let at_a_write = write.is_err();
                refused = Some((name, data, write.err(), close.err()));
                if at_a_write {
                    break;
                }
                // Refused at close: the disk filled as the upload was committed (the
                // cab's row, the WAL, the indexer's rows all need pages). Such a cab is
                // not kept either; go on until an upload meets the full disk at a write,
                // the case a_cab_whose_write_failed_is_not_committed needs.
            }
            Err(create) => {
                refused = Some((name, data, Some(create), None));
                break;
            }
        }
    }
    let Some(refused) = refused else {
        panic!("{} MiB went into a 128 MiB tmpfs", 40 * (CAB_SIZE >> 20));
    };
    eprintln!(
        "{} cabs stored, {} refused: write/create {:?}, close {:?}",
        stored.len(),
        refused.0,
        refused.2,
        refused.3
    );
    Some(Filled {
        running,
        tmpfs,
        db,
        cabs,
        count,
        rng,
        stored,
        refused,
        _dir: dir,
    })
}

#[test]
fn uploads_past_capacity_get_enospc_and_the_mount_recovers() {
    let Some(Filled {
        mut running,
        tmpfs,
        db,
        cabs,
        count,
        mut rng,
        stored,
        refused: (refused_name, _, write_err, close_err),
        _dir,
    }) = fill_disk()
    else {
        return;
    };
    let first = write_err.as_ref().or(close_err.as_ref()).expect("an error");
    assert_eq!(
        first.raw_os_error(),
        Some(libc::ENOSPC),
        "the client sees ENOSPC, not {first}"
    );
    assert!(stored.len() >= 5, "only {} cabs fit", stored.len());

    // The refused upload is not kept as a complete cab (its bytes are not what was sent).
    let rows = fault_support::cab_rows(&db, "blue");
    if let Some(row) = rows.iter().find(|r| r.0 == refused_name) {
        assert_ne!(
            row.1, "complete",
            "the refused upload was committed: {row:?}"
        );
    }
    assert!(
        !list(&cabs).contains(&refused_name),
        "the refused upload is listed"
    );

    // Everything acknowledged reads back while the disk is still full.
    for (name, sha) in &stored {
        assert_eq!(
            &sha256_file(&cabs.join(name)).expect("read back"),
            sha,
            "{name}"
        );
    }
    let listed = list(&cabs);
    for (name, _) in &stored {
        assert!(listed.contains(name), "{name} not listed");
    }

    // Free space: grow the tmpfs. The same mount serves again.
    tmpfs.resize("256m");
    let data = rng.bytes(CAB_SIZE);
    // The free-space verdict is reused for up to a second: new cabs may be refused until
    // the next one.
    poll_until(
        Duration::from_secs(10),
        "an upload once space is back",
        || match upload(&cabs.join("after.cab"), &data) {
            Ok(()) => Some(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => None,
            Err(e) => panic!("an upload once space is back: {e}"),
        },
    );
    assert_eq!(
        sha256_file(&cabs.join("after.cab")).expect("read after.cab"),
        sha256_hex(&data)
    );
    let (cabs_gathered, hits) = increment(&count).expect("count.txt once space is back");
    assert_eq!(
        fs::read_to_string(&count).expect("read count.txt"),
        format!("Cabs Gathered={cabs_gathered}\r\nTotal Hits={hits}\r\n")
    );
    assert!(list(&cabs).contains(&"after.cab".to_owned()));
    for (name, sha) in &stored {
        let rows = fault_support::cab_rows(&db, "blue");
        let row = rows.iter().find(|r| &r.0 == name).expect("row");
        assert_eq!(row.3.as_deref(), Some(sha.as_str()), "{name}");
    }

    running.signal(libc::SIGTERM);
    assert_eq!(running.wait().code(), Some(0), "{}", running.stderr());
    drop(running);
    let store = cerfs_db::SqliteStore::open(&db).expect("reopen");
    assert_eq!(store.integrity_check().expect("integrity_check"), "ok");
    drop(store);
    let store_dir = tmpfs.path.clone();
    drop(tmpfs);
    assert!(
        !running_mount::is_mounted(&store_dir),
        "the tmpfs is unmounted"
    );
}

/// A cab whose write failed with ENOSPC must not become a complete cab: the client was
/// told the copy failed; a truncated cab committed with a sha256 the client never sent
/// could not even be deleted through the share (committed cabs are immutable).
#[test]
fn a_cab_whose_write_failed_is_not_committed() {
    let Some(f) = fill_disk() else {
        return;
    };
    let (name, data, write_err, close_err) = &f.refused;
    assert!(write_err.is_some(), "the refusal came at a write");
    let rows = fault_support::cab_rows(&f.db, "blue");
    let row = rows.iter().find(|r| &r.0 == name);
    let complete_but_truncated =
        row.is_some_and(|r| r.1 == "complete" && r.3.as_deref() != Some(sha256_hex(data).as_str()));
    assert!(
        !complete_but_truncated,
        "{name}: write failed ({write_err:?}), close returned {close_err:?}, \
         yet the store holds a complete cab of other bytes: {row:?}"
    );
    assert!(
        close_err.is_some() || !list(&f.cabs).contains(name),
        "{name}: close after a failed write succeeded and the cab is listed"
    );
}
