//! A symbol server on loopback for the crash-analysis tests and the bench: paths answered
//! from a map, case-insensitively as Microsoft's server does, everything else 404; paths
//! containing `redirect-loop`, `hang` or `huge` misbehave as their names say. It counts
//! the requests. Threads serve until the process ends (a test process is short-lived).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running server.
pub struct SymbolServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The paths asked for, in order.
    pub asked: Arc<Mutex<Vec<String>>>,
}

impl SymbolServer {
    /// Serves `files` (keys: URL paths such as `/app.pdb/<id>/app.pdb`) on a port of 0.
    ///
    /// # Panics
    /// Loopback cannot be bound.
    pub fn start(files: HashMap<String, Vec<u8>>) -> SymbolServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!(
            "http://{}",
            listener.local_addr().expect("the bound address")
        );
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&asked);
        let files: Arc<HashMap<String, Vec<u8>>> = Arc::new(
            files
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (files, log) = (Arc::clone(&files), Arc::clone(&log));
                std::thread::spawn(move || answer(stream, &files, &log));
            }
        });
        SymbolServer { url, asked }
    }

    /// How many requests it has had.
    pub fn requests(&self) -> usize {
        self.asked.lock().map(|a| a.len()).unwrap_or(0)
    }
}

fn answer(mut stream: TcpStream, files: &HashMap<String, Vec<u8>>, log: &Mutex<Vec<String>>) {
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
    }
    let path = request
        .split(' ')
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_owned();
    if let Ok(mut log) = log.lock() {
        log.push(path.clone());
    }
    let key = path.to_ascii_lowercase();
    let reply = |stream: &mut TcpStream, status: &str, extra: &str, body: &[u8]| {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
    };
    if key.contains("redirect-loop") {
        reply(
            &mut stream,
            "302 Found",
            &format!("Location: {path}\r\n"),
            b"",
        );
    } else if key.contains("hang") {
        std::thread::sleep(Duration::from_secs(30));
    } else if key.contains("huge") {
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\nConnection: close\r\n\r\n",
        );
    } else if let Some(body) = files.get(&key) {
        reply(&mut stream, "200 OK", "", body);
    } else {
        reply(&mut stream, "404 Not Found", "", b"");
    }
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
}

/// A server with the PDB and PE of `testdata/windows/mini.dmp`'s program (`crash.exe`),
/// laid out as a Microsoft symbol server lays them out.
pub fn mini_dmp_symbol_server() -> SymbolServer {
    let mut files = HashMap::new();
    files.insert(
        "/crash.pdb/3249d99d0c4049318610f4e4fb0b69361/crash.pdb".to_owned(),
        crate::read_testdata("windows/crash.pdb"),
    );
    files.insert(
        "/crash.exe/5ab380779000/crash.exe".to_owned(),
        crate::read_testdata("windows/crash.exe"),
    );
    SymbolServer::start(files)
}
