//! One application crash reported through the share (a CER 1.0 client's file operations)
//! and over HTTP ([MS-CER2]) lands in one bucket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cerfs_db::{CABS_INO, COUNTS_INO};
use cerfs_fs_core::{Caller, OpenFlags};
use common::*;

const PARTS: [&str; 5] = [
    "TestApp.exe",
    "1.0.0.0",
    "TestMod.dll",
    "2.0.0.0",
    "0001b0a9",
];

/// What a CER 1.0 client does on the share (MS-CER 3.1.7 steps 7 and 8): mkdir each level,
/// copy the cab, create count.txt with `Cabs Gathered=1`, `Total Hits=1`.
fn report_through_the_share(server: &Server, cab: &[u8]) {
    let fs = &server.fs;
    let client = Caller {
        pid: 31337,
        uid: 1000,
        gid: 1000,
    };
    let mkdirs = |top: u64| {
        let mut dir = top;
        for part in PARTS {
            dir = fs
                .mkdir(&client, dir, part.as_bytes(), 0o755)
                .expect("mkdir")
                .ino;
        }
        dir
    };
    let write_new = |dir: u64, name: &str, data: &[u8]| {
        let flags = OpenFlags {
            read: false,
            write: true,
            truncate: true,
            append: false,
        };
        let (_, opened) = fs
            .create(&client, dir, name.as_bytes(), 0o644, flags, true)
            .expect("create");
        assert_eq!(
            fs.write(opened.fh, 0, data).expect("write") as usize,
            data.len()
        );
        fs.flush(opened.fh, Some(client.pid)).expect("close");
        fs.release(opened.fh).expect("release");
    };
    let cabs = mkdirs(CABS_INO);
    write_new(cabs, "d5je031w.cab", cab);
    let counts = mkdirs(COUNTS_INO);
    write_new(counts, "count.txt", b"Cabs Gathered=1\r\nTotal Hits=1\r\n");
}

#[test]
fn a_crash_reported_both_ways_is_one_bucket() {
    for server in Server::each() {
        report_through_the_share(&server, &cab_bytes(1, 10_000));
        let share_count = "counts/TestApp.exe/1.0.0.0/TestMod.dll/2.0.0.0/0001b0a9/count.txt";
        assert_eq!(
            server.share_file(share_count),
            b"Cabs Gathered=1\r\nTotal Hits=1\r\n"
        );
        let subpath = PARTS.join("\\");
        let share_bucket = server.count(&format!(
            "SELECT bucket_id FROM buckets WHERE subpath = {} AND kind = 'app'",
            sql_text(&subpath)
        ));

        // The same crash over HTTP: named parameters, the offset as WER writes it on a
        // 32-bit system (0x, uppercase): rendered as a CER 1.0 client would.
        let answer = server.report(&appcrash(
            "TestApp.exe",
            "1.0.0.0",
            "TestMod.dll",
            "2.0.0.0",
            "0x0001B0A9",
        ));
        assert_eq!(answer.bucket, share_bucket as u64);
        assert!(answer.idata);
        let dump = answer.dump_file.expect("DumpFile");
        assert!(
            dump.starts_with(
                r"\PersistedCabs\App\TestApp.exe\1.0.0.0\TestMod.dll\2.0.0.0\0001b0a9\"
            ),
            "{dump}"
        );
        assert!(dump.ends_with(".cab"), "{dump}");
        let cab = cab_bytes(2, 200_000);
        assert_eq!(server.put(&encoded_path(&dump), cab.clone()).0, 200);

        // And once more with positional parameters (Problem Signature 01..08 of APPCRASH).
        let positional: Vec<(String, String)> = [
            "TestApp.exe",
            "1.0.0.0",
            "4a5bc9d4",
            "TestMod.dll",
            "2.0.0.0",
            "4a5bdb3b",
            "c0000005",
            "0001b0a9",
        ]
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("Problem Signature {:02}", i + 1), (*v).to_owned()))
        .collect();
        let second = server.report(&appcrash_with(&positional));
        assert_eq!(second.bucket, share_bucket as u64);

        assert_eq!(
            server.share_file(share_count),
            b"Cabs Gathered=2\r\nTotal Hits=3\r\n"
        );
        let buckets = server.count("SELECT count(*) FROM buckets WHERE app = 'TestApp.exe'");
        assert_eq!(buckets, 1, "one bucket");
        let cabs = server.rows(&format!(
            "SELECT name, sha256 FROM cabs WHERE subpath = {} AND state = 'complete' \
             ORDER BY cab_id",
            sql_text(&subpath)
        ));
        assert_eq!(cabs.len(), 2, "{cabs:?}");
        assert_eq!(cabs[0][0], "d5je031w.cab");
        assert_eq!(cabs[1][1], sha256_hex(&cab));
        let bucket = share_bucket.to_string();
        assert_eq!(
            server.rows("SELECT bucket_id, dump_state FROM cer2_reports ORDER BY report_id"),
            [[bucket.as_str(), "uploaded"], [bucket.as_str(), "issued"]]
        );
        // The HTTP cab sits beside the share's, readable like it.
        let name = dump.rsplit('\\').next().unwrap();
        let stored = server.share_file(&format!(
            "cabs/TestApp.exe/1.0.0.0/TestMod.dll/2.0.0.0/0001b0a9/{name}"
        ));
        assert_eq!(stored, cab);
    }
}

#[test]
fn an_unusable_app_signature_falls_back_to_a_generic_bucket() {
    for server in Server::each() {
        // The offset is no hex number: no R1 bucket; the event type and parameters are used.
        let answer = server.report(&appcrash("Bad:Name.exe", "1.0", "m.dll", "1.0", "not-hex"));
        assert!(answer.idata);
        let subpath = server.one(&format!(
            "SELECT subpath FROM buckets WHERE bucket_id = {}",
            answer.bucket
        ));
        assert_eq!(
            subpath,
            r"APPCRASH\Bad%3AName.exe\1.0\4a5bc9d4\m.dll\1.0\4a5bdb3b\c0000005\not-hex"
        );
        assert_eq!(
        server.share_file(
            "counts/APPCRASH/Bad%3AName.exe/1.0/4a5bc9d4/m.dll/1.0/4a5bdb3b/c0000005/not-hex/count.txt"
        ),
        b"Cabs Gathered=0\r\nTotal Hits=1\r\n"
    );
        let dump = answer.dump_file.expect("DumpFile");
        assert!(
        dump.starts_with(
            r"\PersistedCabs\Generic\APPCRASH\Bad_3AName.exe\1.0\4a5bc9d4\m.dll\1.0\4a5bdb3b\c0000005\not-hex\"
        ),
        "{dump}"
    );
        assert_eq!(server.put(&slash_path(&dump), cab_bytes(3, 1000)).0, 200);
    }
}

#[test]
fn awkward_signatures_become_valid_share_names() {
    for server in Server::each() {
        // Forbidden characters, non-ASCII, a device name, an empty value, a trailing dot, and
        // more parameters than fit in 260 characters.
        let mut params: Vec<(String, String)> = vec![
            ("P1".into(), "a:b*c?".into()),
            ("P2".into(), "Gr\u{fc}\u{df}e".into()),
            ("P3".into(), "CON".into()),
            ("P4".into(), String::new()),
            ("P5".into(), "v1.".into()),
        ];
        for i in 0..20 {
            params.push((format!("Long {i}"), format!("{i:02}-{}", "y".repeat(30))));
        }
        let xml =
            appcrash_with(&params).replace("eventtype=\"APPCRASH\"", "eventtype=\"Odd|Event\"");
        let answer = server.report(&xml);
        assert!(answer.idata);
        let subpath = server.one(&format!(
            "SELECT subpath FROM buckets WHERE bucket_id = {}",
            answer.bucket
        ));
        let parts: Vec<&str> = subpath.split('\\').collect();
        assert_eq!(
            parts[..6],
            [
                "Odd%7CEvent",
                "a%3Ab%2Ac%3F",
                "Gr%C3%BC%C3%9Fe",
                "%43ON",
                "%",
                "v1%2E"
            ]
        );
        assert!(parts.last().unwrap().starts_with('~'), "{subpath}");
        let share_len = format!(r"\cabs\{subpath}\00000000-0000-0000-0000-000000000000.cab").len();
        assert!(share_len <= 260, "{share_len}");
        // The same report again is the same bucket; it shows on the share and takes its cab.
        assert_eq!(server.report(&xml).bucket, answer.bucket);
        let count = server.share_file(&format!("counts/{}/count.txt", subpath.replace('\\', "/")));
        assert_eq!(count, b"Cabs Gathered=0\r\nTotal Hits=2\r\n");
        let dump = answer.dump_file.expect("DumpFile");
        assert!(
            dump.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"\\._~-".contains(&b)),
            "{dump}"
        );
        assert_eq!(server.put(&encoded_path(&dump), cab_bytes(9, 4096)).0, 200);
        let count = server.share_file(&format!("counts/{}/count.txt", subpath.replace('\\', "/")));
        assert_eq!(count, b"Cabs Gathered=1\r\nTotal Hits=2\r\n");
    }
}
