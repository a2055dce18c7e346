//! The `cer-client` simulator itself: on a plain directory a single process is exact (no
//! concurrency, nothing to lose), and on a cerfs mount it copies a given real cabinet.

use std::fs;
use std::process::Command;

use cerfs_e2e::client::{self, Counts};
use cerfs_e2e::{parse_log_line, sha256_hex, split_lines, MountedShare, Summary};

/// Runs `cer-client` on `root` with `args`; returns its summary (it must succeed).
fn run_client(root: &std::path::Path, args: &[&str]) -> Summary {
    let out = Command::new(env!("CARGO_BIN_EXE_cer-client"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run cer-client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cer-client failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Summary::parse(&stdout).expect("cer-client summary")
}

#[test]
fn one_client_on_a_plain_directory_is_exact() {
    let share = MountedShare::plain_dir();
    fs::write(
        share.path("policy.txt"),
        "Tracking=YES\r\nCrashes per bucket=7\r\n",
    )
    .expect("write policy.txt");
    let s = run_client(
        &share.root,
        &[
            "--buckets",
            "3",
            "--cycles",
            "40",
            "--pattern",
            "mixed",
            "--seed",
            "9",
        ],
    );
    assert_eq!((s.cycles, s.hits, s.errors), (40, 40, 0));
    assert_eq!(s.buckets.len(), 3);
    for (sub, b) in &s.buckets {
        // Crashes per bucket=7: at most 7 cabs per bucket, then only hits.
        assert_eq!(b.cabs, b.hits.min(7), "{sub}");
        let count = fs::read(sub.dir_under(&share.root, "counts").join("count.txt"))
            .expect("read count.txt");
        let want = Counts {
            cabs_gathered: b.cabs,
            total_hits: b.hits,
        };
        assert_eq!(count, want.render().as_bytes(), "{sub}");
        let hits =
            fs::read(sub.dir_under(&share.root, "cabs").join("hits.log")).expect("read hits.log");
        let lines = split_lines(&hits);
        assert_eq!(lines.len() as u64, b.logged);
        let no_cab = lines
            .iter()
            .filter(|l| parse_log_line(l).expect("parses").item == "No CAB")
            .count() as u64;
        assert_eq!(no_cab, b.hits - b.cabs, "{sub}: reports without a cab");
    }
    let crash = fs::read(share.path("crash.log")).expect("read crash.log");
    assert_eq!(split_lines(&crash).len(), 40);
    for cab in &s.cab_list {
        let bytes =
            fs::read(cab.sub.dir_under(&share.root, "cabs").join(&cab.name)).expect("read cab");
        assert_eq!(sha256_hex(&bytes), cab.sha256);
        assert_eq!(bytes.len(), 2048);
    }
}

#[test]
fn client_copies_a_real_cabinet_through_the_mount() {
    for share in MountedShare::each() {
        let source = cerfs_testkit::testdata().join("cabs/normal_2files_1folder.cab");
        let want = sha256_hex(&fs::read(&source).expect("read the test cabinet"));
        let s = run_client(
            &share.root,
            &[
                "--buckets",
                "2",
                "--cycles",
                "6",
                "--pattern",
                "a",
                "--cab-file",
                source.to_str().expect("UTF-8 path"),
            ],
        );
        assert_eq!((s.cycles, s.cabs, s.errors), (6, 6, 0));
        for cab in &s.cab_list {
            assert_eq!(cab.sha256, want);
            let path = cab.sub.dir_under(&share.root, "cabs").join(&cab.name);
            assert_eq!(sha256_hex(&fs::read(&path).expect("read cab")), want);
        }
        // Tracking is off by default: no logs.
        assert!(fs::metadata(share.path("crash.log")).is_err());
        for (sub, b) in &s.buckets {
            assert_eq!(
                client::read_counts(&share.root, sub).expect("read count.txt"),
                Counts {
                    cabs_gathered: b.cabs,
                    total_hits: b.hits
                }
            );
        }
    }
}
