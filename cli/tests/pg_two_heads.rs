//! Two `cerfs mount` heads on one PostgreSQL database (docs/scale-out.md), each its own
//! process and FUSE mount, as two machines would run them: count.txt increments through
//! both compose exactly, a cab written through one reads back through the other with the
//! same sha256, a setting changed on one is what the other serves next, and the upload
//! a head that is killed leaves behind is removed by the other and never shows complete.
//! Needs FUSE and the test PostgreSQL server (`CERFS_TEST_POSTGRES`).

mod running_mount;

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use cerfs_testkit::{close_checked, poll_until, sha256_file, sha256_hex};
use running_mount::Running;

/// One count.txt increment with the one-handle pattern (open, read, rewrite, close).
fn increment(path: &Path) {
    cerfs_testkit::increment(path).expect("one more report in count.txt");
}

#[test]
fn two_heads_serve_one_share() {
    let Some(db) = cerfs_testkit::TestDatabase::create() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (mnt_a, mnt_b) = (dir.path().join("a"), dir.path().join("b"));
    fs::create_dir(&mnt_a).expect("mkdir a");
    fs::create_dir(&mnt_b).expect("mkdir b");
    let Some(a) = Running::mounted(&db.url, &mnt_a) else {
        return;
    };
    let Some(mut b) = Running::mounted(&db.url, &mnt_b) else {
        return;
    };

    // The bucket, made through A, is there through B.
    fs::create_dir_all(mnt_a.join("counts/blue")).expect("counts/blue");
    fs::create_dir_all(mnt_a.join("cabs/blue")).expect("cabs/blue");
    fs::write(
        mnt_a.join("counts/blue/count.txt"),
        "Cabs Gathered=1\r\nTotal Hits=1\r\n",
    )
    .expect("first count.txt");
    let on_b = mnt_b.join("counts/blue/count.txt");
    poll_until(
        Duration::from_secs(5),
        "B sees the bucket made through A",
        || on_b.exists().then_some(()),
    );

    // Increments through both heads at once compose exactly.
    let workers: Vec<_> = [&mnt_a, &mnt_b, &mnt_a, &mnt_b]
        .into_iter()
        .map(|mnt| {
            let path = mnt.join("counts/blue/count.txt");
            std::thread::spawn(move || {
                for _ in 0..25 {
                    increment(&path);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("an incrementing client");
    }
    for mnt in [&mnt_a, &mnt_b] {
        let want = "Cabs Gathered=101\r\nTotal Hits=101\r\n";
        let path = mnt.join("counts/blue/count.txt");
        poll_until(
            Duration::from_secs(5),
            "count.txt shows every increment",
            || (fs::read_to_string(&path).expect("read count.txt") == want).then_some(()),
        );
    }

    // A cab written through A reads back through B, byte for byte.
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    let mut f = File::create(mnt_a.join("cabs/blue/r1.cab")).expect("create the cab");
    f.write_all(&data).expect("write the cab");
    close_checked(f).expect("close the cab");
    let through_b = mnt_b.join("cabs/blue/r1.cab");
    let sha = poll_until(Duration::from_secs(5), "B lists the cab", || {
        sha256_file(&through_b).ok()
    });
    assert_eq!(sha, sha256_hex(&data));

    // A setting changed through A is what B serves next.
    fs::write(
        mnt_a.join("policy.txt"),
        "Tracking=1\r\nCrashes per bucket=5\r\n",
    )
    .expect("policy.txt through A");
    poll_until(
        Duration::from_secs(5),
        "B serves the new policy.txt",
        || {
            fs::read_to_string(mnt_b.join("policy.txt"))
                .ok()
                .filter(|p| p.contains("Crashes per bucket=5"))
        },
    );

    // B dies mid-upload: A removes what it left (its head lock is free), the client's
    // half cab never shows complete, and the share goes on through A.
    let mut sql = postgres::Client::connect(&db.url, postgres::NoTls).expect("connect");
    let mut half_cab = move || -> Option<String> {
        sql.query_opt("SELECT state FROM cab_rows WHERE name = 'half.cab'", &[])
            .expect("query cab_rows")
            .map(|row| row.get(0))
    };
    let mut half = File::create(mnt_b.join("cabs/blue/half.cab")).expect("create half.cab");
    half.write_all(&data[..1_000_000]).expect("write half.cab");
    half.flush().expect("flush");
    assert_eq!(half_cab().as_deref(), Some("writing"));
    b.signal(libc::SIGKILL);
    let _ = b.wait();
    drop(half);
    drop(b);
    poll_until(
        Duration::from_secs(30),
        "A removes B's unfinished upload",
        || half_cab().is_none().then_some(()),
    );
    // The log line follows the removal's commit: wait for it too.
    a.logged("removed an upload its head left unfinished");
    assert!(!fs::read_dir(mnt_a.join("cabs/blue"))
        .expect("list cabs/blue")
        .any(|e| e.expect("entry").file_name() == "half.cab"));
    increment(&mnt_a.join("counts/blue/count.txt"));
    assert_eq!(
        fs::read_to_string(mnt_a.join("counts/blue/count.txt")).expect("count.txt"),
        "Cabs Gathered=102\r\nTotal Hits=102\r\n"
    );
}
