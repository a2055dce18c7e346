//! The share's layout through a cerfs mount: the fixed folders, names the CER trees refuse
//! (R3) or find too long (R4), stable inode numbers, plain files outside the CER roles, and
//! committed cabs being read-only.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use cerfs_e2e::client::{self, Subpath};
use cerfs_e2e::{assert_errno, sha256_hex, MountedShare};

/// Names of the entries of `dir`.
fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn fresh_root_lists_cabs_status_counts_and_no_logs_or_policy() {
    for share in MountedShare::each() {
        assert_eq!(names(&share.root), set(&["cabs", "counts", "status"]));
        for dir in ["cabs", "counts", "status"] {
            assert!(
                fs::metadata(share.path(dir)).expect("stat").is_dir(),
                "{dir}"
            );
            assert!(names(&share.path(dir)).is_empty(), "{dir} starts empty");
        }
        for file in ["policy.txt", "crash.log"] {
            assert_errno(fs::metadata(share.path(file)), &[libc::ENOENT], file);
            assert_errno(fs::read(share.path(file)), &[libc::ENOENT], file);
        }
    }
}

#[test]
fn forbidden_names_in_the_cer_trees_are_einval() {
    for share in MountedShare::each() {
        fs::create_dir(share.path("cabs/App")).expect("mkdir a good name");
        let bad = [
            "a:b", "a<b", "a>b", "a\"b", "a|b", "a?b", "a*b", "a\\b", "a\tb", "CON", "con",
            "nul.txt", "COM1", "LPT9.log", "PRN", "AUX.x", "\u{e9}",
        ];
        for parent in ["", "cabs", "status", "counts", "cabs/App"] {
            for name in bad {
                let path = share.root.join(parent).join(name);
                assert_errno(
                    fs::create_dir(&path),
                    &[libc::EINVAL],
                    &format!("mkdir {parent}/{name:?}"),
                );
                assert_errno(
                    OpenOptions::new().write(true).create_new(true).open(&path),
                    &[libc::EINVAL],
                    &format!("create {parent}/{name:?}"),
                );
            }
        }
        assert_eq!(names(&share.path("cabs")), set(&["App"]));
        assert!(names(&share.path("cabs/App")).is_empty());
        // Names that only look like device names are fine.
        for ok in ["CONSOLE", "COM10", "nul_", "LPT"] {
            fs::create_dir(share.path(&format!("cabs/App/{ok}")))
                .unwrap_or_else(|e| panic!("mkdir cabs/App/{ok}: {e}"));
        }
    }
}

#[test]
fn paths_longer_than_260_characters_are_enametoolong() {
    for share in MountedShare::each() {
        // As the client sees it: `\cabs` (5) + 4 × `\` + 60 characters = 249.
        let mut dir = share.path("cabs");
        let mut seen = "\\cabs".len();
        for i in 0..4 {
            let name = format!("{i}{}", "x".repeat(59));
            dir.push(&name);
            seen += 1 + name.len();
            fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir at {seen} chars: {e}"));
        }
        assert_eq!(seen, 249);
        // `\` + 10 characters = 260: allowed; 11 = 261: too long.
        fs::create_dir(dir.join("d".repeat(10))).expect("mkdir of exactly 260 characters");
        assert_errno(
            fs::create_dir(dir.join("e".repeat(11))),
            &[libc::ENAMETOOLONG],
            "mkdir of 261 characters",
        );
        assert_errno(
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dir.join("abcdefg.cab")),
            &[libc::ENAMETOOLONG],
            "create a cab of 261 characters",
        );
        let ok = dir.join("abcdef.cab");
        client::write_whole(&ok, b"MSCF").expect("create a cab of exactly 260 characters");
        assert_eq!(fs::read(&ok).expect("read it"), b"MSCF");
    }
}

#[test]
fn directory_inodes_are_stable() {
    for mut share in MountedShare::each() {
        let sub = Subpath::app_bucket(3);
        let dir = client::mkdir_levels(&share.root, "cabs", &sub).expect("mkdir levels");
        let top = share.path("cabs/App3");
        let ino = |p: &Path| fs::metadata(p).expect("stat").ino();
        let (dir_ino, top_ino, cabs_ino) = (ino(&dir), ino(&top), ino(&share.path("cabs")));
        assert_ne!(dir_ino, top_ino);
        client::write_whole(&dir.join("aaaa0000.cab"), b"cab").expect("write a cab");
        fs::create_dir(top.join("2.0.0.0")).expect("mkdir a sibling");
        assert_eq!(ino(&dir), dir_ino, "same inode after adding children");
        assert_eq!(ino(&top), top_ino);
        let mut listed = None;
        for e in fs::read_dir(share.path("cabs")).expect("list cabs") {
            let e = e.expect("entry");
            if e.file_name() == "App3" {
                listed = Some(e.ino());
            }
        }
        assert_eq!(listed, Some(top_ino), "readdir gives the inode stat gives");
        share.remount();
        assert_eq!(ino(&dir), dir_ino, "same inode after a remount");
        assert_eq!(ino(&top), top_ino);
        assert_eq!(ino(&share.path("cabs")), cabs_ino);
    }
}

#[test]
fn plain_files_outside_the_cer_roles_behave_normally() {
    for share in MountedShare::each() {
        // A readme at the root: write, read, overwrite in the middle, extend sparsely,
        // truncate, rename, unlink.
        let readme = share.path("readme.txt");
        client::write_whole(&readme, b"hello, world\n").expect("create readme.txt");
        assert_eq!(fs::read(&readme).expect("read"), b"hello, world\n");
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&readme)
            .expect("open readme.txt");
        f.seek(SeekFrom::Start(7)).expect("seek");
        f.write_all(b"cerfs").expect("overwrite in the middle");
        f.seek(SeekFrom::Start(100_000)).expect("seek past the end");
        f.write_all(b"tail").expect("sparse write");
        client::close(f).expect("close readme.txt");
        let content = fs::read(&readme).expect("read again");
        assert_eq!(content.len(), 100_004);
        assert_eq!(&content[..13], b"hello, cerfs\n");
        assert!(
            content[13..100_000].iter().all(|b| *b == 0),
            "gap reads as zeros"
        );
        assert_eq!(&content[100_000..], b"tail");
        assert_eq!(fs::metadata(&readme).expect("stat").len(), 100_004);
        OpenOptions::new()
            .write(true)
            .open(&readme)
            .and_then(|f| f.set_len(5))
            .expect("truncate");
        assert_eq!(fs::read(&readme).expect("read truncated"), b"hello");
        let renamed = share.path("README.md");
        fs::rename(&readme, &renamed).expect("rename readme");
        assert_errno(fs::metadata(&readme), &[libc::ENOENT], "old name gone");
        assert_eq!(fs::read(&renamed).expect("read renamed"), b"hello");

        // A scratch folder: any UTF-8 name, files moved between folders, rmdir rules.
        let scratch = share.path("scratch");
        fs::create_dir(&scratch).expect("mkdir scratch");
        fs::create_dir(scratch.join("sub")).expect("mkdir scratch/sub");
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        client::write_whole(&scratch.join("caf\u{e9}.bin"), &big).expect("write a 200 kB file");
        let mut back = Vec::new();
        fs::File::open(scratch.join("caf\u{e9}.bin"))
            .and_then(|mut f| f.read_to_end(&mut back))
            .expect("read it back");
        assert!(back == big, "200 kB file reads back identical");
        fs::rename(&renamed, scratch.join("sub/readme")).expect("move into scratch/sub");
        assert_eq!(
            names(&share.root),
            set(&["cabs", "counts", "scratch", "status"])
        );
        assert_eq!(names(&scratch), set(&["caf\u{e9}.bin", "sub"]));
        assert_errno(
            fs::remove_dir(scratch.join("sub")),
            &[libc::ENOTEMPTY],
            "rmdir a non-empty folder",
        );
        fs::remove_file(scratch.join("sub/readme")).expect("unlink");
        fs::remove_file(scratch.join("caf\u{e9}.bin")).expect("unlink");
        fs::remove_dir(scratch.join("sub")).expect("rmdir sub");
        fs::remove_dir(&scratch).expect("rmdir scratch");
        assert_eq!(names(&share.root), set(&["cabs", "counts", "status"]));
    }
}

#[test]
fn fixed_folders_cannot_be_removed_or_renamed() {
    for share in MountedShare::each() {
        for dir in ["cabs", "status", "counts"] {
            assert_errno(fs::remove_dir(share.path(dir)), &[libc::EPERM], dir);
            assert_errno(
                fs::rename(share.path(dir), share.path("elsewhere")),
                &[libc::EPERM],
                dir,
            );
        }
        assert_eq!(names(&share.root), set(&["cabs", "counts", "status"]));
    }
}

#[test]
fn committed_cab_is_read_only_and_reads_back_byte_for_byte() {
    for share in MountedShare::each() {
        let sub = Subpath::parse("blue");
        let dir = client::mkdir_levels(&share.root, "cabs", &sub).expect("mkdir cabs/blue");
        let bytes = cerfs_testkit::read_testdata("cabs/mszip_lzx_qtm.cab");
        let (sha, _) =
            client::write_cab(&dir, "d5je031w.cab", &mut bytes.as_slice()).expect("copy the cab");
        let cab = dir.join("d5je031w.cab");
        let denied = &[libc::EPERM, libc::EACCES];

        assert_errno(
            OpenOptions::new().write(true).open(&cab),
            denied,
            "open a committed cab for writing",
        );
        assert_errno(
            OpenOptions::new().read(true).write(true).open(&cab),
            denied,
            "open a committed cab read+write",
        );
        assert_errno(
            OpenOptions::new().write(true).truncate(true).open(&cab),
            denied,
            "open a committed cab with truncate",
        );
        assert_errno(
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&cab),
            denied,
            "re-create a committed cab",
        );
        let truncated = Command::new("truncate")
            .args(["-s", "0"])
            .arg(&cab)
            .status()
            .expect("run truncate");
        assert!(
            !truncated.success(),
            "`truncate -s 0` of a committed cab must fail"
        );
        assert_errno(fs::remove_file(&cab), denied, "unlink a committed cab");
        assert_errno(
            fs::rename(&cab, dir.join("other.cab")),
            denied,
            "rename a committed cab",
        );

        let back = fs::read(&cab).expect("read the cab");
        assert_eq!(back.len(), bytes.len());
        assert_eq!(sha256_hex(&back), sha);
        assert!(back == bytes, "cab reads back byte-for-byte");
        assert_eq!(fs::metadata(&cab).expect("stat").len(), bytes.len() as u64);
        assert_eq!(names(&dir), set(&["d5je031w.cab"]));
    }
}

#[test]
fn a_cab_being_written_is_hidden_until_closed() {
    for share in MountedShare::each() {
        let sub = Subpath::parse("shutdown");
        let dir = client::mkdir_levels(&share.root, "cabs", &sub).expect("mkdir cabs/shutdown");
        let path = dir.join("upload01.cab");
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create the cab");
        f.write_all(&[7u8; 100_000]).expect("write part of it");
        assert!(names(&dir).is_empty(), "not listed while being written");
        assert!(fs::metadata(&path).is_ok(), "but lookup by name works");
        assert_errno(
            OpenOptions::new().write(true).open(&path),
            &[libc::EBUSY],
            "a second writer",
        );
        f.write_all(&[8u8; 100_000]).expect("write the rest");
        client::close(f).expect("close (commit) the cab");
        assert_eq!(names(&dir), set(&["upload01.cab"]));
        let back = fs::read(&path).expect("read");
        assert_eq!(back.len(), 200_000);
        assert!(back[..100_000].iter().all(|b| *b == 7) && back[100_000..].iter().all(|b| *b == 8));
    }
}

#[test]
fn a_cab_copied_by_a_shell_redirect_or_dd_arrives_whole() {
    // Both dup2() the new descriptor and close the original before the first write.
    for share in MountedShare::each() {
        let sub = Subpath::parse("blue");
        let dir = client::mkdir_levels(&share.root, "cabs", &sub).expect("mkdir cabs/blue");
        let src = share.root.join("source.bin");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        fs::write(&src, &bytes).expect("write the source file");
        let redirect = Command::new("sh")
            .args(["-c", "cat \"$1\" > \"$2\"", "sh"])
            .arg(&src)
            .arg(dir.join("shell.cab"))
            .status()
            .expect("run sh");
        assert!(redirect.success(), "cat > x.cab failed");
        let dd = Command::new("dd")
            .arg(format!("if={}", src.display()))
            .arg(format!("of={}", dir.join("dd.cab").display()))
            .args(["bs=65536", "status=none"])
            .status()
            .expect("run dd");
        assert!(dd.success(), "dd of=x.cab failed");
        for name in ["shell.cab", "dd.cab"] {
            let back = fs::read(dir.join(name)).expect("read the cab back");
            assert_eq!(sha256_hex(&back), sha256_hex(&bytes), "{name}");
        }
    }
}
