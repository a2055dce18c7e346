//! Test ports for servers that cannot be asked to bind port 0 (smbd is given its port in
//! smb.conf; a test that restarts a server needs the same port again). One allocator for
//! every test of every crate, so that no two tests collide, even in parallel processes.
//!
//! A port of 14400–14499 is taken by holding an exclusive lock on its lock file in the
//! system's temp directory (released when the [`Port`] is dropped, or when the process
//! dies), and only if nothing else listens on it right now.

use std::fs::{File, OpenOptions, TryLockError};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;

/// The ports tests may use (the project's test range).
pub const TEST_PORTS: std::ops::RangeInclusive<u16> = 14400..=14499;

/// A port reserved for one test; free for others again when dropped.
#[derive(Debug)]
pub struct Port {
    port: u16,
    _lock: File,
}

impl Port {
    /// The port number.
    pub fn get(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }
}

/// Reserves a free port of [`TEST_PORTS`] on 127.0.0.1.
///
/// # Panics
/// When every port of the range is reserved or in use.
pub fn reserve_port() -> Port {
    let dir = lock_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    // Start at a different place in each process, so that parallel test processes rarely
    // contend for the same lock files.
    let span = u32::from(TEST_PORTS.end() - TEST_PORTS.start()) + 1;
    let offset = std::process::id() % span;
    for i in 0..span {
        let port = TEST_PORTS.start() + ((offset + i) % span) as u16;
        let path = dir.join(format!("{port}.lock"));
        let Ok(file) = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        else {
            continue;
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => continue,
            Err(TryLockError::Error(_)) => continue,
        }
        // Reserved among tests; something else (a system service) may still hold it.
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Port { port, _lock: file };
        }
    }
    panic!(
        "no free test port in {}-{}: every one is reserved or in use",
        TEST_PORTS.start(),
        TEST_PORTS.end()
    );
}

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("cerfs-test-ports")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_are_distinct_and_free() {
        let _turn = crate::spawn_or_bind_turn();
        let a = reserve_port();
        let b = reserve_port();
        assert_ne!(a.get(), b.get());
        assert!(TEST_PORTS.contains(&a.get()));
        // Free to bind for the test that holds it.
        drop(TcpListener::bind(a.addr()).expect("bind the reserved port"));
        let held = TcpListener::bind(b.addr()).expect("bind");
        drop(b);
        // A port something listens on is not handed out.
        let others: Vec<Port> = (0..5).map(|_| reserve_port()).collect();
        let busy = held.local_addr().expect("addr").port();
        assert!(others.iter().all(|p| p.get() != busy));
    }
}
