//! Alerts through the `cerfs` binary: `cerfs alerts set|show|test` against a webhook
//! receiver on loopback, and a running `cerfs serve` telling it about a bucket that a
//! client creates through the mount.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod smb_support;

use std::io::Write;
use std::time::Duration;

use admin_support::{assert_code, cerfs_db, generate, stderr, stdout};
use cerfs_testkit::{poll_until, WebhookReceiver};

#[test]
fn alerts_are_configured_shown_and_tested() {
    let store = generate();
    let good = WebhookReceiver::start(&[]);
    let out = cerfs_db(
        &store.db,
        &["alerts", "set", "--webhook", &good.url, "--spike-min", "50"],
    );
    assert_code(&out, 0);
    let shown = stdout(&cerfs_db(&store.db, &["alerts", "show"]));
    assert!(
        shown.contains(&format!("webhook       {} (json)", good.url)),
        "{shown}"
    );
    assert!(shown.contains("50 hits in an hour"), "{shown}");
    let out = cerfs_db(&store.db, &["alerts", "test"]);
    assert_code(&out, 0);
    assert_eq!(good.received()[0]["kind"], "test");

    let bad = WebhookReceiver::start(&[500]);
    assert_code(
        &cerfs_db(
            &store.db,
            &["alerts", "set", "--webhook", &bad.url, "--format", "teams"],
        ),
        0,
    );
    let out = cerfs_db(&store.db, &["alerts", "test"]);
    assert_code(&out, 1);
    assert!(stdout(&out).contains("answered 500"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("1 of 2 webhooks failed"),
        "{}",
        stderr(&out)
    );

    let out = cerfs_db(&store.db, &["alerts", "set", "--webhook", "ftp://x"]);
    assert_code(&out, 1);
    assert!(stderr(&out).contains("not an http:// or https:// URL"));
    assert_code(
        &cerfs_db(&store.db, &["alerts", "set", "--remove-webhook", &bad.url]),
        0,
    );
    let out = cerfs_db(&store.db, &["alerts", "set", "--remove-webhook", &bad.url]);
    assert_code(&out, 1);
}

#[test]
fn a_running_server_tells_about_a_new_bucket() {
    if !smb_support::can_run(false) {
        return;
    }
    let receiver = WebhookReceiver::start(&[]);
    let mut opts = smb_support::ServeOptions::new();
    opts.extra = vec!["--alert-interval".into(), "1".into()];
    let Some(serve) = smb_support::Serve::start_or_skip(&opts) else {
        return;
    };
    // Configured while it runs: picked up at its next round.
    assert_code(
        &cerfs_db(&serve.db, &["alerts", "set", "--webhook", &receiver.url]),
        0,
    );
    // The server's first round is its baseline (what exists is not news): wait for it.
    poll_until(Duration::from_secs(30), "the alert baseline", || {
        let out = cerfs_db(
            &serve.db,
            &[
                "query",
                "--format",
                "csv",
                "SELECT count(*) FROM server_setting_rows WHERE key = 'alerts.since'",
            ],
        );
        (stdout(&out).lines().nth(1) == Some("1")).then_some(())
    });
    let dir = serve.mountpoint.join("counts").join("blue");
    std::fs::create_dir_all(&dir).unwrap();
    let mut count = std::fs::File::create(dir.join("count.txt")).unwrap();
    count
        .write_all(b"Cabs Gathered=0\r\nTotal Hits=1\r\n")
        .unwrap();
    cerfs_testkit::close_checked(count).unwrap();
    let got = poll_until(Duration::from_secs(60), "the new-bucket alert", || {
        receiver
            .received()
            .into_iter()
            .find(|b| b["kind"] == "new_bucket")
    });
    assert_eq!(got["subject"], "blue");
    assert!(got["detail"].as_str().unwrap().contains("blue"));
    let listed = stdout(&cerfs_db(
        &serve.db,
        &[
            "query",
            "--format",
            "csv",
            "SELECT kind, subject, delivered_at IS NOT NULL FROM alerts",
        ],
    ));
    assert!(listed.contains("new_bucket,blue,1"), "{listed}");
}
