//! Hostile clients over real sockets (docs/security.md): idle connections that would take
//! every slot, a body trickling in a byte at a time, a gigantic announced length, and one
//! address flooding the store with new buckets. Each test failed before its fix.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::Duration;

use cerfs_http::Config;
use common::*;

/// A client whose connections come from `source` (any 127.x address is loopback).
fn client_from(source: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .local_address(source.parse::<IpAddr>().ok())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

/// A connection that sent nothing yet, guarded against a server that never answers.
fn idle(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    stream
}

#[test]
fn one_address_cannot_take_every_connection() {
    for server in Server::each_with(Config {
        max_connections_per_address: 4,
        header_timeout: Duration::from_secs(600),
        ..test_config()
    }) {
        // Four idle connections from 127.0.0.1: its whole allowance.
        let _held: Vec<TcpStream> = (0..4).map(|_| idle(&server)).collect();
        // A fifth from there is answered 503 at once and closed.
        let mut fifth = idle(&server);
        let mut answer = String::new();
        fifth.read_to_string(&mut answer).expect("read the refusal");
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("too many connections from your address"));
        // Another client is served meanwhile.
        let resp = client_from("127.0.0.2")
            .post(format!("{}/stage2.htm", server.base()))
            .body(utf16le(EXAMPLE_4_4))
            .send()
            .expect("post from 127.0.0.2");
        assert_eq!(resp.status().as_u16(), 200);
    }
}

#[test]
fn a_trickling_body_is_dropped_and_nothing_is_kept() {
    for server in Server::each_with(Config {
        body_timeout: Duration::from_secs(600),
        body_grace: Duration::from_secs(1),
        min_body_rate: 1000,
        ..test_config()
    }) {
        let dump = server.report(EXAMPLE_4_3).dump_file.expect("DumpFile");
        let before = server.snapshot();
        // A few bytes of a 2 MB cab, then nothing more: long before the 600 s stall limit,
        // the body has fallen behind 1000 bytes/s.
        let mut request = format!(
            "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n",
            encoded_path(&dump)
        )
        .into_bytes();
        request.extend_from_slice(b"MSCF");
        let (status, body) = raw_exchange(server.addr(), &request);
        assert_eq!(status, 408, "{body}");
        assert!(body.contains("at least 1000 bytes/s"), "{body}");
        assert_eq!(server.snapshot(), before, "nothing kept");
        // The same for a level-1 report.
        let head = "POST /stage2.htm HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n<?xml";
        let (status, _) = raw_exchange(server.addr(), head.as_bytes());
        assert_eq!(status, 408);
    }
}

#[test]
fn an_announced_length_over_the_limit_is_refused_before_the_body() {
    for server in Server::each_with_cab_limit(
        Config {
            body_timeout: Duration::from_secs(600),
            ..test_config()
        },
        1 << 20,
    ) {
        let dump = server.report(EXAMPLE_4_3).dump_file.expect("DumpFile");
        for head in [
            format!(
                "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n",
                encoded_path(&dump)
            ),
            "POST /stage2.htm HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n".into(),
        ] {
            // Only the head is sent: the answer must come without waiting for the body.
            let mut stream = idle(&server);
            stream.write_all(head.as_bytes()).expect("send the head");
            let (status, body) = read_response(&mut stream);
            assert_eq!(status, 413, "{body}");
            assert!(body.contains("announces 100000000000 bytes"), "{body}");
        }
        assert_eq!(server.snapshot().uploaded, 0);
    }
}

#[test]
fn one_address_creates_a_bounded_number_of_buckets_per_minute() {
    for server in Server::each_with(Config {
        new_buckets_per_minute: 3,
        ..test_config()
    }) {
        let report = |client: &reqwest::blocking::Client, offset: &str| {
            client
                .post(format!("{}/stage2.htm", server.base()))
                .body(utf16le(&appcrash(
                    "Flood",
                    "1.0",
                    "flood.exe",
                    "1.0",
                    offset,
                )))
                .send()
                .expect("post")
        };
        let local = client_from("127.0.0.1");
        for i in 0..3 {
            let offset = format!("0000000{i}");
            assert_eq!(report(&local, &offset).status().as_u16(), 200, "bucket {i}");
        }
        let flood = report(&local, "0000000f");
        assert_eq!(flood.status().as_u16(), 429);
        assert_eq!(
            flood
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            Some("60")
        );
        // Reports for known buckets go on; another address has its own allowance.
        assert_eq!(report(&local, "00000001").status().as_u16(), 200);
        assert_eq!(
            report(&client_from("127.0.0.3"), "0000000f")
                .status()
                .as_u16(),
            200
        );
        let buckets = server.count("SELECT count(*) FROM buckets WHERE subpath LIKE 'Flood%'");
        assert_eq!(buckets, 4);
    }
}

/// A store at its quota: the level-1 report is still counted, the dump gets 507 and
/// nothing of it is kept; once the quota is lifted the next dump is taken.
#[test]
fn a_full_store_answers_507_for_dumps_and_still_counts_reports() {
    for server in Server::each() {
        server
            .store
            .set_server_setting(cerfs_fs_core::MAX_STORE_SETTING, Some("1"))
            .unwrap();
        let before = server.snapshot();
        let dump = server.report(EXAMPLE_4_3).dump_file.expect("DumpFile");
        let counted = server.snapshot();
        assert_eq!(counted.hits, before.hits + 1, "the report is counted");
        let (status, body) = server.put(&encoded_path(&dump), cab_bytes(7, 50_000));
        assert_eq!(status, 507, "{body}");
        assert_eq!(
            server.snapshot().cabs,
            counted.cabs,
            "nothing of the dump is kept"
        );
        assert!(server.fs.space_status().cabs_refused);
        assert!(server.fs.space_status().refusals > 0);
    }
}
