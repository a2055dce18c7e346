//! Many clients at once: every hit and every cab is counted and stored exactly, and the
//! "Crashes per bucket" cap holds under concurrent level-1 reports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Barrier};

use cerfs_fs_core::SettingsTarget;
use common::*;

/// The signatures the flows report, with their subpath as a share path.
fn signature(i: usize) -> (String, &'static str) {
    match i % 4 {
        0 => (EXAMPLE_4_3.to_owned(), "blue"),
        1 => (EXAMPLE_4_4.to_owned(), "MikeTest/1000/2000/3000"),
        2 => (
            appcrash("a.exe", "1.0", "b.dll", "2.0", "0000000000401000"),
            "a.exe/1.0/b.dll/2.0/0000000000401000",
        ),
        _ => (
            EXAMPLE_4_4.replace("value=\"3000\"", "value=\"3001\""),
            "MikeTest/1000/2000/3001",
        ),
    }
}

#[test]
fn thirty_two_concurrent_flows_count_and_store_everything() {
    const FLOWS: usize = 32;
    for server in Server::each().into_iter().map(Arc::new) {
        server
            .fs
            .set_settings(
                &SettingsTarget::Policy,
                &[("Crashes per bucket".to_owned(), "1000".to_owned())],
            )
            .unwrap();
        let start = Arc::new(Barrier::new(FLOWS));
        let flows: Vec<_> = (0..FLOWS)
            .map(|i| {
                let server = Arc::clone(&server);
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    let (xml, _) = signature(i);
                    // Sizes from a few bytes to past several write batches.
                    let cab = cab_bytes(i as u64, 5 + i * 97_003);
                    start.wait();
                    let answer = server.report(&xml);
                    assert!(answer.idata, "flow {i}");
                    let dump = answer.dump_file.expect("DumpFile");
                    let path = if i % 2 == 0 {
                        encoded_path(&dump)
                    } else {
                        slash_path(&dump)
                    };
                    let (status, body) = server.put(&path, cab.clone());
                    assert_eq!(status, 200, "flow {i}: {body}");
                    (i, answer.bucket, dump, sha256_hex(&cab), cab.len())
                })
            })
            .collect();
        let results: Vec<_> = flows.into_iter().map(|t| t.join().unwrap()).collect();

        // Exact counts per bucket, in SQL and on the share.
        for sig in 0..4 {
            let flows = results.iter().filter(|r| r.0 % 4 == sig).count();
            let (_, share_sub) = signature(sig);
            let count = server.share_file(&format!("counts/{share_sub}/count.txt"));
            assert_eq!(
                String::from_utf8(count).unwrap(),
                format!("Cabs Gathered={flows}\r\nTotal Hits={flows}\r\n"),
                "{share_sub}"
            );
            let buckets: Vec<u64> = results
                .iter()
                .filter(|r| r.0 % 4 == sig)
                .map(|r| r.1)
                .collect();
            assert!(
                buckets.windows(2).all(|w| w[0] == w[1]),
                "one bucket id per signature"
            );
        }
        let snap = server.snapshot();
        assert_eq!(snap.reports, FLOWS as i64);
        assert_eq!(snap.uploaded, FLOWS as i64);
        assert_eq!(snap.cabs, FLOWS as i64);
        assert_eq!(snap.hits, FLOWS as i64);
        assert_eq!(snap.cabs_gathered, FLOWS as i64);

        // Every cab stored whole: the store's sha256, and the bytes read back from the share.
        for (i, _, dump, sha, len) in &results {
            let row = server.rows(&format!(
                "SELECT cab_size, cab_sha256, subpath, cab_name FROM cer2_reports \
                 WHERE dump_path = {}",
                sql_text(dump)
            ));
            let [size, stored_sha, subpath, name] = &row[0][..] else {
                panic!("flow {i}: {row:?}");
            };
            let size: usize = size.parse().unwrap();
            assert_eq!(size, *len, "flow {i}");
            assert_eq!(stored_sha, sha, "flow {i}");
            let bytes = server.share_file(&format!("cabs/{}/{name}", subpath.replace('\\', "/")));
            assert_eq!(&sha256_hex(&bytes), sha, "flow {i} read back");
        }
    }
}

#[test]
fn concurrent_reports_respect_crashes_per_bucket() {
    const FLOWS: usize = 32;
    for server in Server::each().into_iter().map(Arc::new) {
        let start = Arc::new(Barrier::new(FLOWS));
        let flows: Vec<_> = (0..FLOWS)
            .map(|_| {
                let server = Arc::clone(&server);
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    server.report(EXAMPLE_4_3)
                })
            })
            .collect();
        let answers: Vec<_> = flows.into_iter().map(|t| t.join().unwrap()).collect();
        let asked: Vec<_> = answers.iter().filter(|a| a.idata).collect();
        assert_eq!(asked.len(), 5, "the default cap");
        assert!(answers
            .iter()
            .all(|a| a.idata == a.dump_file.is_some() && a.bucket == answers[0].bucket));
        for (i, a) in asked.iter().enumerate() {
            let dump = a.dump_file.as_deref().unwrap();
            assert_eq!(
                server.put(&encoded_path(dump), cab_bytes(i as u64, 3000)).0,
                200
            );
        }
        assert_eq!(
            server.share_file("counts/blue/count.txt"),
            b"Cabs Gathered=5\r\nTotal Hits=32\r\n"
        );
        // Full: no more cabs asked for.
        let later = server.report(EXAMPLE_4_3);
        assert!(!later.idata);
        assert_eq!(later.dump_file, None);
        // An admin raises the cap for this bucket: cabs are asked for again.
        server
            .fs
            .set_settings(
                &SettingsTarget::Status("blue".into()),
                &[("Crashes per bucket".to_owned(), "6".to_owned())],
            )
            .unwrap();
        assert!(server.report(EXAMPLE_4_3).idata);
        assert!(
            !server.report(EXAMPLE_4_3).idata,
            "the issued one is pending"
        );
        // iData=NO turns collection off whatever the count.
        server
            .fs
            .set_settings(
                &SettingsTarget::Status("blue".into()),
                &[
                    ("Crashes per bucket".to_owned(), "100".to_owned()),
                    ("iData".to_owned(), "NO".to_owned()),
                ],
            )
            .unwrap();
        assert!(!server.report(EXAMPLE_4_3).idata);
    }
}
