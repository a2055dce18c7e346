//! Bad input over SMB against `cerfs serve`: every refusal reaches the client as an error
//! status and changes nothing already stored. Over-long paths, forbidden names, garbage,
//! lowered or jumped counters in count.txt, settings written by a guest, stored cabs overwritten or
//! deleted, a log rewritten in the middle; and the admin account, which may write
//! status.txt, reads it back in canonical form.

mod smb_support;

use cerfs_fs_core::settings_file::{self, Scope};
use smb_support::*;

/// What a guest must not be able to change, read back at once.
#[derive(Debug, PartialEq, Eq)]
struct Stored {
    count: Vec<u8>,
    status: Vec<u8>,
    cab: Vec<u8>,
    crash_log: Vec<u8>,
    cabs_listing: serde_json::Value,
    bucket_listing: serde_json::Value,
    policy: String,
}

/// The operations that read [`Stored`] back.
fn read_back_ops() -> Vec<Op> {
    [
        &["get", r"counts\b1\count.txt"][..],
        &["get", r"status\b1\status.txt"],
        &["get", r"cabs\b1\r.cab"],
        &["get", "crash.log"],
        &["ls", "cabs"],
        &["ls", r"cabs\b1"],
        &["get", "policy.txt"],
    ]
    .iter()
    .map(|argv| op(Who::Guest, argv))
    .collect()
}

/// [`Stored`] from the answers to [`read_back_ops`].
fn stored(answers: &[serde_json::Value]) -> Stored {
    for answer in &answers[..4] {
        assert_ok(answer, "read back");
    }
    Stored {
        count: data(&answers[0]),
        status: data(&answers[1]),
        cab: data(&answers[2]),
        crash_log: data(&answers[3]),
        cabs_listing: answers[4]["names"].clone(),
        bucket_listing: answers[5]["names"].clone(),
        policy: status(&answers[6]),
    }
}

fn read_back(serve: &Serve) -> Stored {
    stored(&serve.batch(&read_back_ops()))
}

#[test]
fn refusals_reach_the_client_and_change_nothing() {
    if !can_run(true) {
        return;
    }
    for store in each_store() {
        let Some(mut serve) = Serve::start_or_skip(&options_on(&store)) else {
            return;
        };
        let file = |name: &str, text: &[u8]| {
            let path = serve.root.join(name);
            std::fs::write(&path, text).expect("write a local file");
            path.to_str().expect("utf-8").to_owned()
        };
        let tracking = file("tracking.txt", b"Tracking=YES\r\n");
        let first_report = file("count.txt", b"Cabs Gathered=1\r\nTotal Hits=1\r\n");
        let jump = file("jump.txt", b"Cabs Gathered=5\r\nTotal Hits=10\r\n");
        let garbage = file(
            "garbage.txt",
            b"Cabs Gathered=lots\r\nTotal Hits=\xff\xfe\r\n",
        );
        let lower = file("lower.txt", b"Cabs Gathered=0\r\nTotal Hits=0\r\n");
        let evil = file(
            "evil.txt",
            b"GetFile=%USERPROFILE%\\secrets.txt\r\niData=1\r\n",
        );
        let log_line = file("line.txt", b"01:02:03  01-02-2003\tM\tU\tb1\r\n");
        // Two lines: a rewrite of history (one line below the end is taken as an append).
        let other_line = file(
            "other.txt",
            b"09:09:09  09-09-2009\tEVIL\tX\tb1\r\n09:09:09  09-09-2009\tEVIL\tY\tb1\r\n",
        );

        // The state a guest will try to damage: set up by the admin and by a guest client.
        for dir in [r"status\b1", r"status\b2", r"counts\b1", r"cabs\b1"] {
            assert_ok(&serve.py(&["mkdir", dir]), dir);
        }
        assert_ok(
            &serve.py_admin(&["put", &tracking, r"status\b1\status.txt"]),
            "admin writes status.txt",
        );
        assert_ok(
            &serve.py(&[
                "put",
                &first_report,
                r"counts\b1\count.txt",
                "--disposition",
                "create",
            ]),
            "guest creates count.txt",
        );
        assert_ok(
            &serve.py(&[
                "put",
                &cab_file(),
                r"cabs\b1\r.cab",
                "--disposition",
                "create",
            ]),
            "guest copies a cab",
        );
        assert_ok(
            &serve.py(&["put", &log_line, "crash.log", "--disposition", "open_if"]),
            "guest creates crash.log",
        );
        // Length (R4): a 4th 64-character level makes \cabs\... 265 characters: refused, and
        // nothing appears.
        let level = "A".repeat(64);
        let mut path = "cabs".to_owned();
        for _ in 0..3 {
            path = format!("{path}\\{level}");
            assert_ok(&serve.py(&["mkdir", &path]), "mkdir a long level");
        }
        let long_dir = format!("{path}\\{level}");
        assert_eq!(long_dir.len() + 1, 265);
        let answer = serve.py(&["mkdir", &long_dir]);
        let refusal = assert_refused(&answer, "mkdir over 260 characters");
        assert_eq!(refusal, "STATUS_OBJECT_NAME_INVALID", "{answer}");
        assert_eq!(serve.py(&["ls", &path])["names"], serde_json::json!([]));
        let answer = serve.py(&[
            "put",
            &cab_file(),
            &format!("{path}\\{}.cab", "c".repeat(60)),
        ]);
        assert_refused(&answer, "cab over 260 characters");

        let before = read_back(&serve);
        assert_eq!(before.count, b"Cabs Gathered=1\r\nTotal Hits=1\r\n");
        assert_eq!(before.status, b"Tracking=YES\r\n");
        assert_eq!(before.cab, std::fs::read(cab_file()).expect("cab"));
        assert_eq!(before.policy, "absent");

        // Every refusal, each followed by a read-back of what is stored, in one client run.
        let mut attempts: Vec<(String, Op)> = Vec::new();
        let mut attempt =
            |what: String, who: Who, argv: &[&str]| attempts.push((what, op(who, argv)));

        // Names (R3).
        for name in [
            "CON",
            "NUL.txt",
            "LPT1",
            "com9.cab",
            "a*b",
            "a:b",
            "a<b",
            "a|b",
            "q?",
            "caf\u{e9}",
        ] {
            attempt(
                format!("mkdir cabs\\{name}"),
                Who::Guest,
                &["mkdir", &format!("cabs\\{name}")],
            );
            attempt(
                format!("cab named {name}"),
                Who::Guest,
                &[
                    "put",
                    &cab_file(),
                    &format!("cabs\\b1\\{name}"),
                    "--disposition",
                    "create",
                ],
            );
        }

        // count.txt: garbage and lowered counters, every way a client rewrites the file.
        for disposition in ["overwrite_if", "supersede", "open_if"] {
            attempt(
                format!("garbage count.txt ({disposition})"),
                Who::Guest,
                &[
                    "put",
                    &garbage,
                    r"counts\b1\count.txt",
                    "--disposition",
                    disposition,
                ],
            );
            attempt(
                format!("count.txt many reports ahead ({disposition})"),
                Who::Guest,
                &[
                    "put",
                    &jump,
                    r"counts\b1\count.txt",
                    "--disposition",
                    disposition,
                ],
            );
            attempt(
                format!("lowered count.txt ({disposition})"),
                Who::Guest,
                &[
                    "put",
                    &lower,
                    r"counts\b1\count.txt",
                    "--disposition",
                    disposition,
                ],
            );
        }
        attempt(
            "delete count.txt".into(),
            Who::Guest,
            &["delete", r"counts\b1\count.txt"],
        );

        // Settings belong to the admin: a guest can neither create, overwrite nor delete them.
        for disposition in ["create", "overwrite_if", "supersede", "open_if"] {
            attempt(
                format!("guest writes policy.txt ({disposition})"),
                Who::Guest,
                &["put", &evil, "policy.txt", "--disposition", disposition],
            );
            attempt(
                format!("guest writes status.txt ({disposition})"),
                Who::Guest,
                &[
                    "put",
                    &evil,
                    r"status\b1\status.txt",
                    "--disposition",
                    disposition,
                ],
            );
            attempt(
                format!("guest creates a new status.txt ({disposition})"),
                Who::Guest,
                &[
                    "put",
                    &evil,
                    r"status\b2\status.txt",
                    "--disposition",
                    disposition,
                ],
            );
        }
        attempt(
            "guest deletes status.txt".into(),
            Who::Guest,
            &["delete", r"status\b1\status.txt"],
        );

        // Stored cabs are immutable, for guests and the admin alike.
        for disposition in ["overwrite_if", "supersede", "open_if"] {
            attempt(
                format!("overwrite a stored cab ({disposition})"),
                Who::Guest,
                &["put", &evil, r"cabs\b1\r.cab", "--disposition", disposition],
            );
        }
        attempt(
            "guest deletes a cab".into(),
            Who::Guest,
            &["delete", r"cabs\b1\r.cab"],
        );
        attempt(
            "admin deletes a cab".into(),
            Who::Admin,
            &["delete", r"cabs\b1\r.cab"],
        );

        // A log is append-only: rewriting a stored line with other bytes is refused.
        attempt(
            "rewrite crash.log in the middle".into(),
            Who::Guest,
            &["put", &other_line, "crash.log", "--disposition", "open_if"],
        );
        attempt(
            "delete crash.log".into(),
            Who::Guest,
            &["delete", "crash.log"],
        );

        let checks = read_back_ops();
        let mut ops = Vec::new();
        for (_, attempt) in &attempts {
            ops.push(attempt.clone());
            ops.extend(checks.iter().cloned());
        }
        let answers = serve.batch(&ops);
        let mut refused = Vec::new();
        for ((what, _), answers) in attempts.iter().zip(answers.chunks(1 + checks.len())) {
            let status = assert_refused(&answers[0], what);
            refused.push(format!("{what}: {status}"));
            assert_eq!(
                stored(&answers[1..]),
                before,
                "{what} changed what was stored"
            );
        }
        assert_eq!(
            status(&serve.py(&["get", r"status\b2\status.txt"])),
            "absent"
        );
        eprintln!("refused over SMB:\n  {}", refused.join("\n  "));

        // The admin may write status.txt; it reads back canonical. A bad line is refused (the
        // client sees the error) while the good ones are kept (MS-CER R8).
        let sloppy = b"iData=true\r\nTracking=yes\r\nCrashes per bucket=7\r\n".to_vec();
        let sloppy_file = file("sloppy.txt", &sloppy);
        assert_ok(
            &serve.py_admin(&["put", &sloppy_file, r"status\b1\status.txt"]),
            "admin rewrites status.txt",
        );
        let canonical = settings_file::render(&settings_file::parse(Scope::Status, &sloppy).pairs);
        let answer = serve.py(&["get", r"status\b1\status.txt"]);
        assert_eq!(
            data(&answer),
            canonical,
            "{}",
            String::from_utf8_lossy(&data(&answer))
        );
        assert!(String::from_utf8_lossy(&canonical).contains("Tracking=YES\r\n"));
        let with_bad_line = file("bad-line.txt", b"Tracking=NO\r\nNoSuchKey=1\r\n");
        let answer = serve.py_admin(&["put", &with_bad_line, r"status\b1\status.txt"]);
        assert_refused(&answer, "status.txt with an unknown key");
        assert_eq!(
            data(&serve.py(&["get", r"status\b1\status.txt"])),
            b"Tracking=NO\r\n"
        );
        // And policy.txt, which only the admin can create.
        assert_ok(
            &serve.py_admin(&["put", &tracking, "policy.txt"]),
            "admin writes policy.txt",
        );
        assert_eq!(data(&serve.py(&["get", "policy.txt"])), b"Tracking=YES\r\n");

        let exit = serve.terminate();
        serve.assert_clean_stop(exit);
    }
}
