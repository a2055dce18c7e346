//! The web console end to end: `cerfs web` over the generated demo store (reports through
//! fs-core, cabs indexed and walked by the real worker), its pages and JSON API fetched
//! over HTTP as a browser or a script would; the pages and the metrics on a SQLite file
//! and on a PostgreSQL store alike.

mod admin_support;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use admin_support::*;
use cerfs_testkit::{poll_until, reserve_port, Port};
use serde_json::Value;

/// A running `cerfs web`, stopped (SIGTERM, then waited for) when dropped.
struct Web {
    child: Child,
    base: String,
    _port: Port,
}

impl Web {
    fn start(db: impl AsRef<std::ffi::OsStr>) -> Web {
        Web::start_with(db, &[])
    }

    fn start_with(db: impl AsRef<std::ffi::OsStr>, extra: &[&str]) -> Web {
        let port = reserve_port();
        let child = Command::new(CERFS)
            .args(["web", "--db"])
            .arg(db)
            .args(["--listen", &port.addr().to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("run cerfs web");
        let addr = port.addr();
        poll_until(Duration::from_secs(30), "cerfs web listening", || {
            std::net::TcpStream::connect(addr).ok()
        });
        Web {
            child,
            base: format!("http://{addr}"),
            _port: port,
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::blocking::get(format!("{}{path}", self.base)).expect(path);
        let status = response.status().as_u16();
        (status, response.text().expect("body"))
    }

    fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        cerfs_testkit::send_signal(self.child.id(), libc::SIGTERM);
        let _ = self.child.wait();
    }
}

fn subpaths(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|b| b["subpath"].as_str().expect("subpath").to_owned())
        .collect()
}

#[test]
fn the_console_shows_the_store_in_pages_and_json() {
    for demo in Demo::each() {
        shows_the_store(&demo);
    }
}

fn shows_the_store(demo: &Demo) {
    let db = demo.db();
    let web = Web::start(&db);

    // Overview: every report of the demo arrived today (93 hits.log lines).
    let o = web.json("/api/v1/overview?days=30");
    let days = o["reports_per_day"].as_array().expect("days");
    assert_eq!(days.len(), 30);
    let today = &days[29];
    assert_eq!(today["application"], 40 + 25 + 8 + 3);
    assert_eq!(today["kernel"], 12);
    assert_eq!(today["shutdown"], 5);
    assert!(days[..29].iter().all(|d| d["application"] == 0));
    assert_eq!(o["top_buckets"][0]["subpath"], TEST_APP);
    assert_eq!(o["top_buckets"][0]["hits"], 40);
    let trend = o["top_buckets"][0]["trend"].as_array().expect("trend");
    assert_eq!(trend.len(), 7);
    assert_eq!(trend[6], 40);
    assert_eq!(o["store"]["buckets"], 6);
    assert_eq!(o["new_buckets"].as_array().expect("new").len(), 6);
    assert!(!o["top_signatures"].as_array().expect("sigs").is_empty());
    // Every signature of the store is this week's: its cabs arrived today.
    let all_signatures = cerfs_db(
        &db,
        &[
            "query",
            "--format",
            "csv",
            "SELECT count(DISTINCT signature) FROM stacks",
        ],
    );
    assert_eq!(
        Some(
            o["new_signatures"]
                .as_array()
                .expect("new")
                .len()
                .to_string()
                .as_str()
        ),
        stdout(&all_signatures).lines().nth(1)
    );
    // A PostgreSQL store's disk is the database server's, not this host's.
    if demo.is_postgres() {
        assert!(o["store"]["disk_free_bytes"].is_null());
    } else {
        assert!(o["store"]["disk_free_bytes"].as_u64().expect("disk free") > 0);
    }
    assert!(o["quota_bytes"].is_null());

    // The page draws the same data: one bar group per day.
    let (status, html) = web.get("/");
    assert_eq!(status, 200);
    assert_eq!(html.matches("<g class=\"day\"").count(), 30);
    assert!(html.contains("data-total=\"93\""), "today's bar");
    assert!(html.contains(TEST_APP));
    let (_, html90) = web.get("/?days=90");
    assert_eq!(html90.matches("<g class=\"day\"").count(), 90);

    // Buckets: sorted, paged, filtered.
    let first = web.json("/api/v1/buckets?limit=2");
    assert_eq!(first["total"], 6);
    assert_eq!(subpaths(&first), [TEST_APP, CRASH_TEST]);
    let second = web.json("/api/v1/buckets?limit=2&offset=2");
    assert_eq!(subpaths(&second), ["blue", LINUX_APP]);
    assert_eq!(subpaths(&web.json("/api/v1/buckets?kind=kernel")), ["blue"]);
    assert_eq!(
        subpaths(&web.json("/api/v1/buckets?q=crashtest")),
        [CRASH_TEST]
    );
    assert_eq!(
        subpaths(&web.json("/api/v1/buckets?sort=subpath&limit=1")),
        [BROKEN]
    );
    let (_, list) = web.get("/buckets?limit=2");
    assert!(list.contains("6 buckets"), "{list}");
    assert!(list.contains("rel=\"next\""));
    assert!(list.contains("offset=2"));

    // Bad parameters are refused with a message that says what to give.
    for (path, hint) in [
        ("/api/v1/buckets?kind=nope", "give one of application"),
        ("/api/v1/buckets?limit=0", "give 1 to 500"),
        ("/api/v1/buckets?sort=size", "give hits"),
        ("/api/v1/buckets?since=yesterday", "YYYY-MM-DD"),
        ("/api/v1/overview?days=1000", "1 to 366"),
    ] {
        let (status, body) = web.get(path);
        assert_eq!(status, 400, "{path}");
        assert!(body.contains(hint), "{path}: {body}");
    }

    // A bucket: its counters, hits per day and the settings its clients obey.
    let id = first["items"][1]["bucket_id"].as_i64().expect("id");
    let b = web.json(&format!("/api/v1/buckets/{id}"));
    assert_eq!(b["bucket"]["subpath"], CRASH_TEST);
    assert_eq!(b["hits_per_day"].as_array().expect("days").len(), 30);
    assert_eq!(b["hits_per_day"][29], 25);
    let setting = |key: &str| {
        b["settings"]
            .as_array()
            .expect("settings")
            .iter()
            .find(|s| s["key"] == key)
            .map(|s| s["value"].as_str().expect("value").to_owned())
    };
    assert_eq!(setting("Crashes per bucket").as_deref(), Some("10"));
    assert_eq!(setting("iData").as_deref(), Some("YES"));
    assert_eq!(setting("Tracking").as_deref(), Some("YES"));
    // Who reported it: every hits.log line is some machine's.
    let machines = b["machines"].as_array().expect("machines");
    let by_machine: u64 = machines
        .iter()
        .map(|m| m["hits"].as_u64().expect("hits"))
        .sum();
    assert_eq!(by_machine, 25);
    assert_eq!(b["machine_count"].as_u64(), Some(machines.len() as u64));
    assert!(b["user_count"].as_u64().expect("users") >= 1);
    let recent = b["recent_hits"].as_array().expect("recent hits");
    assert_eq!(recent.len(), 20);
    assert!(recent
        .iter()
        .all(|h| h["item"].is_string() && h["line"].is_string()));
    let (status, page) = web.get(&format!("/buckets/{id}"));
    assert_eq!(status, 200);
    assert!(page.contains("Crashes per bucket"));
    assert!(page.contains("hits.log (newest 20)"));
    assert!(page.contains(machines[0]["machine"].as_str().expect("a machine")));
    let (status, body) = web.get("/api/v1/buckets/999999");
    assert_eq!(status, 404);
    assert!(body.contains("no bucket 999999"));
    assert_eq!(web.get("/buckets/999999").0, 404);

    // Signatures: as many crashes as walked dumps.
    let sigs = web.json("/api/v1/signatures?limit=500");
    let crashes: u64 = sigs["items"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["crashes"].as_u64().expect("crashes"))
        .sum();
    let sql = |q: &str| -> String {
        let out = cerfs_db(&db, &["query", "--format", "csv", q]);
        stdout(&out).lines().nth(1).unwrap_or_default().to_owned()
    };
    assert_eq!(sql("SELECT count(*) FROM stacks"), crashes.to_string());
    assert_eq!(
        sigs["total"].as_u64(),
        Some(sigs["items"].as_array().expect("list").len() as u64)
    );
    let (status, page) = web.get("/signatures");
    assert_eq!(status, 200);
    let top = sigs["items"][0]["signature"].as_str().expect("signature");
    let html_of = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    assert!(page.contains(&html_of(top)));

    // A signature's page: its dumps, buckets, cabs and the newest one's stack.
    let query = |k: &str, v: &str| serde_urlencoded::to_string([(k, v)]).expect("query");
    let one = web.json(&format!("/api/v1/signature?{}", query("signature", top)));
    assert_eq!(one["crashes"], sigs["items"][0]["crashes"]);
    assert_eq!(one["trend"].as_array().expect("trend").len(), 30);
    assert!(!one["buckets"].as_array().expect("buckets").is_empty());
    assert!(!one["stack"].as_array().expect("stack").is_empty(), "{one}");
    let (status, page) = web.get(&format!("/signature?{}", query("signature", top)));
    assert_eq!(status, 200);
    assert!(page.contains(&html_of(top)));
    assert_eq!(web.get("/api/v1/signature?signature=nothing!such").0, 404);
    assert_eq!(web.get("/api/v1/signature").0, 400);

    // A cab's page: members, minidump facts, the crashing thread, its text files.
    let cab_id = sql(&format!(
        "SELECT c.cab_id FROM cabs c JOIN stacks s ON s.cab_id = c.cab_id \
         WHERE c.subpath = '{TEST_APP}' ORDER BY c.cab_id LIMIT 1"
    ));
    let cab = web.json(&format!("/api/v1/cabs/{cab_id}"));
    let members: Vec<&str> = cab["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    assert_eq!(members, ["test.dmp", "version.txt", "sysdata.xml"]);
    assert_eq!(cab["dumps"][0]["member"], "test.dmp");
    assert!(cab["dumps"][0]["signature"].is_string(), "{cab}");
    assert!(!cab["stack"].as_array().expect("stack").is_empty());
    assert!(cab["texts"][0]["text"]
        .as_str()
        .expect("text")
        .contains("Windows NT Version"));
    let (status, page) = web.get(&format!("/cabs/{cab_id}"));
    assert_eq!(status, 200);
    assert!(page.contains("Crashing thread") && page.contains("sysdata.xml"));
    assert_eq!(web.get("/api/v1/cabs/999999").0, 404);

    // Search: words of text files (full-text), exception codes, crashing modules.
    let found = web.json("/api/v1/search?q=Keyboard");
    let matching = if demo.is_postgres() {
        "SELECT count(*) FROM cab_text_search \
         WHERE search @@ websearch_to_tsquery('simple', 'keyboard')"
    } else {
        "SELECT count(*) FROM cab_text_search WHERE cab_text_search MATCH 'keyboard'"
    };
    assert_eq!(
        found["texts"]["total"].as_u64().map(|n| n.to_string()),
        Some(sql(matching))
    );
    assert!(found["texts"]["items"][0]["excerpt"]
        .as_str()
        .expect("excerpt")
        .contains("[Keyboard]"));
    let code = sql("SELECT exception_code FROM minidumps WHERE exception_code IS NOT NULL LIMIT 1");
    let by_code = web.json(&format!(
        "/api/v1/search?q={}",
        code.trim_start_matches("0x").to_uppercase()
    ));
    assert_eq!(
        by_code["dumps"]["total"].as_u64().map(|n| n.to_string()),
        Some(sql(&format!(
            "SELECT count(*) FROM minidumps WHERE exception_code = '{code}'"
        )))
    );
    let module = sql("SELECT crash_module FROM minidumps WHERE crash_module IS NOT NULL LIMIT 1");
    let by_module = web.json(&format!("/api/v1/search?{}", query("q", &module)));
    assert!(by_module["dumps"]["total"].as_u64().expect("total") > 0);
    assert_eq!(by_module["dumps"]["items"][0]["found_in"], "module");
    assert_eq!(web.get("/api/v1/search?q=").0, 400);
    // FTS syntax in the query is taken as words, not an error.
    assert_eq!(web.get("/api/v1/search?q=%22AND%20OR%20(").0, 200);
    let (status, page) = web.get("/search?q=keyboard");
    assert_eq!(status, 200);
    assert!(page.contains("sysdata.xml"));

    // The OpenAPI document names every route, and every route it names answers.
    let doc = web.json("/api/v1/openapi.json");
    let paths = doc["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), 8);
    for path in paths.keys() {
        let concrete = match path.as_str() {
            "/api/v1/cabs/{id}" => format!("/api/v1/cabs/{cab_id}"),
            "/api/v1/signature" => format!("{path}?{}", query("signature", top)),
            "/api/v1/search" => format!("{path}?q=keyboard"),
            _ => path.replace("{id}", &id.to_string()),
        };
        assert_eq!(web.get(&concrete).0, 200, "{concrete}");
    }
}

#[test]
fn the_console_refuses_to_listen_beyond_loopback() {
    let store = generate();
    let out = cerfs_db(&store.db, &["web", "--listen", "0.0.0.0:14499"]);
    assert_code(&out, 1);
    assert!(stderr(&out).contains("loopback only"), "{}", stderr(&out));
}

mod smb_support;

#[test]
fn serve_runs_the_console_over_its_own_share() {
    if !smb_support::can_run(false) {
        return;
    }
    let web_port = reserve_port();
    let accounts = tempfile::tempdir().expect("temp dir");
    let users = accounts.path().join("web-users");
    add_users(&users, &[("ann", "admin", "ann pw")]);
    let mut opts = smb_support::ServeOptions::new();
    opts.extra = vec![
        "--web".into(),
        web_port.addr().to_string(),
        "--web-users".into(),
        users.to_str().expect("UTF-8").into(),
    ];
    let Some(serve) = smb_support::Serve::start_or_skip(&opts) else {
        return;
    };
    // A report through the mount: the bucket's folder and a hits.log line.
    let dir = serve.mountpoint.join("cabs").join("blue");
    std::fs::create_dir_all(&dir).expect("bucket");
    std::fs::write(
        dir.join("hits.log"),
        "10:00:00  12-01-2026\tPC1\tann\tNo CAB\r\n",
    )
    .expect("hits.log");
    let addr = web_port.addr();
    poll_until(
        Duration::from_secs(30),
        "the console of cerfs serve",
        || std::net::TcpStream::connect(addr).ok(),
    );
    let base = format!("http://{addr}");
    let cookie = session_cookie(&login(&base, "ann", "ann pw"));
    let get = |path: &str| {
        client()
            .get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
            .expect(path)
    };
    let page: Value = get("/api/v1/buckets").json().expect("JSON");
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["subpath"], "blue");
    let o: Value = get("/api/v1/overview?days=1").json().expect("JSON");
    assert_eq!(o["reports_per_day"][0]["kernel"], 1);
    // An admin's change is what the next client reads: status.txt on the mount.
    let id = page["items"][0]["bucket_id"].as_i64().expect("id");
    let token = csrf_of(&get(&format!("/buckets/{id}")).text().expect("page"));
    let changed = client()
        .post(format!("{base}/buckets/{id}/status"))
        .header("cookie", &cookie)
        .form(&[("csrf", token.as_str()), ("key", "iData"), ("value", "YES")])
        .send()
        .expect("POST");
    assert_eq!(changed.status().as_u16(), 303);
    let status = std::fs::read_to_string(
        serve
            .mountpoint
            .join("status")
            .join("blue")
            .join("status.txt"),
    )
    .expect("status.txt on the mount");
    assert_eq!(status, "iData=YES\r\n");

    // /metrics: the mount's requests, timed, and a refused count.txt write, counted.
    let counts = serve.mountpoint.join("counts").join("blue");
    std::fs::create_dir_all(&counts).expect("counts folder");
    // The refusal comes at close (std::fs::write would not say).
    let mut count = std::fs::File::create(counts.join("count.txt")).expect("count.txt");
    let refused = count
        .write_all(b"Cabs Gathered=0\r\nTotal Hits=50\r\n")
        .and_then(|()| cerfs_testkit::close_checked(count));
    assert!(refused.is_err(), "50 hits in one write are refused");
    let text = get("/metrics").text().expect("metrics");
    assert!(
        text.contains(
            "cerfs_request_duration_seconds_bucket{adapter=\"fuse\",op=\"write\",le=\"+Inf\"}"
        ),
        "{text}"
    );
    let invalid = text
        .lines()
        .find(|l| {
            l.starts_with("cerfs_refusals_total{adapter=\"fuse\",reason=\"invalid_content\"}")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("the refusal counter");
    assert!(invalid >= 1, "{text}");
    if cerfs_testkit::skip::tool_usable("promtool", "prometheus") {
        assert_eq!(promtool_check(&text), "");
    }
}

/// A client that shows redirects instead of following them.
fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Logs in; returns the Cookie header value of the session.
fn login(base: &str, user: &str, password: &str) -> reqwest::blocking::Response {
    client()
        .post(format!("{base}/login"))
        .form(&[("user", user), ("password", password)])
        .send()
        .expect("POST /login")
}

fn session_cookie(response: &reqwest::blocking::Response) -> String {
    assert_eq!(response.status().as_u16(), 303, "a good login redirects");
    let set = response
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .expect("ASCII");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().expect("name=value").to_owned()
}

/// The CSRF token of the forms on a page.
fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = page.find(marker).expect("a form with a token") + marker.len();
    page[at..at + 64].to_owned()
}

#[test]
fn accounts_decide_who_reads_changes_and_downloads() {
    let store = generate();
    let users = store.dir.path().join("web-users");
    add_users(
        &users,
        &[("ann", "admin", "ann pw"), ("bob", "viewer", "bob pw")],
    );
    let listed = cerfs(&[
        "web-user",
        "list",
        "--users",
        users.to_str().expect("UTF-8"),
    ]);
    assert_eq!(stdout(&listed), "ann\tadmin\nbob\tviewer\n");
    let web = Web::start_with(&store.db, &["--users", users.to_str().expect("UTF-8")]);
    let base = web.base.clone();
    let http = client();

    // Nothing without a session: the API says 401, a page sends to the login form.
    assert_eq!(web.get("/api/v1/buckets").0, 401);
    let page = http.get(format!("{base}/")).send().expect("GET /");
    assert_eq!(page.status().as_u16(), 303);
    assert_eq!(page.headers()["location"], "/login");
    assert_eq!(login(&base, "ann", "wrong").status().as_u16(), 401);

    let admin = session_cookie(&login(&base, "ann", "ann pw"));
    let viewer = session_cookie(&login(&base, "bob", "bob pw"));
    let get = |cookie: &str, path: &str| {
        http.get(format!("{base}{path}"))
            .header("cookie", cookie)
            .send()
            .expect(path)
    };
    let post = |cookie: &str, path: &str, form: &[(&str, &str)]| {
        http.post(format!("{base}{path}"))
            .header("cookie", cookie)
            .form(form)
            .send()
            .expect(path)
            .status()
            .as_u16()
    };
    let id = get(&viewer, "/api/v1/buckets?q=crashtest")
        .json::<Value>()
        .expect("JSON")["items"][0]["bucket_id"]
        .as_i64()
        .expect("id");
    let limit = |cookie: &str| -> String {
        get(cookie, &format!("/api/v1/buckets/{id}"))
            .json::<Value>()
            .expect("JSON")["settings"]
            .as_array()
            .expect("settings")
            .iter()
            .find(|s| s["key"] == "Crashes per bucket")
            .expect("the cap")["value"]
            .as_str()
            .expect("text")
            .to_owned()
    };
    assert_eq!(limit(&viewer), "10");

    // A viewer reads, cannot change or download.
    let page = get(&viewer, &format!("/buckets/{id}"))
        .text()
        .expect("page");
    assert!(page.contains("Changing settings needs an admin account"));
    assert!(!page.contains("/download"));
    let viewer_token = csrf_of(&page);
    let change = [
        ("csrf", viewer_token.as_str()),
        ("key", "Crashes per bucket"),
        ("value", "3"),
    ];
    assert_eq!(
        post(&viewer, &format!("/buckets/{id}/status"), &change),
        403
    );
    assert_eq!(limit(&viewer), "10");

    // An admin changes the bucket's status.txt with the page's token; forged requests fail.
    let page = get(&admin, &format!("/buckets/{id}")).text().expect("page");
    let token = csrf_of(&page);
    let set = |csrf: &str, value: &str| {
        post(
            &admin,
            &format!("/buckets/{id}/status"),
            &[
                ("csrf", csrf),
                ("key", "Crashes per bucket"),
                ("value", value),
            ],
        )
    };
    assert_eq!(set("", "3"), 403, "no token");
    assert_eq!(set(&"0".repeat(64), "3"), 403, "a wrong token");
    assert_eq!(set(&token, "lots"), 400, "validated like the share");
    assert_eq!(limit(&admin), "10");
    assert_eq!(set(&token, "7"), 303);
    assert_eq!(limit(&admin), "7");
    let status = cerfs_db(&store.db, &["status", "show", CRASH_TEST]);
    assert!(
        stdout(&status).contains("Crashes per bucket=7"),
        "{}",
        stdout(&status)
    );
    assert_eq!(
        post(
            &admin,
            "/settings/policy",
            &[("csrf", &token), ("key", "Tracking"), ("value", "NO")]
        ),
        303
    );
    assert!(stdout(&cerfs_db(&store.db, &["policy", "show"])).contains("Tracking=NO"));

    // Downloads: admins only, the recorded bytes.
    let cab = cerfs_db(
        &store.db,
        &[
            "query",
            "--format",
            "csv",
            &format!(
            "SELECT cab_id, sha256 FROM cabs WHERE bucket_id = {id} AND state = 'complete' LIMIT 1"
        ),
        ],
    );
    let row = stdout(&cab).lines().nth(1).expect("a cab").to_owned();
    let (cab_id, sha) = row.split_once(',').expect("two columns");
    let download = format!("/cabs/{cab_id}/download");
    assert!(
        page.contains(&download),
        "the admin's page links the download"
    );
    assert_eq!(get(&viewer, &download).status().as_u16(), 403);
    let got = get(&admin, &download);
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.headers()["x-cerfs-sha256"], sha);
    let bytes = got.bytes().expect("cab bytes");
    assert_eq!(cerfs_testkit::sha256_hex(&bytes), sha);

    // Logging out ends the session.
    assert_eq!(post(&admin, "/logout", &[("csrf", &token)]), 303);
    assert_eq!(get(&admin, "/api/v1/buckets").status().as_u16(), 401);

    // Five wrong passwords from one address, then it waits.
    for _ in 0..5 {
        assert_eq!(login(&base, "ann", "guess").status().as_u16(), 401);
    }
    let refused = login(&base, "ann", "ann pw");
    assert_eq!(
        refused.status().as_u16(),
        429,
        "the right password waits too"
    );
    assert!(refused.headers().contains_key("retry-after"));
}

#[test]
fn the_served_openapi_document_is_valid() {
    if !cerfs_testkit::skip::python_module_usable(
        "openapi_spec_validator",
        "openapi-spec-validator==0.9.0",
    ) {
        return;
    }
    let store = generate();
    let web = Web::start(&store.db);
    let (status, doc) = web.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    let mut check = Command::new("python3")
        .args([
            "-c",
            "import json, sys; from openapi_spec_validator import validate; \
             validate(json.load(sys.stdin)); print('valid')",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(doc.as_bytes())
        .expect("write");
    let out = check.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "valid");
}

/// `promtool check metrics` on `text`: its complaints, empty when clean.
fn promtool_check(text: &str) -> String {
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = check.wait_with_output().expect("wait");
    if out.status.success() {
        String::new()
    } else {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

#[test]
fn metrics_count_the_store_and_pass_promtool() {
    if !cerfs_testkit::skip::tool_usable("promtool", "prometheus") {
        return;
    }
    for demo in Demo::each() {
        metrics_count_the_store(&demo);
    }
}

fn metrics_count_the_store(demo: &Demo) {
    let web = Web::start(demo.db());
    let (status, text) = web.get("/metrics");
    assert_eq!(status, 200);
    for line in [
        "cerfs_reports_total{protocol=\"cer1\",kind=\"application\"} 76",
        "cerfs_reports_total{protocol=\"cer1\",kind=\"kernel\"} 12",
        "cerfs_reports_total{protocol=\"cer2\",kind=\"other\"} 0",
        "cerfs_buckets 6",
        "cerfs_index_backlog_cabs 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
    assert_eq!(promtool_check(&text), "");
}

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and a certificate it signed for 127.0.0.1 (openssl): (CA certificate, server
/// certificate, server key) files.
fn test_certificates(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let ca = [
        &["req", "-x509"][..],
        &ec,
        &["-days", "2", "-subj", "/CN=cerfs test CA"],
    ];
    let ca: Vec<&str> = ca.concat();
    openssl(
        dir,
        &[&ca[..], &["-keyout", "ca.key", "-out", "ca.crt"]].concat(),
    );
    let csr = [&["req"][..], &ec, &["-subj", "/CN=127.0.0.1"]].concat();
    openssl(
        dir,
        &[&csr[..], &["-keyout", "console.key", "-out", "console.csr"]].concat(),
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "console.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "console.crt",
        ],
    );
    (
        dir.join("ca.crt"),
        dir.join("console.crt"),
        dir.join("console.key"),
    )
}

#[test]
fn the_console_serves_https_with_secure_cookies_and_names_a_bad_key() {
    if !cerfs_testkit::skip::tool_usable("openssl", "openssl") {
        return;
    }
    let store = generate();
    let (ca, cert, key) = test_certificates(store.dir.path());
    let users = store.dir.path().join("web-users");
    add_users(&users, &[("ann", "admin", "ann pw")]);
    let path = |p: &std::path::Path| p.to_str().expect("UTF-8").to_owned();
    let web = Web::start_with(
        &store.db,
        &[
            "--users",
            &path(&users),
            "--tls-cert",
            &path(&cert),
            "--tls-key",
            &path(&key),
        ],
    );
    let https = web.base.replace("http://", "https://");
    let trusted = reqwest::Certificate::from_pem(&std::fs::read(&ca).expect("CA")).expect("PEM");
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(trusted)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = client
        .get(format!("{https}/login"))
        .send()
        .expect("GET /login");
    assert_eq!(page.status().as_u16(), 200);
    let login = client
        .post(format!("{https}/login"))
        .form(&[("user", "ann"), ("password", "ann pw")])
        .send()
        .expect("POST /login");
    assert_eq!(login.status().as_u16(), 303);
    let set = login.headers()["set-cookie"].to_str().expect("ASCII");
    assert!(set.contains("; Secure"), "{set}");
    let cookie = set.split(';').next().expect("name=value").to_owned();
    let overview = client
        .get(format!("{https}/api/v1/overview"))
        .header("cookie", cookie)
        .send()
        .expect("GET overview");
    assert_eq!(overview.status().as_u16(), 200);
    // Plain HTTP on the HTTPS port gets no page.
    assert!(reqwest::blocking::get(format!("{}/login", web.base)).is_err());
    drop(web);

    // Key and certificate swapped: refused at start, naming the file and what it must hold.
    let port = reserve_port();
    let out = cerfs(&[
        "web",
        "--db",
        &path(&store.db),
        "--listen",
        &port.addr().to_string(),
        "--tls-cert",
        &path(&key),
        "--tls-key",
        &path(&cert),
    ]);
    assert_code(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("console.key") && err.contains("BEGIN CERTIFICATE"),
        "{err}"
    );
}

/// Thread names and nice values of process `pid` (/proc/PID/task/*/stat: comm is field 2,
/// nice field 19).
fn thread_nice(pid: u32) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let stat =
            std::fs::read_to_string(task.expect("task").path().join("stat")).unwrap_or_default();
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        // Fields after comm start with field 3 (state): nice is the 17th of them.
        let nice = stat[close + 2..]
            .split(' ')
            .nth(16)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        out.push((name, nice));
    }
    out
}

#[test]
fn the_console_yields_the_cpu_to_the_share() {
    let store = generate();
    let web = Web::start(&store.db);
    // A page makes the runtime's threads (the blocking pool too) exist.
    assert_eq!(web.get("/").0, 200);
    let threads = thread_nice(web.child.id());
    let console: Vec<&(String, i64)> = threads
        .iter()
        .filter(|(name, _)| name.starts_with("cerfs-web"))
        .collect();
    assert!(!console.is_empty(), "{threads:?}");
    assert!(console.iter().all(|(_, nice)| *nice == 10), "{threads:?}");
    // The rest of the process keeps the default priority.
    assert!(
        threads
            .iter()
            .any(|(name, nice)| name == "cerfs" && *nice == 0),
        "{threads:?}"
    );
}
