//! Files under test: closes whose result is checked (on a cerfs mount close(2) returns the
//! verdict of flush), and content hashes.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::IntoRawFd;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Closes `file` and returns what close(2) returned: on a cerfs mount that is the flush
/// result (the commit of a cab, the delta of count.txt, the lines of a log), which
/// dropping a `File` would ignore.
pub fn close_checked(file: File) -> io::Result<()> {
    let fd = file.into_raw_fd();
    // SAFETY: `fd` was just released by `into_raw_fd`, so nothing else owns or closes it.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::close(fd) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lowercase hex SHA-256 of a file's content, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut hash = Sha256::new();
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hash.finalize()));
        }
        hash.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_agree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").expect("write");
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(b"abc"), want);
        assert_eq!(sha256_file(&path).expect("hash"), want);
        close_checked(File::open(&path).expect("open")).expect("close");
    }
}
