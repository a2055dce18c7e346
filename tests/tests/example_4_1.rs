//! [MS-CER] 4.1, "Application Fault Example", played with plain file operations on a
//! cerfs mount: an admin prepares status.txt and count.txt (5/10) through the share, then a
//! client reads them, copies `d5je031w.cab`, increments count.txt to 6/11 and appends the
//! example's crash.log and hits.log entries. Everything reads back byte-for-byte.

use std::collections::BTreeMap;
use std::fs;

use cerfs_e2e::client::{self, CountPattern, Counts, Subpath};
use cerfs_e2e::{assert_errno, sha256_hex, MountedShare};

/// The example's error subpath.
const SUB: &str = "TestApplication\\1.0.0.0\\TestModule\\1.0.0.0\\00000000";

/// The status.txt parameters of the example, as the admin writes them.
const STATUS_LINES: &[(&str, &str)] = &[
    ("Tracking", "YES"),
    ("Response", "1"),
    ("Crashes per bucket", "100"),
    ("NoSecondLevelCollection", "NO"),
    ("NoFileCollection", "NO"),
    (
        "RegKey",
        "HKLM\\Software\\Microsoft\\PCHealth\\ErrorReporting;HKLM\\Software\\Microsoft\\PCHealth\\Test",
    ),
    ("iData", "1"),
    ("fDoc", "0"),
    ("WQL", "select * from Win32_logicaldisk"),
    (
        "GetFile",
        "%WINDIR%\\system32\\notepad.exe;%WINDIR%\\system32\\faultrep.dll",
    ),
    (
        "GetFileVersion",
        "%WINDIR%\\system32\\notepad.exe;%WINDIR%\\system32\\faultrep.dll",
    ),
];

/// `name=value` lines → map (for comparing settings whatever the order and case of
/// booleans the share renders them in).
fn settings_map(text: &[u8]) -> BTreeMap<String, String> {
    let text = std::str::from_utf8(text).expect("settings are ASCII here");
    assert!(
        text.is_empty() || text.ends_with("\r\n"),
        "settings lines end in CRLF: {text:?}"
    );
    text.split_terminator("\r\n")
        .map(|line| {
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not a name=value line: {line:?}"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// A CERBoolean value normalised, anything else as is.
fn normalised(value: &str) -> String {
    match client::parse_bool(value) {
        Some(true) => "YES".into(),
        Some(false) => "NO".into(),
        None => value.into(),
    }
}

#[test]
fn application_fault_example_4_1_reads_back_byte_for_byte() {
    for share in MountedShare::each() {
        let root = &share.root;
        let sub = Subpath::parse(SUB);

        // The admin's preparation, through the share: status.txt and count.txt at 5/10.
        let status_dir = client::mkdir_levels(root, "status", &sub).expect("mkdir status levels");
        let status_text: String = STATUS_LINES
            .iter()
            .map(|(k, v)| format!("{k}={v}\r\n"))
            .collect();
        client::write_whole(&status_dir.join("status.txt"), status_text.as_bytes())
            .expect("write status.txt (close must succeed: every line is valid)");
        let counts_dir = client::mkdir_levels(root, "counts", &sub).expect("mkdir counts levels");
        // The share has seen this bucket before: count.txt at 5/10 (a first report, then the
        // counters set as an admin would; a plain directory just gets the file).
        let five_ten = Counts {
            cabs_gathered: 5,
            total_hits: 10,
        };
        let first = if share.is_mounted() {
            Counts {
                cabs_gathered: 0,
                total_hits: 1,
            }
        } else {
            five_ten
        };
        client::write_whole(&counts_dir.join("count.txt"), first.render().as_bytes())
            .expect("create count.txt");
        share.set_counts(&sub, five_ten);

        // The client. policy.txt does not exist.
        assert_errno(
            fs::read(root.join("policy.txt")),
            &[libc::ENOENT],
            "read policy.txt",
        );
        // status.txt holds the example's parameters (the share may render them canonically).
        let status = fs::read(status_dir.join("status.txt")).expect("read status.txt");
        let got = settings_map(&status);
        let want: BTreeMap<String, String> = STATUS_LINES
            .iter()
            .map(|(k, v)| ((*k).to_owned(), normalised(v)))
            .collect();
        let got_normalised: BTreeMap<String, String> = got
            .iter()
            .map(|(k, v)| (k.clone(), normalised(v)))
            .collect();
        assert_eq!(got_normalised, want, "status.txt as read back: {status:?}");
        assert_eq!(
            fs::metadata(status_dir.join("status.txt"))
                .expect("stat status.txt")
                .len(),
            status.len() as u64,
            "stat size of status.txt == bytes read"
        );
        let config = client::read_config(root, &sub).expect("steps 1-2");
        assert!(config.tracking && config.idata && config.crashes_per_bucket == 100);

        // Step 3: count.txt says 5/10, fewer than 100 cabs: go on.
        let count_path = counts_dir.join("count.txt");
        assert_eq!(
            fs::read(&count_path).expect("read count.txt"),
            b"Cabs Gathered=5\r\nTotal Hits=10\r\n"
        );
        assert_eq!(
            client::read_counts(root, &sub).expect("step 3"),
            Counts {
                cabs_gathered: 5,
                total_hits: 10
            }
        );

        // Step 7: copy d5je031w.cab.
        let cab_dir = client::mkdir_levels(root, "cabs", &sub).expect("mkdir cabs levels");
        // A real cabinet standing in for the report the client compressed.
        let cab_bytes = cerfs_testkit::read_testdata("cabs/normal_2files_1folder.cab");
        let (sha, len) = client::write_cab(&cab_dir, "d5je031w.cab", &mut cab_bytes.as_slice())
            .expect("copy d5je031w.cab");
        assert_eq!(
            (sha.as_str(), len),
            (sha256_hex(&cab_bytes).as_str(), cab_bytes.len() as u64)
        );

        // Step 8: increment (one read+write handle).
        let written = client::increment_counts(root, &sub, 1, CountPattern::A)
            .expect("increment count.txt")
            .expect("count.txt exists");
        assert_eq!(written.to_string(), "6/11");
        let count = fs::read(&count_path).expect("read count.txt again");
        assert_eq!(
            String::from_utf8_lossy(&count),
            "Cabs Gathered=6\r\nTotal Hits=11\r\n"
        );
        assert_eq!(
            fs::metadata(&count_path).expect("stat count.txt").len(),
            count.len() as u64,
            "stat size of count.txt == bytes read"
        );

        // Step 9: tracking is on.
        let crash_line = "15:32:23  04-23-2007\tTestMachine\tTestUser\tTestApplication\\1.0.0.0\\TestModule\\1.0.0.0\\00000000\r\n";
        let hits_line = "15:32:23  04-23-2007\tTestMachine\tTestUser\td5je031w.cab\r\n";
        assert_eq!(
            client::log_line("15:32:23  04-23-2007", "TestMachine", "TestUser", SUB),
            crash_line
        );
        client::append_line(&root.join("crash.log"), crash_line).expect("append to crash.log");
        client::append_line(&cab_dir.join("hits.log"), hits_line).expect("append to hits.log");
        for (path, line) in [
            (root.join("crash.log"), crash_line),
            (cab_dir.join("hits.log"), hits_line),
        ] {
            let content = fs::read(&path).expect("read log");
            assert_eq!(
                String::from_utf8_lossy(&content),
                line,
                "{} reads back byte-for-byte",
                path.display()
            );
            assert_eq!(
                fs::metadata(&path).expect("stat log").len(),
                content.len() as u64,
                "stat size of {} == bytes read",
                path.display()
            );
        }

        // The cab reads back byte-identical; its folder lists it and hits.log.
        let cab_path = cab_dir.join("d5je031w.cab");
        assert!(
            fs::read(&cab_path).expect("read the cab") == cab_bytes,
            "d5je031w.cab reads back byte-identical"
        );
        assert_eq!(
            fs::metadata(&cab_path).expect("stat the cab").len(),
            cab_bytes.len() as u64
        );
        let mut names: Vec<String> = fs::read_dir(&cab_dir)
            .expect("list the cab folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["d5je031w.cab", "hits.log"]);
    }
}
