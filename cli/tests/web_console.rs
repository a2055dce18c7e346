//! The web console end to end: `cerfs web` over the generated demo store (reports through
//! fs-core, cabs indexed and walked by the real worker), its pages and JSON API fetched
//! over HTTP as a browser or a script would.

mod admin_support;

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
    fn start(db: &std::path::Path) -> Web {
        let port = reserve_port();
        let child = Command::new(CERFS)
            .args(["web", "--db"])
            .arg(db)
            .args(["--listen", &port.addr().to_string()])
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
    let store = generate();
    let web = Web::start(&store.db);

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
    let (status, page) = web.get(&format!("/buckets/{id}"));
    assert_eq!(status, 200);
    assert!(page.contains("Crashes per bucket"));
    let (status, body) = web.get("/api/v1/buckets/999999");
    assert_eq!(status, 404);
    assert!(body.contains("no bucket 999999"));
    assert_eq!(web.get("/buckets/999999").0, 404);

    // Signatures: as many crashes as walked dumps.
    let sigs = web.json("/api/v1/signatures");
    let crashes: u64 = sigs
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["crashes"].as_u64().expect("crashes"))
        .sum();
    let walked = cerfs_db(
        &store.db,
        &["query", "--format", "csv", "SELECT count(*) FROM stacks"],
    );
    assert_eq!(
        stdout(&walked).lines().nth(1),
        Some(crashes.to_string().as_str())
    );
    let (status, page) = web.get("/signatures");
    assert_eq!(status, 200);
    let top = sigs[0]["signature"].as_str().expect("signature");
    assert!(page.contains(
        &top.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    ));

    // The OpenAPI document names every route, and every route it names answers.
    let doc = web.json("/api/v1/openapi.json");
    let paths = doc["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), 5);
    for path in paths.keys() {
        let concrete = path.replace("{id}", &id.to_string());
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
    let mut opts = smb_support::ServeOptions::new();
    opts.extra = vec!["--web".into(), web_port.addr().to_string()];
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
    let page: Value = reqwest::blocking::get(format!("http://{addr}/api/v1/buckets"))
        .expect("GET")
        .json()
        .expect("JSON");
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["subpath"], "blue");
    let o: Value = reqwest::blocking::get(format!("http://{addr}/api/v1/overview?days=1"))
        .expect("GET")
        .json()
        .expect("JSON");
    assert_eq!(o["reports_per_day"][0]["kernel"], 1);
}
