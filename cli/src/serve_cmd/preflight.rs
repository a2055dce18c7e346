//! What `cerfs serve` checks and prepares before it starts anything: the admin password, a
//! mountpoint smbd can reach, free ports, and whether it runs as root. Each refusal says
//! what to do.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use cerfs_samba::SambaConfig;
use tracing::info;

use crate::mount_cmd::unix::check_mountpoint;

/// Environment variable holding the admin password when no file is given.
pub(super) const PASSWORD_ENV: &str = "CERFS_ADMIN_PASSWORD";

/// The admin password: the first line of `file`, else $CERFS_ADMIN_PASSWORD, else none.
pub(super) fn admin_password(file: Option<&Path>) -> Result<Option<String>> {
    let text = match file {
        Some(file) => fs::read_to_string(file).with_context(|| {
            format!(
                "cannot read the admin password file {}: give a readable file whose first line \
                 is the password",
                file.display()
            )
        })?,
        None => match std::env::var(PASSWORD_ENV) {
            Ok(text) => text,
            Err(std::env::VarError::NotPresent) => return Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                bail!("{PASSWORD_ENV} is not valid UTF-8: set a UTF-8 password")
            }
        },
    };
    let password = text.lines().next().unwrap_or_default();
    if password.is_empty() {
        bail!(
            "the admin password is empty: put the password on the first line of {}",
            file.map_or_else(|| PASSWORD_ENV.to_owned(), |f| f.display().to_string())
        );
    }
    Ok(Some(password.to_owned()))
}

/// Creates the mountpoint if missing and checks that every client's unix user can reach
/// it: smbd enters it as nobody (guests) or as the account's user. Returns its canonical path.
pub(super) fn prepare_mountpoint(mountpoint: &Path) -> Result<PathBuf> {
    if !mountpoint.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(mountpoint)
            .with_context(|| format!("cannot create mountpoint {}", mountpoint.display()))?;
        info!("created mountpoint {}", mountpoint.display());
    }
    check_mountpoint(mountpoint)?;
    let mountpoint = &mountpoint
        .canonicalize()
        .with_context(|| format!("cannot resolve mountpoint {}", mountpoint.display()))?;
    if is_mount_point(mountpoint)? {
        bail!(
            "{0} is already a mount point (another cerfs serve or mount?): stop it, or unmount \
             it (fusermount3 -u {0}), or choose another --mountpoint",
            mountpoint.display()
        );
    }
    for dir in mountpoint.ancestors().skip(1) {
        let mode = fs::metadata(dir)
            .with_context(|| format!("cannot stat {}", dir.display()))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            bail!(
                "{0} is not searchable by other users (mode {1:o}), so smbd acting for clients \
                 cannot reach the share at {2}: run `chmod o+x {0}` or choose another \
                 --mountpoint",
                dir.display(),
                mode & 0o7777,
                mountpoint.display()
            );
        }
    }
    Ok(mountpoint.clone())
}

/// Whether something is mounted on `dir` (from /proc/self/mountinfo).
pub(super) fn is_mount_point(dir: &Path) -> Result<bool> {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").context("cannot read /proc/self/mountinfo")?;
    let wanted = dir.to_string_lossy().replace(' ', "\\040");
    Ok(mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted.as_str())))
}

/// Refuses ports that another server holds, before anything is mounted.
pub(super) fn check_ports(config: &SambaConfig) -> Result<()> {
    for addr in config.socket_addrs() {
        if let Err(e) = cerfs_samba::port_available(addr) {
            match e.kind() {
                io::ErrorKind::AddrInUse => bail!(
                    "port {} on {} is in use (the system's Samba? another cerfs serve?): stop \
                     it or choose another --port",
                    addr.port(),
                    addr.ip()
                ),
                io::ErrorKind::AddrNotAvailable => bail!(
                    "{} is not an address of this machine: give one of its addresses with --listen",
                    addr.ip()
                ),
                io::ErrorKind::PermissionDenied => bail!(
                    "not permitted to listen on port {}: run cerfs serve as root",
                    addr.port()
                ),
                _ => return Err(e).with_context(|| format!("cannot listen on {addr}")),
            }
        }
    }
    Ok(())
}

/// An absolute, canonical form of `path` (its last component may not exist yet).
pub(super) fn absolute(path: PathBuf) -> Result<PathBuf> {
    let path = std::path::absolute(&path)
        .with_context(|| format!("cannot make {} absolute", path.display()))?;
    match path.canonicalize() {
        Ok(canonical) => Ok(canonical),
        Err(_) => Ok(path),
    }
}

/// Whether this process runs with effective uid 0 (from /proc/self/status).
pub(super) fn is_root() -> Result<bool> {
    let status =
        fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .ok_or_else(|| anyhow!("no Uid line in /proc/self/status"))?;
    Ok(euid == "0")
}
