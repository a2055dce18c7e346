//! A webhook receiver on loopback for the alert tests: it records every POSTed JSON body
//! and answers each request with the next status of a script (then 200). Threads serve
//! until the process ends (a test process is short-lived).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A running receiver.
pub struct WebhookReceiver {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl WebhookReceiver {
    /// Answers the first requests with `script` (e.g. `[500]`: one failure), then 200.
    ///
    /// # Panics
    /// Loopback cannot be bound.
    pub fn start(script: &[u16]) -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!(
            "http://{}/hook",
            listener.local_addr().expect("the bound address")
        );
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&bodies);
        let script = Arc::new(Mutex::new(
            script.iter().copied().collect::<VecDeque<u16>>(),
        ));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, script) = (Arc::clone(&log), Arc::clone(&script));
                std::thread::spawn(move || {
                    let Ok(mut out) = stream.try_clone() else {
                        return;
                    };
                    let mut reader = BufReader::new(stream);
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; length.min(1 << 20)];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let status = script
                        .lock()
                        .ok()
                        .and_then(|mut s| s.pop_front())
                        .unwrap_or(200);
                    if status == 200 {
                        if let (Ok(value), Ok(mut log)) =
                            (serde_json::from_slice(&body), log.lock())
                        {
                            log.push(value);
                        }
                    }
                    let _ = write!(
                        out,
                        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                });
            }
        });
        WebhookReceiver { url, bodies }
    }

    /// The bodies of the requests answered 200, in order.
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().map(|b| b.clone()).unwrap_or_default()
    }
}
