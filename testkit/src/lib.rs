//! What cerfs's tests share, once: the skip rule ([`skip`]), the vendored test data and
//! synthetic inputs ([`data`]), count.txt as a client bumps it ([`counts`]), child processes and mounts ([`process`]), checked closes and
//! hashes ([`files`]), test ports ([`ports`]), a database on the test PostgreSQL server ([`postgres_server`]), a loopback symbol server
//! ([`symbol_server`]) and a loopback webhook receiver ([`webhook_receiver`]). A dev-dependency of every crate whose
//! tests need one of these; nothing here is part of cerfs itself.

pub mod counts;
pub mod data;
pub mod files;
pub mod http_client;
pub mod ports;
pub mod postgres_server;
pub mod process;
pub mod skip;
pub mod stderr_log;
pub mod symbol_server;
pub mod webhook_receiver;

/// This crate's own tests that spawn a process and the one that binds its reserved ports
/// take turns: a child forked while a port is bound holds the socket until it execs.
#[cfg(test)]
pub(crate) fn spawn_or_bind_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub use counts::{bumped, counters, increment};
pub use data::{build_cab, read_testdata, testdata, utf16le_bom};
pub use files::{close_checked, sha256_file, sha256_hex};
pub use http_client::post_stage2;
pub use ports::{reserve_port, Port};
pub use postgres_server::TestDatabase;
pub use process::{
    is_alive, is_mounted, live_group_members, poll_until, send_signal, wait_exit, wait_for_log,
    ChildGuard,
};
pub use skip::{required, unavailable};
pub use stderr_log::StderrLog;
pub use symbol_server::{mini_dmp_symbol_server, SymbolServer};
pub use webhook_receiver::WebhookReceiver;
