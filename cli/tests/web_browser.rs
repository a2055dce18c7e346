//! The web console in a real browser: Debian's headless Chromium, driven over WebDriver
//! (chromedriver, fantoccini), against `cerfs serve --web --http` over the demo store, with
//! reports sent during the test through the mount and over CER2. Every page loads without
//! a console error, the charts hold a bar per day with the API's totals, filters and paging
//! work, times show in the browser's zone (Asia/Tokyo here), a viewer cannot change
//! anything, a forged change without the CSRF token is refused, an admin's edit is what
//! status.txt says on the mount, and a downloaded cab hashes to its stored sha256.
//!
//! With `CERFS_SCREENSHOTS=DIR` it also saves the main pages as PNGs there
//! (`scripts/screenshots.sh` regenerates docs/screenshots/ that way).

mod admin_support;
mod smb_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use admin_support::{add_users, generate_at, TEST_APP};
use cerfs_testkit::{poll_until, reserve_port, Port};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The browser's time zone: far from UTC, so a time left in UTC shows.
const ZONE: &str = "Asia/Tokyo";
const ZONE_HOURS: u32 = 9;

/// chromedriver on a port of the test range, stopped by its pid when dropped.
struct Driver {
    child: Child,
    port: Port,
}

impl Driver {
    fn start() -> Driver {
        let port = reserve_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={}", port.get()))
            .env("TZ", ZONE)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run chromedriver");
        let addr = port.addr();
        poll_until(Duration::from_secs(30), "chromedriver listening", || {
            std::net::TcpStream::connect(addr).ok()
        });
        Driver { child, port }
    }

    fn url(&self) -> String {
        format!("http://{}", self.port.addr())
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        cerfs_testkit::send_signal(self.child.id(), libc::SIGTERM);
        let _ = self.child.wait();
    }
}

/// `POST /session/{id}/se/log {"type": "browser"}`: the console messages since the last
/// call (chromedriver drains them).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

async fn browser(driver: &Driver, profile: &Path, downloads: &Path) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1280,900",
                "--lang=en-US",
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": {
                "download.default_directory": downloads.display().to_string(),
                "download.prompt_for_download": false,
            },
        },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    let caps = serde_json::from_value(caps).expect("capabilities");
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .expect("a Chromium session")
}

/// Opens `path`, fails on any console message of level SEVERE, saves a screenshot as
/// `shot` when asked to.
async fn open(c: &Client, base: &str, path: &str, shot: Option<&str>) {
    c.goto(&format!("{base}{path}")).await.expect(path);
    let logs = c.issue_cmd(BrowserLog).await.expect("browser log");
    let severe: Vec<&Value> = logs
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(severe.is_empty(), "{path}: console errors: {severe:?}");
    if let (Some(name), Some(dir)) = (shot, std::env::var_os("CERFS_SCREENSHOTS")) {
        let png = c.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).expect("save");
    }
}

async fn texts(c: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.expect(css) {
        out.push(e.text().await.expect("text"));
    }
    out
}

async fn log_in(c: &Client, base: &str, user: &str, password: &str) {
    open(c, base, "/login", Some("login")).await;
    c.find(Locator::Css("input[name=user]"))
        .await
        .expect("user field")
        .send_keys(user)
        .await
        .expect("type");
    c.find(Locator::Css("input[name=password]"))
        .await
        .expect("password field")
        .send_keys(password)
        .await
        .expect("type");
    c.find(Locator::Css("form.login button"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
    // Not any h1: the login page has one too, and reading it while the next page loads
    // gives a stale element. Only a signed-in page has the logout form.
    c.wait()
        .for_element(Locator::Css("form.logout"))
        .await
        .expect("a page after the login");
    assert_eq!(texts(c, "h1").await, ["Overview"], "{user} is logged in");
}

async fn log_out(c: &Client) {
    c.find(Locator::Css("form.logout button"))
        .await
        .expect("logout")
        .click()
        .await
        .expect("click");
    c.wait()
        .for_element(Locator::Css("form.login"))
        .await
        .expect("the login page");
}

/// A POST from the page's own JavaScript (the session cookie goes with it); its status.
async fn post_from_page(c: &Client, path: &str, form: &[(&str, &str)]) -> u64 {
    let script = "const done = arguments[arguments.length - 1];\
                  fetch(arguments[0], {method: 'POST', redirect: 'manual', \
                         headers: {'Content-Type': 'application/x-www-form-urlencoded'}, \
                         body: arguments[1]}).then(r => done(r.status), e => done(String(e)));";
    let body = serde_urlencoded::to_string(form).expect("form");
    let status = c
        .execute_async(script, vec![json!(path), json!(body)])
        .await
        .expect("fetch");
    let status = status
        .as_u64()
        .unwrap_or_else(|| panic!("POST {path}: {status}"));
    // The browser logs a refused request as an error: expected here, and only that.
    let logs = c.issue_cmd(BrowserLog).await.expect("browser log");
    for entry in logs.as_array().into_iter().flatten() {
        let message = entry["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(path) && message.contains(&status.to_string()),
            "POST {path}: unexpected console message {entry}"
        );
    }
    status
}

/// The totals of the days of the page's chart, from each bar's `<title>`.
async fn chart_totals(c: &Client) -> Vec<u64> {
    let script = "return Array.from(document.querySelectorAll('svg g.day > title'))\
                  .map(t => t.textContent);";
    let titles = c.execute(script, vec![]).await.expect("chart");
    titles
        .as_array()
        .expect("titles")
        .iter()
        .map(|t| {
            let t = t.as_str().expect("title");
            let n = t.rsplit(": ").next().expect("': N reports'");
            n.trim_end_matches(" reports")
                .parse()
                .unwrap_or_else(|_| panic!("{t}"))
        })
        .collect()
}

/// The API as an admin sees it, for what the pages must agree with.
struct Api {
    base: String,
    cookie: String,
}

impl Api {
    fn login(base: &str, user: &str, password: &str) -> Api {
        let client = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let response = client
            .post(format!("{base}/login"))
            .form(&[("user", user), ("password", password)])
            .send()
            .expect("POST /login");
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .expect("ASCII")
            .split(';')
            .next()
            .expect("cookie")
            .to_owned();
        Api {
            base: base.to_owned(),
            cookie,
        }
    }

    /// GET `path` (on a thread of its own: the blocking client cannot run inside the
    /// browser's async runtime).
    fn json(&self, path: &str) -> Value {
        std::thread::scope(|s| {
            s.spawn(|| {
                reqwest::blocking::Client::new()
                    .get(format!("{}{path}", self.base))
                    .header("cookie", &self.cookie)
                    .send()
                    .expect(path)
                    .json()
                    .expect("JSON")
            })
            .join()
            .expect("the API call")
        })
    }
}

/// A level-1 CER2 report of a blue screen, UTF-16LE with a BOM ([MS-CER2] 4.3, shortened).
fn cer2_report(http: &str) {
    let xml = r#"<?xml version="1.0" encoding="UTF-16"?><WERREPORT><MACHINEINFO machinename="VISTA-PC" os="6.1.6561.2.0.0.256.1" lcid="1033"/><USERINFO username="carol"/><APPLICATIONINFO appname="Windows" apppath="C:\Windows\System32\WerFault.exe" appcompany="Microsoft"/><EVENTINFO reporttype="4" eventtime="128496996179046077" eventtype="BlueScreen" friendlyeventname="Shut down unexpectedly"/><SIGNATURE><SECONDARYPARAMETER name="BCCode" value="f4"/></SIGNATURE></WERREPORT>"#;
    let mut body = vec![0xFF, 0xFE];
    body.extend(xml.encode_utf16().flat_map(u16::to_le_bytes));
    let response = reqwest::blocking::Client::new()
        .post(format!("http://{http}/stage2.htm"))
        .header("content-type", "text/xml")
        .body(body)
        .send()
        .expect("POST /stage2.htm");
    assert_eq!(response.status().as_u16(), 200);
}

/// A report through the mount, as a CER 1.0 client's copy ends: hits.log and count.txt.
fn share_report(mountpoint: &Path, subpath: &str, line: &str) {
    use std::io::Write;
    let parts: PathBuf = subpath.split('\\').collect();
    let cabs = mountpoint.join("cabs").join(&parts);
    std::fs::create_dir_all(&cabs).expect("bucket folder");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(cabs.join("hits.log"))
        .expect("hits.log");
    log.write_all(line.as_bytes()).expect("append");
    cerfs_testkit::close_checked(log).expect("close hits.log");
}

#[test]
fn the_console_works_in_a_real_browser() {
    use cerfs_testkit::skip::tool_usable;
    if !(tool_usable("chromium", "chromium")
        && tool_usable("chromedriver", "chromium-driver")
        && smb_support::can_run(false))
    {
        return;
    }
    let (_dir, root) = smb_support::open_tempdir();
    generate_at(&root.join("cer.db"));
    let users = root.join("web-users");
    add_users(
        &users,
        &[("ann", "admin", "ann pw"), ("bob", "viewer", "bob pw")],
    );
    let (web_port, http_port) = (reserve_port(), reserve_port());
    let mut opts = smb_support::ServeOptions::new();
    opts.extra = [
        "--web",
        &web_port.addr().to_string(),
        "--web-users",
        users.to_str().expect("UTF-8"),
        "--http",
        &http_port.addr().to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    let Some(serve) = smb_support::Serve::start_in_or_skip(&opts, &root) else {
        return;
    };
    poll_until(Duration::from_secs(30), "the console", || {
        std::net::TcpStream::connect(web_port.addr()).ok()
    });
    // Reports now, through the two ways clients send them.
    share_report(
        &serve.mountpoint,
        "LiveApp\\1.0.0.0\\live.dll\\1.0.0.0\\00001234",
        "08:30:00  12-01-2026\tLIVE-PC\tdave\tNo CAB\r\n",
    );
    cer2_report(&http_port.addr().to_string());

    let base = format!("http://{}", web_port.addr());
    let api = Api::login(&base, "ann", "ann pw");
    let driver = Driver::start();
    let profile = tempfile::tempdir().expect("profile");
    let downloads = tempfile::tempdir().expect("downloads");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let c = browser(&driver, profile.path(), downloads.path()).await;

        // A viewer reads every page.
        log_in(&c, &base, "bob", "bob pw").await;
        open(&c, &base, "/", Some("overview")).await;
        let overview = api.json("/api/v1/overview?days=30");
        let totals: Vec<u64> = overview["reports_per_day"]
            .as_array()
            .expect("days")
            .iter()
            .map(|d| {
                ["application", "kernel", "shutdown", "other"]
                    .iter()
                    .map(|k| d[k].as_u64().expect("count"))
                    .sum()
            })
            .collect();
        assert_eq!(totals.len(), 30);
        assert_eq!(
            chart_totals(&c).await,
            totals,
            "one bar per day, the API's totals"
        );
        assert!(totals.iter().sum::<u64>() > 0);
        open(&c, &base, "/?days=90", None).await;
        assert_eq!(chart_totals(&c).await.len(), 90);

        // Times in the browser's zone; UTC on hover.
        let first = c
            .find(Locator::Css("time[datetime]"))
            .await
            .expect("a time");
        let utc = first
            .attr("datetime")
            .await
            .expect("attr")
            .expect("datetime");
        let hover = first.attr("title").await.expect("attr").expect("title");
        assert_eq!(hover, format!("{utc} UTC"));
        let shown = first.text().await.expect("text");
        let utc_hour: u32 = utc[11..13].parse().expect("hour");
        let local_hour = (utc_hour + ZONE_HOURS) % 24;
        let (h12, half) = match local_hour {
            0 => (12, "AM"),
            1..=11 => (local_hour, "AM"),
            12 => (12, "PM"),
            _ => (local_hour - 12, "PM"),
        };
        assert!(
            shown.contains(&format!("{h12}:{}", &utc[14..16])) && shown.ends_with(half),
            "{utc} in {ZONE} shows as {shown:?}"
        );

        // Filters and paging.
        open(&c, &base, "/buckets", Some("buckets")).await;
        c.find(Locator::Css("select[name=kind]"))
            .await
            .expect("kind")
            .select_by_value("kernel")
            .await
            .expect("select");
        c.find(Locator::Css("form.filters button"))
            .await
            .expect("Show")
            .click()
            .await
            .expect("click");
        c.wait()
            .for_url(
                &url::Url::parse(&format!(
                    "{base}/buckets?q=&kind=kernel&since=&until=&sort=hits"
                ))
                .expect("url"),
            )
            .await
            .expect("the filtered list");
        let listed = texts(&c, "table.list tbody td:first-child").await;
        assert_eq!(listed, ["blue"], "kernel faults only");
        open(&c, &base, "/buckets?sort=subpath&limit=3", None).await;
        let page1 = texts(&c, "table.list tbody td:first-child").await;
        c.find(Locator::Css("a[rel=next]"))
            .await
            .expect("next")
            .click()
            .await
            .expect("click");
        c.wait()
            .for_element(Locator::Css("a[rel=prev]"))
            .await
            .expect("page 2");
        let page2 = texts(&c, "table.list tbody td:first-child").await;
        let all = api.json("/api/v1/buckets?sort=subpath&limit=6");
        let expected: Vec<String> = all["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|b| b["subpath"].as_str().expect("subpath").to_owned())
            .collect();
        assert_eq!([page1, page2].concat(), expected);
        assert!(
            expected.iter().any(|s| s.starts_with("LiveApp")),
            "the mount's report is listed"
        );

        // A bucket, its cab, a signature, search, settings.
        let bucket = api.json(&format!(
            "/api/v1/buckets?{}",
            serde_urlencoded::to_string([("q", TEST_APP)]).expect("query")
        ));
        let id = bucket["items"][0]["bucket_id"].as_i64().expect("id");
        open(&c, &base, &format!("/buckets/{id}"), Some("bucket")).await;
        let hits = api.json(&format!("/api/v1/buckets/{id}"))["hits_per_day"]
            .as_array()
            .expect("days")
            .iter()
            .map(|n| n.as_u64().expect("hits"))
            .collect::<Vec<_>>();
        assert_eq!(chart_totals(&c).await, hits);
        assert!(
            texts(&c, "a.download").await.is_empty(),
            "no downloads for a viewer"
        );
        c.find(Locator::Css("table.cabs tbody a"))
            .await
            .expect("a cab")
            .click()
            .await
            .expect("click");
        c.wait()
            .for_element(Locator::Css("table.stack"))
            .await
            .expect("the cab's page");
        open(
            &c,
            &base,
            c.current_url().await.expect("url").path(),
            Some("cab"),
        )
        .await;
        let sig_link = c
            .find(Locator::Css("dd.sig a"))
            .await
            .expect("its signature")
            .attr("href")
            .await
            .expect("attr")
            .expect("href");
        open(&c, &base, &sig_link, Some("signature")).await;
        assert_eq!(chart_totals(&c).await.len(), 30);
        open(&c, &base, "/signatures", Some("signatures")).await;
        open(&c, &base, "/search?q=keyboard", Some("search")).await;
        assert!(!texts(&c, "table.texts tbody tr").await.is_empty());

        // A viewer cannot change settings: no form, and a POST with its token is refused.
        open(&c, &base, "/settings", None).await;
        assert!(c
            .find_all(Locator::Css("form.set"))
            .await
            .expect("forms")
            .is_empty());
        let token = c
            .find(Locator::Css("form.logout input[name=csrf]"))
            .await
            .expect("token")
            .attr("value")
            .await
            .expect("attr")
            .expect("value");
        let refused = post_from_page(
            &c,
            "/settings/policy",
            &[("csrf", &token), ("key", "Tracking"), ("value", "NO")],
        )
        .await;
        assert_eq!(refused, 403, "a viewer's change");
        log_out(&c).await;

        // An admin: a forged change (no token) is refused, a real one reaches the mount.
        log_in(&c, &base, "ann", "ann pw").await;
        let forged = post_from_page(
            &c,
            "/settings/policy",
            &[("key", "Tracking"), ("value", "NO")],
        )
        .await;
        assert_eq!(forged, 403, "a change without the CSRF token");
        let blue = api.json("/api/v1/buckets?kind=kernel")["items"][0]["bucket_id"]
            .as_i64()
            .expect("blue");
        open(&c, &base, &format!("/buckets/{blue}"), None).await;
        c.find(Locator::Css("form.set input[name=key]"))
            .await
            .expect("key")
            .send_keys("Crashes per bucket")
            .await
            .expect("type");
        c.find(Locator::Css("form.set input[name=value]"))
            .await
            .expect("value")
            .send_keys("7")
            .await
            .expect("type");
        c.find(Locator::Css("form.set button"))
            .await
            .expect("Set")
            .click()
            .await
            .expect("click");
        // Not the table alone: the page before the click has it too. Only the page after
        // the change lists the setting, with its Remove form.
        c.wait()
            .for_element(Locator::Css(
                "table.stored input[name=key][value='Crashes per bucket']",
            ))
            .await
            .expect("the page again, with the setting");
        let status = std::fs::read_to_string(
            serve
                .mountpoint
                .join("status")
                .join("blue")
                .join("status.txt"),
        )
        .expect("status.txt on the mount");
        assert!(status.contains("Crashes per bucket=7\r\n"), "{status:?}");
        open(&c, &base, "/settings", Some("settings")).await;

        // A download from the cab's page hashes to the stored sha256.
        let cab = api.json(&format!("/api/v1/buckets/{id}"));
        assert!(cab["bucket"]["subpath"].is_string());
        open(&c, &base, &format!("/buckets/{id}"), None).await;
        let link = c
            .find(Locator::Css("table.cabs a.download"))
            .await
            .expect("a download link");
        let href = link.attr("href").await.expect("attr").expect("href");
        let cab_id: i64 = href
            .trim_start_matches("/cabs/")
            .trim_end_matches("/download")
            .parse()
            .expect("cab id");
        let name = link.attr("download").await.expect("attr").expect("name");
        link.click().await.expect("click");
        let saved = downloads.path().join(&name);
        poll_until(Duration::from_secs(30), "the download", || {
            let partial = downloads.path().join(format!("{name}.crdownload"));
            (saved.exists() && !partial.exists()).then_some(())
        });
        let sha = hex::encode(Sha256::digest(std::fs::read(&saved).expect("downloaded")));
        let stored = api.json(&format!("/api/v1/cabs/{cab_id}"));
        assert_eq!(Some(sha.as_str()), stored["cab"]["sha256"].as_str());

        c.close().await.expect("close the browser");
    });
    drop(serve);
}
