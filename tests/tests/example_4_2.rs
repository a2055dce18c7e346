//! [MS-CER] 4.2, "Kernel Fault Example", with plain file operations on a cerfs mount: no
//! policy.txt, no status/blue/status.txt; the client creates cabs/blue, copies
//! `d5JE031w.cab` and creates count.txt at 1/1; a second report brings it to 2/2.

use std::fs;

use cerfs_e2e::client::{self, CountPattern, Counts, Subpath};
use cerfs_e2e::{assert_errno, MountedShare};

#[test]
fn kernel_fault_example_4_2_creates_count_then_increments() {
    for share in MountedShare::each() {
        let root = &share.root;
        let blue = Subpath::parse("blue");

        // Steps 1–2: neither policy.txt nor status/blue/status.txt exists.
        assert_errno(
            fs::read(root.join("policy.txt")),
            &[libc::ENOENT],
            "read policy.txt",
        );
        assert_errno(
            fs::read(root.join("status/blue/status.txt")),
            &[libc::ENOENT],
            "read status/blue/status.txt",
        );
        let config = client::read_config(root, &blue).expect("steps 1-2 with nothing present");
        assert!(!config.tracking && config.idata);
        assert_eq!(
            client::read_counts(root, &blue).expect("step 3"),
            Counts::default()
        );

        // Step 7: cabs\blue\d5JE031w.cab (R5: the client creates cabs\blue).
        let cab_dir = client::mkdir_levels(root, "cabs", &blue).expect("mkdir cabs/blue");
        assert!(fs::metadata(&cab_dir).expect("stat cabs/blue").is_dir());
        let first = cerfs_testkit::read_testdata("cabs/normal_2files_1folder.cab");
        client::write_cab(&cab_dir, "d5JE031w.cab", &mut first.as_slice()).expect("copy the cab");

        // Step 8: no count.txt yet: the client creates it.
        client::mkdir_levels(root, "counts", &blue).expect("mkdir counts/blue");
        assert!(
            client::increment_counts(root, &blue, 1, CountPattern::A)
                .expect("look for count.txt")
                .is_none(),
            "count.txt must not exist before the first report"
        );
        client::create_counts(root, &blue, 1).expect("create count.txt");
        let count_path = root.join("counts/blue/count.txt");
        assert_eq!(
            String::from_utf8_lossy(&fs::read(&count_path).expect("read count.txt")),
            "Cabs Gathered=1\r\nTotal Hits=1\r\n"
        );

        // A second kernel fault: another cab, count.txt incremented (pattern b this time).
        let second = cerfs_testkit::read_testdata("cabs/normal_2files_2folders.cab");
        client::write_cab(&cab_dir, "k2x9q7zz.cab", &mut second.as_slice())
            .expect("copy the second cab");
        let written =
            client::update_counts(root, &blue, 1, CountPattern::B).expect("increment count.txt");
        assert_eq!(written.to_string(), "2/2");
        let count = fs::read(&count_path).expect("read count.txt again");
        assert_eq!(
            String::from_utf8_lossy(&count),
            "Cabs Gathered=2\r\nTotal Hits=2\r\n"
        );
        assert_eq!(
            fs::metadata(&count_path).expect("stat count.txt").len(),
            count.len() as u64
        );

        // Both cabs are there, intact; tracking was off so no log was created.
        assert!(fs::read(cab_dir.join("d5JE031w.cab")).expect("read cab 1") == first);
        assert!(fs::read(cab_dir.join("k2x9q7zz.cab")).expect("read cab 2") == second);
        let mut names: Vec<String> = fs::read_dir(&cab_dir)
            .expect("list cabs/blue")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["d5JE031w.cab", "k2x9q7zz.cab"]);
        assert_errno(
            fs::metadata(root.join("crash.log")),
            &[libc::ENOENT],
            "crash.log without tracking",
        );
        assert_errno(
            fs::metadata(cab_dir.join("hits.log")),
            &[libc::ENOENT],
            "hits.log without tracking",
        );
    }
}
