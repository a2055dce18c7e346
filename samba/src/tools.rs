//! Where the Samba programs are.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, SambaError};

/// Directories searched besides `PATH` (smbd lives in sbin, which a user's PATH may lack).
const EXTRA_DIRS: [&str; 4] = [
    "/usr/sbin",
    "/usr/local/sbin",
    "/sbin",
    "/usr/local/samba/sbin",
];

/// Where Debian and most distributions keep samba-dcerpcd when `smbd -b` does not say.
const DEFAULT_LIBEXEC: &str = "/usr/libexec/samba";

/// The Samba programs cerfs runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SambaTools {
    /// The file server.
    pub smbd: PathBuf,
    /// The RPC server (share listing, LSA): part of Samba since 4.16; `None` on older
    /// versions, whose smbd serves RPC itself.
    pub dcerpcd: Option<PathBuf>,
    /// Sets account passwords in the passdb.
    pub smbpasswd: PathBuf,
    /// Lists and removes passdb accounts.
    pub pdbedit: PathBuf,
}

impl SambaTools {
    /// Finds the programs.
    ///
    /// # Errors
    /// [`SambaError::Missing`] naming the package to install.
    pub fn find() -> Result<SambaTools> {
        let smbd = find_program("smbd").ok_or(SambaError::Missing {
            program: "smbd",
            package: "samba",
        })?;
        let smbpasswd = find_program("smbpasswd").ok_or(SambaError::Missing {
            program: "smbpasswd",
            package: "samba",
        })?;
        let pdbedit = find_program("pdbedit").ok_or(SambaError::Missing {
            program: "pdbedit",
            package: "samba",
        })?;
        let dcerpcd = Path::new(&libexec_dir(&smbd)).join("samba-dcerpcd");
        Ok(SambaTools {
            smbd,
            dcerpcd: dcerpcd.is_file().then_some(dcerpcd),
            smbpasswd,
            pdbedit,
        })
    }
}

/// The first executable file called `name` in `PATH` or [`EXTRA_DIRS`].
fn find_program(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Samba's libexec directory, as `smbd -b` reports it (`SAMBA_LIBEXECDIR: /usr/libexec/samba`).
fn libexec_dir(smbd: &Path) -> String {
    let reported = Command::new(smbd).arg("-b").output().ok().and_then(|out| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|line| {
                let (key, value) = line.trim().split_once(':')?;
                (key.trim() == "SAMBA_LIBEXECDIR").then(|| value.trim().to_owned())
            })
    });
    reported.unwrap_or_else(|| DEFAULT_LIBEXEC.to_owned())
}
