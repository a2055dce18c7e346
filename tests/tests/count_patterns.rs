//! count.txt through a cerfs mount: the two ways clients increment it (pattern a: one
//! read+write handle; pattern b: read, close, overwrite), repeated and racing, and what is
//! refused (content that does not parse, lowering a counter).

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use cerfs_e2e::client::{self, CountPattern, Counts, Subpath};
use cerfs_e2e::{errno_of, MountedShare};

/// The bucket every test here uses.
fn bucket() -> Subpath {
    Subpath::app_bucket(0)
}

/// Creates the counts folder of [`bucket`] and count.txt (a first report, then the
/// counters `start` as an admin sets them); returns count.txt's path.
fn prepare(share: &MountedShare, start: Counts) -> PathBuf {
    let dir = client::mkdir_levels(&share.root, "counts", &bucket()).expect("mkdir counts");
    let path = dir.join("count.txt");
    let first = if share.is_mounted() {
        Counts {
            cabs_gathered: 0,
            total_hits: 1,
        }
    } else {
        start
    };
    client::write_whole(&path, first.render().as_bytes()).expect("create count.txt");
    share.set_counts(&bucket(), start);
    assert_eq!(
        read_counts(&path),
        start,
        "count.txt right after creating it"
    );
    path
}

/// count.txt's counters; panics if it does not read back in the exact canonical form.
fn read_counts(path: &Path) -> Counts {
    let bytes = fs::read(path).expect("read count.txt");
    let counts =
        Counts::parse(&bytes).unwrap_or_else(|| panic!("count.txt does not parse: {bytes:?}"));
    assert_eq!(
        bytes,
        counts.render().as_bytes(),
        "count.txt reads back in canonical form"
    );
    assert_eq!(
        fs::metadata(path).expect("stat count.txt").len(),
        bytes.len() as u64,
        "stat size of count.txt == bytes read"
    );
    counts
}

fn c(cabs_gathered: u64, total_hits: u64) -> Counts {
    Counts {
        cabs_gathered,
        total_hits,
    }
}

/// Twenty reports in a row with `pattern`, every other one with a cab.
fn twenty_reports(pattern: CountPattern) {
    for share in MountedShare::each() {
        let path = prepare(&share, c(1, 1));
        let mut expected = c(1, 1);
        for i in 0..20u64 {
            let cabs = i % 2;
            let written = client::increment_counts(&share.root, &bucket(), cabs, pattern)
                .unwrap_or_else(|e| panic!("increment {i} with {pattern:?}: {e}"))
                .expect("count.txt exists");
            expected = c(expected.cabs_gathered + cabs, expected.total_hits + 1);
            assert_eq!(written, expected, "values written by report {i}");
            assert_eq!(
                read_counts(&path),
                expected,
                "after report {i} ({pattern:?})"
            );
        }
        assert_eq!(expected, c(11, 21));
    }
}

#[test]
fn pattern_a_twenty_times_is_exact() {
    twenty_reports(CountPattern::A);
}

#[test]
fn pattern_b_twenty_times_is_exact() {
    twenty_reports(CountPattern::B);
}

#[test]
fn two_racing_read_write_handles_lose_no_increment() {
    for share in MountedShare::each() {
        let path = prepare(&share, c(1, 1));
        let two = c(2, 2).render();

        // Handle 1 reads 1/1.
        let mut h1 = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open handle 1");
        let mut seen1 = String::new();
        h1.read_to_string(&mut seen1).expect("read handle 1");
        assert_eq!(seen1, c(1, 1).render());

        thread::scope(|s| {
            let (read_tx, read_rx) = mpsc::channel();
            let (go_tx, go_rx) = mpsc::channel::<()>();
            let path = &path;
            let two = &two;
            let other = s.spawn(move || {
                // Handle 2, in another thread, also reads 1/1 …
                let mut h2 = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .expect("open handle 2");
                let mut seen2 = String::new();
                h2.read_to_string(&mut seen2).expect("read handle 2");
                read_tx.send(seen2).expect("report the read");
                // … and writes 2/2 after handle 1 has written and closed.
                go_rx.recv().expect("wait for handle 1");
                h2.seek(SeekFrom::Start(0)).expect("seek handle 2");
                h2.write_all(two.as_bytes()).expect("write handle 2");
                h2.set_len(two.len() as u64).expect("truncate handle 2");
                client::close(h2)
            });
            let seen2 = read_rx.recv().expect("handle 2 read");
            assert_eq!(seen2, c(1, 1).render(), "handle 2 read the same 1/1");
            h1.seek(SeekFrom::Start(0)).expect("seek handle 1");
            h1.write_all(two.as_bytes()).expect("write handle 1");
            h1.set_len(two.len() as u64).expect("truncate handle 1");
            client::close(h1).expect("close handle 1");
            assert_eq!(read_counts(path), c(2, 2), "after handle 1's close");
            go_tx.send(()).expect("release handle 2");
            other
                .join()
                .expect("handle 2's thread")
                .expect("close handle 2");
        });
        assert_eq!(
            read_counts(&path),
            c(3, 3),
            "both increments kept: 1/1 + 1/1 + 1/1"
        );
    }
}

#[test]
fn garbage_in_count_txt_is_refused_at_close_with_einval() {
    for share in MountedShare::each() {
        let path = prepare(&share, c(3, 4));
        for garbage in [
            &b"garbage\r\n"[..],
            b"Cabs Gathered=abc\r\nTotal Hits=5\r\n",
            b"Cabs Gathered=4\r\n",
            b"Total Hits=0\r\nCabs Gathered=3\r\n",
        ] {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .expect("open count.txt");
            let mut old = Vec::new();
            f.read_to_end(&mut old).expect("read count.txt");
            f.seek(SeekFrom::Start(0)).expect("seek");
            let what = format!("writing {:?}", String::from_utf8_lossy(garbage));
            // The refusal may come at write or (as documented) at close.
            let result = f
                .write_all(garbage)
                .and_then(|()| f.set_len(garbage.len() as u64))
                .and_then(|()| client::close(f));
            assert_eq!(errno_of(result, &what), libc::EINVAL, "{what}");
            assert_eq!(
                read_counts(&path),
                c(3, 4),
                "counters unchanged after {what}"
            );
        }
    }
}

#[test]
fn lowering_counters_is_refused_with_einval() {
    for share in MountedShare::each() {
        let path = prepare(&share, c(5, 10));
        for lower in [c(4, 10), c(5, 9), c(0, 1)] {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .expect("open count.txt");
            let mut old = String::new();
            f.read_to_string(&mut old).expect("read count.txt");
            assert_eq!(old, c(5, 10).render());
            let text = lower.render();
            f.seek(SeekFrom::Start(0)).expect("seek");
            let result = f
                .write_all(text.as_bytes())
                .and_then(|()| f.set_len(text.len() as u64))
                .and_then(|()| client::close(f));
            assert_eq!(
                errno_of(result, &format!("lowering to {lower}")),
                libc::EINVAL
            );
            assert_eq!(read_counts(&path), c(5, 10), "after trying {lower}");
        }
    }
}

/// One client process whose steps the test releases one at a time through its stdin
/// (`cer-step`'s `wait`, or a shell's `read go`), so the test decides the interleaving of
/// clients without sleeping.
struct StepClient {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl StepClient {
    /// `cer-step` with these steps.
    fn cer_step(steps: &[&str]) -> StepClient {
        StepClient::spawn(Command::new(env!("CARGO_BIN_EXE_cer-step")).args(steps))
    }

    /// `sh -c script` with `$1` = `path`.
    fn shell(script: &str, path: &Path) -> StepClient {
        StepClient::spawn(Command::new("sh").arg("-c").arg(script).arg("sh").arg(path))
    }

    fn spawn(cmd: &mut Command) -> StepClient {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn a client process");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        StepClient {
            child,
            stdin,
            stdout,
        }
    }

    /// The next line it printed.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read from the client");
        line.trim_end().to_owned()
    }

    /// Lets it go on past its wait, then waits for it to exit; returns what it printed
    /// after the wait.
    fn finish(mut self) -> String {
        writeln!(self.stdin, "go").expect("release the client");
        let mut rest = String::new();
        self.stdout
            .read_to_string(&mut rest)
            .expect("read the client's output");
        let status = self.child.wait().expect("wait for the client");
        assert!(status.success(), "client failed ({status}): {rest}");
        rest
    }
}

const ONE: &str = r"Cabs Gathered=1\r\nTotal Hits=1\r\n";
const TWO: &str = r"Cabs Gathered=2\r\nTotal Hits=2\r\n";

#[test]
fn two_clients_creating_count_txt_from_zero_are_both_counted() {
    for share in MountedShare::each() {
        client::mkdir_levels(&share.root, "counts", &bucket()).expect("mkdir counts");
        let path = bucket().dir_under(&share.root, "counts").join("count.txt");
        let p = path.to_str().expect("UTF-8 path");
        // Each client looks for count.txt, finds none, then creates it (create + truncate)
        // with 1/1.
        let steps = ["stat", p, "wait", "overwrite", p, ONE];
        let mut first = StepClient::cer_step(&steps);
        let mut second = StepClient::cer_step(&steps);
        for c in [&mut first, &mut second] {
            assert_eq!(c.line(), "absent");
            assert_eq!(c.line(), "waiting");
        }
        assert_eq!(first.finish().trim_end(), "written");
        assert_eq!(read_counts(&path), c(1, 1), "after the first client");
        // The second overwrites the file the first created, believing it creates it.
        assert_eq!(second.finish().trim_end(), "written");
        assert_eq!(read_counts(&path), c(2, 2), "both reports counted");
    }
}

#[test]
fn two_clients_racing_with_pattern_b_are_both_counted() {
    for share in MountedShare::each() {
        let path = prepare(&share, c(1, 1));
        let p = path.to_str().expect("UTF-8 path");
        // Each client opens, reads and closes count.txt, then overwrites it with 2/2.
        let steps = ["read", p, "wait", "overwrite", p, TWO];
        let mut first = StepClient::cer_step(&steps);
        let mut second = StepClient::cer_step(&steps);
        for c in [&mut first, &mut second] {
            assert_eq!(c.line(), format!("read {ONE}"));
            assert_eq!(c.line(), "waiting");
        }
        assert_eq!(first.finish().trim_end(), "written");
        assert_eq!(read_counts(&path), c(2, 2), "after the first client");
        assert_eq!(second.finish().trim_end(), "written");
        assert_eq!(read_counts(&path), c(3, 3), "no increment lost");
    }
}

#[test]
fn two_shell_clients_overwriting_with_a_redirect_are_both_counted() {
    for share in MountedShare::each() {
        let path = prepare(&share, c(1, 1));
        // Pattern (b) as a shell script does it: the shell itself reads count.txt, later
        // `printf ... > count.txt`. The redirect opens with O_TRUNC, dup2()s the descriptor
        // to stdout and closes the original (a FLUSH of the still empty handle) before
        // printf writes; the final close flushes again.
        let script = r#"{ IFS= read -r cabs; IFS= read -r hits; } < "$1" || exit 1
printf '%s|%s\n' "$cabs" "$hits" | tr -d '\r'
read go
printf 'Cabs Gathered=2\r\nTotal Hits=2\r\n' > "$1" || exit 1
"#;
        let mut first = StepClient::shell(script, &path);
        let mut second = StepClient::shell(script, &path);
        assert_eq!(first.line(), "Cabs Gathered=1|Total Hits=1");
        assert_eq!(second.line(), "Cabs Gathered=1|Total Hits=1");
        first.finish();
        assert_eq!(read_counts(&path), c(2, 2), "after the first shell");
        second.finish();
        assert_eq!(read_counts(&path), c(3, 3), "no increment lost");
    }
}

#[test]
fn counters_survive_a_remount() {
    for mut share in MountedShare::each() {
        let path = prepare(&share, c(2, 7));
        client::increment_counts(&share.root, &bucket(), 1, CountPattern::A)
            .expect("increment")
            .expect("count.txt exists");
        share.remount();
        assert_eq!(read_counts(&path), c(3, 8));
    }
}
