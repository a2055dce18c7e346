//! A minimal HTTP/1.1 client for the CER V2 server's tests: one request per connection,
//! so that what a test sends is exactly what the server reads.

use std::io::{Read, Write};

/// POSTs `body` to `http://addr/stage2.htm`; returns the status code and the body.
///
/// # Panics
/// When the server cannot be reached or answers without an HTTP status line.
pub fn post_stage2(addr: &str, body: &[u8]) -> (u16, String) {
    let mut conn = std::net::TcpStream::connect(addr).expect("connect to the HTTP server");
    let head = format!(
        "POST /stage2.htm HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).expect("send head");
    conn.write_all(body).expect("send body");
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).expect("read the answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("an HTTP status line");
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
