//! The examples of [MS-CER] section 4 performed over SMB against `cerfs serve`, checked byte
//! for byte: 4.1 (application fault: status.txt with tracking, count.txt 5/10 -> 6/11, a
//! crash.log and a hits.log line) and 4.2 (kernel fault: no policy, no status, count.txt
//! created, then incremented).

mod smb_support;

use smb_support::*;

const SUB_41: &str = r"TestApplication\1.0.0.0\TestModule\1.0.0.0\00000000";
/// The same application, another offset: example 4.1 again with count pattern b.
const SUB_41B: &str = r"TestApplication\1.0.0.0\TestModule\1.0.0.0\00000010";

/// status.txt of example 4.1 (Response=1: the flattened text lost the line break).
const STATUS_41: &str = "Tracking=YES\r\nResponse=1\r\nCrashes per bucket=100\r\n\
NoSecondLevelCollection=NO\r\nNoFileCollection=NO\r\n\
RegKey=HKLM\\Software\\Microsoft\\PCHealth\\ErrorReporting;HKLM\\Software\\Microsoft\\PCHealth\\Test\r\n\
iData=1\r\nfDoc=0\r\nWQL=select * from Win32_logicaldisk\r\n\
GetFile=%WINDIR%\\system32\\notepad.exe;%WINDIR%\\system32\\faultrep.dll\r\n\
GetFileVersion=%WINDIR%\\system32\\notepad.exe;%WINDIR%\\system32\\faultrep.dll\r\n";

/// Operations creating every level of `tree\sub` as `who`.
fn mkdirs(who: Who, tree: &str, sub: &str) -> Vec<Op> {
    let mut path = tree.to_owned();
    sub.split('\\')
        .map(|level| {
            path = format!("{path}\\{level}");
            op(who, &["mkdir", &path])
        })
        .collect()
}

/// Runs `ops` in one client process and asserts that every one succeeded.
fn all_ok(serve: &Serve, ops: &[Op]) -> Vec<serde_json::Value> {
    let answers = serve.batch(ops);
    for (answer, (who, argv)) in answers.iter().zip(ops) {
        assert_ok(answer, &format!("{who:?} {argv:?}"));
    }
    answers
}

/// The operations setting up example 4.1's share state for `sub`: status.txt written by
/// the admin, count.txt created by a guest client's first report (the admin then sets it
/// to 5/10 with [`set_5_10`]: a client adds one report per write).
fn prepare_41(serve: &Serve, sub: &str) -> Vec<Op> {
    let status_file = serve.root.join("status41.txt");
    std::fs::write(&status_file, STATUS_41).expect("write status.txt");
    let count_file = serve.root.join("first-report.txt");
    std::fs::write(&count_file, "Cabs Gathered=0\r\nTotal Hits=1\r\n").expect("write count");
    let mut ops = mkdirs(Who::Admin, "status", sub);
    ops.push(op(
        Who::Admin,
        &[
            "put",
            status_file.to_str().expect("utf-8"),
            &format!("status\\{sub}\\status.txt"),
        ],
    ));
    ops.extend(mkdirs(Who::Guest, "counts", sub));
    ops.push(op(
        Who::Guest,
        &[
            "put",
            count_file.to_str().expect("utf-8"),
            &format!("counts\\{sub}\\count.txt"),
            "--disposition",
            "create",
        ],
    ));
    ops
}

/// The admin gives `sub` the counters of example 4.1, as `cerfs counts set` beside the
/// running server.
fn set_5_10(serve: &Serve, sub: &str) {
    let out = std::process::Command::new(CERFS)
        .args(["counts", "set", sub, "--cabs", "5", "--hits", "10", "--db"])
        .arg(serve.db_arg())
        .output()
        .expect("run cerfs counts set");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One client cycle of example 4.1 (15:32:23 04-23-2007, TestMachine, TestUser).
fn client_41(sub: &str, pattern: &str) -> Op {
    op(
        Who::Guest,
        &[
            "cycles",
            "--subpath",
            sub,
            "--cab",
            &cab_file(),
            "--cab-name",
            "d5je031w.cab",
            "--pattern",
            pattern,
            "--machine",
            "TestMachine",
            "--user-name",
            "TestUser",
            "--time",
            "15:32:23",
            "--date",
            "04-23-2007",
        ],
    )
}

/// One client cycle of example 4.2 (blue) copying `cab_name`.
fn client_42(cab_name: &str, pattern: &str) -> Op {
    op(
        Who::Guest,
        &[
            "cycles",
            "--subpath",
            "blue",
            "--cab",
            &cab_file(),
            "--cab-name",
            cab_name,
            "--pattern",
            pattern,
        ],
    )
}

fn get(path: &str) -> Op {
    op(Who::Guest, &["get", path])
}

#[test]
fn example_4_1_and_4_2_over_smb() {
    if !can_run(true) {
        return;
    }
    for store in each_store() {
        let Some(mut serve) = Serve::start_or_skip(&options_on(&store)) else {
            return;
        };
        let cab = std::fs::read(cab_file()).expect("read the test cab");

        // --- 4.1: no policy.txt; status.txt with tracking; count.txt 5/10.
        assert_eq!(status(&serve.py(&["get", "policy.txt"])), "absent");
        let mut setup = prepare_41(&serve, SUB_41);
        setup.extend(prepare_41(&serve, SUB_41B));
        all_ok(&serve, &setup);
        set_5_10(&serve, SUB_41);
        set_5_10(&serve, SUB_41B);
        for answer in all_ok(
            &serve,
            &[
                get(&format!("counts\\{SUB_41}\\count.txt")),
                get(&format!("counts\\{SUB_41B}\\count.txt")),
            ],
        ) {
            assert_eq!(data(&answer), b"Cabs Gathered=5\r\nTotal Hits=10\r\n");
        }
        all_ok(&serve, &[client_41(SUB_41, "a"), client_41(SUB_41B, "b")]);

        let mut checks = vec![get("crash.log")];
        for sub in [SUB_41, SUB_41B] {
            checks.push(get(&format!("counts\\{sub}\\count.txt")));
            checks.push(get(&format!("cabs\\{sub}\\d5je031w.cab")));
            checks.push(get(&format!("cabs\\{sub}\\hits.log")));
            checks.push(op(Who::Guest, &["ls", &format!("cabs\\{sub}")]));
        }
        let answers = all_ok(&serve, &checks);
        assert_eq!(
            String::from_utf8(data(&answers[0])).expect("ASCII"),
            format!(
                "15:32:23  04-23-2007\tTestMachine\tTestUser\t{SUB_41}\r\n\
             15:32:23  04-23-2007\tTestMachine\tTestUser\t{SUB_41B}\r\n"
            )
        );
        for (sub, answers) in [SUB_41, SUB_41B].iter().zip(answers[1..].chunks(4)) {
            assert_eq!(
                data(&answers[0]),
                b"Cabs Gathered=6\r\nTotal Hits=11\r\n",
                "count.txt of {sub}"
            );
            assert_eq!(data(&answers[1]), cab, "the cab of {sub}");
            assert_eq!(
                data(&answers[2]),
                b"15:32:23  04-23-2007\tTestMachine\tTestUser\td5je031w.cab\r\n",
                "hits.log of {sub}"
            );
            assert_eq!(
                answers[3]["names"],
                serde_json::json!(["d5je031w.cab", "hits.log"]),
                "{}",
                answers[3]
            );
        }

        // --- 4.2: blue, no policy, no status: the cab is copied, count.txt created then
        // incremented (patterns b, supersede, a), nothing logged (tracking is off by default).
        let answers = all_ok(
            &serve,
            &[
                client_42("d5JE031w.cab", "b"),
                get(r"counts\blue\count.txt"),
                get(r"cabs\blue\d5JE031w.cab"),
                client_42("x7ka2m1q.cab", "s"),
                get(r"counts\blue\count.txt"),
                client_42("q0q0q0q0.cab", "a"),
                get(r"counts\blue\count.txt"),
                op(Who::Guest, &["ls", r"cabs\blue"]),
                get("crash.log"),
            ],
        );
        assert_eq!(data(&answers[1]), b"Cabs Gathered=1\r\nTotal Hits=1\r\n");
        assert_eq!(data(&answers[2]), cab);
        assert_eq!(data(&answers[4]), b"Cabs Gathered=2\r\nTotal Hits=2\r\n");
        assert_eq!(data(&answers[6]), b"Cabs Gathered=3\r\nTotal Hits=3\r\n");
        assert_eq!(
            answers[7]["names"],
            serde_json::json!(["d5JE031w.cab", "q0q0q0q0.cab", "x7ka2m1q.cab"])
        );
        // crash.log still holds only the two lines of 4.1; blue has no hits.log.
        assert_eq!(data(&answers[8]).iter().filter(|&&b| b == b'\n').count(), 2);
        assert_eq!(status(&serve.py(&["get", r"cabs\blue\hits.log"])), "absent");

        // smbclient, the other real client, sees the same bytes.
        let out = serve.smbclient(&format!("get counts\\{SUB_41}\\count.txt -"));
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .starts_with("Cabs Gathered=6\r\nTotal Hits=11\r\n"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );

        let exit = serve.terminate();
        serve.assert_clean_stop(exit);
    }
}
