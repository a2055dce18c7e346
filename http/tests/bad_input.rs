//! Bad input: each is refused with a 4xx and a one-line reason, nothing is stored (or half
//! stored), and the server goes on serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use cerfs_http::Config;
use common::*;

/// Posts `body`, expects `status` and a one-line reason containing `needle`.
fn refused(server: &Server, body: Vec<u8>, status: u16, needle: &str) {
    let (got, answer) = server.post(body);
    let text = String::from_utf8_lossy(&answer).into_owned();
    assert_eq!(got, status, "{text}");
    assert!(
        text.ends_with("\r\n") && text.trim_end().lines().count() == 1,
        "{text:?}"
    );
    assert!(text.contains(needle), "{needle:?} not in {text:?}");
}

/// After refusals, a good report still works.
fn still_serving(server: &Server) {
    let answer = server.report(EXAMPLE_4_4);
    assert!(answer.bucket > 0);
}

#[test]
fn malformed_xml_is_refused() {
    for server in Server::each() {
        let before = server.snapshot();
        let cases: Vec<(String, &str)> = vec![
            (EXAMPLE_4_4.replace("</SIGNATURE>", ""), "malformed XML"),
            (EXAMPLE_4_4.replace("</WERREPORT>", ""), "malformed XML"),
            (
                EXAMPLE_4_4.replace("value=\"1000\"", "value=1000"),
                "malformed XML",
            ),
            (
                EXAMPLE_4_4.replace("<USERINFO username", "<USERINFO username=\"a\" username"),
                "malformed XML",
            ),
            (
                EXAMPLE_4_4.replace("value=\"2000\"", "value=\"&bogus;\""),
                "malformed XML",
            ),
            (format!("{EXAMPLE_4_4}<WERREPORT/>"), "malformed XML"),
            (format!("{EXAMPLE_4_4}trailing"), "malformed XML"),
            ("not xml at all".to_owned(), "malformed XML"),
            ("<REPORT/>".to_owned(), "root element is <REPORT>"),
        ];
        for (xml, needle) in cases {
            refused(&server, utf16le(&xml), 400, needle);
        }
        refused(&server, Vec::new(), 400, "empty");
        assert_eq!(server.snapshot(), before, "nothing stored");
        // Wrong method or path.
        let c = client();
        let get = c
            .get(format!("{}/stage2.htm", server.base()))
            .send()
            .unwrap();
        assert_eq!(get.status().as_u16(), 405);
        assert_eq!(get.headers()["allow"], "POST");
        let other = c
            .post(format!("{}/stage3.htm", server.base()))
            .body(utf16le(EXAMPLE_4_4))
            .send()
            .unwrap();
        assert_eq!(other.status().as_u16(), 404);
        assert_eq!(server.snapshot(), before);
        still_serving(&server);
    }
}

#[test]
fn wrong_encodings_are_refused() {
    for server in Server::each() {
        let before = server.snapshot();
        let mut odd = utf16le(EXAMPLE_4_4);
        odd.push(b'x');
        refused(&server, odd, 400, "not valid UTF-16LE");
        let mut lone_surrogate = utf16le(EXAMPLE_4_4);
        lone_surrogate.splice(2..2, 0xDC00u16.to_le_bytes());
        refused(&server, lone_surrogate, 400, "not valid UTF-16LE");
        let mut be_garbage = vec![0xFE, 0xFF];
        be_garbage.extend_from_slice(&[0xD8, 0x00, 0x00, 0x3C]);
        refused(&server, be_garbage, 400, "not valid UTF-16BE");
        // ANSI (code page 1252) is no encoding a client sends: é as the byte 0xE9.
        let mut ansi = EXAMPLE_4_4.replace("MikeTest", "Mik\u{1}Test").into_bytes();
        for b in ansi.iter_mut().filter(|b| **b == 1) {
            *b = 0xE9;
        }
        refused(&server, ansi, 400, "not valid UTF-8");
        // A UTF-16 body whose text holds a control character.
        refused(
            &server,
            utf16le(&EXAMPLE_4_4.replace("1000", "10\u{7}00")),
            400,
            "control character",
        );
        assert_eq!(server.snapshot(), before);
        // UTF-8 with and without BOM, and UTF-16BE, are fine.
        assert!(server.post(EXAMPLE_4_4.as_bytes().to_vec()).0 == 200);
        let mut bom8 = vec![0xEF, 0xBB, 0xBF];
        bom8.extend_from_slice(EXAMPLE_4_4.as_bytes());
        assert_eq!(server.post(bom8).0, 200);
        let mut be = vec![0xFE, 0xFF];
        for u in EXAMPLE_4_4.encode_utf16() {
            be.extend_from_slice(&u.to_be_bytes());
        }
        assert_eq!(server.post(be).0, 200);
        assert_eq!(server.snapshot().reports, 3);
    }
}

#[test]
fn missing_elements_and_attributes_are_refused() {
    for server in Server::each() {
        let before = server.snapshot();
        let drop_line = |needle: &str| -> String {
            EXAMPLE_4_4
                .split("\r\n")
                .filter(|l| !l.contains(needle))
                .collect::<Vec<_>>()
                .join("\r\n")
        };
        let cases: Vec<(String, &str)> = vec![
            (drop_line("<MACHINEINFO"), "<MACHINEINFO> is missing"),
            (drop_line("<USERINFO"), "<USERINFO> is missing"),
            (
                drop_line("<APPLICATIONINFO"),
                "<APPLICATIONINFO> is missing",
            ),
            (drop_line("<EVENTINFO"), "<EVENTINFO> is missing"),
            (drop_line("SIGNATURE>"), "<SIGNATURE> is missing"),
            (drop_line("<PARAMETER"), "<SIGNATURE> holds no <PARAMETER>"),
            (
                EXAMPLE_4_4.replace(" machinename=\"client-machine.corp.cliendomain.com\"", ""),
                "<MACHINEINFO> has no machinename=",
            ),
            (
                EXAMPLE_4_4.replace(" eventtype=\"MikeTest\"", ""),
                "<EVENTINFO> has no eventtype=",
            ),
            (
                EXAMPLE_4_4.replace(
                    "eventtime=\"128497001160460289\"",
                    "eventtime=\"yesterday\"",
                ),
                "eventtime=\"yesterday\" is not a FILETIME",
            ),
            (EXAMPLE_4_4.replace("lcid=\"1033\"", "lcid=\"-1\""), "lcid"),
            (
                EXAMPLE_4_4.replace(" value=\"2000\"", ""),
                "<PARAMETER> has no value=",
            ),
            (
                EXAMPLE_4_4.replace(
                    "<USERINFO username=\"Username\"/>",
                    "<USERINFO username=\"a\"/><USERINFO username=\"b\"/>",
                ),
                "<USERINFO> appears more than once",
            ),
        ];
        for (xml, needle) in cases {
            refused(&server, utf16le(&xml), 400, needle);
        }
        // A kernel fault without any parameter.
        let bare = EXAMPLE_4_3.split("<SIGNATURE>").next().unwrap().to_owned()
            + "<SIGNATURE> </SIGNATURE> </WERREPORT>";
        refused(&server, utf16le(&bare), 400, "holds no <PARAMETER>");
        assert_eq!(server.snapshot(), before);
        still_serving(&server);
    }
}

#[test]
fn oversized_reports_are_refused() {
    for server in Server::each() {
        let before = server.snapshot();
        // Padded with a comment to just over 1 MiB.
        let pad = "x".repeat((1 << 20) / 2);
        let big = EXAMPLE_4_4.replace("<SIGNATURE>", &format!("<!--{pad}--><SIGNATURE>"));
        let body = utf16le(&big);
        assert!(body.len() > 1 << 20);
        refused(&server, body.clone(), 413, "at most 1048576 are accepted");
        // The same without Content-Length (chunked), so the server has to count.
        let resp = client()
            .post(format!("{}/stage2.htm", server.base()))
            .body(reqwest::blocking::Body::new(std::io::Cursor::new(body)))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 413);
        // Just under the limit is fine.
        let fits = EXAMPLE_4_4.replace(
            "<SIGNATURE>",
            &format!("<!--{}--><SIGNATURE>", "x".repeat((1 << 20) / 2 - 1000)),
        );
        assert_eq!(server.snapshot(), before);
        assert_eq!(server.post(utf16le(&fits)).0, 200);
    }
}

#[test]
fn unknown_and_repeated_uploads_are_refused() {
    for server in Server::each() {
        let answer = server.report(EXAMPLE_4_3);
        let dump = answer.dump_file.expect("DumpFile");
        let before = server.snapshot();
        for path in [
            "/PersistedCabs/Blue/00000000-0000-0000-0000-000000000000.cab".to_owned(),
            slash_path(&dump).to_uppercase(),
            format!("{}x", slash_path(&dump)),
            "/stage2.htm.cab".to_owned(),
            "/".to_owned(),
            "/%FF%FE".to_owned(),
        ] {
            let (status, body) = server.put(&path, cab_bytes(1, 100));
            assert_eq!(status, 404, "{path}: {body}");
            assert!(body.contains("no such DumpFile"), "{body}");
        }
        assert_eq!(server.snapshot(), before);
        let cab = cab_bytes(2, 300_000);
        assert_eq!(server.put(&encoded_path(&dump), cab.clone()).0, 200);
        let after_first = server.snapshot();
        let (status, body) = server.put(&slash_path(&dump), cab_bytes(3, 10));
        assert_eq!(status, 409, "{body}");
        assert!(body.contains("already uploaded"), "{body}");
        assert_eq!(server.snapshot(), after_first);
        let name = dump.rsplit('\\').next().unwrap();
        assert_eq!(server.share_file(&format!("cabs/blue/{name}")), cab);
    }
}

#[test]
fn racing_uploads_store_one_cab() {
    for server in Server::each().into_iter().map(Arc::new) {
        // Truly concurrent: two clients PUT the same DumpFile at once, several times.
        for round in 0..4u64 {
            let dump = server.report(EXAMPLE_4_3).dump_file.expect("DumpFile");
            let start = Arc::new(Barrier::new(2));
            let racers: Vec<_> = (0..2u64)
                .map(|i| {
                    let server = Arc::clone(&server);
                    let start = Arc::clone(&start);
                    let path = encoded_path(&dump);
                    std::thread::spawn(move || {
                        let cab = cab_bytes(round * 2 + i, 800_000);
                        start.wait();
                        let (status, _) = server.put(&path, cab.clone());
                        (status, sha256_hex(&cab))
                    })
                })
                .collect();
            let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
            let mut statuses: Vec<u16> = results.iter().map(|r| r.0).collect();
            statuses.sort_unstable();
            assert_eq!(statuses, [200, 409], "round {round}");
            let winner = results.iter().find(|r| r.0 == 200).unwrap();
            let stored = server.one(&format!(
                "SELECT cab_sha256 FROM cer2_reports WHERE dump_path = {}",
                sql_text(&dump)
            ));
            assert_eq!(stored, winner.1);
        }
        let snap = server.snapshot();
        assert_eq!((snap.cabs, snap.uploaded, snap.cabs_gathered), (4, 4, 4));

        // Deterministic: the first upload is known to be under way (the server asked for its
        // body with 100 Continue) when the second arrives.
        let dump = server.report(EXAMPLE_4_3).dump_file.expect("DumpFile");
        let path = encoded_path(&dump);
        let cab = cab_bytes(99, 50_000);
        let mut first = TcpStream::connect(server.addr()).unwrap();
        first
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            first,
            "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            cab.len()
        )
        .unwrap();
        let mut cont = [0u8; 25];
        std::io::Read::read_exact(&mut first, &mut cont).unwrap();
        assert!(
            cont.starts_with(b"HTTP/1.1 100 Continue\r\n"),
            "{:?}",
            String::from_utf8_lossy(&cont)
        );
        let (status, body) = server.put(&slash_path(&dump), cab_bytes(98, 10));
        assert_eq!(status, 409, "{body}");
        assert!(body.contains("in progress"), "{body}");
        first.write_all(&cab).unwrap();
        let (status, body) = read_response(&mut first);
        assert_eq!(status, 200, "{body}");
        let name = dump.rsplit('\\').next().unwrap();
        assert_eq!(server.share_file(&format!("cabs/blue/{name}")), cab);
    }
}

#[test]
fn oversized_cabs_are_refused_and_nothing_is_kept() {
    for server in Server::each_with_cab_limit(test_config(), 64 * 1024) {
        let dump = server.report(EXAMPLE_4_3).dump_file.expect("DumpFile");
        let before = server.snapshot();
        // Announced too big.
        let (status, body) = server.put(&encoded_path(&dump), cab_bytes(1, 100_000));
        assert_eq!(status, 413, "{body}");
        assert!(body.contains("at most 65536 are accepted"), "{body}");
        assert_eq!(server.snapshot(), before);
        // Not announced (chunked): found out while streaming; what was written is dropped.
        let resp = client()
            .put(format!("{}{}", server.base(), slash_path(&dump)))
            .body(reqwest::blocking::Body::new(std::io::Cursor::new(
                cab_bytes(2, 100_000),
            )))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 413);
        assert_eq!(server.snapshot(), before);
        // The DumpFile is still open: the client may retry with a cab that fits.
        let cab = cab_bytes(3, 64 * 1024);
        assert_eq!(server.put(&encoded_path(&dump), cab.clone()).0, 200);
        assert_eq!(server.snapshot().uploaded, 1);
    }
}

#[test]
fn slow_clients_time_out_and_nothing_is_kept() {
    for server in Server::each_with(Config {
        body_timeout: Duration::from_millis(300),
        ..test_config()
    }) {
        let dump = server.report(EXAMPLE_4_3).dump_file.expect("DumpFile");
        let before = server.snapshot();
        // A level-1 report that never finishes.
        let head = format!(
            "POST /stage2.htm HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{}",
            &EXAMPLE_4_4[..100]
        );
        let (status, body) = raw_exchange(server.addr(), head.as_bytes());
        assert_eq!(status, 408, "{body}");
        assert!(body.contains("the body came too slowly"), "{body}");
        // An upload that stalls after 600 KiB (past one write batch: some bytes were stored).
        let mut request = format!(
            "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n",
            encoded_path(&dump)
        )
        .into_bytes();
        request.extend_from_slice(&cab_bytes(5, 600 * 1024));
        let (status, body) = raw_exchange(server.addr(), &request);
        assert_eq!(status, 408, "{body}");
        assert!(body.contains("the body came too slowly"), "{body}");
        assert_eq!(server.snapshot(), before, "nothing kept");
        // The DumpFile can still be used.
        assert_eq!(server.put(&slash_path(&dump), cab_bytes(6, 1000)).0, 200);
    }
}

#[test]
fn an_upload_cut_short_keeps_nothing() {
    for mut server in Server::each() {
        let dump = server.report(EXAMPLE_4_3).dump_file.expect("DumpFile");
        let before = server.snapshot();
        {
            let mut conn = TcpStream::connect(server.addr()).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            write!(
            conn,
            "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\nExpect: 100-continue\r\n\r\n",
            encoded_path(&dump)
        )
            .unwrap();
            // The server has begun the cab and asks for the body.
            let mut cont = [0u8; 25];
            std::io::Read::read_exact(&mut conn, &mut cont).unwrap();
            assert!(cont.starts_with(b"HTTP/1.1 100 Continue"));
            conn.write_all(&cab_bytes(7, 700 * 1024)).unwrap();
            // The client dies: the connection closes mid-body.
        }
        // A graceful stop waits for the request in progress, which sees the cut and cleans up.
        server.stop();
        let one = |q: &str| server.count(q);
        assert_eq!(one("SELECT count(*) FROM cab_rows"), before.cabs);
        assert_eq!(one("SELECT count(*) FROM chunks"), before.chunks);
        assert_eq!(one("SELECT count(*) FROM nodes"), before.nodes);
        assert_eq!(
            one("SELECT count(*) FROM cer2_reports WHERE dump_state = 'issued'"),
            1
        );
        // After a restart the client can upload again.
        server.restart();
        assert_eq!(server.put(&encoded_path(&dump), cab_bytes(8, 1000)).0, 200);
    }
}

#[test]
fn a_shutdown_cuts_off_a_stalled_upload_and_keeps_nothing() {
    for mut server in Server::each_with(Config {
        body_timeout: Duration::from_secs(600),
        shutdown_grace: Duration::from_millis(200),
        ..test_config()
    }) {
        let dump = server.report(EXAMPLE_4_3).dump_file.expect("DumpFile");
        let before = server.snapshot();
        let mut conn = TcpStream::connect(server.addr()).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            conn,
            "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\nExpect: 100-continue\r\n\r\n",
            encoded_path(&dump)
        )
        .unwrap();
        let mut cont = [0u8; 25];
        std::io::Read::read_exact(&mut conn, &mut cont).unwrap();
        assert!(cont.starts_with(b"HTTP/1.1 100 Continue"));
        conn.write_all(&cab_bytes(10, 700 * 1024)).unwrap();
        // The client stalls; the server is stopped: after the grace period the request is
        // cancelled and its upload aborted.
        server.stop();
        let after = server.snapshot();
        assert_eq!(after, before, "nothing kept");
        drop(conn);
        server.restart();
        assert_eq!(server.put(&slash_path(&dump), cab_bytes(11, 2000)).0, 200);
    }
}
