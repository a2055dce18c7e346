//! Shared by the HTTP tests: a real server on a reserved loopback port, over a fresh store
//! of each backend (SQLite always, PostgreSQL on the test server: `CERFS_TEST_POSTGRES`),
//! a real HTTP client, the [MS-CER2] examples, and ways to look at the store (read-only
//! SQL, the same on both) and at the share (fs-core).

#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cerfs_db::{PgStore, QueryDb, RowSink, SqliteStore, Store, Value};
use cerfs_fs_core::{Caller, CerFs};
use cerfs_http::{Config, HttpHandle, Level1Answer};
use tempfile::TempDir;

/// [MS-CER2] 4.3, the level-1 data exactly as the example shows it (one line).
pub const EXAMPLE_4_3: &str = r#"<?xml version="1.0" encoding="UTF-16"?> <WERREPORT xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"> <MACHINEINFO machinename="client-machine.corp.cliendomain.com" os="6.1.6561.2.0.0.256.1" lcid="1033"/> <USERINFO username="Username"/> <APPLICATIONINFO appname="Windows" apppath="C:\Windows\System32\WerFault.exe" appcompany="Test Corporation"/> <EVENTINFO reporttype="4" eventtime="128496996179046077" eventtype="BlueScreen" friendlyeventname="Shut down unexpectedly"/> <SIGNATURE> <SECONDARYPARAMETER name="BCCode" value="f4"/> <SECONDARYPARAMETER name="BCP1" value="00000003"/> <SECONDARYPARAMETER name="BCP2" value="8C387020"/> <SECONDARYPARAMETER name="BCP3" value="8C387184"/> <SECONDARYPARAMETER name="BCP4" value="81BD1A30"/> <SECONDARYPARAMETER name="OS Version" value="6_1_6561"/> <SECONDARYPARAMETER name="Service Pack" value="0_0"/> <SECONDARYPARAMETER name="Product" value="256_1"/> </SIGNATURE> <FILES> <FILE filetype="2" filename="Mini031108-01.dmp"/> <FILE filetype="5" filename="sysdata.xml"/> <FILE filetype="5" filename="Version.txt"/> </FILES> </WERREPORT>"#;

/// [MS-CER2] 4.4, the level-1 data as the example shows it (its lines, CRLF as Windows
/// writes them, without the document's indentation).
pub const EXAMPLE_4_4: &str = "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r\n\
<WERREPORT xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\r\n\
<MACHINEINFO machinename=\"client-machine.corp.cliendomain.com\" os=\"6.1.6561.2.0.0.256.1\" lcid=\"1033\"/>\r\n\
<USERINFO username=\"Username\"/>\r\n\
<APPLICATIONINFO appname=\"Test\" apppath=\"E:\\tools\\wersample.exe\" appcompany=\"Test Corporation\"/>\r\n\
<EVENTINFO reporttype=\"1\" eventtime=\"128497001160460289\" eventtype=\"MikeTest\" friendlyeventname=\"MikeTest\"/>\r\n\
<SIGNATURE>\r\n\
<PARAMETER id=\"0\" name=\"Problem Signature 01\" value=\"1000\"/>\r\n\
<PARAMETER id=\"1\" name=\"Problem Signature 02\" value=\"2000\"/>\r\n\
<PARAMETER id=\"2\" name=\"Problem Signature 03\" value=\"3000\"/>\r\n\
</SIGNATURE>\r\n\
</WERREPORT>\r\n";

/// An application crash (APPCRASH) with named parameters, as WER writes them.
pub fn appcrash(app: &str, app_ver: &str, module: &str, mod_ver: &str, offset: &str) -> String {
    let params = [
        ("Application Name", app),
        ("Application Version", app_ver),
        ("Application Timestamp", "4a5bc9d4"),
        ("Fault Module Name", module),
        ("Fault Module Version", mod_ver),
        ("Fault Module Timestamp", "4a5bdb3b"),
        ("Exception Code", "c0000005"),
        ("Exception Offset", offset),
    ];
    appcrash_with(
        &params
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>(),
    )
}

/// An APPCRASH report with these PARAMETER names and values.
pub fn appcrash_with(params: &[(String, String)]) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r\n\
         <WERREPORT xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\r\n\
         <MACHINEINFO machinename=\"PC-0042\" os=\"6.1.7601.2.1.0.256.48\" lcid=\"1031\"/>\r\n\
         <USERINFO username=\"CORP\\alice\"/>\r\n\
         <APPLICATIONINFO appname=\"Test Application\" apppath=\"C:\\Program Files\\Test\\TestApp.exe\" appcompany=\"Test Corporation\"/>\r\n\
         <EVENTINFO reporttype=\"1\" eventtime=\"129000000000000000\" eventtype=\"APPCRASH\" friendlyeventname=\"Stopped working\"/>\r\n\
         <SIGNATURE>\r\n",
    );
    for (i, (name, value)) in params.iter().enumerate() {
        xml.push_str(&format!(
            "<PARAMETER id=\"{i}\" name=\"{name}\" value=\"{value}\"/>\r\n"
        ));
    }
    xml.push_str(
        "</SIGNATURE>\r\n<FILES>\r\n<FILE filetype=\"1\" filename=\"WER1234.tmp.mdmp\"/>\r\n</FILES>\r\n</WERREPORT>\r\n",
    );
    xml
}

/// `text` as "Unicode" the way Windows sends it: UTF-16LE with a byte order mark.
pub fn utf16le(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

/// Deterministic pseudo-random bytes (xorshift), starting like a cab.
pub fn cab_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(b"MSCF");
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub use cerfs_testkit::sha256_hex;

/// A blocking HTTP client that never uses a proxy.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("http client")
}

/// The test's server config: the defaults, with a short body timeout so that the slow
/// client tests do not wait a minute, and room for the concurrency tests' many
/// connections and buckets, all from 127.0.0.1 (the limits per address have tests of their
/// own).
pub fn test_config() -> Config {
    Config {
        body_timeout: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(10),
        max_connections_per_address: 256,
        new_buckets_per_minute: 10_000,
        ..Config::default()
    }
}

/// Logs of the server go to the test's output (shown when a test fails).
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// The store a server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A server on `127.0.0.1` (a port reserved from the test range, so that a restart finds it
/// free again) over a fresh store: a SQLite file in
/// a temporary directory, or a database of its own on the test PostgreSQL server.
pub struct Server {
    pub backend: Backend,
    pub dir: TempDir,
    pub port: u16,
    /// Holds `port` for this test until the server is dropped.
    reserved: cerfs_testkit::Port,
    pub config: Config,
    pub max_cab_size: u64,
    pub fs: Arc<CerFs>,
    pub store: Arc<dyn Store>,
    handle: Option<HttpHandle>,
    /// The PostgreSQL database (dropped last, after the store's connections).
    pg: Option<cerfs_testkit::TestDatabase>,
}

impl Server {
    /// A server on each backend available (PostgreSQL's skips by the one skip rule).
    pub fn each() -> Vec<Server> {
        Server::each_with(test_config())
    }

    pub fn each_with(config: Config) -> Vec<Server> {
        Server::each_with_cab_limit(config, cerfs_fs_core::DEFAULT_MAX_CAB_SIZE)
    }

    /// Servers over shares that take cabs of at most `max_cab_size` bytes.
    pub fn each_with_cab_limit(config: Config, max_cab_size: u64) -> Vec<Server> {
        let mut all = vec![Server::start_on(None, config.clone(), max_cab_size)];
        if let Some(db) = cerfs_testkit::TestDatabase::create() {
            all.push(Server::start_on(Some(db), config, max_cab_size));
        }
        all
    }

    /// A server on SQLite, or on PostgreSQL database `pg`.
    fn start_on(
        pg: Option<cerfs_testkit::TestDatabase>,
        config: Config,
        max_cab_size: u64,
    ) -> Server {
        init_logging();
        let backend = match pg {
            None => Backend::Sqlite,
            Some(_) => Backend::Postgres,
        };
        eprintln!("CER V2 server on {backend:?}");
        let dir = tempfile::tempdir().expect("tempdir");
        let reserved = cerfs_testkit::reserve_port();
        let (fs, store, handle) = launch(&dir, pg.as_ref(), reserved.get(), &config, max_cab_size);
        Server {
            backend,
            dir,
            port: reserved.get(),
            reserved,
            config,
            max_cab_size,
            fs,
            store,
            handle: Some(handle),
            pg,
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("cer.db")
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Stops the server gracefully (waits for requests in progress).
    pub fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().expect("server shutdown");
        }
    }

    /// Stops the server, closes the store, opens it again and serves it on the same port
    /// (still reserved for this test).
    pub fn restart(&mut self) {
        self.stop();
        // The old store must close (and give up its server lock) before it opens again: a
        // throwaway store takes the place of the last references to it.
        let spare = Arc::new(
            SqliteStore::open(&self.dir.path().join("spare.db")).expect("open a spare store"),
        );
        self.fs = Arc::new(CerFs::new(spare.clone()));
        self.store = spare;
        let (fs, store, handle) = launch(
            &self.dir,
            self.pg.as_ref(),
            self.port,
            &self.config,
            self.max_cab_size,
        );
        // The old store is closed once these last references go.
        self.fs = fs;
        self.store = store;
        self.handle = Some(handle);
    }

    /// Runs a read-only SQL statement (the same on both backends: the views, and the
    /// tables both have) and returns its rows, every value as text (NULL as "NULL").
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        let db = match &self.pg {
            None => QueryDb::open(&self.db_path()),
            Some(pg) => QueryDb::open_postgres(&pg.url),
        }
        .expect("a read-only SQL connection");
        db.text_rows(sql, &[]).expect(sql)
    }

    /// The one value of a query's one row.
    pub fn one(&self, sql: &str) -> String {
        let rows = self.rows(sql);
        assert_eq!(rows.len(), 1, "one row of {sql}: {rows:?}");
        rows[0][0].clone()
    }

    /// The one integer of a query's one row.
    pub fn count(&self, sql: &str) -> i64 {
        self.one(sql).parse().expect(sql)
    }

    /// POSTs a level-1 body to /stage2.htm.
    pub fn post(&self, body: Vec<u8>) -> (u16, Vec<u8>) {
        let resp = client()
            .post(format!("{}/stage2.htm", self.base()))
            .header("Content-Type", "text/xml")
            .body(body)
            .send()
            .expect("POST /stage2.htm");
        let status = resp.status().as_u16();
        (status, resp.bytes().expect("answer body").to_vec())
    }

    /// POSTs a report and parses the 200 answer under the 2.2.2 grammar.
    pub fn report(&self, xml: &str) -> Level1Answer {
        let (status, body) = self.post(utf16le(xml));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        check_answer_text(&body);
        Level1Answer::parse(&body).expect("answer follows MS-CER2 2.2.2")
    }

    /// PUTs `data` to `url_path` (already a URL path: `/...`).
    pub fn put(&self, url_path: &str, data: Vec<u8>) -> (u16, String) {
        let resp = client()
            .put(format!("{}{}", self.base(), url_path))
            .body(data)
            .send()
            .expect("PUT");
        let status = resp.status().as_u16();
        (status, resp.text().unwrap_or_default())
    }

    /// Bytes of a file of the share, read through fs-core like a client would.
    pub fn share_file(&self, path: &str) -> Vec<u8> {
        let who = Caller {
            pid: 4242,
            uid: 1000,
            gid: 1000,
        };
        let attr = self.fs.resolve(&who, path).expect(path);
        let fh = self
            .fs
            .open(&who, attr.ino, Default::default())
            .expect("open")
            .fh;
        let mut out = Vec::new();
        loop {
            let piece = self.fs.read(fh, out.len() as u64, 1 << 20).expect("read");
            if piece.is_empty() {
                break;
            }
            out.extend_from_slice(&piece);
        }
        self.fs.release(fh).expect("release");
        out
    }

    /// What the store holds, in numbers: nothing may change on a refused request.
    pub fn snapshot(&self) -> Snapshot {
        let one = |q: &str| self.count(q);
        Snapshot {
            reports: one("SELECT count(*) FROM cer2_report_rows"),
            params: one("SELECT count(*) FROM cer2_report_param_rows"),
            files: one("SELECT count(*) FROM cer2_report_file_rows"),
            uploaded: one("SELECT count(*) FROM cer2_report_rows WHERE dump_state = 'uploaded'"),
            buckets: one("SELECT count(*) FROM bucket_rows"),
            hits: one("SELECT coalesce(sum(total_hits), 0) FROM bucket_rows"),
            cabs_gathered: one("SELECT coalesce(sum(cabs_gathered), 0) FROM bucket_rows"),
            cabs: one("SELECT count(*) FROM cab_rows"),
            chunks: one("SELECT count(*) FROM chunks"),
            nodes: one("SELECT count(*) FROM nodes"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.shutdown();
        }
    }
}

fn launch(
    dir: &TempDir,
    pg: Option<&cerfs_testkit::TestDatabase>,
    port: u16,
    config: &Config,
    max_cab_size: u64,
) -> (Arc<CerFs>, Arc<dyn Store>, HttpHandle) {
    let store: Arc<dyn Store> = match pg {
        None => Arc::new(SqliteStore::open(&dir.path().join("cer.db")).expect("open store")),
        Some(db) => Arc::new(PgStore::open(&db.url).expect("open store")),
    };
    let fs = Arc::new(CerFs::new(store.clone()).with_max_cab_size(max_cab_size));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let handle = cerfs_http::spawn(fs.clone(), addr, config.clone()).expect("start server");
    assert_eq!(handle.local_addr(), addr);
    (fs, store, handle)
}

/// Row counts of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub reports: i64,
    pub params: i64,
    pub files: i64,
    pub uploaded: i64,
    pub buckets: i64,
    pub hits: i64,
    pub cabs_gathered: i64,
    pub cabs: i64,
    pub chunks: i64,
    pub nodes: i64,
}

/// `text` as an SQL string literal (backslashes are plain characters on both backends).
pub fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The raw answer follows the ABNF form: ASCII `Name=Value` lines, no space around `=`,
/// each ending in CRLF.
pub fn check_answer_text(body: &[u8]) {
    let text = std::str::from_utf8(body).expect("ASCII answer");
    assert!(text.ends_with("\r\n"), "{text:?}");
    for line in text.split_terminator("\r\n") {
        assert!(!line.contains('\n') && !line.contains('\r'), "{text:?}");
        let (name, _) = line.split_once('=').expect("Name=Value");
        assert!(!name.ends_with(' '), "no space before = in {line:?}");
        assert!(
            name.bytes().all(|b| b.is_ascii_alphabetic()),
            "name {name:?}"
        );
    }
}

/// The DumpFile as a URL path with every backslash percent-encoded (`/%5CPersistedCabs...`).
pub fn encoded_path(dump_file: &str) -> String {
    format!("/{}", dump_file.replace('\\', "%5C"))
}

/// The DumpFile as a slash path (`/PersistedCabs/...`).
pub fn slash_path(dump_file: &str) -> String {
    dump_file.replace('\\', "/")
}

/// Sends `request` (raw bytes) on a new connection and reads the answer's status line
/// and body (the server closes or the Content-Length is reached).
pub fn raw_exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    stream.write_all(request).expect("send");
    read_response(&mut stream)
}

/// Reads one HTTP/1.1 response (status and body) from `stream`.
pub fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut piece = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("status line");
            if status == 100 {
                buf.drain(..end + 4);
                continue;
            }
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return (status, body);
            }
        }
        let n = stream.read(&mut piece).expect("read response");
        if n == 0 {
            panic!(
                "connection closed before a full response: {:?}",
                String::from_utf8_lossy(&buf)
            );
        }
        buf.extend_from_slice(&piece[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
